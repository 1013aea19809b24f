"""Signature activation data (DESIGN.md invariant 1, the SAD part): bound to one
credential and one digest, expiring, single-use even across a restart."""

from __future__ import annotations

import hashlib

import pytest

from hsm_bridge import ActivationIssuer, ActivationVerifier, CredentialRef, UsedActivationStore
from hsm_bridge.errors import ActivationInvalid

KEY = bytes(range(32))
CRED = CredentialRef("a1b2c3", b"\x01\x02")
DIGEST = hashlib.sha256(b"signed attributes").digest()
NOW = 1_800_000_000.0


@pytest.fixture
def verifier(tmp_path):
    return ActivationVerifier(KEY, UsedActivationStore(tmp_path / "used.db"))


def _sad(**kwargs):
    args = {"subject": "req-1", "now": NOW, "ttl_seconds": 300} | kwargs
    return ActivationIssuer(KEY).issue(CRED, DIGEST, **args)


def _reason(call) -> str:
    with pytest.raises(ActivationInvalid) as caught:
        call()
    return caught.value.reason


@pytest.mark.invariant(1)
def test_valid_activation_is_accepted_once(verifier):
    sad = _sad()
    activation = verifier.verify_and_consume(sad, CRED, DIGEST, now=NOW + 10)
    assert activation.subject == "req-1" and activation.digest == DIGEST
    assert _reason(lambda: verifier.verify_and_consume(sad, CRED, DIGEST, now=NOW + 11)) == (
        "reused"
    )


@pytest.mark.invariant(1)
def test_replay_after_restart_is_refused(tmp_path):
    sad = _sad()
    ActivationVerifier(KEY, UsedActivationStore(tmp_path / "u.db")).verify_and_consume(
        sad, CRED, DIGEST, now=NOW
    )
    restarted = ActivationVerifier(KEY, UsedActivationStore(tmp_path / "u.db"))
    assert _reason(lambda: restarted.verify_and_consume(sad, CRED, DIGEST, now=NOW)) == "reused"


@pytest.mark.invariant(1)
def test_other_digest_other_credential_expired_forged(verifier):
    sad = _sad()
    other = hashlib.sha256(b"something else").digest()
    assert _reason(lambda: verifier.verify_and_consume(sad, CRED, other, now=NOW)) == (
        "wrong_digest"
    )
    assert (
        _reason(
            lambda: verifier.verify_and_consume(
                sad, CredentialRef("a1b2c3", b"\x09"), DIGEST, now=NOW
            )
        )
        == "wrong_credential"
    )
    assert _reason(lambda: verifier.verify_and_consume(sad, CRED, DIGEST, now=NOW + 300)) == (
        "expired"
    )
    forged = ActivationIssuer(bytes(32)).issue(CRED, DIGEST, subject="x", now=NOW, ttl_seconds=300)
    assert _reason(lambda: verifier.verify_and_consume(forged, CRED, DIGEST, now=NOW)) == ("forged")
    assert _reason(lambda: verifier.verify_and_consume("garbage", CRED, DIGEST, now=NOW)) == (
        "malformed"
    )
    # the refusals above consumed nothing: the genuine activation still works once
    verifier.verify_and_consume(sad, CRED, DIGEST, now=NOW)
