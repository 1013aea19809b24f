"""Mobile API: device activation codes, device enrolment with a device-bound P-256 key,
the signer's devices, and revocation of a lost one (see :mod:`gateway.devices`)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from gateway import devices, totp
from gateway.errors import ActivationCodeInvalid, DeviceKeyInvalid, TotpNotEnrolled
from gateway.models import Device
from gateway.request_access import utcnow
from mobile_api.deps import Context, Signer, client_address

__all__ = ["router"]

router = APIRouter(prefix="/mobile/v1", tags=["mobile"])


class ActivationCodeBody(BaseModel):
    """A current TOTP code: an enrolled session proves it before adding a device."""

    otp: str = Field(min_length=1, max_length=16, repr=False)


class ActivationCodeView(BaseModel):
    """A one-time activation code, the URI the QR code carries, the QR code (PNG,
    base64) and when the code expires."""

    code: str
    uri: str
    qr_png_base64: str
    expires_at: dt.datetime


@router.post("/device-activation-codes", response_model=ActivationCodeView, status_code=201)
def create_activation_code(
    body: ActivationCodeBody, request: Request, context: Context, user: Signer
) -> ActivationCodeView:
    """A one-time code to enrol another device of the caller, after a TOTP check
    (``otp_invalid``, ``otp_reused``, ``otp_locked``, ``totp_not_enrolled``)."""
    if user.totp_enrolled_at is None:
        raise TotpNotEnrolled("enrol an authenticator first")
    now = utcnow()
    code = totp.relay(
        context.db,
        lambda: devices.request_activation_code(
            context.db,
            context.bridge,
            user,
            body.otp,
            ttl_seconds=context.settings.device_activation_code_ttl_seconds,
            now=now,
            server_url=context.settings.public_url,
            client_address=client_address(request),
        ),
        username=user.username,
        now=now,
        client_address=client_address(request),
    )
    return ActivationCodeView(
        code=code.code,
        uri=code.uri,
        qr_png_base64=base64.b64encode(devices.qr_png(code.uri)).decode(),
        expires_at=code.expires_at,
    )


class EnrolmentBody(BaseModel):
    """A new device: the activation code's id (the part before the dot), the device's
    P-256 public key (base64 of DER SubjectPublicKeyInfo; the private key never leaves
    the device), ``enrolment_proof`` (base64 of HMAC-SHA256 keyed with the code's secret,
    the part after the dot, over ``"signing-gateway/device-enrolment/1\\0"`` followed by
    the DER key: the secret itself is never sent), its FCM registration token, platform
    and a name the signer recognises."""

    activation_code_id: str = Field(min_length=4, max_length=64)
    enrolment_proof: str = Field(min_length=40, max_length=64, repr=False)
    public_key: str = Field(min_length=16, max_length=400)
    push_token: str = Field(min_length=1, max_length=4096, repr=False)
    platform: Literal["android", "ios", "web"]
    name: str = Field(default="", max_length=100)


class DeviceView(BaseModel):
    """A device (the push token is never echoed)."""

    id: str
    platform: str
    name: str
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


@router.post("/devices", response_model=DeviceView, status_code=201)
def enrol(body: EnrolmentBody, request: Request, context: Context) -> DeviceView:
    """Enrol a device with a one-time activation code (no session needed: the code's
    HMAC over the key is the proof, checked by the bridge). ``activation_code_invalid``,
    ``device_key_invalid``."""
    try:
        key = base64.b64decode(body.public_key, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DeviceKeyInvalid("public_key must be base64 of a DER public key") from exc
    try:
        proof = base64.b64decode(body.enrolment_proof, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ActivationCodeInvalid("enrolment_proof must be base64") from exc
    device = devices.enrol_device(
        context.db,
        context.bridge,
        body.activation_code_id,
        proof,
        public_key_der=key,
        push_token=body.push_token,
        platform=body.platform,
        name=body.name,
        now=utcnow(),
        client_address=client_address(request),
    )
    return _view(device)


@router.get("/devices", response_model=list[DeviceView])
def list_devices(context: Context, user: Signer) -> list[DeviceView]:
    """The caller's devices, revoked ones included."""
    return [_view(d) for d in devices.list_devices(context.db, user.id)]


@router.delete("/devices/{device_id}", status_code=204)
def revoke(device_id: str, request: Request, context: Context, user: Signer) -> Response:
    """Revoke one of the caller's devices; its key stops working at once."""
    devices.revoke_device(
        context.db,
        context.bridge,
        device_id,
        actor=f"user:{user.username}",
        now=utcnow(),
        owner_id=user.id,
        client_address=client_address(request),
    )
    return Response(status_code=204)
