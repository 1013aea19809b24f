"""The attacker is the web tier: it holds the bridge's network interface and the
gateway's database (device public keys, request hashes), but not the bridge's SAD key,
not the enrolment codes' secrets and not the signers' device keys. The bridge's
signature activation module must refuse every activation it was not given a factor for
(docs/design.md invariants 1 and 10; EN 419 241-1 SAM), with its reason, and issue nothing.
Each test names the break of the key-tier review it closes where it closes one.

The registry and the module run for real on a SQLite file, in both profiles where the
profile matters; tests/hsm_bridge/test_signature_step.py signs on a real token."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from dataclasses import replace
from pathlib import Path

import pyotp
import pytest
from asn1crypto import keys as asn1_keys
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hsm_bridge.clock import utcnow
from hsm_bridge.credentials import CredentialRef, SignatureMechanism
from hsm_bridge.errors import ActivationInvalid, AuthorizationRefused
from hsm_bridge.sam.activation import ActivationIssuer, ActivationVerifier, SpentActivations
from hsm_bridge.sam.authorization import (
    AuthorizationItem,
    AuthorizationRequest,
    Profile,
    SignatureActivationModule,
    TotpFactor,
)
from hsm_bridge.sam.signers import (
    TOTP_ENROLMENT_CONTEXT,
    CodeIssuer,
    SignerRegistry,
    TotpPolicy,
    enrolment_proof,
)
from tests.phone import Phone

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
BOTH = pytest.mark.parametrize("profile", list(Profile), ids=[p.value for p in Profile])


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
    def __init__(self, folder: Path, profile: Profile = Profile.EMBEDDED) -> None:
        self.folder = folder
        self.key = os.urandom(32)
        self.fernet = base64.urlsafe_b64encode(os.urandom(32))
        self.restart(profile)
        self.registry.bind_credential("alice", ALICE_KEY)
        self.registry.bind_credential("mallory", MALLORY_KEY)
        self.alice_totp = pyotp.random_base32(32)
        self.registry.set_totp("alice", self.alice_totp)
        self.phone = Phone()
        self.phone.enrol(self.registry, self.code("alice"))

    def restart(self, profile: Profile | None = None) -> None:
        """A new process on the same files (spent nonces, steps and failures survive);
        ``profile``: the administrator changed it."""
        profile = profile or self.sam.profile
        self.registry = SignerRegistry(
            self.folder / "signers.db", self.fernet, totp_policy=TotpPolicy(3, 600)
        )
        self.sam = SignatureActivationModule(
            self.registry,
            ActivationIssuer(self.key),
            CERTIFICATES.__getitem__,
            profile=profile,
            max_items=50,
        )

    def code(self, signer: str, issued_by: CodeIssuer = CodeIssuer.ADMINISTRATOR) -> str:
        return self.registry.issue_enrolment_code(
            signer, now=utcnow(), ttl_seconds=600, issued_by=issued_by
        ).text

    def authorize(self, signer, items, factor, **kwargs):
        return self.sam.authorize(
            AuthorizationRequest(signer, tuple(items), factor), now=utcnow(), **kwargs
        )

    def refused(self, reason: str, signer, items, factor, **kwargs) -> None:
        with pytest.raises(AuthorizationRefused) as caught:
            self.authorize(signer, items, factor, **kwargs)
        assert caught.value.reason == reason
        assert caught.value.code == "authorization_refused"

    def totp(self) -> pyotp.TOTP:
        return pyotp.TOTP(self.alice_totp)


@pytest.fixture
def rig(tmp_path) -> Rig:
    return Rig(tmp_path)


@pytest.mark.invariant(1)
@BOTH
def test_a_device_approval_yields_one_sad_per_document_bound_to_it(tmp_path, profile):
    rig = Rig(tmp_path, profile)
    items = [_item("req-1", b"%PDF one"), _item("req-2", b"%PDF two")]
    factor = rig.phone.approve("alice", items)
    sads = rig.authorize("alice", items, factor)
    verifier = ActivationVerifier(rig.key, SpentActivations(rig.folder / "used.db"))
    for item, sad in zip(items, sads, strict=True):
        activation = verifier.check(sad, ALICE_KEY, item.mechanism.value, now=utcnow())
        assert activation.document_sha256 == item.document_sha256
        assert activation.certificate_sha256 == item.certificate_sha256
        assert dict(activation.parameters) == PARAMETERS
        assert activation.subject == item.request_id
        assert activation.authorization == factor.nonce
        with pytest.raises(ActivationInvalid):  # bound to Alice's credential only
            verifier.check(sad, MALLORY_KEY, item.mechanism.value, now=utcnow())


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


def test_parameters_the_bridge_would_not_build_are_refused_before_the_factor(rig):
    items = [replace(_item("req-1", b"%PDF"), parameters={"prepared_pdf": "…"})]
    factor = rig.phone.approve("alice", items)
    rig.refused("malformed", "alice", items, factor)
    # the factor was not spent on it
    good = [_item("req-1", b"%PDF")]
    assert rig.authorize("alice", good, rig.phone.approve("alice", good))[0]


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
    assert rig.registry.revoke_device(rig.phone.device_id, now=utcnow())
    rig.refused("device_revoked", "alice", items, rig.phone.approve("alice", items))


def test_a_signer_is_authorised_only_for_the_credentials_bound_to_them(rig):
    # the gateway routes Mallory's own valid approval to Alice's key
    mallory = Phone()
    mallory.enrol(rig.registry, rig.code("mallory"))
    items = [_item("req-1", b"%PDF", credential=ALICE_KEY)]
    rig.refused("credential_not_bound", "mallory", items, mallory.approve("mallory", items))
    own = [_item("req-1", b"%PDF", credential=MALLORY_KEY)]
    assert rig.authorize("mallory", own, mallory.approve("mallory", own))[0]


def test_the_web_tier_cannot_enrol_a_key_of_its_own_nor_void_the_signers_code(rig):
    """Break 8: three wrong proofs from the web tier voided a code the administrator
    issued. A proof is an HMAC keyed with 128 random bits: wrong ones cost nothing,
    and the signer's code still enrols the signer's phone."""
    code_id, _, secret = rig.code("alice").partition(".")
    ours = Phone()
    theirs = Phone()  # the gateway's key
    # it relays the phone's proof, made for the phone's key, with its own key
    proof = enrolment_proof(secret, ours.public_der)
    with pytest.raises(AuthorizationRefused) as caught:
        rig.registry.enrol_device(code_id, theirs.public_der, proof, now=utcnow())
    assert caught.value.reason == "enrolment_code_invalid"
    for _ in range(10):
        with pytest.raises(AuthorizationRefused):
            rig.registry.enrol_device(code_id, theirs.public_der, os.urandom(32), now=utcnow())
    assert rig.registry.enrol_device(code_id, ours.public_der, proof, now=utcnow())
    # a code works once
    with pytest.raises(AuthorizationRefused) as caught:
        rig.registry.enrol_device(code_id, ours.public_der, proof, now=utcnow())
    assert caught.value.reason == "enrolment_code_invalid"
    # and only for P-256 keys
    code_id, _, secret = rig.code("alice").partition(".")
    with pytest.raises(AuthorizationRefused) as caught:
        rig.registry.enrol_device(
            code_id, b"not a key", enrolment_proof(secret, b"not a key"), now=utcnow()
        )
    assert caught.value.reason == "device_key_invalid"


@pytest.mark.invariant(3)
def test_a_totp_code_authorises_once_per_step_and_wrong_codes_lock(rig):
    items = [_item("req-1", b"%PDF")]
    totp = rig.totp()
    older = TotpFactor(totp.at(time.time() - 30))
    current = TotpFactor(totp.now())
    assert rig.authorize("alice", items, current)[0]
    rig.refused("totp_reused", "alice", items, current)
    rig.refused("totp_reused", "alice", items, older)  # an older step, after a newer one
    rig.restart()
    rig.refused("totp_reused", "alice", items, current)
    rig.refused("totp_invalid", "alice", items, TotpFactor(_wrong(totp)))
    rig.refused("totp_invalid", "alice", items, TotpFactor("12345x"))
    rig.refused("totp_lockout", "alice", items, TotpFactor("99999"))  # third failure: locked
    rig.refused("totp_locked", "alice", items, TotpFactor(totp.at(time.time() + 30)))


def _wrong(totp: pyotp.TOTP) -> str:
    return "000000" if totp.now() != "000000" else "111111"


@pytest.mark.invariant(3)
def test_a_correct_code_does_not_erase_the_failures_before_it(rig):
    """Break 7: a correct code reset the failure count, so a guesser who also saw one
    good code could guess forever. Two wrong, one right, one wrong: locked."""
    items = [_item("req-1", b"%PDF")]
    totp = rig.totp()
    rig.refused("totp_invalid", "alice", items, TotpFactor(_wrong(totp)))
    rig.refused("totp_invalid", "alice", items, TotpFactor("12345x"))
    assert rig.authorize("alice", items, TotpFactor(totp.now()))[0]
    rig.refused("totp_lockout", "alice", items, TotpFactor("99999"))


def test_one_totp_code_yields_at_most_the_batch_limit_of_sads(rig):
    """Break 4: one captured code sent with 1,000 items returned 1,000 SADs. The bridge
    refuses more than its batch limit for one factor, and spends nothing doing so."""
    many = [_item(f"req-{n}", f"%PDF {n}".encode()) for n in range(51)]
    code = TotpFactor(rig.totp().now())
    rig.refused("malformed", "alice", many, code)
    assert len(rig.authorize("alice", many[:50], code)) == 50


def test_an_authorization_that_names_no_token_here_checks_no_code(rig):
    """Break 7: an authorization whose items are all on other bridges checked (and
    spent) a TOTP code without binding it to anything."""
    items = [_item("req-1", b"%PDF")]
    code = TotpFactor(rig.totp().now())
    rig.refused("malformed", "alice", items, code, token_serials=frozenset({"elsewhere"}))
    assert rig.authorize("alice", items, code)[0]  # the code was not spent


def test_the_secure_host_profile_takes_no_totp_approval(tmp_path):
    rig = Rig(tmp_path, Profile.SECURE_HOST)
    items = [_item("req-1", b"%PDF")]
    rig.refused("totp_not_accepted", "alice", items, TotpFactor(rig.totp().now()))
    assert rig.authorize("alice", items, rig.phone.approve("alice", items))[0]
    with pytest.raises(AuthorizationRefused) as caught:
        rig.sam.enrolment_code("alice", TotpFactor(rig.totp().now()), now=utcnow(), ttl_seconds=60)
    assert caught.value.reason == "totp_not_accepted"


def test_a_device_enrolled_with_a_totp_code_stops_working_when_the_profile_tightens(rig):
    """Break 4: with one captured TOTP code the web tier obtained an enrolment code and
    enrolled its own device key, which still approved after the administrator switched
    the bridge to device-only approvals."""
    issued = rig.sam.enrolment_code(
        "alice", TotpFactor(rig.totp().now()), now=utcnow(), ttl_seconds=60
    )
    planted = Phone()
    planted.enrol(rig.registry, issued.text)
    items = [_item("req-1", b"%PDF")]
    assert rig.authorize("alice", items, planted.approve("alice", items))[0]
    assert rig.registry.device(planted.device_id).enrolled_with == CodeIssuer.TOTP
    rig.restart(Profile.SECURE_HOST)
    rig.refused("device_not_accepted", "alice", items, planted.approve("alice", items))
    # the signer's phone, enrolled with the administrator's code, still approves
    assert rig.authorize("alice", items, rig.phone.approve("alice", items))[0]


def test_a_first_totp_enrolment_needs_a_code_the_bridge_issued(rig):
    """Break 5: /v1/totp and its confirmation for a signer with nothing enrolled
    succeeded without any proof; the planted secret signed once the administrator bound
    the signer's key, and the real signer's own enrolment was refused."""
    planted = pyotp.random_base32(32)
    with pytest.raises(AuthorizationRefused) as caught:
        rig.registry.begin_totp_enrolment("bob", planted, now=utcnow())
    assert caught.value.reason == "enrolment_code_invalid"
    with pytest.raises(AuthorizationRefused) as caught:
        rig.registry.confirm_totp_enrolment("bob", pyotp.TOTP(planted).now(), now=utcnow())
    assert caught.value.reason == "totp_not_enrolled"
    # the code the administrator gave Bob, proven over Bob's own secret, enrols it
    code_id, _, secret = rig.code("bob").partition(".")
    own = pyotp.random_base32(32)
    # relayed with another secret, the proof does not hold
    with pytest.raises(AuthorizationRefused):
        rig.registry.begin_totp_enrolment(
            "bob",
            planted,
            now=utcnow(),
            code_id=code_id,
            code_proof=enrolment_proof(secret, own.encode(), TOTP_ENROLMENT_CONTEXT),
        )
    rig.registry.begin_totp_enrolment(
        "bob",
        own,
        now=utcnow(),
        code_id=code_id,
        code_proof=enrolment_proof(secret, own.encode(), TOTP_ENROLMENT_CONTEXT),
    )
    rig.registry.confirm_totp_enrolment("bob", pyotp.TOTP(own).now(), now=utcnow())
    # another signer's code does not enrol Bob
    code_id, _, secret = rig.code("carol").partition(".")
    with pytest.raises(AuthorizationRefused):
        rig.registry.begin_totp_enrolment(
            "dave",
            own,
            now=utcnow(),
            code_id=code_id,
            code_proof=enrolment_proof(secret, own.encode(), TOTP_ENROLMENT_CONTEXT),
        )


def test_the_web_tier_cannot_swap_a_signers_authenticator(rig):
    ours = pyotp.random_base32(32)
    with pytest.raises(AuthorizationRefused) as caught:
        rig.registry.begin_totp_enrolment("alice", ours, now=utcnow())
    assert caught.value.reason == "totp_invalid"
    with pytest.raises(AuthorizationRefused):
        rig.registry.confirm_totp_enrolment("alice", pyotp.TOTP(ours).now(), now=utcnow())
    # the signer, with a code of the current authenticator, may replace it
    new = pyotp.random_base32(32)
    current = rig.totp().now()
    rig.registry.begin_totp_enrolment("alice", new, now=utcnow(), current_otp=current)
    with pytest.raises(AuthorizationRefused) as caught:
        rig.registry.confirm_totp_enrolment("alice", "000000", now=utcnow())
    assert caught.value.reason == "totp_invalid"
    rig.registry.confirm_totp_enrolment("alice", pyotp.TOTP(new).now(), now=utcnow())
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


@BOTH
def test_only_the_signer_or_the_administrator_revokes_a_device(tmp_path, profile):
    """Break 4: the web tier revoked the real tablet at the bridge while the gateway
    still showed it active. A revocation over the network needs the signer's own
    factor; the bridge's records are what every list shows."""
    rig = Rig(tmp_path, profile)
    tablet = Phone()
    tablet.enrol(rig.registry, rig.code("alice"))
    now = utcnow()
    # no factor, another signer's device, a statement for another device: refused
    mallory = Phone()
    mallory.enrol(rig.registry, rig.code("mallory"))
    with pytest.raises(AuthorizationRefused):
        rig.sam.revoke_device(
            "alice", tablet.device_id, mallory.revoke("alice", tablet.device_id), now=now
        )
    wrong_target = rig.phone.revoke("alice", "some-other-device")
    with pytest.raises(AuthorizationRefused) as caught:
        rig.sam.revoke_device("alice", tablet.device_id, wrong_target, now=now)
    assert caught.value.reason == "approval_signature_invalid"
    assert rig.registry.device(tablet.device_id).revoked_at is None
    # Alice's phone revokes her lost tablet; the statement works once
    factor = rig.phone.revoke("alice", tablet.device_id)
    assert rig.sam.revoke_device("alice", tablet.device_id, factor, now=now)
    assert rig.registry.device(tablet.device_id).revoked_at is not None
    with pytest.raises(AuthorizationRefused) as caught:
        rig.sam.revoke_device("alice", tablet.device_id, factor, now=now)
    assert caught.value.reason == "approval_nonce_reused"
    listed = {d.device_id: d.revoked_at for d in rig.registry.devices("alice")}
    assert listed[tablet.device_id] is not None and listed[rig.phone.device_id] is None
    # a TOTP code revokes only where TOTP approves
    other = Phone()
    other.enrol(rig.registry, rig.code("alice"))
    code = TotpFactor(rig.totp().now())
    if profile is Profile.EMBEDDED:
        assert rig.sam.revoke_device("alice", other.device_id, code, now=now)
    else:
        with pytest.raises(AuthorizationRefused) as caught:
            rig.sam.revoke_device("alice", other.device_id, code, now=now)
        assert caught.value.reason == "totp_not_accepted"


