"""The attacker is the web tier: it holds the bridge's network interface and the
gateway's database (device public keys, request hashes), but not the bridge's SAD key,
not the enrolment codes' secrets and not the signers' device keys. The bridge's
signature activation module must refuse every activation it was not given a proof for
(DESIGN.md invariant 1; EN 419 241-1 SAM), with its reason, and issue nothing.

The registry and the module run for real on a SQLite file; no token is needed until the
last tests, which sign on the installation's SoftHSM2 token."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import pyotp
import pytest
from asn1crypto import keys as asn1_keys
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.bridges import bridge_config
from gateway.pades import RemoteSigner, SignatureParameters, sign_pdf
from gateway.sample_pdf import sample_pdf
from gateway.secrets_at_rest import InstallationKeys
from hsm_bridge import Bridge, SigningInput, SignRequest
from hsm_bridge.activation import ActivationIssuer, ActivationVerifier, UsedActivationStore
from hsm_bridge.authorization import (
    AuthorizationItem,
    AuthorizationRequest,
    DeviceFactor,
    SignatureActivationModule,
    TotpFactor,
)
from hsm_bridge.credentials import CredentialRef, SignatureMechanism
from hsm_bridge.errors import ActivationInvalid, AuthorizationRefused
from hsm_bridge.signers import SignerRegistry, TotpPolicy, enrolment_proof
from hsm_bridge.statement import (
    ApprovalStatement,
    Decision,
    StatementDocument,
    parameters_sha256,
)
from tests.factories import bridge_registry

ALICE_KEY = CredentialRef("serial-a", bytes.fromhex("a1"))
MALLORY_KEY = CredentialRef("serial-m", bytes.fromhex("b2"))
ALICE_SEAL = CredentialRef("serial-org", bytes.fromhex("5e"))
PARAMETERS = {"reason": "Phê duyệt", "location": "Hà Nội", "page": None}
# what each token holds (stand-ins for DER certificates: only their SHA-256 matters here)
CERTIFICATES = {
    ALICE_KEY: b"certificate of Alice's personal key",
    MALLORY_KEY: b"certificate of Mallory's key",
    ALICE_SEAL: b"certificate of the organisation's seal",
}


class Phone:
    """A signer's device: a P-256 key that never leaves it."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.public_der = self.key.public_key().public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo
        )
        self.device_id = ""

    def enrol(self, registry: SignerRegistry, code_text: str) -> None:
        code_id, _, secret = code_text.partition(".")
        device = registry.enrol_device(
            code_id, self.public_der, enrolment_proof(secret, self.public_der), now=time.time()
        )
        self.device_id = device.device_id

    def approve(
        self, signer: str, items: list[AuthorizationItem], *, nonce: str = "", ttl: int = 120
    ) -> DeviceFactor:
        """Sign the statement of what the phone showed: ``items``."""
        nonce = nonce or base64.urlsafe_b64encode(os.urandom(32)).decode()
        expires_at = int(time.time()) + ttl
        statement = ApprovalStatement(
            signer=signer,
            device=self.device_id,
            decision=Decision.APPROVE,
            nonce=nonce,
            expires_at=expires_at,
            documents=tuple(
                StatementDocument(
                    i.request_id,
                    i.document_sha256,
                    parameters_sha256(i.parameters),
                    i.certificate_sha256,
                    i.mechanism.value,
                )
                for i in items
            ),
        )
        signature = self.key.sign(statement.canonical_bytes(), ec.ECDSA(hashes.SHA256()))
        return DeviceFactor(self.device_id, nonce, expires_at, signature)


def _item(request_id: str, document: bytes, credential: CredentialRef = ALICE_KEY):
    return AuthorizationItem(
        request_id,
        credential,
        SignatureMechanism.RSA_PKCS_SHA256,
        hashlib.sha256(document).hexdigest(),
        PARAMETERS,
        hashlib.sha256(CERTIFICATES[credential]).hexdigest(),
    )


