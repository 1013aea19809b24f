"""Passkeys for the tablet app: the registration is opened and checked by the bridge
(:mod:`hsm_bridge.sam.passkeys`), which keeps the credential's key and counter; the
gateway keeps the device for push and a copy of its public key, to check a passkey's
rejections (which reach no bridge) and to refuse a bad approval early."""

from __future__ import annotations

import datetime as dt

from webauthn.helpers import base64url_to_bytes, parse_attestation_object

from gateway.approvals import totp
from gateway.audit import log as audit
from gateway.db.database import Database
from gateway.db.models import Device, User
from gateway.errors import EnrolmentCodeInvalid, GatewayError, PasskeyRefused
from hsm_bridge import BridgeClient
from hsm_bridge.errors import AuthorizationRefused, RefusalReason
from hsm_bridge.interface import PasskeyOptions
from hsm_bridge.sam.authorization import PasskeyAuthorisation

__all__ = ["enrol_passkey", "passkey_options"]


def passkey_options(bridge: BridgeClient, user: User) -> PasskeyOptions:
    """Open a passkey registration for ``user`` at the bridge: the challenge's id and
    the options for ``navigator.credentials.create`` (platform authenticator, user
    verification required)."""
    return bridge.passkey_options(user.username, user.display_name)


def enrol_passkey(
    db: Database,
    bridge: BridgeClient,
    user: User,
    challenge_id: str,
    response: dict[str, object],
    authorisation: PasskeyAuthorisation,
    *,
    name: str,
    now: dt.datetime,
    client_address: str | None = None,
) -> Device:
    """Register the passkey ``response`` (from ``navigator.credentials.create``) of
    ``user``: the bridge verifies it against its challenge and the authorisation (an
    enrolment code's proof over the credential id, or a TOTP code where TOTP
    approves); the gateway keeps the device. Audited. Raises PasskeyRefused,
    EnrolmentCodeInvalid and the TOTP refusals."""
    try:
        enrolled = bridge.enrol_passkey(challenge_id, response, authorisation)
    except AuthorizationRefused as exc:
        raise _refused(db, user, exc, now=now, client_address=client_address) from exc
    if enrolled.signer != user.username:
        raise PasskeyRefused("the passkey challenge was opened for someone else")
    public_key = _public_key(response)
    with db.transaction() as session:
        device = Device(
            id=enrolled.device_id,
            user_id=user.id,
            kind="passkey",
            platform="web",
            name=name,
            push_token="",
            public_key_der=public_key,
            created_at=now,
        )
        session.add(device)
        audit.record(
            session,
            actor=f"user:{user.username}",
            action="device.enrolled",
            now=now,
            client_address=client_address,
            detail={"device": device.id, "kind": "passkey", "platform": "web"},
        )
    return device


def _public_key(response: dict[str, object]) -> bytes:
    """The credential's COSE public key from the registration the bridge verified."""
    inner = response.get("response")
    if not isinstance(inner, dict):
        raise PasskeyRefused("the registration has no response")
    attestation = parse_attestation_object(base64url_to_bytes(str(inner["attestationObject"])))
    credential = attestation.auth_data.attested_credential_data
    if credential is None:
        raise PasskeyRefused("the registration carries no credential")
    return bytes(credential.credential_public_key)


def _refused(
    db: Database,
    user: User,
    refusal: AuthorizationRefused,
    *,
    now: dt.datetime,
    client_address: str | None,
) -> GatewayError:
    """The gateway's answer to the bridge refusing a passkey registration, audited."""
    with db.transaction() as session:
        if totp.is_totp_refusal(refusal):
            return totp.refusal_of(
                session, refusal, username=user.username, now=now, client_address=client_address
            )
        audit.record(
            session,
            actor=f"user:{user.username}",
            action="device.enrolment_refused",
            now=now,
            client_address=client_address,
            detail={"kind": "passkey", "reason": refusal.reason},
        )
    if refusal.reason == RefusalReason.ENROLMENT_CODE_INVALID:
        return EnrolmentCodeInvalid("the enrolment code is unknown, used, expired or another's")
    return PasskeyRefused(refusal.message, reason=str(refusal.reason))
