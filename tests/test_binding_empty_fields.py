"""The bridge lets a signature's update create empty signature fields only as approved
(an official document's seal field, made by the leader's update): by name, page and
box, with no value and an appearance that draws nothing. Anything else is refused."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils import generic

from gateway import pades
from gateway.pades import EmptyField, RemoteSigner, SignatureParameters, sign_pdf
from gateway.sample_pdf import sample_pdf
from hsm_bridge.binding import verify_signing_input
from hsm_bridge.errors import ActivationInvalid

LEADER_BOX = (330.0, 90.0, 530.0, 160.0)
SEAL = EmptyField("OrganisationSeal", 1, (300.0, 74.0, 402.0, 176.0))


@pytest.fixture(scope="module")
def software_key() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Người thử")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(dt.datetime(2025, 1, 1))
        .not_valid_after(dt.datetime(2035, 1, 1))
        .sign(key, hashes.SHA256())
    )
    return key, certificate.public_bytes(serialization.Encoding.DER)


def _sign(software_key, document: bytes, prepared_with: SignatureParameters, approved) -> bytes:
    """Sign ``document`` as ``prepared_with`` says, the bridge's check run against the
    ``approved`` parameters (what the signer saw)."""
    key, certificate = software_key

    def bridge(signing_input) -> bytes:
        verify_signing_input(
            signing_input.prepared_pdf,
            signing_input.original_length,
            signing_input.signed_attributes,
            document_sha256=hashlib.sha256(document).digest(),
            parameters=json.loads(approved.canonical_json()),
        )
        return key.sign(signing_input.signed_attributes, padding.PKCS1v15(), hashes.SHA256())

    return sign_pdf(document, prepared_with, RemoteSigner(certificate, [], bridge))


def _seal_field(writer) -> generic.DictionaryObject:
    """The seal's field as pyHanko just added it to ``writer``."""
    return next(
        ref.get_object()
        for ref in writer.root["/AcroForm"]["/Fields"]
        if ref.get_object().get("/T") == SEAL.name
    )


def _leader(**changes) -> SignatureParameters:
    return SignatureParameters(page=1, box=LEADER_BOX, empty_fields=(SEAL,), **changes)


def test_the_approved_seal_field_is_created_empty(software_key):
    document = sample_pdf(["QUYẾT ĐỊNH"])
    signed = _sign(software_key, document, _leader(), _leader())
    assert b"/T (OrganisationSeal)" in signed[len(document) :]


@pytest.mark.parametrize(
    ("prepared", "approved", "reason"),
    [
        # an empty field nobody approved
        (
            _leader(),
            SignatureParameters(page=1, box=LEADER_BOX),
            ("update_not_allowed", "more widgets than approved"),
        ),
        # the approved field, somewhere else on the page
        (
            _leader(),
            SignatureParameters(
                page=1,
                box=LEADER_BOX,
                empty_fields=(EmptyField(SEAL.name, 1, (100.0, 74.0, 202.0, 176.0)),),
            ),
            ("parameters_mismatch", "box is not the approved one"),
        ),
        # under another name
        (
            _leader(),
            SignatureParameters(
                page=1, box=LEADER_BOX, empty_fields=(EmptyField("Seal", 1, SEAL.box),)
            ),
            ("parameters_mismatch", "not approved"),
        ),
        # approved, but not made
        (
            SignatureParameters(page=1, box=LEADER_BOX),
            _leader(),
            ("parameters_mismatch", "approved empty field is missing"),
        ),
    ],
)
def test_empty_fields_other_than_approved_are_refused(software_key, prepared, approved, reason):
    document = sample_pdf(["QUYẾT ĐỊNH"])
    with pytest.raises(ActivationInvalid) as refused:
        _sign(software_key, document, prepared, approved)
    assert refused.value.reason == reason[0], str(refused.value)
    assert reason[1] in str(refused.value)


