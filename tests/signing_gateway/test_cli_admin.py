"""Day-one administration from the host's command line: integration clients (a key that
works, is rotated, revoked), accounts (listed, disabled, re-enabled, a new one-time
password), credentials listed with their holders and revoked once, and a clear line
for a user without devices. Real commands, real server, real database."""

from __future__ import annotations

import json
import re
import uuid

import httpx
from sqlalchemy import select

from gateway.db.models import AuditEntry
from tests.commands import cli
from tests.conftest import submit
from tests.pdf_builders import hybrid_xref_pdf


def _count(db, action: str, needle: str) -> int:
    with db.transaction() as session:
        details = session.scalars(
            select(AuditEntry.detail).where(AuditEntry.action == action)
        ).all()
    return sum(needle in d for d in details)


def test_a_client_is_added_rotated_and_revoked(installation, server, db):
    added = cli(installation, "clients", "add", "cong-van-den", "--scope", "requests:submit")
    assert added.returncode == 0, added.stderr
    client_id = re.search(r"integration client (\S+) \(cong-van-den\) added", added.stdout)[1]
    key = re.search(r"API key \(shown once.*\): (\S+)", added.stdout)[1]
    assert re.search(r"callback secret \(shown once.*\): whsec_\S+", added.stdout)
    document = hybrid_xref_pdf("Cong van CLI")
    made = submit(server, document, "leader1", api_key=key)
    assert made.status_code == 201, made.text
    with server.client(key) as http:
        read = http.get(f"/api/v1/signing-requests/{made.json()['id']}")
    assert read.status_code == 403 and read.json()["code"] == "scope_missing"

    listed = json.loads(cli(installation, "clients", "list", "--json").stdout)
    shown = next(c for c in listed if c["id"] == client_id)
    assert shown["scopes"] == ["requests:submit"] and key not in json.dumps(listed)

    rotated = cli(installation, "clients", "rotate-key", client_id)
    assert rotated.returncode == 0, rotated.stderr
    new_key = re.search(r"API key \(shown once.*\): (\S+)", rotated.stdout)[1]
    assert submit(server, document, "leader1", api_key=key).status_code == 401
    assert submit(server, document, "leader1", api_key=new_key).status_code == 201
    secret = cli(installation, "clients", "rotate-callback-secret", client_id)
    assert secret.returncode == 0 and "callback secret (shown once" in secret.stdout

    revoked = cli(installation, "clients", "revoke", client_id)
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    again = cli(installation, "clients", "revoke", client_id)
    assert again.returncode == 0 and "revoked already on" in again.stdout
    refused = submit(server, document, "leader1", api_key=new_key)
    assert refused.status_code == 401 and refused.json()["code"] == "unauthenticated"
    assert _count(db, "client.revoked", client_id) == 1
    assert _count(db, "client.key_rotated", client_id) == 1
    bad = cli(installation, "clients", "add", "x", "--scope", "everything")
    assert bad.returncode == 1 and "parameter_invalid" in bad.stderr


def test_an_account_is_disabled_enabled_and_given_a_new_password(installation, server, db):
    name = f"cv-{uuid.uuid4().hex[:6]}"
    added = cli(installation, "users", "add", name, "--display-name", "Phạm Thị Dung")
    password = re.search(r"initial password \(shown once\): (\S+)", added.stdout)[1]
    tablet = server.tablet(name, password)

    disabled = cli(installation, "users", "disable", name)
    assert disabled.returncode == 0 and "disabled" in disabled.stdout
    again = cli(installation, "users", "disable", name)
    assert again.returncode == 0 and "disabled already" in again.stdout
    assert _count(db, "user.disabled", f'"{name}"') == 1
    assert tablet.get("/mobile/v1/me").status_code == 401  # the session ended
    with httpx.Client(base_url=server.base_url) as http:
        refused = http.post("/mobile/v1/sessions", json={"username": name, "password": password})
    assert refused.status_code == 403 and refused.json()["code"] == "user_disabled"
    listed = json.loads(cli(installation, "users", "list", "--json").stdout)
    assert next(u for u in listed if u["username"] == name)["disabled"] is True
    assert "disabled" in cli(installation, "users", "list").stdout

    assert cli(installation, "users", "enable", name).returncode == 0
    reset = cli(installation, "users", "reset-password", name)
    assert reset.returncode == 0, reset.stderr
    one_time = re.search(r"one-time password \(shown once.*\): (\S+)", reset.stdout)[1]
    assert one_time != password
    with server.tablet(name, one_time) as fresh:
        blocked = fresh.get("/mobile/v1/signing-requests")
        assert blocked.json()["code"] == "password_change_required"
    with httpx.Client(base_url=server.base_url) as http:
        old = http.post("/mobile/v1/sessions", json={"username": name, "password": password})
    assert old.status_code == 401

    changed = cli(
        installation, "users", "set", name, "--role", "clerk", "--organisation", "stc-hanam"
    )
    assert changed.returncode == 0 and "clerk" in changed.stdout, changed.stderr
    same = cli(installation, "users", "set", name, "--role", "clerk")
    assert "nothing changed" in same.stdout
    unknown = cli(installation, "users", "disable", "no-such-user")
    assert unknown.returncode == 1 and "not_found" in unknown.stderr

    devices = cli(installation, "devices", "list", name)
    assert devices.returncode == 0, devices.stderr
    assert f"{name} has no enrolled devices or passkeys" in devices.stdout


def test_credentials_are_listed_with_their_holders_and_revoked_once(installation, db, signer):
    listed = cli(installation, "credentials", "list")
    assert listed.returncode == 0, listed.stderr
    assert "clerk1 (Trần Thị Bình), seal of stc-hanam" in listed.stdout
    rows = json.loads(cli(installation, "credentials", "list", "--json").stdout)
    mine = next(r for r in rows if r["username"] == signer.username)
    assert mine["subject"] == "Nguyễn Văn An" and mine["pin_policy"] == "stored"
    assert mine["revoked_at"] is None and mine["not_after"]

    first = cli(installation, "credentials", "revoke", mine["id"])
    assert first.returncode == 0 and "revoked" in first.stdout
    second = cli(installation, "credentials", "revoke", mine["id"])
    assert second.returncode == 0 and "already revoked on" in second.stdout
    assert _count(db, "credential.revoked", mine["id"]) == 1
    rows = json.loads(cli(installation, "credentials", "list", "--json").stdout)
    assert next(r for r in rows if r["id"] == mine["id"])["revoked_at"]
