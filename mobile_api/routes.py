"""Mobile API routes (``/mobile/v1``). Every route but login needs a live session; a
signer sees and acts on requests addressed to them only (docs/design.md invariant 7)."""

from __future__ import annotations

import base64
import binascii
import io
from typing import Annotated, Literal
from urllib.parse import quote

import segno
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from gateway.approvals import totp
from gateway.audit import log as audit
from gateway.db.models import Device, User
from gateway.errors import (
    CredentialsInvalid,
    DocumentWorkersBusy,
    EnrolmentCodeInvalid,
    FactorRefused,
    LoginRateLimited,
    OtpInvalid,
    ParameterInvalid,
    PasswordTooWeak,
    RequestNotSigned,
)
from gateway.problems import raises
from gateway.requests.lifecycle import RequestStatus
from gateway.requests.schemas import SignerRequestView
from gateway.signing.reports import report_json
from hsm_bridge.errors import AuthorizationRefused, BridgeError, RefusalReason
from hsm_bridge.pades.chain import load_ca_file
from mobile_api import auth
from mobile_api.deps import Context, SessionUser, Signer, client_address
from mobile_api.throttle import LoginThrottle

__all__ = ["router"]

router = APIRouter(prefix="/mobile/v1", tags=["mobile"])


class LoginBody(BaseModel):
    """Username and password."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class SessionView(BaseModel):
    """A new session: bearer token and lifetime (seconds); with
    ``password_change_required``, every other call answers ``password_change_required``
    until ``POST /mobile/v1/password``."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    expires_in: int
    password_change_required: bool = False


@router.post(
    "/sessions",
    response_model=SessionView,
    status_code=201,
    responses=raises(CredentialsInvalid, LoginRateLimited),
)
def create_session(body: LoginBody, request: Request, context: Context) -> SessionView:
    """Log in; 401 ``credentials_invalid`` (unknown name or wrong password, the same
    answer), 429 ``login_rate_limited`` with ``retry_after`` (seconds) when this address
    or this name must wait (:mod:`mobile_api.throttle`)."""
    throttle: LoginThrottle = request.app.state.login_throttle
    issued = auth.login(
        context, throttle, body.username, body.password, client_address=client_address(request)
    )
    return SessionView(
        access_token=issued.access_token,
        expires_in=issued.expires_in,
        password_change_required=issued.password_change_required,
    )


class PasswordBody(BaseModel):
    """The current password and the new one (at least 10 characters, 5 of them
    different, without the username)."""

    current_password: str = Field(min_length=1, max_length=200, repr=False)
    new_password: str = Field(min_length=1, max_length=200, repr=False)


@router.post(
    "/password",
    status_code=204,
    responses=raises(CredentialsInvalid, LoginRateLimited, PasswordTooWeak),
)
def change_password(
    body: PasswordBody, request: Request, context: Context, user: SessionUser
) -> Response:
    """Choose a new password (``credentials_invalid``: the current one is wrong, counted
    like a failed login, 429 ``login_rate_limited``; ``password_too_weak`` with what to
    change). The caller's other sessions end."""
    throttle: LoginThrottle = request.app.state.login_throttle
    auth.change_password(
        context,
        throttle,
        user,
        body.current_password,
        body.new_password,
        client_address=client_address(request),
        request=request,
    )
    return Response(status_code=204)


class MeView(BaseModel):
    """Who is signed in, what they can approve with (a TOTP authenticator, the number
    of live devices and passkeys), and whether they must first replace a one-time
    password."""

    username: str
    display_name: str
    role: str
    totp_enrolled: bool
    devices: int
    password_change_required: bool


@router.get("/me", response_model=MeView)
def me(context: Context, user: SessionUser) -> MeView:
    """The signed-in user (answered before a one-time password is replaced, too); an app
    with neither ``totp_enrolled`` nor a device leads them to enrolment."""
    with context.db.transaction() as session:
        devices = len(
            session.scalars(
                select(Device.id).where(Device.user_id == user.id, Device.revoked_at.is_(None))
            ).all()
        )
    return MeView(
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        totp_enrolled=user.totp_enrolled_at is not None,
        devices=devices,
        password_change_required=user.password_must_change,
    )


@router.delete("/sessions/current", status_code=204, dependencies=[Depends(auth.SESSION)])
def delete_session(request: Request, context: Context) -> Response:
    """Log out: the bearer token stops working at once."""
    auth.revoke(context, request)
    return Response(status_code=204)


