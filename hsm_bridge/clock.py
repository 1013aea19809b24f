"""Time, one type on both tiers: a clock is a function returning aware UTC
:class:`datetime.datetime`, injected wherever a time is read (tests pass a fixed one).
Stored and signed times (SAD ``exp``, device statements, the signer records) are whole
POSIX seconds, converted at that edge only by :func:`posix`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

__all__ = ["Clock", "posix", "utcnow"]

Clock = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    """The wall clock, aware UTC: the default :data:`Clock`."""
    return dt.datetime.now(dt.UTC)


def posix(moment: dt.datetime) -> int:
    """``moment`` (aware) as whole POSIX seconds, rounded down. Raises ValueError for a
    naive datetime (its zone would be guessed)."""
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no defined POSIX time")
    return int(moment.timestamp() // 1)