def test_unknown_signers_are_answered_as_signers_with_nothing_enrolled(rig):
    """Break 8: the bridge answered differently for names it does not know."""

    def reason(call) -> str:
        with pytest.raises(AuthorizationRefused) as caught:
            call()
        return caught.value.reason

    known_empty = rig.code("bob")  # bob exists (a code was issued) but has no TOTP
    assert known_empty
    now = utcnow()
    for who in ("bob", "nobody-at-all"):
        assert reason(lambda w=who: rig.registry.check_totp(w, "123456", now=now)) == (
            "totp_not_enrolled"
        )
        assert reason(
            lambda w=who: rig.sam.enrolment_code(w, TotpFactor("123456"), now=now, ttl_seconds=60)
        ) == ("totp_not_enrolled")
        items, attempt = [_item("req-1", b"%PDF")], TotpFactor("123456")
        refusal = reason(lambda w=who, i=items, a=attempt: rig.authorize(w, i, a))
        assert refusal == "credential_not_bound"


def test_a_totp_secret_that_is_not_base32_is_refused_at_once(rig):
    for bad in ("!" * 20, "abcdefghijklmnopqrstuvwxyz", "AAAA"):
        with pytest.raises(AuthorizationRefused) as caught:
            rig.registry.begin_totp_enrolment("carol", bad, now=utcnow())
        assert caught.value.reason == "totp_secret_invalid"


