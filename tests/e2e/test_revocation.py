"""A certificate revoked at the CA, through the whole product: the clerk revokes a
signer's certificate at the demo CA with ``signing-gateway pki revoke`` (certomancer's
OCSP responder answers "revoked" at once), and the signer's next approval signs
nothing: the answer says why in words, the request stays pending, and the audit log
has both the revocation and the refusal. Time is real here (the gateway is its own
process), so this gateway reuses no CA answer (``GATEWAY_REVOCATION_CACHE_SECONDS=0``);
tests/hsm_bridge/test_revocation.py moves the bridge's clock over the default reuse."""

from __future__ import annotations

import httpx
import pyotp
import pytest
from sqlalchemy import select

from gateway.db.models import AuditEntry
from signing_gateway.demo.sample_pdf import sample_pdf
from tests.commands import cli
from tests.conftest import Server, approve, start_server, submit


@pytest.fixture
def gateway(installation, demo_credentials, tmp_path):
    process, base_url = start_server(
        installation, tmp_path / "gateway.log", GATEWAY_REVOCATION_CACHE_SECONDS="0"
    )
    yield Server(base_url, tmp_path / "gateway.log", demo_credentials["api_key"])
    process.terminate()
    process.wait(timeout=30)


def _tablet(gateway: Server, person: dict) -> httpx.Client:
    return gateway.tablet(person["username"], person["password"])


@pytest.mark.invariant(6)
def test_a_certificate_revoked_at_the_ca_signs_nothing(gateway, installation, extra_signers, db):
    person = extra_signers["revocable"]
    totp = pyotp.TOTP(person["totp_secret"])
    first, second = sample_pdf(["Công văn 1"]), sample_pdf(["Công văn 2"])
    before = submit(gateway, first, person["username"]).json()["id"]
    after = submit(gateway, second, person["username"]).json()["id"]
    with _tablet(gateway, person) as tablet:
        signed = approve(tablet, before, totp.now(), first)
        assert signed.status_code == 200 and signed.json()["status"] == "signed", signed.text

        revoked = cli(
            installation, "pki", "revoke", person["username"], "--reason", "keyCompromise"
        )
        assert revoked.returncode == 0, revoked.stderr
        assert "revoked at the demo CA (keyCompromise)" in revoked.stdout

        # the CA is asked before the factor is checked: the refusal spends no code
        refused = approve(tablet, after, totp.now(), second)
        assert refused.status_code == 409, refused.text
        problem = refused.json()
        assert problem["code"] == "certificate_revoked"
        assert "revoked the certificate" in problem["detail"]
        view = tablet.get(f"/mobile/v1/signing-requests/{after}").json()
        assert view["status"] == "pending_approval"
    with gateway.client() as http:
        assert http.get(f"/api/v1/signing-requests/{after}").json()["status"] == (
            "pending_approval"
        )
    with db.transaction() as session:
        actions = [
            e.action
            for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))
            if person["username"] in (e.detail or "")
        ]
    assert "certificate.revoked_at_ca" in actions
    unknown = cli(installation, "pki", "revoke", person["username"], "--reason", "stolen")
    assert unknown.returncode == 2 and "keyCompromise" in unknown.stderr
