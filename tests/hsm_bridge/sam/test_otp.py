"""RFC 6238 TOTP: the standard's test vectors, the window, and the once-per-step rule
and lockout (docs/design.md invariant 3) that the bridge enforces in one transaction."""

from __future__ import annotations

import base64
import datetime as dt
import os
from concurrent.futures import ThreadPoolExecutor

import pyotp
import pytest

from hsm_bridge.errors import AuthorizationRefused
from hsm_bridge.sam import otp as totp
from hsm_bridge.sam.signers import SignerRegistry, TotpPolicy

# RFC 6238 Appendix B, SHA-1 secret "12345678901234567890": (time, 8-digit TOTP)
RFC6238_SHA1 = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]
SECRET = base64.b32encode(b"12345678901234567890").decode()


def at(seconds: float) -> dt.datetime:
    """POSIX ``seconds`` as the aware datetime the bridge's clock gives."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


@pytest.mark.invariant(3)
@pytest.mark.parametrize(("now", "expected"), RFC6238_SHA1)
def test_rfc6238_vectors(now, expected):
    assert pyotp.TOTP(SECRET, digits=8).at(now) == expected
    # our 6-digit codes are the last six digits (RFC 4226 §5.3 truncation mod 10^6)
    assert totp.match_step(SECRET, expected[-6:], now=at(now)) == now // 30


@pytest.mark.invariant(3)
def test_window_accepts_previous_step_only():
    now = 1_800_000_015
    code = pyotp.TOTP(SECRET).at(now)
    assert totp.match_step(SECRET, code, now=at(now)) == now // 30
    assert totp.match_step(SECRET, code, now=at(now + 30)) == now // 30  # one step late: ok
    assert totp.match_step(SECRET, code, now=at(now + 60)) is None  # two steps late
    assert totp.match_step(SECRET, code, now=at(now - 30)) is None  # future codes never
    assert totp.match_step(SECRET, "12345", now=at(now)) is None
    assert totp.match_step(SECRET, "abcdef", now=at(now)) is None


@pytest.mark.invariant(3)
def test_the_bridge_accepts_a_step_once_even_from_concurrent_callers(tmp_path):
    registry = SignerRegistry(
        tmp_path / "signers.db",
        base64.urlsafe_b64encode(os.urandom(32)),
        totp_policy=TotpPolicy(max_failures=3, lockout_seconds=600),
    )
    registry.set_totp("u", SECRET)
    now = 1_000_000_020.0
    code = pyotp.TOTP(SECRET).at(now)

    def attempt(_: int) -> str:
        try:
            registry.check_totp("u", code, now=at(now))
        except AuthorizationRefused as exc:
            return exc.reason
        return "accepted"

    with ThreadPoolExecutor(8) as pool:
        outcomes = sorted(pool.map(attempt, range(8)))
    assert outcomes == ["accepted"] + ["totp_reused"] * 7
    older = pyotp.TOTP(SECRET).at(now - 30)
    with pytest.raises(AuthorizationRefused, match="already used"):
        registry.check_totp("u", older, now=at(now))  # an older step, after a newer one
    # two wrong codes, then a right one: the right one erases nothing, so the next
    # wrong code is the third and locks (a guesser who saw one good code gains nothing)
    for _ in range(2):
        with pytest.raises(AuthorizationRefused) as caught:
            registry.check_totp("u", "000001", now=at(now + 30))
        assert caught.value.reason == "totp_invalid"
    registry.check_totp("u", pyotp.TOTP(SECRET).at(now + 30), now=at(now + 30))
    with pytest.raises(AuthorizationRefused) as caught:
        registry.check_totp("u", "000001", now=at(now + 60))
    assert caught.value.reason == "totp_lockout"
    with pytest.raises(AuthorizationRefused) as caught:
        registry.check_totp("u", pyotp.TOTP(SECRET).at(now + 60), now=at(now + 60))
    assert caught.value.reason == "totp_locked"  # even the right code, while locked
    # the lock used the failures up: after it, three more wrong codes lock again
    for _ in range(2):
        with pytest.raises(AuthorizationRefused) as caught:
            registry.check_totp("u", "000001", now=at(now + 700))
        assert caught.value.reason == "totp_invalid"
    registry.check_totp("u", pyotp.TOTP(SECRET).at(now + 700), now=at(now + 700))


def test_new_secrets_are_160_bits():
    assert len(base64.b32decode(totp.new_secret())) == 20