@router.get("/signing-requests", response_model=list[SignerRequestView])
def list_requests(
    context: Context, user: Signer, status: RequestStatus | None = None
) -> list[SignerRequestView]:
    """The caller's own requests, newest first; ``?status=pending_approval`` for the
    pending list."""
    return context.service.views_for_signer(user, status)


@router.get("/signing-requests/{request_id}", response_model=SignerRequestView)
def get_request(request_id: str, context: Context, user: Signer) -> SignerRequestView:
    """One of the caller's requests."""
    return context.service.view_for_signer(user, request_id)


@router.get(
    "/signing-requests/{request_id}/signed-document",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}, **raises(RequestNotSigned)},
)
def get_signed_document(request_id: str, context: Context, user: Signer) -> Response:
    """The signed PDF of one of the caller's requests (``request_not_signed`` before)."""
    data = context.service.signed_document_for_signer(user, request_id)
    view = context.service.view_for_signer(user, request_id)
    return Response(
        data,
        media_type="application/pdf",
        headers={"Content-Disposition": content_disposition(view.title, request_id)},
    )


@router.get(
    "/signing-requests/{request_id}/validation",
    responses=raises(RequestNotSigned, DocumentWorkersBusy),
)
def get_validation(request_id: str, context: Context, user: Signer) -> Response:
    """The validation report of one of the caller's signed documents (as
    ``POST /api/v1/validations`` gives it, JSON; ``request_not_signed`` before)."""
    data = context.service.signed_document_for_signer(user, request_id)
    anchors = load_ca_file(context.settings.effective_trust_anchors_file)
    report = context.sandbox.validation_report(data, list(anchors), context.clock())
    return Response(report_json(report), media_type="application/json")


