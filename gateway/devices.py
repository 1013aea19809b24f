"""Device enrolment and revocation.

An admin (``signing-gateway devices activation-code USER``) or the signer from a session
confirmed with TOTP creates a one-time activation code, shown as a QR code. The app sends
it back with the public half of a P-256 key it generated on the device and its FCM
registration token (:func:`enrol_device`); the code works once and expires. Revoking a
device (a lost tablet) stops its key at once: its signatures are refused and it gets no
more push messages.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import secrets
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode

import segno
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway import audit
from gateway.db import Database
from gateway.errors import ActivationCodeInvalid, DeviceKeyInvalid, NotFound
from gateway.models import Device, DeviceActivationCode, MobileSession, User
from hsm_bridge.statement import StatementSignatureInvalid, load_device_public_key

__all__ = [
    "ActivationCode",
    "create_activation_code",
    "enrol_device",
    "list_devices",
    "qr_png",
    "revoke_device",
]


@dataclass(frozen=True, slots=True)
class ActivationCode:
    """A new one-time code (128 bits, base64url), when it expires, and the URI the QR
    code carries (``signing-gateway:activate?code=…[&server=…]``)."""

    code: str
    expires_at: dt.datetime
    uri: str


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.strip().encode()).hexdigest()


def create_activation_code(
    session: Session,
    user: User,
    *,
    actor: str,
    now: dt.datetime,
    ttl_seconds: int,
    server_url: str | None = None,
    client_address: str | None = None,
) -> ActivationCode:
    """Create a one-time device activation code for ``user`` (only its SHA-256 is
    stored) and audit it, in ``session``'s transaction."""
    code = secrets.token_urlsafe(16)
    expires_at = now + dt.timedelta(seconds=ttl_seconds)
    session.add(
        DeviceActivationCode(
            id=str(uuid.uuid4()),
            user_id=user.id,
            code_sha256=_code_hash(code),
            created_by=actor,
            created_at=now,
            expires_at=expires_at,
        )
    )
    audit.record(
        session,
        actor=actor,
        action="device.activation_code_created",
        now=now,
        client_address=client_address,
        detail={"user": user.username, "expires_at": expires_at.isoformat()},
    )
    query = {"code": code, **({"server": server_url} if server_url else {})}
    return ActivationCode(code, expires_at, "signing-gateway:activate?" + urlencode(query))


def qr_png(uri: str) -> bytes:
    """The QR code of ``uri`` as PNG bytes (segno, error correction M)."""
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="png", scale=6)
    return buffer.getvalue()


def enrol_device(
    db: Database,
    code: str,
    *,
    public_key_der: bytes,
    push_token: str,
    platform: str,
    name: str,
    now: dt.datetime,
    client_address: str | None = None,
) -> Device:
    """Register a device with a one-time activation ``code`` and its P-256 public key
    (DER SubjectPublicKeyInfo). Raises ActivationCodeInvalid (unknown, used or expired:
    the code is spent by one conditional UPDATE, so it works once even under races) or
    DeviceKeyInvalid (not a P-256 key; the code stays usable)."""
    try:
        load_device_public_key(public_key_der)
    except StatementSignatureInvalid as exc:
        raise DeviceKeyInvalid("the device key must be a P-256 public key (DER SPKI)") from exc
    device: Device | None = None
    with db.transaction() as session:
        spent = session.execute(
            update(DeviceActivationCode)
            .where(DeviceActivationCode.code_sha256 == _code_hash(code))
            .where(DeviceActivationCode.used_at.is_(None))
            .where(DeviceActivationCode.expires_at > now)
            .values(used_at=now)
        )
        if spent.rowcount != 1:
            # a wrong or replayed code is worth a trace (someone holds or guesses codes);
            # committed, then refused
            audit.record(
                session,
                actor="anonymous",
                action="device.enrolment_refused",
                now=now,
                client_address=client_address,
                detail={"platform": platform},
            )
        else:
            activation = session.scalar(
                select(DeviceActivationCode).where(
                    DeviceActivationCode.code_sha256 == _code_hash(code)
                )
            )
            assert activation is not None
            user = session.get(User, activation.user_id)
            assert user is not None
            device = Device(
                id=str(uuid.uuid4()),
                user_id=user.id,
                platform=platform,
                name=name,
                push_token=push_token,
                public_key_der=public_key_der,
                stale=False,
                created_at=now,
            )
            session.add(device)
            audit.record(
                session,
                actor=f"user:{user.username}",
                action="device.enrolled",
                now=now,
                client_address=client_address,
                detail={
                    "device": device.id,
                    "platform": platform,
                    "activation_code_by": activation.created_by,
                    "key_sha256": hashlib.sha256(public_key_der).hexdigest(),
                },
            )
    if device is None:
        raise ActivationCodeInvalid("the activation code is unknown, used or expired")
    return device


def list_devices(db: Database, user_id: str) -> list[Device]:
    """The user's devices, newest first, revoked ones included."""
    with db.transaction() as session:
        return list(
            session.scalars(
                select(Device).where(Device.user_id == user_id).order_by(Device.created_at.desc())
            )
        )


def revoke_device(
    db: Database,
    device_id: str,
    *,
    actor: str,
    now: dt.datetime,
    owner_id: str | None = None,
    client_address: str | None = None,
) -> Device:
    """Revoke a device at once (idempotent) and end every live mobile session of its
    user (the thief may hold one on the tablet; the owner signs in again).
    ``owner_id``: when given, only that user's device may be revoked (NotFound
    otherwise, as for an unknown id)."""
    with db.transaction() as session:
        device = session.get(Device, device_id, with_for_update=True)
        if device is None or (owner_id is not None and device.user_id != owner_id):
            raise NotFound("no such device")
        if device.revoked_at is None:
            device.revoked_at = now
            # whoever holds the lost tablet may hold a live session on it too: end them all
            ended = session.execute(
                update(MobileSession)
                .where(MobileSession.user_id == device.user_id)
                .where(MobileSession.revoked_at.is_(None))
                .where(MobileSession.expires_at > now)
                .values(revoked_at=now)
            ).rowcount
            audit.record(
                session,
                actor=actor,
                action="device.revoked",
                now=now,
                client_address=client_address,
                detail={"device": device.id, "user_id": device.user_id, "sessions_ended": ended},
            )
    return device