def test_a_revoked_key_stays_revoked_in_any_encoding(rig):
    phone = rig.phone
    assert rig.registry.revoke_device(phone.device_id, now=utcnow())
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
            code_id, compressed, enrolment_proof(secret, compressed), now=utcnow()
        )
    assert caught.value.reason == "device_key_invalid"


def test_the_signer_records_migrate_in_place(tmp_path):
    """A registry file from before the records were versioned keeps its content and
    gains the new columns."""
    import sqlite3

    path = tmp_path / "signers.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            "CREATE TABLE signer_credential (signer TEXT NOT NULL, credential TEXT NOT NULL,"
            " PRIMARY KEY (signer, credential));"
            "INSERT INTO signer_credential VALUES ('alice', 'serial-a/a1');"
            "CREATE TABLE totp (signer TEXT PRIMARY KEY, secret BLOB, pending_secret BLOB,"
            " last_step INTEGER, failures INTEGER NOT NULL DEFAULT 0, locked_until INTEGER,"
            " open_until INTEGER);"
        )
    registry = SignerRegistry(path, base64.urlsafe_b64encode(os.urandom(32)))
    assert registry.schema_version == 3
    assert registry.credentials_of("alice") == {"serial-a/a1"}
    assert registry.devices("alice") == []
    assert registry.passkey_credentials("alice") == []  # the passkeys' columns are there