@router.get(
    "/signing-requests/{request_id}/document",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def get_document(request_id: str, context: Context, user: Signer) -> Response:
    """The exact bytes that will be signed (their SHA-256 is ``document_sha256``)."""
    data = context.service.document_for_signer(user, request_id)
    return Response(data, media_type="application/pdf")


@router.get(
    "/signing-requests/{request_id}/pages/{page_number}.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **raises(DocumentWorkersBusy)},
)
async def get_page(
    request_id: str,
    page_number: int,
    context: Context,
    user: Signer,
    width: Annotated[int, Query(ge=16)] = 1024,
    signature: Annotated[bool, Query(description="draw the signature to be made")] = False,
) -> Response:
    """Page ``page_number`` (1-based) rendered ``width`` pixels wide; with
    ``signature=true``, with the signature the bridge will make drawn where it will go,
    as the bridge will draw it (the time shown is the preview's)."""
    png = await run_in_threadpool(
        context.service.page_png, user, request_id, page_number, width, signature=signature
    )
    return Response(png, media_type="image/png", headers={"Cache-Control": "private"})


class PinKeyView(BaseModel):
    """The key a token PIN is sealed to for this request (PIN policy ``signer``): the
    bridge's HPKE public key (base64 of the 65-byte uncompressed P-256 point), the HPKE
    suite, and the ``info`` prefix (base64) that the approval's nonce completes."""

    public_key: str
    suite: str = "DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-128-GCM"
    info_prefix: str = base64.b64encode(b"signing-gateway/token-pin/1\x00").decode()


@router.get("/signing-requests/{request_id}/pin-key", response_model=PinKeyView)
def get_pin_key(request_id: str, context: Context, user: Signer) -> PinKeyView:
    """Where to seal the token's PIN for one of the caller's requests."""
    key = context.service.pin_key_for_signer(user, request_id)
    return PinKeyView(public_key=base64.b64encode(key).decode())


class TotpEnrolmentBody(BaseModel):
    """A new authenticator. To replace a confirmed one: ``otp``, a current code from it
    (the gateway may then choose the secret). For a first one: the enrolment code the
    bridge's administrator gave the signer, as ``enrolment_code_id`` (the part before
    the dot) and ``enrolment_proof`` (base64 of HMAC-SHA256 keyed with the part after
    the dot over ``"signing-gateway/totp-enrolment/1\0"`` followed by ``secret``), with
    the ``secret`` (base32, 160 bits) the app chose: the code's secret never reaches
    the gateway, so the gateway cannot enrol an authenticator of its own."""

    otp: str | None = Field(default=None, max_length=16)
    secret: str | None = Field(default=None, min_length=26, max_length=128, repr=False)
    enrolment_code_id: str | None = Field(default=None, min_length=4, max_length=64)
    enrolment_proof: str | None = Field(default=None, min_length=40, max_length=64, repr=False)

    def code_proof(self) -> bytes | None:
        """The enrolment proof's bytes (422 for bad base64), or None."""
        if self.enrolment_proof is None:
            return None
        try:
            return base64.b64decode(self.enrolment_proof, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ParameterInvalid("enrolment_proof must be base64") from exc


class TotpEnrolmentView(BaseModel):
    """The otpauth:// URI and the same as a QR code (PNG, base64)."""

    otpauth_uri: str
    qr_png_base64: str
    confirmed: bool = False


@router.post(
    "/totp",
    response_model=TotpEnrolmentView,
    status_code=201,
    responses=raises(FactorRefused, BridgeError),
)
def enrol_totp(
    body: TotpEnrolmentBody, request: Request, context: Context, user: Signer
) -> TotpEnrolmentView:
    """Start TOTP enrolment (RFC 6238, 160-bit secret) at the bridge. The new secret
    becomes active once confirmed with a first valid code
    (``POST /mobile/v1/totp/confirmation``). Replacing one needs a current code
    (``otp_invalid``, ``otp_reused``, ``otp_locked`` as for approvals); a first one
    needs an enrolment code (``enrolment_code_invalid``)."""
    now = context.clock()
    secret = (body.secret or totp.new_secret()).strip().upper()
    # The secret is kept by the bridge alone; the gateway shows it once, as the QR code,
    # and forgets it.
    try:
        totp.relay(
            context.db,
            lambda: context.bridge.begin_totp_enrolment(
                user.username,
                secret,
                current_otp=body.otp.strip() if body.otp else None,
                code_id=body.enrolment_code_id,
                code_proof=body.code_proof(),
            ),
            username=user.username,
            now=now,
            client_address=client_address(request),
        )
    except OtpInvalid as exc:
        if body.otp is None:
            raise OtpInvalid("a current code from the enrolled authenticator is required") from exc
        raise
    except AuthorizationRefused as exc:
        if exc.reason == RefusalReason.ENROLMENT_CODE_INVALID:
            raise EnrolmentCodeInvalid(
                "a first authenticator needs the enrolment code the administrator gave you"
            ) from exc
        if exc.reason == RefusalReason.TOTP_SECRET_INVALID:
            raise ParameterInvalid("the secret must be base32, 128 bits or more") from exc
        raise
    with context.db.transaction() as session:
        audit.record(
            session,
            actor=f"user:{user.username}",
            action="totp.enrolment_started",
            now=now,
            client_address=client_address(request),
            detail={"code_id": body.enrolment_code_id} if body.enrolment_code_id else None,
        )
    uri = totp.provisioning_uri(secret, user.username, "Signing Gateway")
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="png", scale=6)
    return TotpEnrolmentView(
        otpauth_uri=uri, qr_png_base64=base64.b64encode(buffer.getvalue()).decode()
    )


class TotpConfirmationBody(BaseModel):
    """The first code from the new authenticator."""

    otp: str = Field(min_length=6, max_length=16)


@router.post(
    "/totp/confirmation",
    response_model=TotpEnrolmentView,
    responses=raises(FactorRefused, BridgeError),
)
def confirm_totp(
    body: TotpConfirmationBody, request: Request, context: Context, user: Signer
) -> TotpEnrolmentView:
    """Activate the pending secret with a valid code from it (checked by the bridge; that
    code's step approves nothing afterwards)."""
    now = context.clock()
    try:
        context.bridge.confirm_totp_enrolment(user.username, body.otp.strip())
    except AuthorizationRefused as exc:
        if exc.reason == RefusalReason.TOTP_NOT_ENROLLED:
            raise ParameterInvalid("no TOTP enrolment is pending") from exc
        if exc.reason == RefusalReason.TOTP_INVALID:
            raise OtpInvalid("the code does not match the new authenticator") from exc
        raise
    with context.db.transaction() as session:
        stored = session.get(User, user.id, with_for_update=True)
        assert stored is not None
        stored.totp_enrolled_at = now
        audit.record(
            session,
            actor=f"user:{user.username}",
            action="totp.enrolled",
            now=now,
            client_address=client_address(request),
        )
    return TotpEnrolmentView(otpauth_uri="", qr_png_base64="", confirmed=True)


def content_disposition(title: str | None, request_id: str) -> str:
    """``attachment`` with the file name made of the title (RFC 6266, UTF-8 RFC 5987),
    or of the request id."""
    name = (title or request_id).strip()
    safe = "".join(c if c.isalnum() or c in " -_." else "_" for c in name)[:120] or request_id
    ascii_name = safe.encode("ascii", "replace").decode().replace("?", "_")
    return (
        f'attachment; filename="{ascii_name} (signed).pdf"; '
        f"filename*=UTF-8''{quote(safe + ' (signed).pdf')}"
    )
