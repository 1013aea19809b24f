"""The PAdES level the gateway judges its signatures to reach (gateway/signing/levels.py)
is the level they reach: each level is asked of the production bridge, which signs on
the SoftHSM token with the demo PKI's live TSA and OCSP responder, and judged offline
with only the demo root trusted; the same documents with what a level adds cut off are
judged one level lower."""

from __future__ import annotations

import io
import socket

import pytest
from asn1crypto import ocsp
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils.reader import PdfFileReader

from gateway.bridges import bridge_config
from gateway.secrets_at_rest import InstallationKeys
from gateway.signing.levels import newest_signature_level, signature_levels
from hsm_bridge import Bridge
from hsm_bridge.pades import PadesLevel, SignatureParameters
from hsm_bridge.sam.activation import ActivationIssuer
from signing_gateway.demo.sample_pdf import sample_pdf
from tests.sads import request_for


@pytest.fixture(scope="module")
def signed(installation, demo_keys) -> dict[str, bytes]:
    """One document signed at each level, by leader1's key."""
    keys = InstallationKeys.load(installation.secrets_dir)
    bridge = Bridge(bridge_config(installation, keys))
    issuer = ActivationIssuer(keys.activation_key)
    ref, mechanism = demo_keys["leader1"]
    out = {}
    for level in PadesLevel.ALL:
        document = sample_pdf([f"Mức {level}"])
        params = SignatureParameters(pades_level=level, reason="Phê duyệt")
        request = request_for(
            issuer, ref, mechanism, document, bridge.certificate(ref), params, subject=level
        )
        out[level] = bridge.sign(request)
    return out


@pytest.fixture(scope="module")
def anchors(installation) -> list[bytes]:
    pem = installation.effective_trust_anchors_file.read_bytes()
    return [c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(pem)]


@pytest.mark.parametrize("level", PadesLevel.ALL)
def test_each_level_asked_is_the_level_reached(signed, anchors, level):
    assert newest_signature_level(signed[level], anchors) == level


def _cut_after_signature(pdf: bytes) -> bytes:
    """``pdf`` up to the end of its (only) signature's revision: the DSS and document
    timestamp updates after it are gone."""
    (signature,) = PdfFileReader(io.BytesIO(pdf)).embedded_regular_signatures
    start, first, second, length = signature.byte_range
    return pdf[: second + length]


def _cut_before_last_timestamp(pdf: bytes) -> bytes:
    (stamp,) = PdfFileReader(io.BytesIO(pdf)).embedded_timestamp_signatures
    start, first, second, length = stamp.byte_range
    # the revision before the timestamp's ends at the last %%EOF before its update
    end = pdf.rindex(b"%%EOF", 0, first) + len(b"%%EOF")
    while pdf[end : end + 1] in (b"\r", b"\n"):
        end += 1
    return pdf[:end]


def test_what_a_level_adds_is_what_makes_it(signed, anchors):
    # B-LT without its validation data is B-T; so is B-LTA without its last update (the
    # validation data and the document timestamp, which pyHanko writes together)
    assert newest_signature_level(_cut_after_signature(signed["B-LT"]), anchors) == "B-T"
    assert newest_signature_level(_cut_before_last_timestamp(signed["B-LTA"]), anchors) == "B-T"


def test_nothing_is_reached_without_the_root_that_issued_the_signer(signed):
    assert signature_levels(signed["B-LTA"], []) == [("Signature1", None)]


def test_the_judgement_needs_no_network(signed, anchors, monkeypatch):
    """Offline: with every socket refused, the levels are the same."""

    def refuse(*_args, **_kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    assert newest_signature_level(signed["B-LTA"], anchors) == "B-LTA"


def test_a_signatures_validation_data_is_about_its_own_chain_only(installation, demo_keys):
    """Two signers within the bridge's answer reuse (30 s): the second document's DSS
    holds no answer about the first signer's certificate (it would tell who signed)."""
    keys = InstallationKeys.load(installation.secrets_dir)
    bridge = Bridge(bridge_config(installation, keys))
    issuer = ActivationIssuer(keys.activation_key)
    serials = {}
    signed = {}
    for who in ("leader1", "clerk1"):
        ref, mechanism = demo_keys[who]
        certificate = bridge.certificate(ref)
        serials[who] = x509.load_der_x509_certificate(certificate).serial_number
        document = sample_pdf([f"DSS {who}"])
        params = SignatureParameters(pades_level=PadesLevel.B_LT)
        signed[who] = bridge.sign(
            request_for(issuer, ref, mechanism, document, certificate, params, subject=who)
        )
    reader = PdfFileReader(io.BytesIO(signed["clerk1"]))
    answered = set()
    for ref in reader.root["/DSS"]["/OCSPs"]:
        response = ocsp.OCSPResponse.load(ref.get_object().data)
        for single in response["response_bytes"]["response"].parsed["tbs_response_data"][
            "responses"
        ]:
            answered.add(single["cert_id"]["serial_number"].native)
    assert serials["clerk1"] in answered
    assert serials["leader1"] not in answered
