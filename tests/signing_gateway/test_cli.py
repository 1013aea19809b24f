"""What the clerk administering tokens does with the command line: add a user, register
a key found on a token as that user's credential (checked against the token), refuse
what does not fit, and revoke a credential. Real commands, real tokens, real database."""

from __future__ import annotations

import base64
import hmac
import json
import re
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest
from sqlalchemy import select

from gateway.db.models import AuditEntry, Credential
from hsm_bridge.clock import utcnow
from hsm_bridge.credentials import CredentialRef
from hsm_bridge.errors import AuthorizationRefused
from tests.commands import cli, cli_input
from tests.factories import bridge_registry, demo_credential, make_signer


def _demo_key(db, label: str) -> tuple[str, str]:
    with db.transaction() as session:
        cred = demo_credential(session, label)
        return cred.token_serial, cred.key_id


def test_add_a_user_register_a_credential_and_revoke_it(installation, db, server):
    added = cli(
        installation, "users", "add", "vt-mai", "--display-name", "Lê Thị Mai", "--role", "clerk"
    )
    assert added.returncode == 0, added.stderr
    password = re.search(r"initial password \(shown once\): (\S+)", added.stdout).group(1)
    serial, key_id = _demo_key(db, "leader1")  # a person's key (an organisation's is refused)

    # leader1's certificate names Nguyễn Văn An: not Lê Thị Mai's without a word
    register = ("credentials", "register", "vt-mai", "--token", serial, "--key-id", key_id)
    refused = cli(installation, *register)
    assert refused.returncode == 1 and "certificate_holder_mismatch" in refused.stderr
    assert "Nguyễn Văn An" in refused.stderr and "--confirm-holder" in refused.stderr
    wrong = cli(installation, *register, "--confirm-holder", "Lê Thị Mai")
    assert wrong.returncode == 1 and "certificate_holder_mismatch" in wrong.stderr
    registered = cli(installation, *register, "--confirm-holder", "NGUYEN VAN AN")
    assert registered.returncode == 0, registered.stderr
    credential_id = re.search(r"credential (\S+) registered", registered.stdout).group(1)
    with db.transaction() as session:
        credential = session.get(Credential, credential_id)
        assert (credential.token_serial, credential.key_id) == (serial, key_id)
        assert credential.mechanism == "rsa_pkcs_sha256" and credential.pin_policy == "stored"
        actions = set(session.scalars(select(AuditEntry.action)))
        entry = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == "credential.registered")
            .order_by(AuditEntry.id.desc())
        ).first()
    assert {"user.added", "credential.registered"} <= actions
    assert json.loads(entry.detail)["holder_confirmed"] == "Nguyễn Văn An"
    bound = str(CredentialRef(serial, bytes.fromhex(key_id)))
    assert bridge_registry().credentials_of("vt-mai") == {bound}  # the bridge was told

    with server.tablet("vt-mai", password) as tablet:
        # the initial password was shown to the clerk: the signer must choose their own
        first = tablet.get("/mobile/v1/signing-requests")
        assert first.status_code == 403 and first.json()["code"] == "password_change_required"
        changed = tablet.post(
            "/mobile/v1/password",
            json={"current_password": password, "new_password": "Mai-chon-2026!"},
        )
        assert changed.status_code == 204, changed.text
        assert tablet.get("/mobile/v1/signing-requests").status_code == 200

    revoked = cli(installation, "credentials", "revoke", credential_id)
    assert revoked.returncode == 0, revoked.stderr
    with db.transaction() as session:
        assert session.get(Credential, credential_id).revoked_at is not None
    assert bridge_registry().credentials_of("vt-mai") == set()
    verified = cli(installation, "audit", "verify")
    assert verified.returncode == 0 and "intact" in verified.stdout


def test_registration_refuses_what_does_not_fit(installation, db):
    serial, key_id = _demo_key(db, "org1")
    wrong_mechanism = cli(
        installation,
        "credentials",
        "register",
        "leader1",
        "--token",
        serial,
        "--key-id",
        key_id,
        "--mechanism",
        "ecdsa_sha256",
    )
    assert wrong_mechanism.returncode == 1
    assert "parameter_invalid" in wrong_mechanism.stderr and "RSA" in wrong_mechanism.stderr
    no_token = cli(
        installation,
        "credentials",
        "register",
        "leader1",
        "--token",
        "nosuchserial",
        "--key-id",
        "01",
    )
    assert no_token.returncode == 1 and "token_not_present" in no_token.stderr
    no_key = cli(
        installation, "credentials", "register", "leader1", "--token", serial, "--key-id", "abcdef"
    )
    assert no_key.returncode == 1 and "no private key with this CKA_ID" in no_key.stderr
    personal = cli(
        installation, "credentials", "register", "leader1", "--token", serial, "--key-id", key_id
    )
    assert personal.returncode == 1 and "an organisation's seal" in personal.stderr
    no_user = cli(
        installation, "credentials", "register", "nobody", "--token", serial, "--key-id", key_id
    )
    assert no_user.returncode == 1 and "signer_unknown" in no_user.stderr
    taken = cli(installation, "users", "add", "leader1", "--display-name", "x")
    assert taken.returncode == 1 and "taken" in taken.stderr


