"""Mobile API: enrolment codes, device enrolment with a device-bound P-256 key,
the signer's devices, and revocation of a lost one (see :mod:`gateway.approvals.devices`)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from gateway.approvals import devices, totp
from gateway.db.models import Device
from gateway.errors import (
    DeviceKeyInvalid,
    EnrolmentCodeInvalid,
    FactorRefused,
    ParameterInvalid,
    TotpNotEnrolled,
)
from gateway.problems import raises
from hsm_bridge.errors import BridgeError
from hsm_bridge.sam.authorization import Factor, TotpFactor
from mobile_api.decisions import DeviceApproval
from mobile_api.deps import Context, Signer, client_address

__all__ = ["router"]

router = APIRouter(prefix="/mobile/v1", tags=["mobile"])


class OwnFactor(BaseModel):
    """The signer's own factor, which the bridge checks: a TOTP code (where TOTP
    approves), or ``device_approval``: one of the signer's enrolled devices signing the
    RFC 8785 canonical statement the endpoint names, with a server nonce."""

    otp: str | None = Field(None, min_length=1, max_length=16, repr=False)
    device_approval: DeviceApproval | None = None

    def factor(self) -> Factor:
        """The factor the bridge checks (422 when neither or both are given)."""
        if (self.otp is None) == (self.device_approval is None):
            raise ParameterInvalid("give exactly one of otp and device_approval")
        if self.otp is not None:
            return TotpFactor(self.otp.strip())
        assert self.device_approval is not None
        return self.device_approval.factor()


class EnrolmentCodeBody(OwnFactor):
    """The signer's factor for a code that enrols another of their devices: a TOTP code,
    or an enrolled device (a passkey, a device key) signing ``{"v": 2, "type":
    "enrolment-code", "signer", "device" (the signing device), "nonce", "expires_at",
    "recipient"}`` where ``recipient`` (also sent here) is the app's one-time HPKE key,
    base64url of the 65-byte uncompressed P-256 point."""

    recipient: str | None = Field(None, max_length=100)


class EnrolmentCodeView(BaseModel):
    """A one-time enrolment code, the URI the QR code carries, the QR code (PNG,
    base64) and when the code expires; for a code issued on a device instead
    ``sealed_code``: the code's text sealed by the bridge to ``recipient`` (HPKE base
    mode, DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, ``info`` =
    ``"signing-gateway/enrolment-code/1"``, a zero byte and the statement's nonce;
    base64url of the 65-byte encapsulated key then the ciphertext)."""

    code_id: str
    code: str | None = None
    uri: str | None = None
    qr_png_base64: str | None = None
    sealed_code: str | None = None
    expires_at: dt.datetime


@router.post(
    "/enrolment-codes",
    response_model=EnrolmentCodeView,
    status_code=201,
    responses=raises(FactorRefused, BridgeError),
)
def create_enrolment_code(
    body: EnrolmentCodeBody, request: Request, context: Context, user: Signer
) -> EnrolmentCodeView:
    """A one-time code to enrol another device of the caller (a second tablet), on the
    caller's own factor: an enrolled device's signed enrolment-code statement, or a
    TOTP code (``otp_invalid``, ``otp_reused``, ``otp_locked``, ``totp_not_enrolled``;
    ``device_revoked``, ``approval_signature_invalid``, ``approval_nonce_invalid``)."""
    factor = body.factor()
    if isinstance(factor, TotpFactor) and user.totp_enrolled_at is None:
        raise TotpNotEnrolled("enrol an authenticator first")
    now = context.clock()

    def issue() -> devices.EnrolmentCodeView:
        return devices.request_enrolment_code(
            context.db,
            context.bridge,
            user,
            factor,
            ttl_seconds=context.settings.enrolment_code_ttl_seconds,
            now=now,
            server_url=context.settings.public_url,
            client_address=client_address(request),
            recipient=body.recipient,
        )

    if isinstance(factor, TotpFactor):
        address = client_address(request)
        code = totp.relay(
            context.db, issue, username=user.username, now=now, client_address=address
        )
    else:
        code = issue()
    return EnrolmentCodeView(
        code_id=code.code_id,
        code=code.code,
        uri=code.uri,
        qr_png_base64=base64.b64encode(devices.qr_png(code.uri)).decode() if code.uri else None,
        sealed_code=code.sealed,
        expires_at=code.expires_at,
    )


class EnrolmentBody(BaseModel):
    """A new device: the enrolment code's id (the part before the dot), the device's
    P-256 public key (base64 of DER SubjectPublicKeyInfo; the private key never leaves
    the device), ``enrolment_proof`` (base64 of HMAC-SHA256 keyed with the code's secret,
    the part after the dot, over ``"signing-gateway/device-enrolment/1\\0"`` followed by
    the DER key: the secret itself is never sent), its FCM registration token, platform
    and a name the signer recognises."""

    enrolment_code_id: str = Field(min_length=4, max_length=64)
    enrolment_proof: str = Field(min_length=40, max_length=64, repr=False)
    public_key: str = Field(min_length=16, max_length=400)
    push_token: str = Field(min_length=1, max_length=4096, repr=False)
    platform: Literal["android", "ios", "web"]
    name: str = Field(default="", max_length=100)


class DeviceView(BaseModel):
    """A device as the bridge holds it, with the gateway's name for it (the push token
    is never echoed). ``enrolled_with``: who issued the code it was enrolled with
    (``administrator``, ``totp``, ``device``); ``kind``: ``device_key`` or ``passkey``;
    for a passkey ``synced``: it may be copied to the signer's other devices (BE)."""

    id: str
    platform: str = ""
    name: str = ""
    kind: str = "device_key"
    synced: bool = False
    enrolled_with: str = ""
    created_at: dt.datetime
    revoked_at: dt.datetime | None = None
    stale: bool = False


