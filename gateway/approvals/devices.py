"""Device enrolment and revocation, with the bridge as the authority on device keys.

The bridge issues a one-time enrolment code for a signer: on the bridge host from its
administrator's CLI (``signing-gateway devices enrolment-code USER`` in the embedded
installation, ``signing-gateway bridge enrolment-code USER`` on a secure host), or for a
signer who types a TOTP code the bridge checks itself (:func:`request_enrolment_code`).
The code is shown as a QR code (``code_id.secret``). The app generates a P-256 key on
the device and sends the code's id, its public key, and an HMAC keyed with the code's
secret over that key (:func:`hsm_bridge.sam.signers.enrolment_proof`); the secret itself never
passes through the gateway, so a compromised gateway cannot enrol a key of its own. The
bridge records the key and names the device; the gateway keeps a copy with the FCM
registration token for push.

The bridge is the source of truth: a signer's devices are the bridge's list
(:func:`list_devices`, with the gateway's names and push state beside them), and only
the bridge decides a revocation: the signer revokes with their own factor
(:func:`revoke_by_signer`: a revocation statement signed by one of their devices, or a
TOTP code where TOTP approves), the bridge's administrator on the bridge's host
(:func:`revoke_by_administrator`). A compromised web tier can do neither.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from dataclasses import dataclass
from urllib.parse import urlencode

import segno
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.audit import log as audit
from gateway.db.database import Database, affected_rows
from gateway.db.models import Device, MobileSession, User
from gateway.errors import DeviceKeyInvalid, EnrolmentCodeInvalid, GatewayError, NotFound
from hsm_bridge import BridgeClient
from hsm_bridge.errors import AuthorizationRefused, RefusalReason
from hsm_bridge.sam.authorization import Factor
from hsm_bridge.sam.signers import DeviceRecord, EnrolmentCode, SignerRegistry

__all__ = [
    "EnrolmentCodeView",
    "DeviceListing",
    "enrolment_code_view",
    "enrol_device",
    "list_devices",
    "qr_png",
    "record_enrolment_code",
    "record_revocation",
    "request_enrolment_code",
    "revoke_by_administrator",
    "revoke_by_signer",
]


@dataclass(frozen=True, slots=True)
class EnrolmentCodeView:
    """A new one-time code as the signer sees it (``code_id.secret``), when it expires,
    and the URI the QR code carries (``signing-gateway:enrol?code=…[&server=…]``); or,
    for a code issued on a device, only its id and ``sealed`` (base64url, for the asking
    app's key alone: the gateway never reads it)."""

    code: str | None
    expires_at: dt.datetime
    uri: str | None
    code_id: str = ""
    sealed: str | None = None


def enrolment_code_view(code: EnrolmentCode, server_url: str | None = None) -> EnrolmentCodeView:
    """The bridge's enrolment code as shown to the signer."""
    expires_at = dt.datetime.fromtimestamp(code.expires_at, dt.UTC)
    if code.sealed:
        return EnrolmentCodeView(None, expires_at, None, code.code_id, code.sealed)
    query = {"code": code.text, **({"server": server_url} if server_url else {})}
    return EnrolmentCodeView(
        code.text, expires_at, "signing-gateway:enrol?" + urlencode(query), code.code_id
    )


def record_enrolment_code(
    session: Session,
    user: User,
    code: EnrolmentCode,
    *,
    actor: str,
    now: dt.datetime,
    client_address: str | None = None,
) -> None:
    """Audit that ``actor`` had an enrolment code issued for ``user`` (its secret is not
    recorded), in ``session``'s transaction."""
    audit.record(
        session,
        actor=actor,
        action="enrolment_code.created",
        now=now,
        client_address=client_address,
        detail={
            "user": user.username,
            "code_id": code.code_id,
            "expires_at": dt.datetime.fromtimestamp(code.expires_at, dt.UTC).isoformat(),
        },
    )


def request_enrolment_code(
    db: Database,
    bridge: BridgeClient,
    user: User,
    factor: Factor,
    *,
    ttl_seconds: int,
    now: dt.datetime,
    server_url: str | None = None,
    client_address: str | None = None,
    recipient: str | None = None,
) -> EnrolmentCodeView:
    """An enrolment code for another device of ``user``, issued by the bridge after it
    checked ``factor`` itself (one of the user's enrolled devices signing the
    enrolment-code statement that names ``recipient``, the app's key the code comes
    sealed to; or a TOTP code); audited. Raises the bridge's AuthorizationRefused
    (``totp_*``, ``device_*``, ``approval_*``)."""
    code = bridge.enrolment_code(
        user.username, factor, ttl_seconds=ttl_seconds, recipient=recipient
    )
    with db.transaction() as session:
        record_enrolment_code(
            session,
            user,
            code,
            actor=f"user:{user.username}",
            now=now,
            client_address=client_address,
        )
    return enrolment_code_view(code, server_url)


def qr_png(uri: str) -> bytes:
    """The QR code of ``uri`` as PNG bytes (segno, error correction M)."""
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="png", scale=6)
    return buffer.getvalue()


