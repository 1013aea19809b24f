"""Login throttling that slows a guesser without locking the real user out.

Three counters, kept by the ``limits`` library (in memory for the embedded default, in
Redis, ``rate_limit_storage_url``, when replicas must share them):

- every login from one address, in a moving window (``login_rate_limit``): one address
  cannot try many names quickly;
- failures of one name from one address: after :data:`FREE_FAILURES` the next try
  from there waits 1 s, then 2 s, 4 s ... up to :data:`MAX_WAIT_SECONDS`; a success
  from that address clears it;
- failures of one name from anywhere: after :data:`NAME_FAILURES` in
  :data:`NAME_WINDOW_SECONDS`, one try per :data:`NAME_WAIT_SECONDS` from any address.
  This one also slows the real user while the name is under attack, by seconds, never
  by a lock.

Names are counted whether or not they exist, and refused with the same answer, so the
throttle tells nobody which names are real. Counter keys hold a hash of the name, not
the name.
"""

from __future__ import annotations

import hashlib
import math
import time

import limits
import limits.storage
import limits.strategies

from gateway.errors import LoginRateLimited

__all__ = ["FREE_FAILURES", "LoginThrottle"]

FREE_FAILURES = 3
MAX_WAIT_SECONDS = 300
FAILURE_WINDOW_SECONDS = 3600
NAME_FAILURES = 20
NAME_WINDOW_SECONDS = 3600
NAME_WAIT_SECONDS = 10


class LoginThrottle:
    """Decides whether a login may be tried now (:meth:`check`) and learns its outcome
    (:meth:`failed`, :meth:`succeeded`). ``rate``: logins per address in ``limits``'
    notation (``30/minute``); ``storage_url``: ``memory://`` or ``redis://…``."""

    def __init__(self, rate: str, storage_url: str) -> None:
        storage = limits.storage.storage_from_string(storage_url)
        if not isinstance(storage, limits.storage.Storage):
            raise ValueError(f"{storage_url!r} is not a synchronous rate-limit storage")
        self._storage = storage
        self._per_address = limits.parse(rate)
        self._window = limits.strategies.MovingWindowRateLimiter(self._storage)

    def check(self, address: str | None, username: str) -> None:
        """Count one attempt of ``username`` from ``address``; raises LoginRateLimited
        (429, ``retry_after`` in seconds) when it must wait."""
        where, name = address or "unknown", _name_key(username)
        if not self._window.hit(self._per_address, "login", where):
            stats = self._window.get_window_stats(self._per_address, "login", where)
            self._refuse(stats.reset_time - time.time(), "from this address")
        for key in (f"login-wait/{where}/{name}", f"login-wait/*/{name}"):
            if self._storage.get(key) > 0:
                self._refuse(self._storage.get_expiry(key) - time.time(), "for this name")

    def failed(self, address: str | None, username: str) -> None:
        """A wrong password (or an unknown name) for ``username`` from ``address``."""
        where, name = address or "unknown", _name_key(username)
        here = self._storage.incr(f"login-fail/{where}/{name}", FAILURE_WINDOW_SECONDS)
        if here >= FREE_FAILURES:
            wait = min(2 ** (here - FREE_FAILURES), MAX_WAIT_SECONDS)
            self._storage.incr(f"login-wait/{where}/{name}", wait)
        anywhere = self._storage.incr(f"login-fail/*/{name}", NAME_WINDOW_SECONDS)
        if anywhere >= NAME_FAILURES:
            self._storage.incr(f"login-wait/*/{name}", NAME_WAIT_SECONDS)

    def succeeded(self, address: str | None, username: str) -> None:
        """The right password: the failures of this name from this address are
        forgotten (those from elsewhere are not: they are someone else's)."""
        where, name = address or "unknown", _name_key(username)
        self._storage.clear(f"login-fail/{where}/{name}")
        self._storage.clear(f"login-wait/{where}/{name}")

    @staticmethod
    def _refuse(seconds: float, what: str) -> None:
        wait = max(1, math.ceil(seconds))
        raise LoginRateLimited(f"too many logins {what}; try again in {wait} s", retry_after=wait)


def _name_key(username: str) -> str:
    """A short hash of the name as typed, case-folded (the same name, the same key)."""
    return hashlib.sha256(username.strip().casefold().encode()).hexdigest()[:32]
