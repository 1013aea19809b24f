"""Mobile logins: a per-user lock after repeated wrong passwords (audited), and a
per-address rate limit that slows a guesser trying many usernames."""

from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import select

from gateway.db.models import AuditEntry


def test_repeated_wrong_passwords_lock_the_user_and_are_audited(server, db, signer):
    import httpx

    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        codes = [
            http.post(
                "/mobile/v1/sessions", json={"username": signer.username, "password": "wrong"}
            ).json()["code"]
            for _ in range(10)
        ]
        locked = http.post(
            "/mobile/v1/sessions",
            json={"username": signer.username, "password": signer.password},
        )
    assert codes == ["credentials_invalid"] * 10
    assert locked.status_code == 429 and locked.json()["code"] == "login_locked"
    with db.transaction() as session:
        actions = session.scalars(
            select(AuditEntry.action).where(
                AuditEntry.actor.in_([f"user:{signer.username}", "system"]),
                AuditEntry.action.like("login.%"),
                AuditEntry.detail.contains(signer.username)
                | AuditEntry.actor.contains(signer.username),
            )
        ).all()
    assert actions.count("login.failed") == 10 and "login.locked" in actions


def test_logins_from_one_address_are_rate_limited(installation):
    import httpx

    from signing_gateway.demo.driver import wait_until_up
    from tests.conftest import _free_port

    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "signing_gateway.cli", "serve"]
        + ["--data-dir", str(installation.data_dir), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, GATEWAY_LOGIN_RATE_LIMIT="3/minute"),
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            answers = [
                http.post("/mobile/v1/sessions", json={"username": f"nobody{n}", "password": "x"})
                for n in range(4)
            ]
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert [a.status_code for a in answers] == [401, 401, 401, 429]
    refused = answers[3].json()
    assert refused["code"] == "login_rate_limited" and refused["retry_after"] >= 1
