"""The bridge's own check of the chain from an approved document to the digest it signs
(:mod:`hsm_bridge.binding`), on inputs made by the real pyHanko signing pipeline, and on
each way a compromised web tier could bend them."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from gateway.pades import RemoteSigner, SignatureParameters, SigningInput, sign_pdf
from gateway.sample_pdf import sample_pdf
from hsm_bridge.binding import verify_signing_input
from hsm_bridge.errors import ActivationInvalid


def _certificate(key) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Nguyễn Thị Ánh")])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
        .public_bytes(Encoding.DER)
    )


@pytest.fixture(scope="module")
def signed_once() -> tuple[bytes, SigningInput]:
    """A real signing: the original document and what the token was asked to sign."""
    document = sample_pdf(["Công văn số 12/UBND", "Kính gửi: Sở Tài chính"])
    return document, _capture(document, SignatureParameters(reason="Phê duyệt"))


def _check(signing_input: SigningInput, document: bytes, parameters=None) -> bytes:
    return verify_signing_input(
        signing_input.prepared_pdf,
        signing_input.original_length,
        signing_input.signed_attributes,
        document_sha256=hashlib.sha256(document).digest(),
        parameters=parameters,
    )


def _refused(reason: str, prepared: bytes, length: int, attributes: bytes, document: bytes):
    with pytest.raises(ActivationInvalid) as caught:
        verify_signing_input(
            prepared, length, attributes, document_sha256=hashlib.sha256(document).digest()
        )
    assert caught.value.reason == reason


def test_the_real_pipeline_passes_and_gives_the_digest_the_token_signed(signed_once):
    document, signing_input = signed_once
    assert signing_input.prepared_pdf.startswith(document)
    assert signing_input.original_length == len(document)
    assert _check(signing_input, document) == signing_input.digest


@pytest.mark.invariant(1)
@pytest.mark.invariant(2)
def test_another_document_than_the_approved_one_is_refused(signed_once):
    document, s = signed_once
    other = document.replace(b"12/UBND", b"13/UBND")
    _refused("document_mismatch", s.prepared_pdf, s.original_length, s.signed_attributes, other)
    # the prepared PDF itself changed inside the original part
    changed = s.prepared_pdf.replace(b"12/UBND", b"13/UBND", 1)
    _refused("document_mismatch", changed, s.original_length, s.signed_attributes, document)
    # a length that does not cut at the original
    _refused("document_mismatch", s.prepared_pdf, 0, s.signed_attributes, document)
    too_long = len(s.prepared_pdf) + 1
    _refused("document_mismatch", s.prepared_pdf, too_long, s.signed_attributes, document)


@pytest.mark.invariant(1)
def test_an_update_changed_outside_the_placeholder_is_refused(signed_once):
    document, s = signed_once
    changed = bytearray(s.prepared_pdf)
    at = s.prepared_pdf.index(b"/Reason", s.original_length) + 9
    changed[at] ^= 0x01  # one byte of the signature dictionary
    _refused(
        "signed_attributes_invalid",
        bytes(changed),
        s.original_length,
        s.signed_attributes,
        document,
    )


@pytest.mark.invariant(1)
def test_a_byte_range_that_leaves_more_than_the_placeholder_out_is_refused(signed_once):
    document, s = signed_once
    prepared = s.prepared_pdf
    found = prepared.index(b"/ByteRange", s.original_length)
    end = prepared.index(b"]", found)
    numbers = [int(n) for n in prepared[found + 10 : end].strip(b" [").split()]
    # cover less: a gap that swallows part of the update too
    bent = f"/ByteRange [0 {numbers[1] - 10} {numbers[2]} {numbers[3]}]".encode()
    bent = bent.ljust(end + 1 - found)
    forged = prepared[:found] + bent + prepared[end + 1 :]
    _refused("byte_range_invalid", forged, s.original_length, s.signed_attributes, document)
    # two /ByteRange entries in the update
    doubled = prepared + b"\n% /ByteRange [0 1 2 3]\n"
    _refused("byte_range_invalid", doubled, s.original_length, s.signed_attributes, document)


@pytest.mark.invariant(1)
def test_a_placeholder_that_is_already_filled_is_refused(signed_once):
    document, s = signed_once
    prepared = s.prepared_pdf
    start = prepared.index(b"/Contents <", s.original_length) + len(b"/Contents <")
    filled = prepared[:start] + b"30" + prepared[start + 2 :]
    _refused("byte_range_invalid", filled, s.original_length, s.signed_attributes, document)


@pytest.mark.invariant(1)
def test_signed_attributes_for_another_digest_are_refused(signed_once):
    document, s = signed_once
    attributes = cms.CMSAttributes.load(s.signed_attributes)
    for attribute in attributes:
        if attribute["type"].native == "message_digest":
            attribute["values"] = [hashlib.sha256(b"something else").digest()]
    forged = attributes.dump(force=True)
    _refused("signed_attributes_invalid", s.prepared_pdf, s.original_length, forged, document)
    _refused(
        "signed_attributes_invalid", s.prepared_pdf, s.original_length, b"\x31\x00junk", document
    )


@pytest.mark.invariant(1)
def test_an_update_that_also_rewrites_the_page_is_refused(monkeypatch):
    """A compromised web tier slips new page content into the very update that adds the
    signature (pyHanko alone would call the result valid: the content is signed)."""
    from pyhanko.pdf_utils import generic

    import gateway.pades as pades

    approved = sample_pdf(["Công văn số 12/UBND", "Kính gửi: Sở Tài chính"])

    class RewritingWriter(pades.IncrementalPdfFileWriter):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            data = b"q 1 1 1 rg 0 0 2000 2000 re f Q BT 72 700 Td (PAY 10 BILLION VND) Tj ET"
            stream = self.add_object(generic.StreamObject(stream_data=data))
            self.add_stream_to_page(0, stream)

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refusals: list[str] = []

    def sign(signing_input: SigningInput) -> bytes:
        try:
            _check(signing_input, approved)
        except ActivationInvalid as exc:
            refusals.append(exc.reason)
            raise
        return b""

    monkeypatch.setattr(pades, "IncrementalPdfFileWriter", RewritingWriter)
    with pytest.raises(ActivationInvalid):
        sign_pdf(approved, SignatureParameters(), RemoteSigner(_certificate(key), [], sign))
    assert refusals == ["update_not_allowed"]


def _capture(document: bytes, params: SignatureParameters) -> SigningInput:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    seen: list[SigningInput] = []

    def sign(signing_input: SigningInput) -> bytes:
        seen.append(signing_input)
        return key.sign(signing_input.digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))

    sign_pdf(document, params, RemoteSigner(_certificate(key), [], sign))
    assert len(seen) == 1, "one signature, one request to the token"
    return seen[0]


@pytest.mark.invariant(2)
def test_the_signature_must_carry_the_approved_parameters():
    import json

    document = sample_pdf(["Quyết định số 9/QĐ-UBND"])
    approved = SignatureParameters(
        reason="Phê duyệt", location="Hà Nội", page=1, box=(50, 60, 250, 130)
    )
    made = _capture(document, approved)
    as_json = json.loads(approved.canonical_json())
    assert _check(made, document, as_json) == made.digest
    for changed in (
        {**as_json, "reason": "Đồng ý chi 10 tỷ"},
        {**as_json, "location": None},
        {**as_json, "box": [50, 60, 550, 730]},
        {**as_json, "box": None, "page": None},
    ):
        with pytest.raises(ActivationInvalid) as caught:
            _check(made, document, changed)
        assert caught.value.reason == "parameters_mismatch", changed
    # an invisible signature checks out against parameters without a box
    invisible = SignatureParameters(reason="Phê duyệt")
    made = _capture(document, invisible)
    assert _check(made, document, json.loads(invisible.canonical_json())) == made.digest
