"""Mobile API: passkeys (WebAuthn) for the tablet app, and Web Push subscriptions.

``POST /mobile/v1/passkeys/options`` opens a registration at the bridge;
``POST /mobile/v1/passkeys`` completes it with the browser's answer and what authorises
it: an enrolment code (its id, and the HMAC of its secret over
``"signing-gateway/passkey-enrolment/2"``, a zero byte, the raw credential id's length
in two bytes, the raw credential id, then the credential's public key as DER
SubjectPublicKeyInfo), or a current TOTP code where TOTP approves. The passkey
then approves like a device key, with a WebAuthn assertion over the decision
statement's SHA-256 (``device_approval.webauthn``)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field, model_validator

from gateway.approvals import passkeys
from gateway.db.models import Device
from gateway.errors import FactorRefused, NotFound, ParameterInvalid
from gateway.problems import raises
from gateway.secrets_at_rest import vapid_key
from hsm_bridge.errors import BridgeError
from hsm_bridge.sam.authorization import EnrolmentCodeProof, PasskeyAuthorisation, TotpFactor
from mobile_api.deps import Context, Signer, client_address
from mobile_api.push import WebPushProvider

__all__ = ["router"]

router = APIRouter(prefix="/mobile/v1", tags=["mobile"])


class PasskeyOptionsView(BaseModel):
    """The registration the bridge opened: ``challenge_id`` (send it back with the
    answer) and ``options`` for ``navigator.credentials.create`` (JSON: binary values
    base64url)."""

    challenge_id: str
    options: dict[str, Any]


@router.post(
    "/passkeys/options", response_model=PasskeyOptionsView, responses=raises(FactorRefused)
)
def passkey_options(context: Context, user: Signer) -> PasskeyOptionsView:
    """Open a passkey registration for the caller."""
    opened = passkeys.passkey_options(context.bridge, user)
    return PasskeyOptionsView(challenge_id=opened.challenge_id, options=opened.options)


class PasskeyBody(BaseModel):
    """The browser's answer (``PublicKeyCredential.toJSON()`` of the registration), the
    challenge's id, a name for the device, and exactly one of: ``enrolment_code_id`` with
    ``enrolment_proof`` (base64), or ``otp``."""

    challenge_id: str = Field(min_length=1, max_length=64)
    credential: dict[str, Any]
    name: str = Field("", max_length=100)
    enrolment_code_id: str | None = Field(None, max_length=64)
    enrolment_proof: str | None = Field(None, max_length=128)
    otp: str | None = Field(None, min_length=1, max_length=16, repr=False)

    @model_validator(mode="after")
    def _one_authorisation(self) -> PasskeyBody:
        code = self.enrolment_code_id is not None and self.enrolment_proof is not None
        if code == (self.otp is not None):
            raise ValueError("give an enrolment code (id and proof) or a TOTP code")
        return self

    def authorisation(self) -> PasskeyAuthorisation:
        """What authorises the registration, as the bridge takes it."""
        if self.otp is not None:
            return TotpFactor(self.otp.strip())
        assert self.enrolment_code_id is not None and self.enrolment_proof is not None
        try:
            proof = base64.b64decode(self.enrolment_proof, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ParameterInvalid("enrolment_proof must be base64") from exc
        return EnrolmentCodeProof(self.enrolment_code_id, proof)


class PasskeyView(BaseModel):
    """A passkey the signer enrolled: its device id and name."""

    id: str
    name: str
    kind: str


@router.post(
    "/passkeys",
    response_model=PasskeyView,
    status_code=201,
    responses=raises(FactorRefused, BridgeError),
)
def enrol_passkey(
    body: PasskeyBody, request: Request, context: Context, user: Signer
) -> PasskeyView:
    """Register a passkey of the caller (``passkey_refused``, ``enrolment_code_invalid``,
    ``otp_invalid``…)."""
    device = passkeys.enrol_passkey(
        context.db,
        context.bridge,
        user,
        body.challenge_id,
        body.credential,
        body.authorisation(),
        name=body.name or "Passkey",
        now=context.clock(),
        client_address=client_address(request),
    )
    return PasskeyView(id=device.id, name=device.name, kind=device.kind)


class VapidKeyView(BaseModel):
    """The ``applicationServerKey`` for ``PushManager.subscribe``: the installation's
    VAPID public key, base64url of the uncompressed P-256 point."""

    public_key: str


@router.get("/push/vapid-key", response_model=VapidKeyView)
def vapid_public_key(context: Context, user: Signer) -> VapidKeyView:
    """Where the app subscribes to Web Push."""
    point = (
        vapid_key(context.settings.secrets_dir)
        .public_key()
        .public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    )
    return VapidKeyView(public_key=base64.urlsafe_b64encode(point).rstrip(b"=").decode())


class SubscriptionBody(BaseModel):
    """A ``PushSubscription.toJSON()``: ``endpoint`` and ``keys`` (``p256dh``, ``auth``)."""

    subscription: dict[str, Any]


@router.put("/devices/{device_id}/push-subscription", status_code=204)
def set_push_subscription(
    device_id: str, body: SubscriptionBody, request: Request, context: Context, user: Signer
) -> Response:
    """Keep the app's Web Push subscription for one of the caller's devices (the push
    service must be one this gateway posts to: ``parameter_invalid`` otherwise)."""
    web: WebPushProvider | None = getattr(request.app.state, "web_push", None)
    if web is None:
        raise ParameterInvalid("Web Push is not set up on this gateway")
    token = json.dumps(body.subscription, separators=(",", ":"))
    try:
        web.check_subscription(token)
    except ValueError as exc:
        raise ParameterInvalid(str(exc)) from exc
    with context.db.transaction() as session:
        device = session.get(Device, device_id, with_for_update=True)
        if device is None or device.user_id != user.id or device.revoked_at is not None:
            raise NotFound("no such device of yours")
        device.push_token, device.stale = token, False
    return Response(status_code=204)
