"""The in-process bridge on the demo installation's SoftHSM2 tokens: it builds and signs
the approved document only under a matching SAD (invariant 1), the signature validates
with the token's certificate and chain, ECDSA and RSA alike."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from gateway.bridges import bridge_config
from gateway.db.models import Credential, User
from gateway.secrets_at_rest import InstallationKeys
from gateway.signing.validation import validate_with_pyhanko
from hsm_bridge import Bridge, CredentialRef, SignRequest
from hsm_bridge.credentials import SignatureMechanism
from hsm_bridge.errors import ActivationInvalid, CredentialNotFound
from hsm_bridge.sam.activation import ActivationIssuer
from signing_gateway.demo.sample_pdf import sample_pdf
from tests.sads import request_for, sad_for


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
def test_builds_and_signs_the_approved_document(bridge, issuer, db, installation, username):
    ref, cred = _credential(db, username)
    document = sample_pdf([f"Công văn cho {username}"])
    mechanism = SignatureMechanism(cred.mechanism)
    signed = bridge.sign(request_for(issuer, ref, mechanism, document, cred.certificate_der))
    assert signed.startswith(document) and len(signed) > len(document)
    (verdict,) = validate_with_pyhanko(signed, installation.data_dir / "pki" / "root-ca.pem")
    assert verdict.intact and verdict.valid and verdict.trusted, verdict
    assert verdict.covers_document


@pytest.mark.invariant(1)
def test_the_web_tier_cannot_have_anything_else_signed(bridge, issuer, db):
    ref, cred = _credential(db, "leader1")
    approved, other = sample_pdf(["Phê duyệt 5.000.000 đồng"]), sample_pdf(["5.000.000.000 đồng"])
    mech = SignatureMechanism(cred.mechanism)
    sad = sad_for(issuer, ref, mech, approved, cred.certificate_der)
    for attempt, reason in (
        (SignRequest(ref, mech, sad, other), "wrong_document"),
        (SignRequest(ref, mech, "", approved), "malformed"),
        (SignRequest(CredentialRef(ref.token_serial, b"\x00"), mech, sad, approved), None),
    ):
        with pytest.raises(ActivationInvalid) as refused:
            bridge.sign(attempt)
        if reason is not None:
            assert refused.value.reason == reason
    # the refusal for another document spent the SAD: the approved one is not signed
    # under it any more (one approval, one try)
    with pytest.raises(ActivationInvalid) as spent:
        bridge.sign(SignRequest(ref, mech, sad, approved))
    assert spent.value.reason == "reused"


@pytest.mark.invariant(1)
def test_a_sad_signs_once(bridge, issuer, db):
    ref, cred = _credential(db, "leader1")
    document = sample_pdf(["Một lần"])
    mech = SignatureMechanism(cred.mechanism)
    request = request_for(issuer, ref, mech, document, cred.certificate_der)
    bridge.sign(request)
    with pytest.raises(ActivationInvalid) as again:
        bridge.sign(request)
    assert again.value.reason == "reused"


def test_unknown_key_id_is_credential_not_found(bridge, issuer, db):
    ref, cred = _credential(db, "leader1")
    missing = CredentialRef(ref.token_serial, b"\xde\xad")
    document = sample_pdf(["Không có khoá"])
    request = request_for(
        issuer, missing, SignatureMechanism.RSA_PKCS_SHA256, document, cred.certificate_der
    )
    with pytest.raises(CredentialNotFound):
        bridge.sign(request)


def test_inventory_lists_the_demo_tokens(bridge):
    labels = {t.label for t in bridge.inventory()}
    assert {"leader1", "clerk1", "org1"} <= labels