def enrol_device(
    db: Database,
    bridge: BridgeClient,
    code_id: str,
    proof: bytes,
    *,
    public_key_der: bytes,
    push_token: str,
    platform: str,
    name: str,
    now: dt.datetime,
    client_address: str | None = None,
) -> Device:
    """Register a device: the bridge checks the enrolment code ``code_id`` and
    ``proof`` (the code's HMAC over ``public_key_der``, a P-256 DER SPKI), spends the
    code and names the device; the gateway then keeps the device for push. Raises
    EnrolmentCodeInvalid (unknown, used, expired or wrong proof) or DeviceKeyInvalid
    (not a P-256 key); a refusal is audited."""
    try:
        enrolled = bridge.enrol_device(code_id, public_key_der, proof)
    except AuthorizationRefused as exc:
        raise _enrolment_refused(db, exc, platform, now=now, client_address=client_address) from exc
    with db.transaction() as session:
        user = session.scalar(select(User).where(User.username == enrolled.signer))
        if user is None:
            raise EnrolmentCodeInvalid("the enrolment code's signer is not a user here")
        device = session.get(Device, enrolled.device_id, with_for_update=True)
        if device is not None and (device.user_id != user.id or device.revoked_at is not None):
            raise DeviceKeyInvalid("this key is revoked or belongs to someone else")
        if device is None:
            device = Device(
                id=enrolled.device_id,
                user_id=user.id,
                public_key_der=public_key_der,
                created_at=now,
            )
            session.add(device)
        # the same key enrolled again (at another bridge, or after a reinstall): the
        # newest push token and name count
        device.platform, device.name, device.push_token = platform, name, push_token
        device.stale = False
        audit.record(
            session,
            actor=f"user:{user.username}",
            action="device.enrolled",
            now=now,
            client_address=client_address,
            detail={
                "device": device.id,
                "platform": platform,
                "code_id": code_id,
                "key_sha256": hashlib.sha256(public_key_der).hexdigest(),
            },
        )
    return device


def _enrolment_refused(
    db: Database,
    refusal: AuthorizationRefused,
    platform: str,
    *,
    now: dt.datetime,
    client_address: str | None,
) -> GatewayError:
    """Audit the bridge's refusal of an enrolment (a wrong or replayed code is worth a
    trace: someone holds or guesses codes); the error to answer with."""
    with db.transaction() as session:
        audit.record(
            session,
            actor="anonymous",
            action="device.enrolment_refused",
            now=now,
            client_address=client_address,
            detail={"platform": platform, "reason": refusal.reason},
        )
    if refusal.reason == RefusalReason.DEVICE_KEY_INVALID:
        return DeviceKeyInvalid("the device key must be a P-256 public key (DER SPKI)")
    return EnrolmentCodeInvalid("the enrolment code is unknown, used or expired")


@dataclass(frozen=True, slots=True)
class DeviceListing:
    """One of a signer's devices as the bridge holds it (``record``), with what the
    gateway knows of it (``local``: name, platform, push state), None for a device the
    bridge knows but that was not enrolled through this gateway."""

    record: DeviceRecord
    local: Device | None

    @property
    def revoked(self) -> bool:
        """Whether the bridge revoked it (the gateway's copy follows)."""
        return self.record.revoked_at is not None


def list_devices(db: Database, bridge: BridgeClient, user: User) -> list[DeviceListing]:
    """``user``'s devices as the bridge holds them (revoked ones included, newest
    first), each with the gateway's copy when it has one. Raises the bridge's error when
    it cannot be asked."""
    records = bridge.devices(user.username)
    with db.transaction() as session:
        local = {d.id: d for d in session.scalars(select(Device).where(Device.user_id == user.id))}
    listings = [DeviceListing(r, local.get(r.device_id)) for r in records]
    return sorted(listings, key=lambda listing: listing.record.created_at, reverse=True)


def revoke_by_signer(
    db: Database,
    bridge: BridgeClient,
    user: User,
    device_id: str,
    factor: Factor,
    *,
    now: dt.datetime,
    client_address: str | None = None,
) -> None:
    """The signer revokes one of their devices with their own ``factor``: the bridge
    checks it and revokes, then the gateway records it (:func:`record_revocation`).
    Raises NotFound for a device that is not the signer's, and the bridge's refusal."""
    if not bridge.revoke_device(user.username, device_id, factor):
        raise NotFound("no such device")
    record_revocation(
        db, device_id, actor=f"user:{user.username}", now=now, client_address=client_address
    )


def revoke_by_administrator(
    db: Database, registry: SignerRegistry, device_id: str, *, actor: str, now: dt.datetime
) -> bool:
    """The administrator of the bridge on this host revokes a device in its records,
    then the gateway records it. False when this bridge never knew the device (a bridge
    on another host revokes it there: ``signing-gateway bridge devices revoke``)."""
    known = registry.revoke_device(device_id, now=now)
    if known:
        record_revocation(db, device_id, actor=actor, now=now, missing_ok=True)
    return known


def record_revocation(
    db: Database,
    device_id: str,
    *,
    actor: str,
    now: dt.datetime,
    client_address: str | None = None,
    missing_ok: bool = False,
) -> Device | None:
    """Record a revocation the bridge made: the gateway's copy is marked revoked (its
    push stops) and every live mobile session of its user ends (the thief may hold one
    on the lost tablet; the owner signs in again); audited. Idempotent. None when the
    gateway has no copy (``missing_ok``), else NotFound."""
    with db.transaction() as session:
        device = session.get(Device, device_id, with_for_update=True)
        if device is None:
            if missing_ok:
                return None
            raise NotFound("no such device")
        if device.revoked_at is None:
            device.revoked_at = now
            ended = affected_rows(
                session.execute(
                    update(MobileSession)
                    .where(MobileSession.user_id == device.user_id)
                    .where(MobileSession.revoked_at.is_(None))
                    .where(MobileSession.expires_at > now)
                    .values(revoked_at=now)
                )
            )
            audit.record(
                session,
                actor=actor,
                action="device.revoked",
                now=now,
                client_address=client_address,
                detail={"device": device.id, "user_id": device.user_id, "sessions_ended": ended},
            )
    return device
