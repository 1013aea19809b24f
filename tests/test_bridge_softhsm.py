"""The in-process bridge on the demo installation's SoftHSM2 tokens: it signs a digest
only under a matching activation (invariant 1), signatures verify with the certificate's
public key, and ECDSA results are DER."""

from __future__ import annotations

import hashlib
import time

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils
from sqlalchemy import select

from gateway.bridges import bridge_config
from gateway.models import Credential, User
from gateway.secrets_at_rest import InstallationKeys
from hsm_bridge import ActivationIssuer, Bridge, CredentialRef, SignRequest
from hsm_bridge.credentials import SignatureMechanism
from hsm_bridge.errors import ActivationInvalid, CredentialNotFound


@pytest.fixture(scope="module")
def bridge(installation):
    return Bridge(bridge_config(installation, InstallationKeys.load(installation.secrets_dir)))


@pytest.fixture(scope="module")
def issuer(installation):
    return ActivationIssuer(InstallationKeys.load(installation.secrets_dir).activation_key)


def _credential(db, username):
    with db.transaction() as session:
        user = session.scalar(select(User).where(User.username == username))
        cred = session.scalar(select(Credential).where(Credential.user_id == user.id))
    return CredentialRef(cred.token_serial, bytes.fromhex(cred.key_id)), cred


@pytest.mark.parametrize("username", ["leader1", "clerk1"])
def test_signs_under_activation_and_verifies(bridge, issuer, db, username):
    ref, cred = _credential(db, username)
    digest = hashlib.sha256(b"attributes " + username.encode()).digest()
    sad = issuer.issue(ref, digest, subject="t", now=time.time(), ttl_seconds=60)
    signature = bridge.sign(SignRequest(ref, digest, SignatureMechanism(cred.mechanism), sad))
    certificate = x509.load_der_x509_certificate(bridge.certificate(ref))
    assert hashlib.sha256(bridge.certificate(ref)).hexdigest() == cred.certificate_sha256
    public = certificate.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        assert signature[0] == 0x30  # DER SEQUENCE, not raw r||s
    _verify(public, signature, digest)
    with pytest.raises(InvalidSignature):
        _verify(public, signature, hashlib.sha256(b"another digest").digest())


def _verify(public, signature: bytes, digest: bytes) -> None:
    if isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    else:
        public.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


def test_web_tier_cannot_sign_an_unapproved_digest(bridge, issuer, db):
    ref, cred = _credential(db, "leader1")
    approved = hashlib.sha256(b"approved").digest()
    other = hashlib.sha256(b"never approved").digest()
    sad = issuer.issue(ref, approved, subject="t", now=time.time(), ttl_seconds=60)
    mech = SignatureMechanism(cred.mechanism)
    for attempt in (
        SignRequest(ref, other, mech, sad),  # an activation for another digest
        SignRequest(ref, other, mech, ""),  # no activation at all
        SignRequest(CredentialRef(ref.token_serial, b"\x00"), approved, mech, sad),
    ):
        with pytest.raises(ActivationInvalid):
            bridge.sign(attempt)
    bridge.sign(SignRequest(ref, approved, mech, sad))
    with pytest.raises(ActivationInvalid):
        bridge.sign(SignRequest(ref, approved, mech, sad))  # single use


def test_unknown_key_id_is_credential_not_found(bridge, issuer, db):
    ref, _ = _credential(db, "leader1")
    missing = CredentialRef(ref.token_serial, b"\xde\xad")
    digest = hashlib.sha256(b"d").digest()
    sad = issuer.issue(missing, digest, subject="t", now=time.time(), ttl_seconds=60)
    with pytest.raises(CredentialNotFound):
        bridge.sign(SignRequest(missing, digest, SignatureMechanism.RSA_PKCS_SHA256, sad))


def test_inventory_lists_the_demo_tokens(bridge):
    labels = {t.label for t in bridge.inventory()}
    assert {"leader1", "clerk1", "org1"} <= labels
