"""Signed decisions: the second factor that comes with an approval or a rejection.

A decision on one or more signing requests carries one factor, in the bridge's own
vocabulary (:mod:`hsm_bridge.sam.authorization`): a TOTP code
(:class:`~hsm_bridge.sam.authorization.TotpFactor`), or a device's signature
(:class:`~hsm_bridge.sam.authorization.DeviceFactor`) over the approval statement of
:mod:`hsm_bridge.sam.statement`, which :func:`check_device_factor` rebuilds from the
stored requests (id, document SHA-256, parameters SHA-256), the signer, the device, the
decision, the server nonce and the expiry, before the bridge checks it again. Nonces
(:func:`issue_nonce`) are single-use and short-lived; the one pushed with a new request,
or one the app fetches, may be used once.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from gateway.db.database import affected_rows
from gateway.db.models import ApprovalNonce, Device, SigningRequest, User
from gateway.errors import (
    ApprovalExpired,
    ApprovalNonceInvalid,
    ApprovalSignatureInvalid,
    DeviceRevoked,
    DeviceUnknown,
    GatewayError,
)
from hsm_bridge.errors import AuthorizationRefused
from hsm_bridge.sam.authorization import DeviceFactor
from hsm_bridge.sam.passkeys import RelyingParty, passkey_device_id, verify_assertion
from hsm_bridge.sam.statement import (
    ApprovalStatement,
    Decision,
    StatementDocument,
    StatementSignatureInvalid,
    verify_statement_signature,
)

__all__ = [
    "DecisionItem",
    "check_device_factor",
    "issue_nonce",
    "purge_nonces",
    "statement_for",
]


@dataclass(frozen=True, slots=True)
class DecisionItem:
    """One request in a decision, with the SHA-256 (hex) of the document the signer was
    shown."""

    request_id: str
    document_sha256: str


# Unspent nonces a user may hold at once; beyond, the oldest are dropped.
MAX_OPEN_NONCES = 200


def issue_nonce(
    session: Session, user_id: str, *, now: dt.datetime, ttl_seconds: int
) -> ApprovalNonce:
    """A new 256-bit nonce (base64url) for one signed decision of ``user_id``, valid for
    ``ttl_seconds``; added to ``session``. A user holds at most :data:`MAX_OPEN_NONCES`
    unspent ones (the oldest go first), so fetching nonces cannot fill the database."""
    open_nonces = session.scalars(
        select(ApprovalNonce.nonce)
        .where(ApprovalNonce.user_id == user_id, ApprovalNonce.used_at.is_(None))
        .order_by(ApprovalNonce.created_at.desc())
        .offset(MAX_OPEN_NONCES - 1)
    ).all()
    if open_nonces:
        session.execute(delete(ApprovalNonce).where(ApprovalNonce.nonce.in_(open_nonces)))
    nonce = ApprovalNonce(
        nonce=secrets.token_urlsafe(32),
        user_id=user_id,
        created_at=now,
        expires_at=now + dt.timedelta(seconds=ttl_seconds),
    )
    session.add(nonce)
    return nonce


def purge_nonces(session: Session, *, now: dt.datetime) -> int:
    """Delete nonces past their expiry (spent or not: an expired nonce is refused
    anyway); return how many."""
    result = session.execute(delete(ApprovalNonce).where(ApprovalNonce.expires_at < now))
    return affected_rows(result)


def statement_for(
    user: User,
    device_id: str,
    decision: Decision,
    factor: DeviceFactor,
    requests: Sequence[SigningRequest],
) -> ApprovalStatement:
    """The statement the device must have signed, built from the stored requests (never
    from values the client sent)."""
    return ApprovalStatement(
        signer=user.username,
        device=device_id,
        decision=decision,
        nonce=factor.nonce,
        expires_at=factor.expires_at,
        documents=tuple(
            StatementDocument(
                r.id, r.document_sha256, r.parameters_sha256, r.certificate_sha256, r.mechanism
            )
            for r in requests
        ),
    )


def check_device_factor(
    session: Session,
    user: User,
    decision: Decision,
    factor: DeviceFactor,
    requests: Sequence[SigningRequest],
    *,
    now: dt.datetime,
    max_ttl_seconds: int,
    relying_party: RelyingParty,
) -> GatewayError | None:
    """Verify a device-signed decision on ``requests`` and consume its nonce, in
    ``session``'s transaction. Returns None when it holds, else the refusal:
    ``device_unknown`` (no such device of this user, or one without a key),
    ``device_revoked``, ``approval_expired`` (``expires_at`` passed, or further than
    ``max_ttl_seconds`` ahead), ``approval_signature_invalid``, ``approval_nonce_invalid``
    (unknown, another user's, expired, or already used: a replay). The nonce is consumed
    by one conditional UPDATE, so of two concurrent uses exactly one wins."""
    device = session.get(Device, factor.device_id)
    if device is None or device.user_id != user.id:
        return DeviceUnknown("no such device of this signer")
    if device.revoked_at is not None:
        return DeviceRevoked("this device was revoked")
    instant = int(now.timestamp())
    if not instant < factor.expires_at <= instant + max_ttl_seconds:
        return ApprovalExpired("the signed decision is expired or too far in the future")
    if device.public_key_der is None:
        return DeviceUnknown("no such device of this signer")
    statement = statement_for(user, device.id, decision, factor, requests)
    if device.kind == "passkey":
        refusal = _passkey_refusal(device, factor, statement.canonical_bytes(), relying_party)
        if refusal is not None:
            return refusal
    else:
        try:
            verify_statement_signature(statement, device.public_key_der, factor.signature)
        except StatementSignatureInvalid:
            return ApprovalSignatureInvalid("the device signature does not match this decision")
    consumed = session.execute(
        update(ApprovalNonce)
        .where(ApprovalNonce.nonce == factor.nonce)
        .where(ApprovalNonce.user_id == user.id)
        .where(ApprovalNonce.used_at.is_(None))
        .where(ApprovalNonce.expires_at > now)
        .values(used_at=now)
    )
    if affected_rows(consumed) != 1:
        return ApprovalNonceInvalid("the nonce is unknown, expired or already used")
    return None


def _passkey_refusal(
    device: Device, factor: DeviceFactor, statement: bytes, relying_party: RelyingParty
) -> GatewayError | None:
    """The gateway's own check of a passkey's assertion over ``statement`` (its key as
    registered; the counter is the bridge's to keep), or None when it holds."""
    assertion = factor.webauthn
    if assertion is None:
        return ApprovalSignatureInvalid("a passkey approves with a WebAuthn assertion")
    try:
        credential_id = base64.urlsafe_b64decode(
            str(assertion.get("rawId", "")) + "=" * (-len(str(assertion.get("rawId", ""))) % 4)
        )
    except (ValueError, TypeError):
        return ApprovalSignatureInvalid("the assertion names no credential")
    if passkey_device_id(credential_id) != device.id:
        return ApprovalSignatureInvalid("the assertion comes from another passkey")
    assert device.public_key_der is not None
    try:
        verify_assertion(
            relying_party,
            assertion,
            credential_id=credential_id,
            public_key=device.public_key_der,
            sign_count=0,
            statement=statement,
        )
    except AuthorizationRefused:
        return ApprovalSignatureInvalid("the passkey did not approve this decision")
    return None
