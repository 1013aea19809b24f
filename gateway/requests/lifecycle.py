"""The signing-request life cycle: one states enum, one transitions table, and the one
function that moves a request and writes its audit entry in the same transaction."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from gateway.audit import log as audit
from gateway.db.models import SigningRequest
from gateway.errors import RequestNotPending
from gateway.integration import callbacks
from gateway.requests.states import TRANSITIONS, RequestStatus

__all__ = ["TRANSITIONS", "RequestStatus", "transition"]


def transition(
    session: Session,
    request: SigningRequest,
    to: RequestStatus,
    *,
    actor: str,
    now: dt.datetime,
    client_address: str | None = None,
    failure_code: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Move ``request`` to ``to`` and append the audit entry (and the status callback the
    document system asked for, :mod:`gateway.integration.callbacks`), in ``session``'s
    transaction. Raises :class:`~gateway.errors.RequestNotPending` for a move the
    table does not allow."""
    current = RequestStatus(request.status)
    if to not in TRANSITIONS[current]:
        raise RequestNotPending(f"the request is {current.value}, it cannot become {to.value}")
    request.status = to.value
    request.updated_at = now
    if failure_code is not None:
        request.failure_code = failure_code
    callbacks.enqueue(session, request, now=now)
    audit.record(
        session,
        actor=actor,
        action=f"request.{to.value}",
        now=now,
        request_id=request.id,
        client_address=client_address,
        detail={
            "from": current.value,
            **({"failure_code": failure_code} if failure_code else {}),
            **(detail or {}),
        },
    )