def _view(device: Device) -> DeviceView:
    return DeviceView(
        id=device.id,
        platform=device.platform,
        name=device.name,
        created_at=device.created_at,
        revoked_at=device.revoked_at,
        stale=device.stale,
    )


def _listing_view(listing: devices.DeviceListing) -> DeviceView:
    record, local = listing.record, listing.local
    return DeviceView(
        id=record.device_id,
        platform=local.platform if local is not None else "",
        name=local.name if local is not None else "",
        kind=record.kind,
        synced=record.backup_eligible,
        enrolled_with=record.enrolled_with,
        created_at=dt.datetime.fromtimestamp(record.created_at, dt.UTC),
        revoked_at=(
            dt.datetime.fromtimestamp(record.revoked_at, dt.UTC) if record.revoked_at else None
        ),
        stale=bool(local.stale) if local is not None else False,
    )


@router.post(
    "/devices", response_model=DeviceView, status_code=201, responses=raises(FactorRefused)
)
def enrol(body: EnrolmentBody, request: Request, context: Context) -> DeviceView:
    """Enrol a device with a one-time enrolment code (no session needed: the code's
    HMAC over the key is the proof, checked by the bridge). ``enrolment_code_invalid``,
    ``device_key_invalid``."""
    try:
        key = base64.b64decode(body.public_key, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DeviceKeyInvalid("public_key must be base64 of a DER public key") from exc
    try:
        proof = base64.b64decode(body.enrolment_proof, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EnrolmentCodeInvalid("enrolment_proof must be base64") from exc
    device = devices.enrol_device(
        context.db,
        context.bridge,
        body.enrolment_code_id,
        proof,
        public_key_der=key,
        push_token=body.push_token,
        platform=body.platform,
        name=body.name,
        now=context.clock(),
        client_address=client_address(request),
    )
    return _view(device)


@router.get("/devices", response_model=list[DeviceView])
def list_devices(context: Context, user: Signer) -> list[DeviceView]:
    """The caller's devices as the bridge holds them, revoked ones included."""
    return [_listing_view(d) for d in devices.list_devices(context.db, context.bridge, user)]


class RevocationBody(OwnFactor):
    """The signer's own factor for revoking a device: a TOTP code (where TOTP approves),
    or one of the signer's devices (it may be the one revoked) signing ``{"v": 1,
    "type": "device-revocation", "signer", "device" (the signing device), "revoke"
    (the device revoked), "nonce", "expires_at"}``."""


@router.post("/devices/{device_id}/revocation", status_code=204)
def revoke(
    device_id: str, body: RevocationBody, request: Request, context: Context, user: Signer
) -> Response:
    """Revoke one of the caller's devices with the caller's own factor; the bridge
    checks it, and the key stops working at once (every session of the caller ends)."""
    devices.revoke_by_signer(
        context.db,
        context.bridge,
        user,
        device_id,
        body.factor(),
        now=context.clock(),
        client_address=client_address(request),
    )
    return Response(status_code=204)
