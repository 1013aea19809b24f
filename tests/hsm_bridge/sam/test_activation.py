"""Signature activation data (docs/design.md invariant 1, the SAD part): authentic, bound to
one credential and mechanism, expiring, spent once even across a restart. These are
the two calls ``Bridge.sign_many`` makes (check, then spend); the bridge-level tests
(tests/hsm_bridge/test_signature_step.py) drive them through ``sign_many`` itself."""

from __future__ import annotations

import datetime as dt

import pytest

from hsm_bridge.credentials import CredentialRef
from hsm_bridge.errors import ActivationInvalid
from hsm_bridge.sam.activation import ActivationIssuer, ActivationVerifier, SpentActivations

KEY = bytes(range(32))
CRED = CredentialRef("a1b2c3", b"\x01\x02")
MECH = "rsa_pkcs_sha256"
NOW = dt.datetime.fromtimestamp(1_800_000_000, dt.UTC)
PARAMS = {"reason": "Phê duyệt", "pades_level": "B-B"}


@pytest.fixture
def verifier(tmp_path):
    return ActivationVerifier(KEY, SpentActivations(tmp_path / "used.db"))


def _sad(key: bytes = KEY, **kwargs):
    args = {
        "mechanism": MECH,
        "document_sha256": "ab" * 32,
        "certificate_sha256": "cd" * 32,
        "parameters": PARAMS,
        "authorization": "nonce-1",
        "subject": "req-1",
        "now": NOW,
        "ttl_seconds": 300,
    } | kwargs
    return ActivationIssuer(key).issue(CRED, **args)


def _reason(call) -> str:
    with pytest.raises(ActivationInvalid) as caught:
        call()
    return caught.value.reason


@pytest.mark.invariant(1)
def test_a_sad_names_what_it_authorises_and_is_spent_once(verifier):
    activation = verifier.check(_sad(), CRED, MECH, now=NOW + dt.timedelta(seconds=10))
    assert activation.subject == "req-1"
    assert activation.document_sha256 == "ab" * 32
    assert activation.certificate_sha256 == "cd" * 32
    assert dict(activation.parameters) == PARAMS
    assert activation.authorization == "nonce-1"
    assert verifier.spend([activation], now=NOW + dt.timedelta(seconds=10)) == [True]
    assert verifier.spend([activation], now=NOW + dt.timedelta(seconds=11)) == [False]


@pytest.mark.invariant(1)
def test_a_sad_twice_in_one_list_is_spent_once(verifier):
    activation = verifier.check(_sad(), CRED, MECH, now=NOW)
    assert verifier.spend([activation, activation], now=NOW) == [True, False]


@pytest.mark.invariant(1)
def test_a_spent_sad_stays_spent_after_a_restart(tmp_path):
    sad = _sad()
    first = ActivationVerifier(KEY, SpentActivations(tmp_path / "u.db"))
    assert first.spend([first.check(sad, CRED, MECH, now=NOW)], now=NOW) == [True]
    restarted = ActivationVerifier(KEY, SpentActivations(tmp_path / "u.db"))
    assert restarted.spend([restarted.check(sad, CRED, MECH, now=NOW)], now=NOW) == [False]


@pytest.mark.invariant(1)
def test_other_credential_mechanism_expired_forged_malformed(verifier):
    sad = _sad()
    other = CredentialRef("a1b2c3", b"\x09")
    assert _reason(lambda: verifier.check(sad, other, MECH, now=NOW)) == "wrong_credential"
    assert _reason(lambda: verifier.check(sad, CRED, "ecdsa_sha256", now=NOW)) == "wrong_mechanism"
    assert (
        _reason(lambda: verifier.check(sad, CRED, MECH, now=NOW + dt.timedelta(seconds=300)))
        == "expired"
    )
    assert _reason(lambda: verifier.check(_sad(bytes(32)), CRED, MECH, now=NOW)) == "forged"
    assert _reason(lambda: verifier.check("garbage", CRED, MECH, now=NOW)) == "malformed"
    payload, mac = sad.split(".")
    assert _reason(lambda: verifier.check(payload[:-2] + "." + mac, CRED, MECH, now=NOW)) in (
        "forged",
        "malformed",
    )
