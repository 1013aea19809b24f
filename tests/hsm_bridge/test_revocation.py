"""Revocation at the CA, asked right before each authorization and each signature, and
failing closed (docs/security-model.md, "Revocation"). The CA is the installation's
demo PKI run by certomancer's animator on loopback: a real OCSP responder and real CRLs,
signed by the CA's keys; the keys are generated inside the SoftHSM token, the bridge is
the production one, and its clock is injected (nothing sleeps)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import socket
from pathlib import Path

import pytest

from gateway.bridges import bridge_config
from gateway.secrets_at_rest import InstallationKeys
from hsm_bridge import Bridge, CredentialRef
from hsm_bridge.credentials import SignatureMechanism
from hsm_bridge.errors import CertificateRevoked, RevocationUnavailable
from hsm_bridge.pkcs11.provisioning import KeySpec
from hsm_bridge.sam.activation import ActivationIssuer
from hsm_bridge.sam.authorization import AuthorizationItem, AuthorizationRequest
from signing_gateway.demo.pki import DemoPki, HolderName, certificate_serial
from signing_gateway.demo.pki_service import start_pki_service
from signing_gateway.demo.sample_pdf import sample_pdf
from tests.phone import Phone
from tests.sads import request_for

MECHANISM = SignatureMechanism.RSA_PKCS_SHA256
HOLDER = HolderName("Trịnh Văn Khoa", "Phó Giám đốc", "Sở Tài chính tỉnh Hà Nam")


class Clock:
    """The bridge's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def issuer(installation) -> ActivationIssuer:
    return ActivationIssuer(InstallationKeys.load(installation.secrets_dir).activation_key)


def _bridge(installation, clock: Clock, **changes: object) -> Bridge:
    config = bridge_config(installation, InstallationKeys.load(installation.secrets_dir))
    return Bridge(dataclasses.replace(config, **changes), clock=clock)


def _new_key(bridge: Bridge, token_serial: str, pki: DemoPki, now: dt.datetime) -> CredentialRef:
    """A new RSA key generated in the token, certified by ``pki``'s issuing CA."""
    key_id = os.urandom(8)
    bridge.provision(
        token_serial,
        KeySpec.RSA_2048,
        key_id,
        f"revocation-{key_id.hex()}",
        lambda public: pki.certify(public, HOLDER, now),
    )
    return CredentialRef(token_serial, key_id)


def _sign(bridge: Bridge, issuer: ActivationIssuer, ref: CredentialRef, clock: Clock) -> bytes:
    document = sample_pdf([f"Công văn {clock.now.isoformat()}"])
    request = request_for(issuer, ref, MECHANISM, document, bridge.certificate(ref), now=clock.now)
    return bridge.sign(request)


def _authorize(bridge: Bridge, phone: Phone, signer: str, ref: CredentialRef) -> list:
    certificate = bridge.certificate(ref)
    item = AuthorizationItem(
        "req-1",
        ref,
        MECHANISM,
        hashlib.sha256(b"%PDF-1.7 a document").hexdigest(),
        {},
        hashlib.sha256(certificate).hexdigest(),
    )
    return bridge.authorize(AuthorizationRequest(signer, (item,), phone.approve(signer, [item])))


@pytest.mark.invariant(6)
def test_a_certificate_revoked_at_the_ca_signs_nothing_one_minute_later(
    installation, demo_keys, issuer
):
    clock = Clock()
    bridge = _bridge(installation, clock)
    pki = DemoPki(installation.data_dir / "pki")
    token = demo_keys["leader1"][0].token_serial
    ref = _new_key(bridge, token, pki, clock.now)
    signer = f"khoa-{ref.key_id.hex()}"
    bridge.registry.bind_credential(signer, ref)
    phone = Phone()
    phone.enrol(
        bridge.registry,
        bridge.registry.issue_enrolment_code(signer, now=clock.now, ttl_seconds=600).text,
    )
    # the control: good at the CA, it approves and signs
    assert _authorize(bridge, phone, signer, ref)[0]
    assert _sign(bridge, issuer, ref, clock).startswith(b"%PDF")

    serial = certificate_serial(bridge.certificate(ref))
    pki.revoke(serial, "key_compromise", clock.now)
    clock.advance(60)
    with pytest.raises(CertificateRevoked) as refused:
        _authorize(bridge, phone, signer, ref)
    assert refused.value.code == "certificate_revoked" and refused.value.status == 409
    assert "compromised key" in str(refused.value)
    # a SAD issued before the revocation signs nothing either: the bridge asks again
    with pytest.raises(CertificateRevoked):
        _sign(bridge, issuer, ref, clock)
    # nor does a bridge that starts afresh (nothing cached)
    with pytest.raises(CertificateRevoked):
        _sign(_bridge(installation, clock), issuer, ref, clock)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_without_an_answer_from_the_ca_nothing_is_signed(
    installation, demo_keys, issuer, tmp_path: Path
):
    """A CA whose OCSP responder and CRL server are down: the bridge fails closed
    (``revocation_unavailable``, retryable); once they answer, the same key signs; when
    they stop again and the answer it had has aged out, it refuses again."""
    clock = Clock()
    other = DemoPki(tmp_path / "pki", f"http://127.0.0.1:{_free_port()}")
    other.ensure(clock.now)
    anchors = tmp_path / "trust-anchors.pem"
    anchors.write_bytes(
        installation.effective_trust_anchors_file.read_bytes() + other.root_path.read_bytes()
    )
    bridge = _bridge(
        installation,
        clock,
        trust_anchors_file=anchors,
        ca_certificates_file=_with(installation, other, tmp_path),
        revocation_timeout_seconds=2.0,
    )
    ref = _new_key(bridge, demo_keys["leader1"][0].token_serial, other, clock.now)

    with pytest.raises(RevocationUnavailable) as refused:
        _sign(bridge, issuer, ref, clock)
    assert refused.value.retryable and refused.value.status == 503
    service = start_pki_service(other)
    try:
        assert _sign(bridge, issuer, ref, clock).startswith(b"%PDF")
    finally:
        service.shutdown()
        service.server_close()
    clock.advance(31)  # past the bridge's 30 s reuse of an answer
    with pytest.raises(RevocationUnavailable):
        _sign(bridge, issuer, ref, clock)


def _with(installation, pki: DemoPki, folder: Path) -> Path:
    """The installation's CA file plus ``pki``'s issuing CA (the chain a token lacks)."""
    path = folder / "ca-certificates.pem"
    base = bridge_config(installation, InstallationKeys.load(installation.secrets_dir))
    existing = base.ca_certificates_file.read_bytes() if base.ca_certificates_file else b""
    path.write_bytes(existing + pki.issuing_path.read_bytes())
    return path


def test_the_trust_anchors_are_the_demo_root_only(installation):
    """What the bridge trusts is what the installation configured: the demo root."""
    pki = DemoPki(installation.data_dir / "pki")
    root = pki.root_path.read_bytes()
    assert installation.effective_trust_anchors_file.read_bytes().strip() == root.strip()
