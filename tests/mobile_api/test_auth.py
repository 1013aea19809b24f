"""Mobile logins are throttled, never locked (mobile_api/throttle.py): wrong passwords
from one address slow that address for that name, not the real user elsewhere; one
address cannot try many names quickly; unknown and known names get the same answers.

Every request comes from 127.0.0.1, which uvicorn trusts as a proxy: the tests name
the client's address in X-Forwarded-For, as the nginx sample does."""

from __future__ import annotations

import time

import httpx
import pytest
from sqlalchemy import select

from gateway.db.models import AuditEntry
from mobile_api.auth import password_problem
from tests.conftest import start_server

ATTACKER, LEADER_AT_HOME = "203.0.113.5", "198.51.100.7"


@pytest.fixture
def gateway(installation, tmp_path):
    """A gateway of its own (fresh throttle counters), a high per-address rate."""
    process, base_url = start_server(
        installation, tmp_path / "gateway.log", GATEWAY_LOGIN_RATE_LIMIT="100/second"
    )
    yield base_url
    process.terminate()
    process.wait(timeout=30)


def _login(base_url: str, address: str, username: str, password: str) -> httpx.Response:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        return http.post(
            "/mobile/v1/sessions",
            json={"username": username, "password": password},
            headers={"X-Forwarded-For": address},
        )


def _seen(answer: httpx.Response) -> tuple[int, str]:
    return answer.status_code, answer.json().get("code", "") if answer.content else ""


def test_a_guesser_slows_only_their_own_address_and_never_locks_the_user(gateway, db, signer):
    guesses = [_seen(_login(gateway, ATTACKER, signer.username, f"wrong{n}")) for n in range(6)]
    assert guesses[:3] == [(401, "credentials_invalid")] * 3
    assert set(guesses[3:]) == {(429, "login_rate_limited")}  # the 4th waits a second
    # the leader, elsewhere, is not slowed at all
    home = _login(gateway, LEADER_AT_HOME, signer.username, signer.password)
    assert home.status_code == 201, home.text
    # and from the guesser's address itself, after the short wait: no lock
    waited = _login(gateway, ATTACKER, signer.username, signer.password)
    assert waited.status_code == 429
    time.sleep(waited.json()["retry_after"])
    assert _login(gateway, ATTACKER, signer.username, signer.password).status_code == 201
    with db.transaction() as session:
        failed = session.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "login.failed", AuditEntry.actor == f"user:{signer.username}"
            )
        ).all()
    assert len(failed) == 3 and {e.client_address for e in failed} == {ATTACKER}


def test_unknown_names_are_answered_exactly_like_known_ones(gateway, signer):
    known = [_login(gateway, "192.0.2.1", signer.username, f"x{n}") for n in range(5)]
    unknown = [_login(gateway, "192.0.2.2", "no-such-user-x9", f"x{n}") for n in range(5)]
    assert [_seen(a) for a in known] == [_seen(a) for a in unknown]
    assert [a.json()["detail"] for a in known] == [a.json()["detail"] for a in unknown]


def test_one_name_tried_from_many_addresses_is_slowed_everywhere(gateway, signer):
    """Twenty failures of one name from twenty addresses: the next try of that name,
    from any address, waits seconds (the real user too, while the attack lasts)."""
    for n in range(20):
        assert _login(gateway, f"198.18.0.{n + 1}", signer.username, "guess").status_code == 401
    slowed = _login(gateway, LEADER_AT_HOME, signer.username, signer.password)
    assert slowed.status_code == 429 and 1 <= slowed.json()["retry_after"] <= 10
    # another name is not affected
    assert _login(gateway, LEADER_AT_HOME, "someone-else", "x").status_code == 401


def test_one_address_cannot_try_many_names_quickly(installation, tmp_path):
    process, base_url = start_server(
        installation, tmp_path / "gateway.log", GATEWAY_LOGIN_RATE_LIMIT="3/minute"
    )
    try:
        answers = [_login(base_url, ATTACKER, f"nobody{n}", "x") for n in range(4)]
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert [a.status_code for a in answers] == [401, 401, 401, 429]
    refused = answers[3].json()
    assert refused["code"] == "login_rate_limited" and refused["retry_after"] >= 1


def test_a_stolen_session_cannot_guess_the_password_nor_outlive_its_change(gateway, signer):
    """Whoever holds a session token (a borrowed tablet) guesses the current password
    at the pace of a login guesser; the signer's change of password ends that session."""
    thief = _login(gateway, ATTACKER, signer.username, signer.password).json()["access_token"]
    owner = _login(gateway, LEADER_AT_HOME, signer.username, signer.password).json()
    new = "Mat-khau-moi-2026!"

    def change(token: str, address: str, current: str, password: str) -> tuple[int, str]:
        with httpx.Client(base_url=gateway, timeout=30) as http:
            return _seen(
                http.post(
                    "/mobile/v1/password",
                    json={"current_password": current, "new_password": password},
                    headers={"Authorization": f"Bearer {token}", "X-Forwarded-For": address},
                )
            )

    guesses = [change(thief, ATTACKER, f"guess{n}", new) for n in range(5)]
    assert guesses[:3] == [(401, "credentials_invalid")] * 3
    assert set(guesses[3:]) == {(429, "login_rate_limited")}
    assert change(owner["access_token"], LEADER_AT_HOME, signer.password, "tab\there-2026!") == (
        422,
        "password_too_weak",
    )
    assert change(owner["access_token"], LEADER_AT_HOME, signer.password, new) == (204, "")
    with httpx.Client(base_url=gateway, timeout=30) as http:
        mine = http.get(
            "/mobile/v1/me", headers={"Authorization": f"Bearer {owner['access_token']}"}
        )
        theirs = http.get("/mobile/v1/me", headers={"Authorization": f"Bearer {thief}"})
    assert mine.status_code == 200
    assert theirs.status_code == 401


def test_a_short_username_is_a_syllable_a_password_may_contain():
    """The username is refused inside a new password, except a username of fewer than
    four characters (``an``: in "Thanh", "Hoàng", "Văn"), which would refuse most
    Vietnamese words."""
    assert password_problem("nguyen.van.an", "old", "Nguyen.Van.An-2026") is not None
    assert password_problem("hoa1", "old", "x-HOA1-2026!") is not None
    assert password_problem("an", "old", "Thanh-Hoa-2026!") is None
    assert password_problem("an", "old", "aaaaaaaaaaaa") is not None  # other rules hold
