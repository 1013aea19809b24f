"""Signed decisions: the second factor that comes with an approval or a rejection.

A decision on one or more signing requests carries one proof: a TOTP code
(:class:`TotpProof`, checked by :meth:`gateway.approvals.decisions.SigningService`), or a device
signature (:class:`DeviceProof`) over the approval statement of
:mod:`hsm_bridge.sam.statement`, which :func:`check_device_proof` rebuilds from the stored
requests (id, document SHA-256, parameters SHA-256), the signer, the device, the decision,
the server nonce and the expiry. Nonces (:func:`issue_nonce`) are single-use and
short-lived; the one pushed with a new request, or one the app fetches, may be used once.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from gateway.db.models import ApprovalNonce, Device, SigningRequest, User
from gateway.errors import (
    ApprovalExpired,
    ApprovalNonceInvalid,
    ApprovalSignatureInvalid,
    DeviceRevoked,
    DeviceUnknown,
    GatewayError,
)
from hsm_bridge.sam.statement import (
    ApprovalStatement,
    Decision,
    StatementDocument,
    StatementSignatureInvalid,
    verify_statement_signature,
)

__all__ = [
    "DecisionItem",
    "DeviceProof",
    "Proof",
    "TotpProof",
    "check_device_proof",
    "issue_nonce",
    "purge_nonces",
    "statement_for",
]


@dataclass(frozen=True, slots=True)
class TotpProof:
    """A TOTP code (RFC 6238, 6 digits) typed by the signer, and the server nonce the
    app fetched for this approval when a sealed token PIN goes with it (the PIN is
    bound to that nonce)."""

    otp: str
    nonce: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceProof:
    """A device's answer: its id, the server ``nonce`` it signed, the ``expires_at`` it
    signed (POSIX seconds) and ``signature`` (DER ECDSA-Sig-Value, P-256/SHA-256)."""

    device_id: str
    nonce: str
    expires_at: int
    signature: bytes


Proof = TotpProof | DeviceProof


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
    return int(result.rowcount or 0)


def statement_for(
    user: User,
    device_id: str,
    decision: Decision,
    proof: DeviceProof,
    requests: Sequence[SigningRequest],
) -> ApprovalStatement:
    """The statement the device must have signed, built from the stored requests (never
    from values the client sent)."""
    return ApprovalStatement(
        signer=user.username,
        device=device_id,
        decision=decision,
        nonce=proof.nonce,
        expires_at=proof.expires_at,
        documents=tuple(
            StatementDocument(
                r.id, r.document_sha256, r.parameters_sha256, r.certificate_sha256, r.mechanism
            )
            for r in requests
        ),
    )


def check_device_proof(
    session: Session,
    user: User,
    decision: Decision,
    proof: DeviceProof,
    requests: Sequence[SigningRequest],
    *,
    now: dt.datetime,
    max_ttl_seconds: int,
) -> GatewayError | None:
    """Verify a device-signed decision on ``requests`` and consume its nonce, in
    ``session``'s transaction. Returns None when it holds, else the refusal:
    ``device_unknown`` (no such device of this user, or one without a key),
    ``device_revoked``, ``approval_expired`` (``expires_at`` passed, or further than
    ``max_ttl_seconds`` ahead), ``approval_signature_invalid``, ``approval_nonce_invalid``
    (unknown, another user's, expired, or already used: a replay). The nonce is consumed
    by one conditional UPDATE, so of two concurrent uses exactly one wins."""
    device = session.get(Device, proof.device_id)
    if device is None or device.user_id != user.id or device.public_key_der is None:
        return DeviceUnknown("no such device of this signer")
    if device.revoked_at is not None:
        return DeviceRevoked("this device was revoked")
    instant = int(now.timestamp())
    if not instant < proof.expires_at <= instant + max_ttl_seconds:
        return ApprovalExpired("the signed decision is expired or too far in the future")
    statement = statement_for(user, device.id, decision, proof, requests)
    try:
        verify_statement_signature(statement, device.public_key_der, proof.signature)
    except StatementSignatureInvalid:
        return ApprovalSignatureInvalid("the device signature does not match this decision")
    consumed = session.execute(
        update(ApprovalNonce)
        .where(ApprovalNonce.nonce == proof.nonce)
        .where(ApprovalNonce.user_id == user.id)
        .where(ApprovalNonce.used_at.is_(None))
        .where(ApprovalNonce.expires_at > now)
        .values(used_at=now)
    )
    if consumed.rowcount != 1:
        return ApprovalNonceInvalid("the nonce is unknown, expired or already used")
    return None