class Rig:
    def __init__(self, folder: Path, *, accept_totp: bool = True) -> None:
        self.folder = folder
        self.key = os.urandom(32)
        self.fernet = base64.urlsafe_b64encode(os.urandom(32))
        self.accept_totp = accept_totp
        self.restart()
        self.registry.bind_credential("alice", ALICE_KEY)
        self.registry.bind_credential("mallory", MALLORY_KEY)
        self.alice_totp = pyotp.random_base32(32)
        self.registry.set_totp("alice", self.alice_totp)
        self.phone = Phone()
        self.phone.enrol(self.registry, self.code("alice"))

    def restart(self) -> None:
        """A new process on the same files (used nonces and steps must survive)."""
        self.registry = SignerRegistry(
            self.folder / "signers.db", self.fernet, totp_policy=TotpPolicy(3, 600)
        )
        self.sam = SignatureActivationModule(
            self.registry,
            ActivationIssuer(self.key),
            CERTIFICATES.__getitem__,
            accept_totp=self.accept_totp,
        )

    def code(self, signer: str) -> str:
        return self.registry.issue_enrolment_code(signer, now=time.time(), ttl_seconds=600).text

    def authorize(self, signer, items, factor, **kwargs):
        return self.sam.authorize(
            AuthorizationRequest(signer, tuple(items), factor), now=time.time(), **kwargs
        )

    def refused(self, reason: str, signer, items, factor) -> None:
        with pytest.raises(AuthorizationRefused) as caught:
            self.authorize(signer, items, factor)
        assert caught.value.reason == reason
        assert caught.value.code == "authorization_refused"


@pytest.fixture
def rig(tmp_path) -> Rig:
    return Rig(tmp_path)


@pytest.mark.invariant(1)
def test_a_device_approval_yields_one_sad_per_document_bound_to_it(rig):
    items = [_item("req-1", b"%PDF one"), _item("req-2", b"%PDF two")]
    sads = rig.authorize("alice", items, rig.phone.approve("alice", items))
    verifier = ActivationVerifier(rig.key, UsedActivationStore(rig.folder / "used.db"))
    for item, sad in zip(items, sads, strict=True):
        activation = verifier.check(
            sad, ALICE_KEY, None, now=time.time(), mechanism=item.mechanism.value
        )
        assert activation.document == bytes.fromhex(item.document_sha256)
        assert activation.parameters == PARAMETERS
        assert activation.subject == item.request_id
        with pytest.raises(ActivationInvalid):  # bound to Alice's credential only
            verifier.check(sad, MALLORY_KEY, None, now=time.time())


@pytest.mark.invariant(2)
def test_the_web_tier_cannot_swap_the_document_the_parameters_or_an_id(rig):
    shown = [_item("req-1", b"%PDF shown"), _item("req-2", b"%PDF second")]
    factor = rig.phone.approve("alice", shown)
    other_document = [_item("req-1", b"%PDF forged"), shown[1]]
    rig.refused("approval_signature_invalid", "alice", other_document, factor)
    other_parameters = [replace(shown[0], parameters={**PARAMETERS, "reason": "khác"}), shown[1]]
    rig.refused("approval_signature_invalid", "alice", other_parameters, factor)
    swapped_id = [shown[0], replace(shown[1], request_id="req-9")]
    rig.refused("approval_signature_invalid", "alice", swapped_id, factor)
    rig.refused("approval_signature_invalid", "alice", shown[:1], factor)  # one left out
    # nothing was spent by the refusals: the true statement still works, once
    assert all(rig.authorize("alice", shown, factor))


@pytest.mark.invariant(1)
def test_a_signed_approval_works_once_even_after_a_restart(rig):
    items = [_item("req-1", b"%PDF")]
    factor = rig.phone.approve("alice", items)
    assert rig.authorize("alice", items, factor)[0]
    rig.refused("approval_nonce_reused", "alice", items, factor)
    rig.restart()
    rig.refused("approval_nonce_reused", "alice", items, factor)


