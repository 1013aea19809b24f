"""The administration API (/admin/v1) on the real server: an administrator made with the
CLI signs in like any tablet user, chooses their own password, then administers
accounts, integration clients and credentials; every change is audited once, with
the administrator and their address; other roles are refused."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import uuid

import httpx
import pytest
from PIL import Image
from sqlalchemy import select

from gateway.db.models import AuditEntry
from tests.commands import cli
from tests.conftest import submit
from tests.factories import make_organisation
from tests.pdf_builders import hybrid_xref_pdf
from tests.token_keys import loose_key


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
    units = {unit["name"]: unit for unit in admin.get("/admin/v1/organisations").json()}
    assert units["stc-hanam"]["display_name"] == "Sở Tài chính tỉnh Hà Nam"
    assert units["stc-hanam"]["has_seal_image"] is True
    assert units["stc-hanam"]["keeper"] == "clerk1"
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


def _key_on(tokens: list[dict], serial: str, key_id: str) -> dict:
    token = next(t for t in tokens if t["serial"] == serial)
    return next(k for k in token["keys"] if k["key_id"] == key_id)


def test_a_key_on_a_token_is_registered_its_holder_confirmed_and_its_pin_policy_set(
    installation, admin, db, extra_signers, tmp_path
):
    key = loose_key(installation, extra_signers["pss1"]["token_serial"], "Trịnh Văn Mạnh", tmp_path)
    inventory = admin.get("/admin/v1/tokens")
    assert inventory.status_code == 200, inventory.text
    shown = _key_on(inventory.json(), key.token_serial, key.key_id)
    assert shown["status"] == "ok" and shown["holders"] == []
    assert "Trịnh Văn Mạnh" in shown["subject"] and shown["key_type"] == "rsa"
    token = next(t for t in inventory.json() if t["serial"] == key.token_serial)
    holders = {h["username"] for k in token["keys"] for h in k["holders"]}
    assert extra_signers["pss1"]["username"] in holders and token["state"] == "ok"

    name = f"dk-{uuid.uuid4().hex[:6]}"
    made = admin.post(
        "/admin/v1/users", json={"username": name, "display_name": "Trần Văn Mới", "role": "leader"}
    )
    assert made.status_code == 201, made.text
    body = {"username": name, "token_serial": key.token_serial, "key_id": key.key_id}
    refused = admin.post("/admin/v1/credentials", json=body)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "certificate_holder_mismatch"
    assert "Trịnh Văn Mạnh" in refused.json()["detail"]
    wrong_name = admin.post(
        "/admin/v1/credentials", json={**body, "confirm_holder": "Trần Văn Mới"}
    )
    assert wrong_name.status_code == 409, wrong_name.text
    confirmed = admin.post(
        "/admin/v1/credentials", json={**body, "confirm_holder": "trịnh  văn mạnh"}
    )
    assert confirmed.status_code == 201, confirmed.text
    credential = confirmed.json()
    assert credential["username"] == name and credential["pin_policy"] == "stored"
    assert credential["subject"] == "Trịnh Văn Mạnh" and credential["revoked_at"] is None
    (entry,) = _entries(db, "credential.registered", credential["id"])
    assert entry.actor.startswith("user:qt-") and entry.client_address
    assert json.loads(entry.detail)["holder_confirmed"] == "Trịnh Văn Mạnh"
    now_held = _key_on(admin.get("/admin/v1/tokens").json(), key.token_serial, key.key_id)
    assert [h["credential_id"] for h in now_held["holders"]] == [credential["id"]]

    path = f"/admin/v1/credentials/{credential['id']}/pin-policy"
    changed = admin.put(path, json={"pin_policy": "signer"})
    assert changed.status_code == 200 and changed.json()["pin_policy"] == "signer", changed.text
    again = admin.put(path, json={"pin_policy": "signer"})
    assert again.status_code == 200 and again.json()["pin_policy"] == "signer"
    (policy,) = _entries(db, "credential.pin_policy", credential["id"])  # once
    assert policy.actor == entry.actor and json.loads(policy.detail)["before"] == "stored"
    bad = admin.put(path, json={"pin_policy": "never"})
    assert bad.status_code == 422 and bad.json()["code"] == "parameter_invalid"
    missing = admin.put("/admin/v1/credentials/no-such/pin-policy", json={"pin_policy": "signer"})
    assert missing.status_code == 404

    unknown_key = admin.post("/admin/v1/credentials", json={**body, "key_id": "00ff00ff"})
    assert unknown_key.status_code == 422 and unknown_key.json()["code"] == "parameter_invalid"
    not_hex = admin.post("/admin/v1/credentials", json={**body, "key_id": "xyz"})
    assert not_hex.status_code == 422
    # a renewal: the new credential registered, the old one revoked
    assert admin.post(f"/admin/v1/credentials/{credential['id']}/revocation").status_code == 200


def _png(mode: str) -> bytes:
    image = Image.new(mode, (120, 120), (200, 30, 30, 0) if mode == "RGBA" else (200, 30, 30))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def own_organisation(installation, admin, extra_signers, tmp_path):
    """An organisation of this test only, its seal key kept by its first clerk; its
    short name and the two clerks."""
    name = f"so-{uuid.uuid4().hex[:6]}"
    display = "Sở Thử nghiệm tỉnh Hà Nam"
    added = cli(installation, "organisations", "add", name, "--display-name", display)
    assert added.returncode == 0, added.stderr
    clerks = []
    for full_name in ("Lý Thị Một", "Lý Thị Hai"):
        made = admin.post(
            "/admin/v1/users",
            json={
                "username": f"vt-{uuid.uuid4().hex[:6]}",
                "display_name": full_name,
                "role": "clerk",
                "organisation": name,
            },
        )
        assert made.status_code == 201, made.text
        clerks.append(made.json()["user"]["username"])
    key = loose_key(installation, extra_signers["pss1"]["token_serial"], display, tmp_path)
    sealed = admin.post(
        "/admin/v1/credentials",
        json={
            "username": clerks[0],
            "token_serial": key.token_serial,
            "key_id": key.key_id,
            "organisation": name,
        },
    )
    assert sealed.status_code == 201, sealed.text
    assert sealed.json()["organisation"] == name
    return name, clerks


def _put_seal(admin, path: str, image: bytes, diameter_mm: str) -> httpx.Response:
    return admin.put(
        path, files={"image": ("seal.png", image, "image/png")}, data={"diameter_mm": diameter_mm}
    )


def test_an_organisations_seal_is_uploaded_with_its_checks(admin, db, own_organisation):
    name, _ = own_organisation
    path = f"/admin/v1/organisations/{name}/seal"
    seal = _png("RGBA")
    opaque = _put_seal(admin, path, _png("RGB"), "40")
    assert opaque.status_code == 422 and opaque.json()["code"] == "parameter_invalid"
    assert "transparent" in opaque.json()["detail"]
    too_big = _put_seal(admin, path, seal, "90")
    assert too_big.status_code == 422 and "20 to 60 mm" in too_big.json()["detail"]
    not_png = _put_seal(admin, path, b"GIF89a", "40")
    assert not_png.status_code == 422
    kept = _put_seal(admin, path, seal, "42")
    assert kept.status_code == 200, kept.text
    assert kept.json() == {
        "organisation": name,
        "image_sha256": hashlib.sha256(seal).hexdigest(),
        "diameter_mm": 42.0,
    }
    (entry,) = _entries(db, "organisation.seal_set", f'"{name}"')
    assert entry.actor.startswith("user:qt-") and entry.client_address
    listed = {o["name"]: o for o in admin.get("/admin/v1/organisations").json()}
    assert listed[name]["has_seal_image"] is True
    unknown = _put_seal(admin, "/admin/v1/organisations/nowhere/seal", seal, "40")
    assert unknown.status_code == 422 and unknown.json()["code"] == "organisation_unknown"


def test_a_handover_needs_its_written_permission_and_is_audited(admin, db, own_organisation):
    name, (first, second) = own_organisation
    path = f"/admin/v1/organisations/{name}/handover"
    for permission in ("", "   "):
        refused = admin.post(path, json={"to": second, "permission": permission})
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "parameter_invalid"
    outsider = admin.post(path, json={"to": "leader1", "permission": "QĐ 12/QĐ-STN"})
    assert outsider.status_code == 422 and "not a clerk" in outsider.json()["detail"]
    assert _entries(db, "organisation.handed_over", f'"{name}"') == []
    permission = "Quyết định số 12/QĐ-STN ngày 02/03/2026 của Giám đốc Sở"
    done = admin.post(path, json={"to": second, "permission": permission})
    assert done.status_code == 200, done.text
    assert done.json() == {
        "organisation": name, "previous": [first], "keeper": second, "readdressed": []
    }  # fmt: skip
    (entry,) = _entries(db, "organisation.handed_over", f'"{name}"')
    detail = json.loads(entry.detail)
    assert detail["permission"] == permission and detail["to"] == second
    assert entry.actor.startswith("user:qt-") and entry.client_address
    listed = {o["name"]: o for o in admin.get("/admin/v1/organisations").json()}
    assert listed[name]["keeper"] == second
    again = admin.post(path, json={"to": second, "permission": permission})
    assert again.status_code == 422 and "already keeps" in again.json()["detail"]


def test_tokens_seals_and_handovers_are_for_administrators_only(server, signer):
    with server.tablet(signer.username, signer.password) as tablet:
        calls = [
            tablet.get("/admin/v1/tokens"),
            tablet.post(
                "/admin/v1/credentials",
                json={"username": signer.username, "token_serial": "x", "key_id": "00"},
            ),
            tablet.put("/admin/v1/credentials/x/pin-policy", json={"pin_policy": "signer"}),
            tablet.put(
                "/admin/v1/organisations/stc-hanam/seal",
                files={"image": ("s.png", _png("RGBA"), "image/png")},
                data={"diameter_mm": "40"},
            ),
            tablet.post(
                "/admin/v1/organisations/stc-hanam/handover",
                json={"to": signer.username, "permission": "x"},
            ),
        ]
    for answer in calls:
        assert answer.status_code == 403, answer.text
        assert answer.json()["code"] == "admin_role_required"