def test_an_empty_field_that_draws_something_is_refused(software_key, monkeypatch):
    real = pades.fields.append_signature_field

    def drawn(writer, spec):
        real(writer, spec)
        if spec.sig_field_name != SEAL.name:
            return
        field = _seal_field(writer)
        ink = generic.StreamObject(
            {
                generic.pdf_name("/Type"): generic.pdf_name("/XObject"),
                generic.pdf_name("/Subtype"): generic.pdf_name("/Form"),
                generic.pdf_name("/BBox"): generic.ArrayObject(
                    generic.NumberObject(v) for v in (0, 0, 102, 102)
                ),
            },
            stream_data=b"1 0 0 rg 0 0 102 102 re f",
        )
        field["/AP"] = generic.DictionaryObject({generic.pdf_name("/N"): writer.add_object(ink)})

    monkeypatch.setattr(pades.fields, "append_signature_field", drawn)
    document = sample_pdf(["QUYẾT ĐỊNH"])
    with pytest.raises(ActivationInvalid) as refused:
        _sign(software_key, document, _leader(), _leader())
    assert "appearance" in str(refused.value), str(refused.value)


def _name(text: str) -> generic.NameObject:
    return generic.pdf_name(text)


@pytest.mark.parametrize(
    "key, value",
    [
        (
            "/MK",
            generic.DictionaryObject(
                {
                    generic.pdf_name("/BG"): generic.ArrayObject(
                        [generic.NumberObject(1), generic.NumberObject(0), generic.NumberObject(0)]
                    )
                }
            ),
        ),
        ("/SV", generic.DictionaryObject({generic.pdf_name("/Type"): generic.pdf_name("/SV")})),
        ("/DA", generic.TextStringObject("/Helv 0 Tf 1 0 0 rg")),
        ("/Lock", generic.DictionaryObject({generic.pdf_name("/Action"): _name("/All")})),
    ],
)
def test_an_empty_field_with_more_than_it_needs_is_refused(software_key, monkeypatch, key, value):
    """Appearance characteristics a viewer may draw, a seed value or lock the next signer
    would have to obey, a default appearance: none belongs in an approved empty field."""
    real = pades.fields.append_signature_field

    def extended(writer, spec):
        real(writer, spec)
        if spec.sig_field_name == SEAL.name:
            field = _seal_field(writer)
            field[generic.pdf_name(key)] = value

    monkeypatch.setattr(pades.fields, "append_signature_field", extended)
    document = sample_pdf(["QUYẾT ĐỊNH"])
    with pytest.raises(ActivationInvalid) as refused:
        _sign(software_key, document, _leader(), _leader())
    assert "was not approved" in str(refused.value), str(refused.value)


def test_a_hidden_empty_field_is_refused(software_key, monkeypatch):
    """A seal field nobody could see would let the seal be made and never shown."""
    real = pades.fields.append_signature_field

    def hidden(writer, spec):
        real(writer, spec)
        if spec.sig_field_name == SEAL.name:
            field = _seal_field(writer)
            field[generic.pdf_name("/F")] = generic.NumberObject(2 | 4)  # hidden, print

    monkeypatch.setattr(pades.fields, "append_signature_field", hidden)
    document = sample_pdf(["QUYẾT ĐỊNH"])
    with pytest.raises(ActivationInvalid) as refused:
        _sign(software_key, document, _leader(), _leader())
    assert "hidden" in str(refused.value), str(refused.value)


@pytest.mark.parametrize("where", ["fields_only", "annots_only"])
def test_fields_and_widgets_outside_the_approved_ones_are_refused(software_key, monkeypatch, where):
    """A signature field with no widget appended to the form besides the approved seal
    field (a second, unapproved field), or the approved seal widget shown on the page but
    left out of the form (the seal would then go into a new, invisible field)."""
    real = pades.fields.append_signature_field

    def tampered(writer, spec):
        real(writer, spec)
        if spec.sig_field_name != SEAL.name:
            return
        form = writer.root["/AcroForm"]["/Fields"]
        if where == "fields_only":
            unapproved = generic.DictionaryObject(
                {
                    generic.pdf_name("/FT"): generic.pdf_name("/Sig"),
                    generic.pdf_name("/T"): generic.pdf_string("Unapproved"),
                }
            )
            form.append(writer.add_object(unapproved))
        else:
            seal = next(ref for ref in form if ref.get_object().get("/T") == SEAL.name)
            form.remove(seal)

    monkeypatch.setattr(pades.fields, "append_signature_field", tampered)
    document = sample_pdf(["QUYẾT ĐỊNH"])
    with pytest.raises(ActivationInvalid) as refused:
        _sign(software_key, document, _leader(), _leader())
    expected = "was not approved" if where == "fields_only" else "not in the form"
    assert expected in str(refused.value), str(refused.value)
