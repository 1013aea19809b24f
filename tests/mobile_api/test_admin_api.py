"""The administration API (/admin/v1) on the real server: an administrator made with the
CLI signs in like any tablet user, chooses their own password, then administers
accounts, integration clients and credentials; every change is audited once, with
the administrator and their address; other roles are refused."""

from __future__ import annotations

import base64
import json
import re
import uuid

import httpx
import pytest
from sqlalchemy import select

from gateway.db.models import AuditEntry
from tests.commands import cli
from tests.conftest import submit
from tests.factories import make_organisation
from tests.pdf_builders import hybrid_xref_pdf


def _sign_in(server, username: str, password: str) -> tuple[httpx.Client, str]:
    """A session of ``username`` whose one-time ``password`` was replaced, and the
    password chosen."""
    tablet = server.tablet(username, password)
    chosen = f"Mat-khau-{uuid.uuid4().hex[:8]}"
    changed = tablet.post(
        "/mobile/v1/password", json={"current_password": password, "new_password": chosen}
    )
    assert changed.status_code == 204, changed.text
    return tablet, chosen


@pytest.fixture(scope="module")
def admin(installation, server):
    name = f"qt-{uuid.uuid4().hex[:6]}"
    added = cli(installation, "users", "add", name, "--display-name", "Quản Trị", "--role", "admin")
    assert added.returncode == 0, added.stderr
    password = re.search(r"initial password \(shown once\): (\S+)", added.stdout).group(1)
    tablet, _ = _sign_in(server, name, password)
    yield tablet
    tablet.close()


def _entries(db, action: str, needle: str) -> list[AuditEntry]:
    with db.transaction() as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.action == action)).all()
    return [e for e in entries if needle in e.detail]


def test_other_roles_are_refused(server, signer):
    with server.tablet(signer.username, signer.password) as tablet:
        for path in ("/admin/v1/users", "/admin/v1/integration-clients", "/admin/v1/audit"):
            answer = tablet.get(path)
            assert answer.status_code == 403, answer.text
            assert answer.json()["code"] == "admin_role_required"
    with httpx.Client(base_url=server.base_url) as anonymous:
        assert anonymous.get("/admin/v1/users").json()["code"] == "unauthenticated"


