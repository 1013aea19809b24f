"""TOTP (RFC 6238) codes checked with pyotp, accepted once per user and time step.

The pure check (:func:`match_step`) takes ``now`` as a parameter and compares in constant
time; the replay guard (:func:`consume_step`) is one conditional UPDATE, so two
concurrent approvals with the same code cannot both win.
"""

from __future__ import annotations

import hmac

import pyotp
from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from gateway.models import User

__all__ = ["PERIOD_SECONDS", "consume_step", "match_step", "new_secret", "provisioning_uri"]

PERIOD_SECONDS = 30
DIGITS = 6


def new_secret() -> str:
    """A new 160-bit secret, base32 (RFC 4226 §4 recommends 160 bits)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, username: str, issuer: str) -> str:
    """The ``otpauth://totp/...`` URI for authenticator apps (Key URI Format)."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)


def match_step(secret: str, code: str, *, now: float, window: int = 1) -> int | None:
    """Return the time step (``floor(now / 30)`` minus 0..``window``) whose code equals
    ``code``, or None. Only past steps are accepted within the window, never future
    ones. Every candidate is compared in constant time."""
    if len(code) != DIGITS or not (code.isascii() and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD_SECONDS)
    current = int(now) // PERIOD_SECONDS
    found: int | None = None
    for step in range(current, current - window - 1, -1):
        if hmac.compare_digest(totp.generate_otp(step), code) and found is None:
            found = step
    return found


def consume_step(session: Session, user_id: str, step: int) -> bool:
    """Record ``step`` as the user's last accepted step if it is strictly newer than the
    stored one; return False (a replay) otherwise. Atomic: one conditional UPDATE."""
    result = session.execute(
        update(User)
        .where(User.id == user_id)
        .where(or_(User.totp_last_step.is_(None), User.totp_last_step < step))
        .values(totp_last_step=step, totp_failures=0, totp_locked_until=None)
    )
    return bool(result.rowcount)
