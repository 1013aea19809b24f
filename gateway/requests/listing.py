"""The document system's list of its own signing requests (``GET /api/v1/signing-requests``):
filtered by status, workflow and time, newest first, in pages. A client sees only the
requests it submitted (docs/design.md invariant 7).

Paging is by keyset: the order is ``(created_at, id)`` descending, and a page's cursor
names the last item it showed, so a request submitted while a client pages through the
list never shifts or repeats what it sees (it is newer than the first page). The cursor
is opaque: sealed with a key derived from the installation's secret box for cursors
alone (Fernet: AES-128-CBC and HMAC-SHA256; it opens no stored secret) and bound to the
client, so an altered or borrowed one is refused
(CursorInvalid) instead of read."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from cryptography.fernet import InvalidToken
from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from gateway.db.database import Database
from gateway.db.models import SigningRequest
from gateway.errors import CursorInvalid, ParameterInvalid
from gateway.requests.access import expire_if_due
from gateway.requests.states import RequestStatus
from gateway.secrets_at_rest import SecretBox

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "RequestPage", "RequestQuery", "list_for_client"]

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
CURSOR_PURPOSE = "signing-request list cursor"


@dataclass(frozen=True, slots=True)
class RequestQuery:
    """Which requests to list: any of ``statuses`` (all when empty), of one
    ``workflow`` (``official_document``, ``organisation_only``; any when None), created
    and last changed within half-open time windows (``*_after`` inclusive, ``*_before``
    exclusive; aware datetimes), at most ``limit`` (1 to :data:`MAX_LIMIT`) a page."""

    statuses: tuple[RequestStatus, ...] = ()
    workflow: str | None = None
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    updated_after: dt.datetime | None = None
    updated_before: dt.datetime | None = None
    limit: int = DEFAULT_LIMIT


@dataclass(frozen=True, slots=True)
class RequestPage:
    """One page of requests, newest first, and the cursor of the next page (None on
    the last)."""

    items: list[SigningRequest]
    next_cursor: str | None


def list_for_client(
    db: Database,
    box: SecretBox,
    client_id: str,
    query: RequestQuery,
    cursor: str | None = None,
    *,
    now: dt.datetime,
) -> RequestPage:
    """The page of ``client_id``'s requests that ``query`` selects, after ``cursor``
    (from the previous page's ``next_cursor``; None for the first page). Pending
    requests whose time ran out at ``now`` are expired first (audited), so that a
    status filter sees them as they are. Raises CursorInvalid for a cursor this client
    was not given, ParameterInvalid for a limit out of range or a time UTC cannot
    hold."""
    if not 1 <= query.limit <= MAX_LIMIT:
        raise ParameterInvalid(f"limit must be between 1 and {MAX_LIMIT}")
    after = _open_cursor(box, client_id, cursor) if cursor is not None else None
    with db.transaction() as session:
        _expire_due(session, client_id, now)
        statement = _filtered(select(SigningRequest), client_id, query)
        if after is not None:
            created, request_id = after
            statement = statement.where(
                or_(
                    SigningRequest.created_at < created,
                    and_(SigningRequest.created_at == created, SigningRequest.id < request_id),
                )
            )
        statement = statement.order_by(
            SigningRequest.created_at.desc(), SigningRequest.id.desc()
        ).limit(query.limit + 1)
        found: list[SigningRequest] = list(session.scalars(statement))
    items = found[: query.limit]
    more = len(found) > query.limit
    return RequestPage(items, _seal_cursor(box, client_id, items[-1]) if more else None)


def _filtered(
    statement: Select[tuple[SigningRequest]], client_id: str, query: RequestQuery
) -> Select[tuple[SigningRequest]]:
    """``statement`` narrowed to the client's requests that ``query`` selects."""
    statement = statement.where(SigningRequest.client_id == client_id)
    if query.statuses:
        statement = statement.where(SigningRequest.status.in_([s.value for s in query.statuses]))
    if query.workflow is not None:
        statement = statement.where(SigningRequest.workflow == query.workflow)
    windows = (
        (SigningRequest.created_at, query.created_after, query.created_before),
        (SigningRequest.updated_at, query.updated_after, query.updated_before),
    )
    for column, start, end in windows:
        if start is not None:
            statement = statement.where(column >= _utc(start))
        if end is not None:
            statement = statement.where(column < _utc(end))
    return statement


def _utc(moment: dt.datetime) -> dt.datetime:
    """``moment`` (aware) in UTC; ParameterInvalid when naive or beyond UTC's years."""
    if moment.tzinfo is None:
        raise ParameterInvalid("times need their offset from UTC (RFC 3339)")
    try:
        return moment.astimezone(dt.UTC)
    except OverflowError as exc:
        raise ParameterInvalid("a time is out of range") from exc


def _expire_due(session: Session, client_id: str, now: dt.datetime) -> None:
    """Expire the client's pending requests whose time ran out at ``now``."""
    due = session.scalars(
        select(SigningRequest).where(
            SigningRequest.client_id == client_id,
            SigningRequest.status == RequestStatus.PENDING_APPROVAL.value,
            SigningRequest.expires_at <= now,
        )
    )
    for request in list(due):
        expire_if_due(session, request, now=now)


def _seal_cursor(box: SecretBox, client_id: str, last: SigningRequest) -> str:
    """The opaque cursor after ``last`` for ``client_id`` (URL-safe ASCII)."""
    position = {"client": client_id, "created_at": last.created_at.isoformat(), "id": last.id}
    sealed = box.for_purpose(CURSOR_PURPOSE).seal(json.dumps(position, separators=(",", ":")))
    return sealed.decode("ascii")


def _open_cursor(box: SecretBox, client_id: str, cursor: str) -> tuple[dt.datetime, str]:
    """The ``(created_at, id)`` a cursor names; CursorInvalid unless this gateway
    sealed it for ``client_id``."""
    try:
        position = json.loads(box.for_purpose(CURSOR_PURPOSE).open(cursor.encode("ascii")))
        created = dt.datetime.fromisoformat(position["created_at"])
        request_id = position["id"]
        owner = position["client"]
    except (InvalidToken, UnicodeError, ValueError, KeyError, TypeError) as exc:
        raise CursorInvalid("the cursor was altered or cut; list again without it") from exc
    if owner != client_id or not isinstance(request_id, str) or created.tzinfo is None:
        raise CursorInvalid("this cursor was not given to this client")
    return created, request_id