@pytest.mark.invariant(1)
def test_an_approval_names_the_certificate_and_mechanism_that_sign(rig):
    """The web tier cannot turn a device's approval of a signature with Alice's personal
    key into one with the organisation's seal (also bound to Alice), into one with
    another mechanism, or into a second SAD at the bridge holding the seal."""
    rig.registry.bind_credential("alice", ALICE_SEAL)
    approved = _item("req-1", b"%PDF personal letter")
    factor = rig.phone.approve("alice", [approved])
    as_seal = replace(
        approved,
        credential=ALICE_SEAL,
        certificate_sha256=hashlib.sha256(CERTIFICATES[ALICE_SEAL]).hexdigest(),
    )
    rig.refused("approval_signature_invalid", "alice", [as_seal], factor)
    # listing the approved certificate with the seal's key: the token says otherwise
    rig.refused("certificate_mismatch", "alice", [replace(approved, credential=ALICE_SEAL)], factor)
    other_mechanism = replace(approved, mechanism=SignatureMechanism.RSA_PSS_SHA256)
    rig.refused("approval_signature_invalid", "alice", [other_mechanism], factor)
    assert rig.authorize("alice", [approved], factor)[0]


def test_expired_revoked_and_foreign_devices_are_refused(rig):
    items = [_item("req-1", b"%PDF")]
    rig.refused("approval_expired", "alice", items, rig.phone.approve("alice", items, ttl=-1))
    rig.refused("approval_expired", "alice", items, rig.phone.approve("alice", items, ttl=3600))
    # Mallory's phone, enrolled for Mallory, signs a statement in Alice's name
    mallory = Phone()
    mallory.enrol(rig.registry, rig.code("mallory"))
    rig.refused("device_unknown", "alice", items, mallory.approve("alice", items))
    # a device the gateway made up (its key is in no bridge record)
    invented = Phone()
    invented.device_id = "gateway-made-this-up"
    rig.refused("device_unknown", "alice", items, invented.approve("alice", items))
    assert rig.registry.revoke_device(rig.phone.device_id, now=time.time())
    rig.refused("device_revoked", "alice", items, rig.phone.approve("alice", items))


def test_a_signer_is_authorised_only_for_the_credentials_bound_to_them(rig):
    # the gateway routes Mallory's own valid approval to Alice's key
    mallory = Phone()
    mallory.enrol(rig.registry, rig.code("mallory"))
    items = [_item("req-1", b"%PDF", credential=ALICE_KEY)]
    rig.refused("credential_not_bound", "mallory", items, mallory.approve("mallory", items))
    own = [_item("req-1", b"%PDF", credential=MALLORY_KEY)]
    assert rig.authorize("mallory", own, mallory.approve("mallory", own))[0]


def test_the_web_tier_cannot_enrol_a_key_of_its_own(rig):
    code_id, _, secret = rig.code("alice").partition(".")
    ours = Phone()
    theirs = Phone()  # the gateway's key
    # it relays the phone's proof, made for the phone's key, with its own key
    proof = enrolment_proof(secret, ours.public_der)
    with pytest.raises(AuthorizationRefused) as caught:
        rig.registry.enrol_device(code_id, theirs.public_der, proof, now=time.time())
    assert caught.value.reason == "enrolment_code_invalid"
    # or guesses: after three wrong proofs the code is void, even for the right one
    for _ in range(2):
        with pytest.raises(AuthorizationRefused):
            rig.registry.enrol_device(code_id, theirs.public_der, os.urandom(32), now=time.time())
    with pytest.raises(AuthorizationRefused) as caught:
        rig.registry.enrol_device(code_id, ours.public_der, proof, now=time.time())
    assert caught.value.reason == "enrolment_code_invalid"
    # a code works once
    good = Phone()
    text = rig.code("alice")
    good.enrol(rig.registry, text)
    with pytest.raises(AuthorizationRefused):
        good.enrol(rig.registry, text)
    # and only for P-256 keys
    code_id, _, secret = rig.code("alice").partition(".")
    with pytest.raises(AuthorizationRefused) as caught:
        rig.registry.enrol_device(
            code_id, b"not a key", enrolment_proof(secret, b"not a key"), now=time.time()
        )
    assert caught.value.reason == "device_key_invalid"


