"""TOTP (RFC 6238) codes accepted once per user and time step.

The pure check (:func:`match_step`, from :mod:`hsm_bridge.otp`) takes ``now`` as a
parameter and compares in constant time; the replay guard (:func:`consume_step`) is one
conditional UPDATE, so two concurrent approvals with the same code cannot both win.
"""

from __future__ import annotations

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from gateway.models import User
from hsm_bridge.otp import PERIOD_SECONDS, match_step, new_secret, provisioning_uri

__all__ = ["PERIOD_SECONDS", "consume_step", "match_step", "new_secret", "provisioning_uri"]


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