def test_an_account_is_added_disabled_enabled_and_its_password_reset(server, admin, db):
    name = f"vt-{uuid.uuid4().hex[:6]}"
    created = admin.post(
        "/admin/v1/users",
        json={"username": name, "display_name": "Lê Văn Cường", "role": "clerk"},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["user"]["password_must_change"] is True and body["user"]["disabled"] is False
    assert body["user"]["devices"] == 0 and body["user"]["credentials"] == 0
    tablet, chosen = _sign_in(server, name, body["initial_password"])
    assert tablet.get("/mobile/v1/me").status_code == 200

    disabled = admin.post(f"/admin/v1/users/{name}/disable")
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    again = admin.post(f"/admin/v1/users/{name}/disable")
    assert again.status_code == 200 and again.json()["disabled"] is True
    assert len(_entries(db, "user.disabled", f'"{name}"')) == 1  # idempotent: one entry
    entry = _entries(db, "user.disabled", f'"{name}"')[0]
    assert entry.actor.startswith("user:qt-") and entry.client_address
    # their session ended, and they cannot sign in again
    ended = tablet.get("/mobile/v1/me")
    assert ended.status_code == 401 and ended.json()["code"] == "unauthenticated"
    with httpx.Client(base_url=server.base_url) as http:
        refused = http.post("/mobile/v1/sessions", json={"username": name, "password": chosen})
        wrong = http.post("/mobile/v1/sessions", json={"username": name, "password": "x" * 12})
    assert refused.status_code == 403 and refused.json()["code"] == "user_disabled"
    assert wrong.status_code == 401 and wrong.json()["code"] == "credentials_invalid"

    enabled = admin.post(f"/admin/v1/users/{name}/enable")
    assert enabled.status_code == 200 and enabled.json()["disabled"] is False
    reset = admin.post(f"/admin/v1/users/{name}/password-reset")
    assert reset.status_code == 200, reset.text
    one_time = reset.json()["initial_password"]
    assert reset.json()["user"]["password_must_change"] is True
    with server.tablet(name, one_time) as fresh:
        blocked = fresh.get("/mobile/v1/signing-requests")
        assert blocked.status_code == 403 and blocked.json()["code"] == "password_change_required"
    assert len(_entries(db, "user.password_reset", f'"{name}"')) == 1
    assert one_time not in json.dumps([e.detail for e in _entries(db, "user.password_reset", name)])

    patched = admin.patch(
        f"/admin/v1/users/{name}", json={"role": "leader", "organisation": "stc-hanam"}
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["role"], patched.json()["organisation"]) == ("leader", "stc-hanam")
    cleared = admin.patch(f"/admin/v1/users/{name}", json={"organisation": None})
    assert cleared.json()["organisation"] is None and cleared.json()["role"] == "leader"
    assert len(_entries(db, "user.changed", f'"{name}"')) == 2
    listed = {u["username"]: u for u in admin.get("/admin/v1/users").json()}
    assert listed[name]["role"] == "leader" and listed["leader1"]["credentials"] >= 1

    unknown = admin.post("/admin/v1/users/nobody-here/disable")
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    bad_role = admin.patch(f"/admin/v1/users/{name}", json={"role": "king"})
    assert bad_role.status_code == 422 and bad_role.json()["code"] == "parameter_invalid"
    devices = admin.get(f"/admin/v1/users/{name}/devices")
    assert devices.status_code == 200 and devices.json() == []


def test_an_integration_client_is_added_rotated_scoped_and_revoked(server, admin, db):
    created = admin.post(
        "/admin/v1/integration-clients",
        json={"name": "eoffice-test", "scopes": ["requests:submit", "requests:read"]},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    client_id, key = body["client"]["id"], body["api_key"]
    assert body["callback_secret"].startswith("whsec_") and body["client"]["has_callback_secret"]
    document = hybrid_xref_pdf("Cong van quan tri")
    made = submit(server, document, "leader1", api_key=key)
    assert made.status_code == 201, made.text
    with server.client(key) as http:
        assert http.get(f"/api/v1/signing-requests/{made.json()['id']}").status_code == 200
        no_scope = http.post(
            "/api/v1/validations",
            files={"document": ("d.pdf", document, "application/pdf")},
        )
    assert no_scope.status_code == 403 and no_scope.json()["code"] == "scope_missing"

    rotated = admin.post(f"/admin/v1/integration-clients/{client_id}/key-rotation")
    assert rotated.status_code == 200 and rotated.json()["client"]["key_rotated_at"]
    new_key = rotated.json()["api_key"]
    with server.client(key) as old, server.client(new_key) as new:
        assert old.get(f"/api/v1/signing-requests/{made.json()['id']}").json()["code"] == (
            "unauthenticated"
        )
        assert new.get(f"/api/v1/signing-requests/{made.json()['id']}").status_code == 200
    secret = admin.post(f"/admin/v1/integration-clients/{client_id}/callback-secret-rotation")
    assert secret.status_code == 200 and secret.json()["callback_secret"] != body["callback_secret"]

    revoked = admin.post(f"/admin/v1/integration-clients/{client_id}/revocation")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    again = admin.post(f"/admin/v1/integration-clients/{client_id}/revocation")
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
    with server.client(new_key) as http:
        gone = http.get(f"/api/v1/signing-requests/{made.json()['id']}")
    assert gone.status_code == 401 and gone.json()["code"] == "unauthenticated"
    for action in ("client.added", "client.key_rotated", "client.callback_secret_rotated"):
        assert len(_entries(db, action, client_id)) == 1, action
    assert len(_entries(db, "client.revoked", client_id)) == 1
    listed = admin.get("/admin/v1/integration-clients").json()
    shown = next(c for c in listed if c["id"] == client_id)
    assert "api_key" not in shown and shown["scopes"] == ["requests:submit", "requests:read"]
    read_only = admin.post(
        "/admin/v1/integration-clients",
        json={"name": "reader", "scopes": ["requests:read"], "callback_secret": False},
    ).json()
    assert read_only["callback_secret"] is None
    refused = submit(server, document, "leader1", api_key=read_only["api_key"])
    assert refused.status_code == 403 and refused.json()["code"] == "scope_missing"


def test_credentials_show_their_holders_and_revoke_once(server, admin, db, signer):
    listed = admin.get("/admin/v1/credentials").json()
    seal = next(c for c in listed if c["organisation"] == "stc-hanam")
    assert seal["username"] == "clerk1" and seal["subject"] == "Sở Tài chính tỉnh Hà Nam"
    mine = next(c for c in listed if c["username"] == signer.username)
    assert mine["display_name"] and mine["not_after"] and mine["revoked_at"] is None
    first = admin.post(f"/admin/v1/credentials/{mine['id']}/revocation")
    assert first.status_code == 200 and first.json()["revoked_at"]
    second = admin.post(f"/admin/v1/credentials/{mine['id']}/revocation")
    assert second.json()["revoked_at"] == first.json()["revoked_at"]
    assert len(_entries(db, "credential.revoked", mine["id"])) == 1
    units = admin.get("/admin/v1/organisations").json()
    assert {"name": "stc-hanam", "display_name": "Sở Tài chính tỉnh Hà Nam"}.items() <= (
        units[0].items()
    )
    assert units[0]["has_seal_image"] is True and units[0]["keeper"] == "clerk1"
    missing = admin.post("/admin/v1/credentials/no-such/revocation")
    assert missing.status_code == 404


def test_the_audit_log_pages_newest_first_with_filters(admin):
    first = admin.get("/admin/v1/audit", params={"limit": 2})
    assert first.status_code == 200, first.text
    page = first.json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    assert page["items"][0]["id"] > page["items"][1]["id"]
    following = admin.get("/admin/v1/audit", params={"limit": 2, "cursor": page["next_cursor"]})
    assert following.json()["items"][0]["id"] < page["items"][1]["id"]
    logins = admin.get("/admin/v1/audit", params={"action": "session.", "limit": 200}).json()
    assert logins["items"] and {e["action"] for e in logins["items"]} <= {
        "session.created",
        "session.revoked",
    }
    bad = admin.get("/admin/v1/audit", params={"cursor": "!!"})
    assert bad.status_code == 422 and bad.json()["code"] == "parameter_invalid"
    too_many = admin.get("/admin/v1/audit", params={"limit": 500})
    assert too_many.status_code == 422
    naive = admin.get("/admin/v1/audit", params={"since": "2026-01-01T00:00:00"})
    assert naive.status_code == 422
    dated = admin.get("/admin/v1/audit", params={"since": "2000-01-01T00:00:00Z", "limit": 1})
    assert dated.status_code == 200 and len(dated.json()["items"]) == 1


def test_odd_audit_cursors_and_times_are_refused_not_failed(admin):
    """A cursor naming an id beyond a 64-bit integer, or a time whose UTC form falls
    outside years 1 to 9999, is bad input (422), not a 500."""
    beyond = base64.urlsafe_b64encode(b"before:" + b"9" * 40).decode().rstrip("=")
    negative = base64.urlsafe_b64encode(b"before:-1").decode().rstrip("=")
    for params in (
        {"cursor": beyond},
        {"cursor": negative},
        {"since": "0001-01-01T00:00:00+01:00"},
        {"until": "9999-12-31T23:59:59-01:00"},
    ):
        answer = admin.get("/admin/v1/audit", params=params)
        assert answer.status_code == 422, (params, answer.text)
        assert answer.json()["code"] == "parameter_invalid"


def test_an_administrator_cannot_change_their_own_role(server, installation, admin, db):
    """Demoting oneself could leave the installation without an administrator (as
    disabling oneself could): another administrator, or the host's CLI, does it."""
    me = admin.get("/mobile/v1/me").json()["username"]
    refused = admin.patch(f"/admin/v1/users/{me}", json={"role": "leader"})
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "parameter_invalid"
    assert admin.get("/admin/v1/users").status_code == 200  # still an administrator
    assert _entries(db, "user.changed", f'"{me}"') == []
    renamed = admin.patch(f"/admin/v1/users/{me}", json={"display_name": "Quản Trị Viên"})
    assert renamed.status_code == 200 and renamed.json()["role"] == "admin"


def test_nothing_new_is_addressed_to_a_disabled_account(server, admin, db, box):
    """A document system cannot submit to a disabled signer, nor to an organisation
    whose key is kept by a disabled clerk: the request could never be approved (and the
    leader's approval of an official document would be spent for a seal that cannot
    follow). Enabled again, they are addressed as before."""
    unit = make_organisation(db, box)
    document = hybrid_xref_pdf()
    seal = {"workflow": "organisation_only", "organisation": unit.name, "document_number": "1"}
    for account in (unit.leader.username, unit.clerk.username):
        assert admin.post(f"/admin/v1/users/{account}/disable").status_code == 200
    refused = submit(server, document, unit.leader.username)
    assert refused.status_code == 422 and refused.json()["code"] == "signer_disabled"
    with server.client() as http:
        sealed = http.post(
            "/api/v1/signing-requests",
            files={"document": ("document.pdf", document, "application/pdf")},
            data=seal,
        )
    assert sealed.status_code == 422, sealed.text
    assert sealed.json()["code"] == "organisation_no_credential"
    for account in (unit.leader.username, unit.clerk.username):
        assert admin.post(f"/admin/v1/users/{account}/enable").status_code == 200
    assert submit(server, document, unit.leader.username).status_code == 201


def test_two_integration_clients_never_share_a_name(admin, db):
    """The audit log names a client by its name (``client:NAME``): a second client of
    the same name, even after the first was revoked, would make its entries ambiguous."""
    name = f"Văn thư {uuid.uuid4().hex[:6]}"
    first = admin.post("/admin/v1/integration-clients", json={"name": name})
    assert first.status_code == 201, first.text
    again = admin.post("/admin/v1/integration-clients", json={"name": f" {name} "})
    assert again.status_code == 422 and again.json()["code"] == "parameter_invalid"
    admin.post(f"/admin/v1/integration-clients/{first.json()['client']['id']}/revocation")
    after = admin.post("/admin/v1/integration-clients", json={"name": name})
    assert after.status_code == 422 and after.json()["code"] == "parameter_invalid"
    named = [c for c in admin.get("/admin/v1/integration-clients").json() if c["name"] == name]
    assert len(named) == 1
    assert len(_entries(db, "client.added", name.split()[-1])) == 1