@pytest.mark.invariant(3)
def test_a_totp_code_authorises_once_per_step_and_wrong_codes_lock(rig):
    items = [_item("req-1", b"%PDF")]
    totp = pyotp.TOTP(rig.alice_totp)
    older = TotpFactor(totp.at(time.time() - 30))
    current = TotpFactor(totp.now())
    assert rig.authorize("alice", items, current)[0]
    rig.refused("totp_reused", "alice", items, current)
    rig.refused("totp_reused", "alice", items, older)  # an older step, after a newer one
    rig.restart()
    rig.refused("totp_reused", "alice", items, current)
    rig.refused(
        "totp_invalid", "alice", items, TotpFactor("000000" if totp.now() != "000000" else "111111")
    )
    rig.refused("totp_invalid", "alice", items, TotpFactor("12345x"))
    rig.refused("totp_lockout", "alice", items, TotpFactor("99999"))  # third failure: locked
    rig.refused("totp_locked", "alice", items, TotpFactor(totp.at(time.time() + 30)))


def test_a_bridge_that_takes_device_approvals_only_refuses_totp(tmp_path):
    rig = Rig(tmp_path, accept_totp=False)
    items = [_item("req-1", b"%PDF")]
    rig.refused("totp_not_accepted", "alice", items, TotpFactor(pyotp.TOTP(rig.alice_totp).now()))
    assert rig.authorize("alice", items, rig.phone.approve("alice", items))[0]


def test_the_web_tier_cannot_swap_a_signers_authenticator(rig):
    ours = pyotp.random_base32(32)
    with pytest.raises(AuthorizationRefused) as caught:
        rig.registry.begin_totp_enrolment("alice", ours, None, now=time.time())
    assert caught.value.reason == "totp_invalid"
    with pytest.raises(AuthorizationRefused):
        rig.registry.confirm_totp_enrolment("alice", pyotp.TOTP(ours).now(), now=time.time())
    # the signer, with a code of the current authenticator, may replace it
    new = pyotp.random_base32(32)
    current = pyotp.TOTP(rig.alice_totp).now()
    rig.registry.begin_totp_enrolment("alice", new, current, now=time.time())
    with pytest.raises(AuthorizationRefused) as caught:
        rig.registry.confirm_totp_enrolment("alice", "000000", now=time.time())
    assert caught.value.reason == "totp_invalid"
    rig.registry.confirm_totp_enrolment("alice", pyotp.TOTP(new).now(), now=time.time())
    # the confirming code's step approves nothing afterwards
    items = [_item("req-1", b"%PDF")]
    rig.refused("totp_reused", "alice", items, TotpFactor(pyotp.TOTP(new).now()))


def test_only_the_items_on_this_bridges_tokens_get_sads(rig):
    items = [_item("req-1", b"%PDF one"), _item("req-2", b"%PDF two", credential=MALLORY_KEY)]
    # Mallory's credential is on another bridge: this one checks only its own tokens,
    # but the statement covers both
    sads = rig.authorize(
        "alice",
        items,
        rig.phone.approve("alice", items),
        token_serials=frozenset({ALICE_KEY.token_serial}),
    )
    assert sads[0] is not None and sads[1] is None


