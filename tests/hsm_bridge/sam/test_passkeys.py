"""Passkeys at the bridge, from the compromised web tier's position: it relays the
browser's registration and assertions and may rewrite them, but it holds neither the
enrolment code's secret nor the passkey's private key. The registration is verified
by py_webauthn; what an enrolment code enrols and what a passkey may approve are ours.
The authenticator is :class:`tests.softpasskey.SoftPasskey` (the browser tests use
Chromium's virtual authenticator for the same flows)."""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from hsm_bridge.clock import utcnow
from hsm_bridge.errors import AuthorizationRefused
from hsm_bridge.pades import parameters_sha256
from hsm_bridge.sam.activation import ActivationIssuer
from hsm_bridge.sam.authorization import (
    AuthorizationRequest,
    DeviceFactor,
    EnrolmentCodeProof,
    SignatureActivationModule,
)
from hsm_bridge.sam.passkeys import RelyingParty
from hsm_bridge.sam.signers import SignerRegistry, TotpPolicy
from hsm_bridge.sam.statement import ApprovalStatement, Decision, StatementDocument
from tests.hsm_bridge.sam.test_authorization import ALICE_KEY, CERTIFICATES, _item
from tests.softpasskey import SoftPasskey


class Bridge:
    """The bridge's SAM and signer records on a SQLite file, for one relying party."""

    def __init__(self, folder: Path, rp: RelyingParty) -> None:
        self.registry = SignerRegistry(
            folder / "signers.db",
            base64.urlsafe_b64encode(os.urandom(32)),
            totp_policy=TotpPolicy(3, 600),
        )
        self.registry.bind_credential("alice", ALICE_KEY)
        self.sam = SignatureActivationModule(
            self.registry,
            ActivationIssuer(os.urandom(32)),
            CERTIFICATES.__getitem__,
            relying_party=rp,
        )

    def code(self) -> str:
        return self.registry.issue_enrolment_code("alice", now=utcnow(), ttl_seconds=600).text

    def enrol(self, passkey: SoftPasskey, code: str, **register) -> str:
        """Enrol ``passkey`` with ``code`` as the app would; ``register`` goes to the
        authenticator (a relay's substitute key)."""
        challenge_id, options = self.sam.passkey_options("alice", "Alice", now=utcnow())
        response = passkey.register(options, **register)
        code_id, proof = passkey.enrolment_proof(code)
        enrolled = self.sam.enrol_passkey(
            challenge_id, response, EnrolmentCodeProof(code_id, proof), now=utcnow()
        )
        return enrolled.device_id

    def approve(self, passkey: SoftPasskey, device_id: str, document: bytes):
        item = _item("r1", document)
        nonce = base64.urlsafe_b64encode(os.urandom(32)).decode()
        expires_at = int(time.time()) + 120
        statement = ApprovalStatement(
            signer="alice",
            device=device_id,
            decision=Decision.APPROVE,
            nonce=nonce,
            expires_at=expires_at,
            documents=(
                StatementDocument(
                    item.request_id,
                    item.document_sha256,
                    parameters_sha256(item.parameters),
                    item.certificate_sha256,
                    item.mechanism.value,
                ),
            ),
        )
        factor = DeviceFactor(
            device_id,
            nonce,
            expires_at,
            b"",
            webauthn=passkey.assert_statement(statement.canonical_bytes()),
        )
        return self.sam.authorize(AuthorizationRequest("alice", (item,), factor), now=utcnow())


def _refused(reason: str, call, *args, **kwargs) -> None:
    with pytest.raises(AuthorizationRefused) as caught:
        call(*args, **kwargs)
    assert caught.value.reason == reason, caught.value


@pytest.mark.invariant(1)
def test_an_enrolment_code_enrols_the_key_the_app_proved_and_no_other(tmp_path):
    """A relay keeps the browser's credential id and challenge but puts its own public
    key in the attested data (nothing signs a "none" attestation): the code's proof
    covers the key, so the bridge refuses, and the code still enrols the real one."""
    bridge = Bridge(tmp_path, RelyingParty())
    passkey = SoftPasskey()
    code = bridge.code()
    relay_key = ec.generate_private_key(ec.SECP256R1())
    _refused(
        "enrolment_code_invalid",
        bridge.enrol,
        passkey,
        code,
        public_key=relay_key.public_key(),
    )
    assert bridge.registry.passkey_credentials("alice") == []
    device_id = bridge.enrol(passkey, code)  # the wrong proof did not void the code
    assert bridge.registry.passkey_credentials("alice") == [passkey.credential_id]
    (sad,) = bridge.approve(passkey, device_id, b"document A")
    assert sad


def test_a_passkey_that_signs_as_synced_approves_nothing_where_device_bound_is_required(
    tmp_path,
):
    """The backup flags of a registration without attestation are not signed by anyone,
    those of an assertion are: a passkey that registered as device-bound and then
    asserts as backup-eligible is refused, and so is one enrolled before the policy."""
    lenient = Bridge(tmp_path, RelyingParty())
    synced = SoftPasskey(synced=True)
    synced_id = lenient.enrol(synced, lenient.code())
    assert lenient.approve(synced, synced_id, b"A")  # the control: allowed here

    strict = Bridge(tmp_path / "strict", RelyingParty(require_device_bound=True))
    _refused("passkey_synced", strict.enrol, SoftPasskey(synced=True), strict.code())
    turncoat = SoftPasskey()
    turncoat_id = strict.enrol(turncoat, strict.code())
    assert strict.approve(turncoat, turncoat_id, b"B")
    turncoat.synced = True
    _refused("passkey_synced", strict.approve, turncoat, turncoat_id, b"C")

    # the administrator requires device-bound passkeys after one synced was enrolled
    lenient.sam = SignatureActivationModule(
        lenient.registry,
        ActivationIssuer(os.urandom(32)),
        CERTIFICATES.__getitem__,
        relying_party=RelyingParty(require_device_bound=True),
    )
    synced.synced = False  # even if it now claims otherwise
    _refused("passkey_synced", lenient.approve, synced, synced_id, b"D")


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost.evil.example",
        "http://localhost:8000@evil.example",
        "http://localhost/path",
        "http://[::1",
        "https://evil.example",
        "http://localhost\\@evil.example",
        "http://localhost:abc",
    ],
)
def test_registrations_from_any_other_origin_are_refused(tmp_path, origin):
    bridge = Bridge(tmp_path, RelyingParty())
    _refused("passkey_invalid", bridge.enrol, SoftPasskey(origin=origin), bridge.code())


def test_an_installation_origin_is_accepted_exactly():
    rp = RelyingParty(rp_id="ky.stc.hanam.gov.vn", origins=("https://ky.stc.hanam.gov.vn:8443",))
    assert rp.accepts_origin("https://ky.stc.hanam.gov.vn")
    assert rp.accepts_origin("https://ky.stc.hanam.gov.vn:8443")
    assert not rp.accepts_origin("http://ky.stc.hanam.gov.vn")
    assert not rp.accepts_origin("https://ky.stc.hanam.gov.vn:9443")
    assert not rp.accepts_origin("https://ky.stc.hanam.gov.vn/app/")
