"""The bridge derives what it signs from the prepared PDF and signed attributes, and
checks them against the approved document named by the activation, on a real token
(DESIGN.md invariant 1: the bridge signs only what was approved)."""

from __future__ import annotations

import hashlib
import time

import pytest

from gateway.pades import RemoteSigner, SignatureParameters, sign_pdf
from gateway.sample_pdf import sample_pdf
from hsm_bridge import SigningInput, SignRequest, TokenLimits
from hsm_bridge.errors import ActivationInvalid
from tests.test_bridge_concurrency import _bridge, _verify


@pytest.fixture
def leader(installation, demo_keys, tmp_path):
    bridge = _bridge(installation, TokenLimits(max_sessions=1, timeout_seconds=30), tmp_path)
    ref, mechanism = demo_keys["leader1"]
    return bridge, ref, mechanism, bridge.certificate(ref)


def _approved(issuer, ref, mechanism, document: bytes) -> str:
    return issuer.issue(
        ref,
        subject="req-1",
        now=time.time(),
        ttl_seconds=60,
        mechanism=mechanism.value,
        document_sha256=hashlib.sha256(document).digest(),
    )


def test_an_approved_document_is_signed_from_its_signing_input(leader, issuer):
    bridge, ref, mechanism, certificate = leader
    document = sample_pdf(["Quyết định số 7/QĐ-UBND"])
    seen: list[SigningInput] = []

    def sign(signing_input: SigningInput) -> bytes:
        seen.append(signing_input)
        activation = _approved(issuer, ref, mechanism, document)
        return bridge.sign(
            SignRequest(ref, None, mechanism, activation, signing_input=signing_input)
        )

    signatures: list[bytes] = []

    def sign_and_keep(signing_input: SigningInput) -> bytes:
        signatures.append(sign(signing_input))
        return signatures[-1]

    signed = sign_pdf(document, SignatureParameters(), RemoteSigner(certificate, [], sign_and_keep))
    assert signed.startswith(document) and len(seen) == 1
    _verify(certificate, seen[0].digest, signatures[0])


@pytest.mark.invariant(1)
def test_a_digest_or_another_document_under_a_document_activation_is_refused(leader, issuer):
    bridge, ref, mechanism, certificate = leader
    approved = sample_pdf(["Công văn được duyệt"])
    other = sample_pdf(["Công văn khác"])
    captured: list[SigningInput] = []

    def capture(signing_input: SigningInput) -> bytes:
        captured.append(signing_input)
        raise RuntimeError("stop before the token")

    with pytest.raises(RuntimeError):
        sign_pdf(other, SignatureParameters(), RemoteSigner(certificate, [], capture))
    activation = _approved(issuer, ref, mechanism, approved)
    # the web tier sends a bare digest: there is nothing to check it against
    with pytest.raises(ActivationInvalid) as caught:
        bridge.sign(SignRequest(ref, captured[0].digest, mechanism, activation))
    assert caught.value.reason == "signing_input_missing"
    # the signing input of another document
    with pytest.raises(ActivationInvalid) as caught:
        bridge.sign(SignRequest(ref, None, mechanism, activation, signing_input=captured[0]))
    assert caught.value.reason == "document_mismatch"
    # nothing of this was recorded as used: the genuine signing still works
    document_activation = _approved(issuer, ref, mechanism, other)
    signature = bridge.sign(
        SignRequest(ref, None, mechanism, document_activation, signing_input=captured[0])
    )
    _verify(certificate, captured[0].digest, signature)