@pytest.mark.invariant(1)
def test_on_a_real_token_only_the_approved_document_is_signed(installation, demo_keys, tmp_path):
    """The installation's bridge (its own signer records, SoftHSM2 token): an approval
    from an enrolled phone gives a signature on exactly that document; the same SAD on
    another document, or a second time, gives nothing."""
    keys = InstallationKeys.load(installation.secrets_dir)
    config = replace(bridge_config(installation, keys), used_activations_file=tmp_path / "used.db")
    bridge = Bridge(config)
    ref, mechanism = demo_keys["leader1"]
    registry = bridge_registry()
    phone = Phone()
    phone.enrol(
        registry, registry.issue_enrolment_code("leader1", now=time.time(), ttl_seconds=60).text
    )
    approved = sample_pdf(["Quyết định được duyệt"])
    other = sample_pdf(["Quyết định khác"])
    params = SignatureParameters()
    item = AuthorizationItem(
        "req-real",
        ref,
        mechanism,
        hashlib.sha256(approved).hexdigest(),
        json.loads(params.canonical_json()),
        hashlib.sha256(bridge.certificate(ref)).hexdigest(),
    )
    (sad,) = bridge.authorize(
        AuthorizationRequest("leader1", (item,), phone.approve("leader1", [item]))
    )
    assert sad is not None
    certificate = bridge.certificate(ref)

    def sign_with(document_sad: str):
        def sign(signing_input: SigningInput) -> bytes:
            return bridge.sign(
                SignRequest(ref, None, mechanism, document_sad, signing_input=signing_input)
            )

        return RemoteSigner(certificate, [], sign, mechanism)

    with pytest.raises(ActivationInvalid) as caught:
        sign_pdf(other, params, sign_with(sad))
    assert caught.value.reason == "document_mismatch"
    signed = sign_pdf(approved, params, sign_with(sad))
    assert signed.startswith(approved)
    with pytest.raises(ActivationInvalid) as caught:
        sign_pdf(approved, params, sign_with(sad))
    assert caught.value.reason == "reused"


def test_a_device_only_signer_gets_no_authenticator_from_the_web_tier(rig):
    """A relayed TOTP enrolment must not give a signer who approves with a device an
    authenticator whose secret the relay chose; the bridge's administrator can open
    one enrolment (after a lost phone, or on request)."""
    rig.registry.bind_credential("bob", MALLORY_KEY)
    bob = Phone()
    bob.enrol(rig.registry, rig.code("bob"))
    ours = pyotp.random_base32(32)
    with pytest.raises(AuthorizationRefused) as caught:
        rig.registry.begin_totp_enrolment("bob", ours, None, now=time.time())
    assert caught.value.reason == "totp_enrolment_refused"
    with pytest.raises(AuthorizationRefused) as caught:
        rig.registry.confirm_totp_enrolment("bob", pyotp.TOTP(ours).now(), now=time.time())
    assert caught.value.reason == "totp_not_enrolled"
    # the administrator opens an enrolment: the signer's own authenticator is accepted
    rig.registry.reset_totp("bob", now=time.time())
    rig.registry.begin_totp_enrolment("bob", ours, None, now=time.time())
    rig.registry.confirm_totp_enrolment("bob", pyotp.TOTP(ours).now(), now=time.time())
    # and closed again by it: the next replacement needs a code of this one
    with pytest.raises(AuthorizationRefused) as caught:
        rig.registry.begin_totp_enrolment("bob", pyotp.random_base32(32), None, now=time.time())
    assert caught.value.reason == "totp_invalid"


def test_a_totp_secret_that_is_not_base32_is_refused_at_once(rig):
    for bad in ("!" * 20, "abcdefghijklmnopqrstuvwxyz", "AAAA"):
        with pytest.raises(AuthorizationRefused) as caught:
            rig.registry.begin_totp_enrolment("carol", bad, None, now=time.time())
        assert caught.value.reason == "totp_secret_invalid"


def test_a_revoked_key_stays_revoked_in_any_encoding(rig):
    phone = rig.phone
    assert rig.registry.revoke_device(phone.device_id, now=time.time())
    compressed = asn1_keys.PublicKeyInfo(
        {
            "algorithm": asn1_keys.PublicKeyInfo.load(phone.public_der)["algorithm"],
            "public_key": phone.key.public_key().public_bytes(
                Encoding.X962, PublicFormat.CompressedPoint
            ),
        }
    ).dump()
    assert compressed != phone.public_der
    code_id, _, secret = rig.code("alice").partition(".")
    with pytest.raises(AuthorizationRefused) as caught:
        rig.registry.enrol_device(
            code_id, compressed, enrolment_proof(secret, compressed), now=time.time()
        )
    assert caught.value.reason == "device_key_invalid"
