"""Signed checkpoints of the audit hash chain (docs/design.md invariant 5).

The chain alone shows an edited entry, but not a log rewritten from some entry on with
every hash recomputed, nor a log cut short. A checkpoint signs the chain's head (entry
id and ``entry_hash``) with the gateway's Ed25519 key (RFC 8032); the signed bytes are
the RFC 8785 canonical JSON of ``{"v", "entry_id", "entry_hash", "at", "key_id"}``. A
checkpoint is written in the same transaction as every ``every``-th entry
(:class:`CheckpointSigner`, placed on the database's sessions by
:func:`gateway.db.database.Database`), and on demand (``signing-gateway audit checkpoint``, for a
timer). :func:`verify_checkpoints` checks each signature and that the entry it names is
still there with the same hash. Entries after the last checkpoint are covered by the
chain only: keep the interval short, or copy checkpoints elsewhere.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.db.models import AuditCheckpoint, AuditEntry

__all__ = [
    "SESSION_INFO_KEY",
    "CheckpointReport",
    "CheckpointSigner",
    "key_id",
    "verify_checkpoints",
    "write_checkpoint",
]

# Where :func:`gateway.audit.log.record` finds the signer: ``session.info[SESSION_INFO_KEY]``.
SESSION_INFO_KEY = "audit_checkpoints"


def key_id(public_key: Ed25519PublicKey) -> str:
    """SHA-256 hex of the raw 32-byte Ed25519 public key: names the key that signed."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def _signed_bytes(entry_id: int, entry_hash: str, at: dt.datetime, signer_key_id: str) -> bytes:
    return rfc8785.dumps(
        {
            "v": 1,
            "entry_id": entry_id,
            "entry_hash": entry_hash,
            "at": at.astimezone(dt.UTC).isoformat(timespec="seconds"),
            "key_id": signer_key_id,
        }
    )


@dataclass(frozen=True, slots=True)
class CheckpointSigner:
    """The gateway's checkpoint key and the interval: a checkpoint every ``every``
    entries (``every`` >= 1)."""

    key: Ed25519PrivateKey
    every: int = 100

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError("the checkpoint interval must be at least 1 entry")


def write_checkpoint(
    session: Session, signer: CheckpointSigner, *, now: dt.datetime
) -> AuditCheckpoint | None:
    """Sign the chain's current head in ``session``'s transaction and return the new
    checkpoint; None when the log is empty or its head is already checkpointed."""
    head = session.execute(
        select(AuditEntry.id, AuditEntry.entry_hash).order_by(AuditEntry.id.desc()).limit(1)
    ).first()
    if head is None:
        return None
    if session.scalar(select(AuditCheckpoint.id).where(AuditCheckpoint.entry_id == head.id)):
        return None
    signer_key_id = key_id(signer.key.public_key())
    at = now.astimezone(dt.UTC).replace(microsecond=0)
    signature = signer.key.sign(_signed_bytes(head.id, head.entry_hash, at, signer_key_id))
    checkpoint = AuditCheckpoint(
        entry_id=head.id,
        entry_hash=head.entry_hash,
        at=at,
        key_id=signer_key_id,
        signature=base64.b64encode(signature).decode("ascii"),
    )
    session.add(checkpoint)
    session.flush()
    return checkpoint


@dataclass(frozen=True, slots=True)
class CheckpointReport:
    """Result of :func:`verify_checkpoints`: how many checkpoints were checked, the
    entry id of the last good one, and the first problem (None when all are good):
    ``bad_signature`` (forged, or signed by another key), ``entry_changed`` (the entry it
    names has another hash: the log was rewritten), ``entry_missing`` (the log was cut
    short) or ``checkpoint_missing`` (a checkpoint that must exist is gone), with the
    entry id it concerns."""

    checkpoints: int
    last_entry_id: int | None
    problem: str | None = None
    problem_entry_id: int | None = None

    @property
    def intact(self) -> bool:
        """True when every checkpoint is authentic and matches the log."""
        return self.problem is None


def verify_checkpoints(
    session: Session, public_key: Ed25519PublicKey, *, every: int | None = None
) -> CheckpointReport:
    """Check every checkpoint, oldest first, against ``public_key`` and the log.

    With ``every`` (the interval in force), also require a checkpoint at each multiple of
    ``every`` after the first checkpoint, up to the last entry, and at least one once the
    log reaches ``every`` entries: deleting checkpoints to hide a rewritten tail is then
    ``checkpoint_missing``. (After upgrading an installation that had no checkpoints, run
    ``signing-gateway audit checkpoint`` once.) A log cut back to just after a checkpoint
    stays undetectable without a copy of the checkpoints kept elsewhere."""
    expected_key_id = key_id(public_key)
    last_entry = session.scalar(select(func.max(AuditEntry.id))) or 0
    checkpoints = list(session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id)))
    if every is not None:
        present = {c.entry_id for c in checkpoints}
        if not present:
            if last_entry >= every:
                return CheckpointReport(0, None, "checkpoint_missing", every)
        else:
            first = min(present)
            start = (first // every + 1) * every
            for entry_id in range(start, last_entry + 1, every):
                if entry_id not in present:
                    good = max((e for e in present if e < entry_id), default=None)
                    return CheckpointReport(len(present), good, "checkpoint_missing", entry_id)
    checked = 0
    last_good: int | None = None
    for checkpoint in checkpoints:
        checked += 1
        try:
            if checkpoint.key_id != expected_key_id:
                raise InvalidSignature
            public_key.verify(
                base64.b64decode(checkpoint.signature),
                _signed_bytes(
                    checkpoint.entry_id, checkpoint.entry_hash, checkpoint.at, checkpoint.key_id
                ),
            )
        except (InvalidSignature, ValueError):
            return CheckpointReport(checked, last_good, "bad_signature", checkpoint.entry_id)
        stored = session.scalar(
            select(AuditEntry.entry_hash).where(AuditEntry.id == checkpoint.entry_id)
        )
        if stored is None:
            problem = (
                "entry_missing" if (last_entry or 0) < checkpoint.entry_id else "entry_changed"
            )
            return CheckpointReport(checked, last_good, problem, checkpoint.entry_id)
        if stored != checkpoint.entry_hash:
            return CheckpointReport(checked, last_good, "entry_changed", checkpoint.entry_id)
        last_good = checkpoint.entry_id
    return CheckpointReport(checked, last_good)
