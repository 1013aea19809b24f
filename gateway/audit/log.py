"""Hash-chained audit log (docs/design.md invariant 5).

Each entry stores ``prev_hash`` and ``entry_hash = SHA-256(prev_hash || canonical JSON of
the entry)``, canonical JSON being sorted keys, no spaces, UTF-8 (RFC 8785-style for our
plain values). An entry is always written in the caller's transaction, so a state change
and its audit entry commit or roll back together.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.audit.checkpoints import SESSION_INFO_KEY, write_checkpoint
from gateway.db.database import lock_for_update
from gateway.db.models import AuditEntry

__all__ = ["GENESIS_HASH", "ChainReport", "record", "verify_chain"]

GENESIS_HASH = "0" * 64


def _entry_hash(prev_hash: str, entry: AuditEntry) -> str:
    body = json.dumps(
        {
            "id": entry.id,
            "at": entry.at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
            "actor": entry.actor,
            "action": entry.action,
            "request_id": entry.request_id,
            "client_address": entry.client_address,
            "detail": entry.detail,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    return hashlib.sha256(prev_hash.encode() + body).hexdigest()


# session.info key: (transactions, id, hash) of the entry the session appended last
_LAST_ENTRY = "audit.last_entry"


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    now: dt.datetime,
    request_id: str | None = None,
    client_address: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append an audit entry in ``session``'s transaction and return it.

    ``actor`` is ``user:<username>``, ``client:<name>`` or ``system``; ``detail`` must
    never hold a secret or document content (callers pass codes and hashes only). When
    the session carries a :class:`~gateway.audit.checkpoints.CheckpointSigner`, every
    ``every``-th entry is followed by a signed checkpoint in the same transaction."""
    last_id, prev_hash = _last_entry(session)
    entry = AuditEntry(
        id=last_id + 1,
        at=now,
        actor=actor,
        action=action,
        request_id=request_id,
        client_address=client_address,
        detail=json.dumps(detail or {}, sort_keys=True, separators=(",", ":")),
        prev_hash=prev_hash,
        entry_hash="",
    )
    entry.entry_hash = _entry_hash(prev_hash, entry)
    session.add(entry)
    session.flush()
    session.info[_LAST_ENTRY] = (_transaction(session), entry.id, entry.entry_hash)
    signer = session.info.get(SESSION_INFO_KEY)
    if signer is not None and entry.id % signer.every == 0:
        write_checkpoint(session, signer, now=now)
    return entry


def _last_entry(session: Session) -> tuple[int, str]:
    """The id and hash of the chain's last entry (0 and the genesis hash when empty),
    the chain locked for this transaction. Within one transaction the entry this
    session appended last is the chain's last (no other writer gets the lock before the
    transaction ends), so it is not read again: a batch's dozens of entries cost one
    query."""
    remembered = session.info.get(_LAST_ENTRY)
    if remembered is not None and remembered[0] == _transaction(session):
        return remembered[1], remembered[2]
    lock_for_update(session, "audit")
    last = session.execute(
        select(AuditEntry.id, AuditEntry.entry_hash).order_by(AuditEntry.id.desc()).limit(1)
    ).first()
    return (last.id, last.entry_hash) if last else (0, GENESIS_HASH)


def _transaction(session: Session) -> tuple[object, object]:
    """The session's transaction and savepoint (a savepoint rolled back forgets its
    entries: what was remembered inside it is not used outside)."""
    return (session.get_transaction(), session.get_nested_transaction())


@dataclass(frozen=True, slots=True)
class ChainReport:
    """Result of :func:`verify_chain`: ``entries`` checked and the id of the first
    broken entry (None when the chain is intact)."""

    entries: int
    first_broken_id: int | None

    @property
    def intact(self) -> bool:
        """True when every entry links to its predecessor and hashes correctly."""
        return self.first_broken_id is None


def verify_chain(session: Session) -> ChainReport:
    """Recompute the whole chain in id order; report the first entry whose link or hash
    does not match."""
    prev_hash = GENESIS_HASH
    count = 0
    for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.id)):
        count += 1
        if entry.prev_hash != prev_hash or _entry_hash(prev_hash, entry) != entry.entry_hash:
            return ChainReport(count, entry.id)
        prev_hash = entry.entry_hash
    return ChainReport(count, None)
