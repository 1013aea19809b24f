"""Reading signing requests on behalf of someone: only the integration client that
submitted a request, or the signer it is addressed to, ever sees it (docs/design.md
invariant 7); a request read after its time ran out is expired on the spot."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from gateway.db.models import SigningRequest
from gateway.errors import NotFound
from gateway.requests.lifecycle import RequestStatus, transition

__all__ = ["expire_if_due", "load_owned"]


def load_owned(
    session: Session,
    request_id: str,
    *,
    client_id: str | None = None,
    signer_id: str | None = None,
    for_update: bool = False,
) -> SigningRequest:
    """The request if it belongs to the integration client or is addressed to the
    signer given; NotFound otherwise, the same answer whether it exists or not
    (docs/design.md invariant 7)."""
    request = session.get(SigningRequest, request_id, with_for_update=for_update)
    if (
        request is None
        or (client_id is not None and request.client_id != client_id)
        or (signer_id is not None and request.signer_id != signer_id)
    ):
        raise NotFound("no such signing request")
    return request


def expire_if_due(session: Session, request: SigningRequest, *, now: dt.datetime) -> bool:
    """Move a pending ``request`` whose time ran out to ``expired`` (audited, in
    ``session``'s transaction); True when it is expired (now or before)."""
    if request.status == RequestStatus.PENDING_APPROVAL and now >= request.expires_at:
        transition(session, request, RequestStatus.EXPIRED, actor="system", now=now)
        return True
    return request.status == RequestStatus.EXPIRED