@BOTH
def test_an_enrolled_device_has_a_code_issued_for_another_device_of_its_signer(tmp_path, profile):
    """The signer's second tablet enrols on a code the first one asked for (the issue's
    "an already enrolled device-bound factor"); the code is recorded as device-issued,
    so the secure host's profile keeps the new device. Nobody else's device, no revoked
    one, no statement signed twice and no statement by another key gets a code."""
    rig = Rig(tmp_path, profile)
    now = utcnow()
    request = rig.phone.issue_code("alice")
    issued = rig.sam.enrolment_code(
        "alice", request, now=now, ttl_seconds=60, recipient=rig.phone.recipient
    )
    assert issued.secret == ""  # what the web tier relays: the id, and the sealed text
    assert issued.code_id in rig.phone.read_code(issued, request.nonce)
    second = Phone()
    second.enrol(rig.registry, rig.phone.read_code(issued, request.nonce))
    assert rig.registry.device(second.device_id).enrolled_with == CodeIssuer.DEVICE
    items = [_item("req-1", b"%PDF")]
    assert rig.authorize("alice", items, second.approve("alice", items))[0]

    def reason(signer: str, factor, recipient: str) -> str:
        with pytest.raises(AuthorizationRefused) as caught:
            rig.sam.enrolment_code(signer, factor, now=now, ttl_seconds=60, recipient=recipient)
        return caught.value.reason

    assert reason("alice", request, rig.phone.recipient) == "approval_nonce_reused"
    mallory = Phone()
    mallory.enrol(rig.registry, rig.code("mallory"))
    assert reason("alice", mallory.issue_code("alice"), mallory.recipient) == "device_unknown"
    forged = Phone()
    forged.device_id = rig.phone.device_id  # the web tier's key, the phone's id
    assert (
        reason("alice", forged.issue_code("alice"), forged.recipient)
        == "approval_signature_invalid"
    )
    # the web tier puts its own key in place of the phone's: the statement does not hold
    relay = Phone()
    relay.issue_code("alice")
    genuine = rig.phone.issue_code("alice")
    assert reason("alice", genuine, relay.recipient) == "approval_signature_invalid"
    assert reason("alice", rig.phone.issue_code("alice"), "") == "approval_signature_invalid"
    assert rig.registry.revoke_device(second.device_id, now=now)
    assert reason("alice", second.issue_code("alice"), second.recipient) == "device_revoked"