def test_tokens_list_shows_present_tokens_and_the_missing_ones_credentials_need(
    installation, db, box
):
    import json

    person = make_signer(db, box, like="clerk1")
    with db.transaction() as session:
        session.get(Credential, person.credential_id).token_serial = "pulled-out-0001"
    listed = cli(installation, "tokens", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    tokens = {t["serial"]: t for t in json.loads(listed.stdout)}
    assert tokens["pulled-out-0001"]["present"] is False
    assert tokens["pulled-out-0001"]["state"] == "removed"
    leader = next(t for t in tokens.values() if t["label"] == "leader1")
    assert leader["present"] and leader["state"] == "ok"
    assert "login_required" in leader["flags"] and "RSA_PKCS_PSS" in leader["mechanisms"]
    assert leader["module"].endswith("libsofthsm2.so")


def test_a_token_without_a_stored_pin_is_listed_and_registered_for_signer_pin(
    installation, extra_signers, db
):
    import json

    serial = extra_signers["pinsigner"]["token_serial"]
    listed = cli(installation, "credentials", "list", "--tokens", "--json")
    assert listed.returncode == 0, listed.stderr
    keys = [e for e in json.loads(listed.stdout) if e["token_serial"] == serial]
    assert len(keys) == 1 and keys[0]["status"] == "ok", keys
    added = cli(installation, "users", "add", "pin-owner", "--display-name", "Vũ Thị Giang")
    assert added.returncode == 0, added.stderr
    registered = cli(
        installation,
        "credentials",
        "register",
        "pin-owner",
        "--token",
        serial,
        "--key-id",
        keys[0]["key_id"],
        "--pin-policy",
        "signer",
    )
    assert registered.returncode == 0, registered.stderr
    credential_id = re.search(r"credential (\S+) registered", registered.stdout).group(1)
    with db.transaction() as session:
        assert session.get(Credential, credential_id).pin_policy == "signer"


def test_pin_changes_keep_a_working_pin_follow_the_policy_and_are_audited(
    installation, extra_signers, db
):
    from gateway.bridges import bridge_config
    from gateway.secrets_at_rest import InstallationKeys
    from hsm_bridge.pkcs11.pins import PinStore

    token = extra_signers["p384"]
    serial, right = token["token_serial"], token["token_pin"]
    config = bridge_config(installation, InstallationKeys.load(installation.secrets_dir))
    store = PinStore(config.pin_file, config.pin_key)

    wrong = cli_input(installation, "99999999\n99999999\n", "tokens", "set-pin", serial)
    assert wrong.returncode == 1 and "pin_incorrect" in wrong.stderr
    assert "the previous PIN is kept" in wrong.stderr
    assert store.get(serial) == right

    forgot = cli_input(installation, "", "tokens", "forget-pin", serial)
    assert forgot.returncode == 0, forgot.stderr
    assert not store.has(serial)
    with db.transaction() as session:
        assert session.get(Credential, token["credential_id"]).pin_policy == "signer"

    restored = cli_input(installation, f"{right}\n{right}\n", "tokens", "set-pin", serial)
    assert restored.returncode == 0, restored.stderr
    assert store.get(serial) == right
    with db.transaction() as session:
        assert session.get(Credential, token["credential_id"]).pin_policy == "stored"
        actions = list(session.scalars(select(AuditEntry.action)))
    assert {"token.pin_stored", "token.pin_forgotten"} <= set(actions)
    assert right not in "".join(wrong.stdout + wrong.stderr + restored.stdout + restored.stderr)


def test_the_admin_enrols_lists_and_revokes_a_device(installation, db, server):
    from tests.device_app import DeviceApp

    created = cli(installation, "devices", "enrolment-code", "leader1")
    assert created.returncode == 0, created.stderr
    code = re.search(r"enrolment code: (\S+)", created.stdout).group(1)
    app = DeviceApp(server.base_url, "leader1")
    assert app.enrol(code).status_code == 201
    listed = cli(installation, "devices", "list", "leader1", "--json")
    rows = {row["id"]: row for row in json.loads(listed.stdout)}
    assert rows[app.device_id]["state"] == "active"
    assert rows[app.device_id]["enrolled_with"] == "administrator"
    revoked = cli(installation, "devices", "revoke", app.device_id)
    assert revoked.returncode == 0, revoked.stderr
    listed = cli(installation, "devices", "list", "leader1", "--json")
    assert {row["id"]: row for row in json.loads(listed.stdout)}[app.device_id][
        "state"
    ] == "revoked"
    assert bridge_registry().device(app.device_id).revoked_at is not None
    assert cli(installation, "devices", "revoke", "no-such-device").returncode == 1
    with db.transaction() as session:
        actions = set(session.scalars(select(AuditEntry.action)))
    assert {"enrolment_code.created", "device.enrolled", "device.revoked"} <= actions


def test_the_bridge_hosts_administrator_binds_signers_and_issues_codes(
    installation, db, box, server
):
    """What `signing-gateway bridge ...` does on a secure host, run here against the
    installation's own bridge records."""
    from tests.device_app import DeviceApp

    person = make_signer(db, box, like="clerk1")
    registry = bridge_registry()
    (bound,) = registry.credentials_of(person.username)
    serial, key_id = bound.split("/")
    assert (
        cli(
            installation, "bridge", "unbind", person.username, "--token", serial, "--key-id", key_id
        ).returncode
        == 0
    )
    assert registry.credentials_of(person.username) == set()
    assert (
        cli(
            installation, "bridge", "bind", person.username, "--token", serial, "--key-id", key_id
        ).returncode
        == 0
    )
    assert registry.credentials_of(person.username) == {bound}
    nobody = cli(
        installation, "bridge", "bind", "nobody-here", "--token", serial, "--key-id", key_id
    )
    assert nobody.returncode == 1 and "no user nobody-here" in nobody.stderr
    assert registry.credentials_of("nobody-here") == set()
    issued = cli(installation, "bridge", "enrolment-code", person.username)
    assert issued.returncode == 0, issued.stderr
    code = re.search(r"enrolment code: (\S+)", issued.stdout).group(1)
    app = DeviceApp(server.base_url, person.username)
    assert app.enrol(code).status_code == 201
    assert registry.device(app.device_id).signer == person.username
    reset = cli(installation, "bridge", "totp-reset", person.username)
    assert reset.returncode == 0 and "forgotten" in reset.stdout
    fresh_code = re.search(r"enrolment code: (\S+)", reset.stdout).group(1)
    with pytest.raises(AuthorizationRefused) as caught:
        registry.check_totp(person.username, person.otp(), now=utcnow())
    assert caught.value.reason == "totp_not_enrolled"
    # the signer enrols a new authenticator from the tablet with the code the
    # administrator handed over (an HMAC of it over the new secret; never the code)
    secret = pyotp.random_base32(32)
    code_id, _, code_secret = fresh_code.partition(".")
    proof = hmac.new(
        code_secret.encode(), b"signing-gateway/totp-enrolment/1\x00" + secret.encode(), "sha256"
    ).digest()
    with server.tablet(person.username, person.password) as tablet:
        # without the code, a relay could plant its own authenticator: refused
        planted = tablet.post("/mobile/v1/totp", json={"secret": pyotp.random_base32(32)})
        assert planted.status_code == 403, planted.text
        assert planted.json()["code"] == "enrolment_code_invalid"
        started = tablet.post(
            "/mobile/v1/totp",
            json={
                "secret": secret,
                "enrolment_code_id": code_id,
                "enrolment_proof": base64.b64encode(proof).decode(),
            },
        )
        assert started.status_code == 201, started.text
        assert parse_qs(urlparse(started.json()["otpauth_uri"]).query)["secret"][0] == secret
        confirmed = tablet.post(
            "/mobile/v1/totp/confirmation", json={"otp": pyotp.TOTP(secret).now()}
        )
        assert confirmed.status_code == 200, confirmed.text
        # and a second enrolment needs a code of the new one
        refused = tablet.post("/mobile/v1/totp", json={})
        assert refused.status_code == 403 and refused.json()["code"] == "otp_invalid"
    with db.transaction() as session:
        actions = set(session.scalars(select(AuditEntry.action)))
    assert {
        "bridge.credential_bound",
        "bridge.credential_unbound",
        "bridge.totp_reset",
        "totp.enrolled",
    } <= actions
