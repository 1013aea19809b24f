"""TOTP at the gateway: it holds no secret and checks no code. The bridge keeps every
signer's TOTP secret (encrypted at rest), accepts a code once per user and time step,
counts failures and locks (:mod:`hsm_bridge.sam.signers`); the gateway relays the codes and
turns the bridge's refusals into its own problems, with an audit entry each.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.orm import Session

from gateway.audit import log as audit
from gateway.db.database import Database
from gateway.errors import (
    GatewayError,
    OtpInvalid,
    OtpLocked,
    OtpReused,
    TotpNotAccepted,
    TotpNotEnrolled,
)
from hsm_bridge.errors import AuthorizationRefused, RefusalReason
from hsm_bridge.sam.otp import PERIOD_SECONDS, new_secret, provisioning_uri

__all__ = [
    "PERIOD_SECONDS",
    "is_totp_refusal",
    "new_secret",
    "provisioning_uri",
    "refusal_of",
    "relay",
]

T = TypeVar("T")

# The bridge's TOTP refusals and the gateway's problem for each.
_REFUSALS: dict[str, tuple[type[GatewayError], str]] = {
    RefusalReason.TOTP_INVALID: (OtpInvalid, "the code is wrong"),
    RefusalReason.TOTP_REUSED: (OtpReused, "this code was already used; wait for the next one"),
    RefusalReason.TOTP_LOCKED: (
        OtpLocked,
        "approval is locked after too many wrong codes; try later",
    ),
    RefusalReason.TOTP_LOCKOUT: (OtpLocked, "too many wrong codes; approval is locked for a while"),
    RefusalReason.TOTP_NOT_ENROLLED: (TotpNotEnrolled, "enrol an authenticator first"),
    RefusalReason.TOTP_NOT_ACCEPTED: (TotpNotAccepted, "approve with an enrolled device"),
}


def is_totp_refusal(error: BaseException) -> bool:
    """Whether ``error`` is the bridge refusing a TOTP code."""
    return isinstance(error, AuthorizationRefused) and error.reason in _REFUSALS


def refusal_of(
    session: Session,
    error: AuthorizationRefused,
    *,
    username: str,
    now: dt.datetime,
    request_id: str | None = None,
    client_address: str | None = None,
) -> GatewayError:
    """The gateway's problem for the bridge's TOTP refusal ``error`` (``otp_invalid``,
    ``otp_reused``, ``otp_locked``, ``totp_not_enrolled``, ``totp_not_accepted``),
    audited in ``session``'s transaction (``totp.failed``, ``totp.reused``,
    ``totp.locked`` when this code started a lockout). ValueError for another refusal."""
    if error.reason not in _REFUSALS:
        raise ValueError(f"not a TOTP refusal: {error.reason}")
    problem, message = _REFUSALS[error.reason]
    action = "totp.reused" if error.reason == RefusalReason.TOTP_REUSED else "totp.failed"
    audit.record(
        session,
        actor=f"user:{username}",
        action=action,
        now=now,
        request_id=request_id,
        client_address=client_address,
        detail={"reason": error.reason},
    )
    if error.reason == RefusalReason.TOTP_LOCKOUT:
        audit.record(
            session,
            actor="system",
            action="totp.locked",
            now=now,
            request_id=request_id,
            detail={"user": username},
        )
    return problem(message)


def relay(
    db: Database,
    call: Callable[[], T],
    *,
    username: str,
    now: dt.datetime,
    client_address: str | None = None,
) -> T:
    """Run ``call`` (a bridge operation that checks one of ``username``'s TOTP codes)
    and return its result; when the bridge refuses the code, commit the audit entry and
    raise the gateway's problem (see :func:`refusal_of`). Other bridge errors pass."""
    refusal: GatewayError | None = None
    try:
        return call()
    except AuthorizationRefused as exc:
        if not is_totp_refusal(exc):
            raise
        with db.transaction() as session:
            refusal = refusal_of(
                session, exc, username=username, now=now, client_address=client_address
            )
    raise refusal
