"""Where a signing request stands, and which moves between states are allowed. Pure
data: :mod:`gateway.requests.lifecycle` makes the moves."""

from __future__ import annotations

import enum

__all__ = ["TRANSITIONS", "RequestStatus"]


class RequestStatus(enum.StrEnum):
    """Where a signing request stands."""

    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    SIGNING = "signing"
    SIGNED = "signed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    FAILED = "failed"


S = RequestStatus
TRANSITIONS: dict[RequestStatus, frozenset[RequestStatus]] = {
    # failed before approval: its credential was revoked (nobody can sign it any more)
    S.PENDING_APPROVAL: frozenset({S.APPROVED, S.REJECTED, S.EXPIRED, S.CANCELLED, S.FAILED}),
    S.APPROVED: frozenset({S.SIGNING, S.FAILED}),
    # a crash while signing sends the request back for a new approval (never re-using one)
    S.SIGNING: frozenset({S.SIGNED, S.FAILED, S.PENDING_APPROVAL}),
    S.SIGNED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
    S.CANCELLED: frozenset(),
    S.FAILED: frozenset(),
}
