"""Reading the audit log a page at a time, newest first, with filters: the
administration API's audit browser (``GET /admin/v1/audit``). The cursor is opaque to
callers: the URL-safe base64 of the last entry id shown."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from gateway.db.database import Database
from gateway.db.models import AuditEntry
from gateway.errors import ParameterInvalid

__all__ = ["MAX_PAGE", "AuditFilter", "AuditPage", "AuditRecord", "search_audit"]

MAX_PAGE = 200
# entry ids are 64-bit signed integers on every backend
_MAX_ID = 2**63 - 1


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which entries: ``actor`` exactly (``admin:cli``, ``user:NAME``…), ``action`` as a
    prefix (``user.`` for every change to accounts), one signing request's, at or after
    ``since`` and before ``until``."""

    actor: str | None = None
    action: str | None = None
    request_id: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audit entry as shown; ``detail`` is the entry's JSON object."""

    id: int
    at: dt.datetime
    actor: str
    action: str
    request_id: str | None
    client_address: str | None
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AuditPage:
    """Up to a page of entries, newest first, and the cursor of the next page (None:
    this was the last)."""

    items: list[AuditRecord]
    next_cursor: str | None


def _cursor(entry_id: int) -> str:
    return base64.urlsafe_b64encode(f"before:{entry_id}".encode()).decode().rstrip("=")


def _before(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = text.partition(":")
        if kind != "before":
            raise ValueError(kind)
        entry_id = int(value)
        if not 0 < entry_id <= _MAX_ID:
            raise ValueError(value)
        return entry_id
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ParameterInvalid("the cursor is not one this API gave") from exc


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    """``moment`` (aware) in UTC; ParameterInvalid when UTC cannot hold it (a time in
    year 1 or 9999 whose offset carries it beyond)."""
    try:
        return moment.astimezone(dt.UTC) if moment is not None else None
    except OverflowError as exc:
        raise ParameterInvalid("since and until must lie within years 1 to 9999 in UTC") from exc


def search_audit(
    db: Database, where: AuditFilter, *, cursor: str | None = None, limit: int = 50
) -> AuditPage:
    """A page of at most ``limit`` (1 to :data:`MAX_PAGE`) entries matching ``where``,
    newest first, after the page that gave ``cursor``. Raises ParameterInvalid for a
    bad limit or cursor, or a time without its zone or beyond UTC's years."""
    if not 1 <= limit <= MAX_PAGE:
        raise ParameterInvalid(f"limit must be 1 to {MAX_PAGE}")
    if any(t is not None and t.tzinfo is None for t in (where.since, where.until)):
        raise ParameterInvalid("since and until need a time zone (e.g. 2026-01-31T00:00:00Z)")
    since, until = _utc(where.since), _utc(where.until)
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit + 1)
    if cursor is not None:
        query = query.where(AuditEntry.id < _before(cursor))
    if where.actor is not None:
        query = query.where(AuditEntry.actor == where.actor)
    if where.action is not None:
        query = query.where(AuditEntry.action.startswith(where.action, autoescape=True))
    if where.request_id is not None:
        query = query.where(AuditEntry.request_id == where.request_id)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    with db.transaction() as session:
        entries = list(session.scalars(query))
    items = [
        AuditRecord(
            e.id, e.at, e.actor, e.action, e.request_id, e.client_address, json.loads(e.detail)
        )
        for e in entries[:limit]
    ]
    more = len(entries) > limit
    return AuditPage(items, _cursor(items[-1].id) if more else None)
