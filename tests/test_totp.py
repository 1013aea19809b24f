"""RFC 6238 TOTP: the standard's test vectors, the window, and the once-per-step rule
(DESIGN.md invariant 3) enforced by one atomic UPDATE."""

from __future__ import annotations

import base64
import datetime as dt

import pyotp
import pytest

from gateway import totp
from gateway.db import Database
from gateway.models import Base, User

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


@pytest.mark.invariant(3)
@pytest.mark.parametrize(("now", "expected"), RFC6238_SHA1)
def test_rfc6238_vectors(now, expected):
    assert pyotp.TOTP(SECRET, digits=8).at(now) == expected
    # our 6-digit codes are the last six digits (RFC 4226 §5.3 truncation mod 10^6)
    assert totp.match_step(SECRET, expected[-6:], now=now) == now // 30


@pytest.mark.invariant(3)
def test_window_accepts_previous_step_only():
    now = 1_800_000_015
    code = pyotp.TOTP(SECRET).at(now)
    assert totp.match_step(SECRET, code, now=now) == now // 30
    assert totp.match_step(SECRET, code, now=now + 30) == now // 30  # one step late: ok
    assert totp.match_step(SECRET, code, now=now + 60) is None  # two steps late
    assert totp.match_step(SECRET, code, now=now - 30) is None  # future codes never
    assert totp.match_step(SECRET, "12345", now=now) is None
    assert totp.match_step(SECRET, "abcdef", now=now) is None


@pytest.mark.invariant(3)
def test_step_is_consumed_once(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 't.db'}")
    Base.metadata.create_all(db.engine)
    with db.transaction() as session:
        session.add(
            User(
                id="u",
                username="u",
                display_name="u",
                role="leader",
                password_hash="x",
                totp_failures=3,
                login_failures=0,
                created_at=dt.datetime.now(dt.UTC),
            )
        )
    with db.transaction() as session:
        assert totp.consume_step(session, "u", 100) is True
    with db.transaction() as session:
        assert totp.consume_step(session, "u", 100) is False  # same step again
        assert totp.consume_step(session, "u", 99) is False  # an older step
        assert totp.consume_step(session, "u", 101) is True
        assert session.get(User, "u").totp_failures == 0
    db.dispose()


def test_new_secrets_are_160_bits():
    assert len(base64.b32decode(totp.new_secret())) == 20
