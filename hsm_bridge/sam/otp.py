"""TOTP codes (RFC 6238, HMAC-SHA1, 6 digits, 30-second steps) checked with pyotp.

The check is pure (``now`` is a parameter) and constant-time. It lives in
:mod:`hsm_bridge` because the bridge verifies a signer's code itself before it issues a
signature activation; the gateway uses the same function for its own checks.
"""

from __future__ import annotations

import datetime as dt
import hmac

import pyotp

from hsm_bridge.clock import posix

__all__ = ["DIGITS", "PERIOD_SECONDS", "match_step", "new_secret", "provisioning_uri"]

PERIOD_SECONDS = 30
DIGITS = 6


def new_secret() -> str:
    """A new 160-bit secret, base32 (RFC 4226 §4 recommends 160 bits)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, username: str, issuer: str) -> str:
    """The ``otpauth://totp/...`` URI for authenticator apps (Key URI Format)."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)


def match_step(secret: str, code: str, *, now: dt.datetime, window: int = 1) -> int | None:
    """Return the time step (``floor(now / 30)`` minus 0..``window``) whose code equals
    ``code``, or None. Only past steps are accepted within the window, never future
    ones. Every candidate is compared in constant time."""
    if len(code) != DIGITS or not (code.isascii() and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD_SECONDS)
    current = posix(now) // PERIOD_SECONDS
    found: int | None = None
    for step in range(current, current - window - 1, -1):
        if hmac.compare_digest(totp.generate_otp(step), code) and found is None:
            found = step
    return found
