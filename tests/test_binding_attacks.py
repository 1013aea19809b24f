"""The web tier as the attacker against the bridge's check of the prepared PDF (first
written by a reviewer who attacked it; each case was a hole, now a refusal).

Binding attacks build the prepared PDF by hand (what a compromised web tier sends to
POST /v1/sign): the original bytes, then one incremental update with a signature field,
a /ByteRange, an empty /Contents placeholder and matching CMS signed attributes. The
bridge (hsm_bridge.binding.verify_signing_input) must refuse everything that adds more
than the approved signature."""

from __future__ import annotations

import io

import pytest

from hsm_bridge.errors import ActivationInvalid
from tests.binding_harness import (
    CLAUSE,
    FONT,
    INVISIBLE,
    PAGE_KEYS,
    SIG_FIELD,
    TEXT,
    _page,
    _pdf,
    _stream,
    check,
    original,
    pdftotext,
    update,
)

# ---------------------------------------------------------------------------------
# hand-made PDFs


# the parameters of an invisible signature (what SignatureParameters() canonicalises to)


def test_sanity_a_plain_hand_made_signature_update_is_accepted():
    """The hand-made update (only a signature) passes: the refusals asked for below are
    about what each attack adds, not about the builder."""
    doc = original()
    prepared, attributes = update(
        doc,
        {
            1: b"<< /Type /Catalog /Pages 2 0 R /AcroForm 11 0 R >>",
            3: _page(),
            10: SIG_FIELD,
            11: b"<< /Fields [10 0 R] /SigFlags 3 >>",
            12: b"SIGDICT",
        },
    )
    assert len(check(doc, prepared, attributes)) == 32


# ---------------------------------------------------------------------------------
# Finding 1: "arrays that only grow" lets an update append anything to an existing
# indirect array: a new content stream to a page's /Contents array.


@pytest.mark.invariant(1)
def test_an_indirect_contents_array_cannot_gain_a_content_stream():
    doc = original(contents=b"6 0 R", extra={6: b"[4 0 R]"})
    forged_text = b"BT /F1 30 Tf 72 600 Td (PAY 10 BILLION VND) Tj ET"
    prepared, attributes = update(
        doc,
        {
            1: b"<< /Type /Catalog /Pages 2 0 R /AcroForm 11 0 R >>",
            3: _page(contents=b"6 0 R"),
            6: b"[4 0 R 13 0 R]",  # the page's content array "grows"
            10: SIG_FIELD,
            11: b"<< /Fields [10 0 R] /SigFlags 3 >>",
            12: b"SIGDICT",
            13: _stream(forged_text),
        },
    )
    assert "PAY 10 BILLION VND" in pdftotext(prepared)  # what the signed PDF shows
    assert "PAY 10 BILLION VND" not in pdftotext(doc)  # what the signer approved
    with pytest.raises(ActivationInvalid):
        check(doc, prepared, attributes)


@pytest.mark.invariant(1)
def test_an_indirect_annots_array_cannot_gain_a_non_signature_annotation():
    doc = original(annots=b"7 0 R", extra={7: b"[]"})
    stamp_ap = _stream(
        b"BT /F1 30 Tf 10 10 Td (PAY 10 BILLION VND) Tj ET",
        b"/Type /XObject /Subtype /Form /BBox [0 0 500 60] /Resources << /Font << /F1 5 0 R >> >> ",
    )
    prepared, attributes = update(
        doc,
        {
            1: b"<< /Type /Catalog /Pages 2 0 R /AcroForm 11 0 R >>",
            7: b"[10 0 R 14 0 R]",  # the widget and a stamp annotation
            10: SIG_FIELD,
            11: b"<< /Fields [10 0 R] /SigFlags 3 >>",
            12: b"SIGDICT",
            14: b"<< /Type /Annot /Subtype /Stamp /F 4 /Rect [50 500 550 560]"
            b" /AP << /N 15 0 R >> >>",
            15: stamp_ap,
        },
    )
    with pytest.raises(ActivationInvalid):
        check(doc, prepared, attributes)


# ---------------------------------------------------------------------------------
# Finding 2: a second, unsigned signature widget may carry any appearance: only the
# filled signature is counted, and appearances are not looked at.


@pytest.mark.invariant(1)
def test_an_extra_unsigned_signature_widget_cannot_draw_on_the_page():
    doc = original()
    overlay = _stream(
        b"1 1 1 rg 0 0 595 842 re f 0 g BT /F1 30 Tf 72 600 Td (PAY 10 BILLION VND) Tj ET",
        b"/Type /XObject /Subtype /Form /BBox [0 0 595 842]"
        b" /Resources << /Font << /F1 5 0 R >> >> ",
    )
    prepared, attributes = update(
        doc,
        {
            1: b"<< /Type /Catalog /Pages 2 0 R /AcroForm 11 0 R >>",
            3: _page(annots=b"[10 0 R 16 0 R]"),
            10: SIG_FIELD,
            11: b"<< /Fields [10 0 R 16 0 R] /SigFlags 3 >>",
            12: b"SIGDICT",
            # an empty signature field covering the page, with its own appearance
            16: b"<< /Type /Annot /Subtype /Widget /FT /Sig /T (Trang) /F 4"
            b" /Rect [0 0 595 842] /P 3 0 R /AP << /N 17 0 R >> >>",
            17: overlay,
        },
    )
    with pytest.raises(ActivationInvalid):
        check(doc, prepared, attributes)


# ---------------------------------------------------------------------------------
# Held (passes): an object freed in the update is refused ("an existing object was
# replaced"): the clause cannot be dropped this way.


@pytest.mark.invariant(1)
def test_an_update_cannot_free_an_object_of_the_approved_document():
    doc = original(contents=b"[4 0 R 8 0 R]", extra={8: _stream(CLAUSE)})
    assert "Khong duoc chi" in pdftotext(doc)
    prepared, attributes = update(
        doc,
        {
            1: b"<< /Type /Catalog /Pages 2 0 R /AcroForm 11 0 R >>",
            3: _page(contents=b"[4 0 R 8 0 R]"),
            10: SIG_FIELD,
            11: b"<< /Fields [10 0 R] /SigFlags 3 >>",
            12: b"SIGDICT",
        },
        freed=(8,),
    )
    # pyHanko, the parser of record, reads the freed clause as null: the page lost it
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.reader import PdfFileReader

    page = PdfFileReader(io.BytesIO(prepared), strict=False).root["/Pages"]["/Kids"][0]
    contents = [c.get_object() for c in page.get_object()["/Contents"]]
    assert isinstance(contents[1], generic.NullObject)
    with pytest.raises(ActivationInvalid):
        check(doc, prepared, attributes)


# ---------------------------------------------------------------------------------
# Finding 4: an approved existing field is checked by its partial name /T only, and
# with no box nothing else is checked: the web tier signs into a *new* field of the
# same name, anywhere (here: on page 2, over the body text).


def _two_pages_with_field() -> bytes:
    return _pdf(
        {
            1: b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [20 0 R] >> >>",
            2: b"<< /Type /Pages /Kids [3 0 R 21 0 R] /Count 2 >>",
            3: b"<< " + PAGE_KEYS + b" /Contents 4 0 R /Annots [20 0 R] >>",
            4: _stream(TEXT),
            5: FONT,
            20: b"<< /Type /Annot /Subtype /Widget /FT /Sig /T (ChuKy) /F 4"
            b" /Rect [300 80 520 180] /P 3 0 R >>",
            21: b"<< " + PAGE_KEYS + b" /Contents 4 0 R >>",
        }
    )


@pytest.mark.invariant(2)
def test_a_signature_approved_for_a_field_cannot_land_in_a_new_field_of_that_name():
    doc = _two_pages_with_field()
    approved = {**INVISIBLE, "field_name": "ChuKy"}  # what _placement approves
    prepared, attributes = update(
        doc,
        {
            1: b"<< /Type /Catalog /Pages 2 0 R"
            b" /AcroForm << /Fields [20 0 R 10 0 R] /SigFlags 3 >> >>",
            21: b"<< " + PAGE_KEYS + b" /Contents 4 0 R /Annots [10 0 R] >>",
            10: b"<< /Type /Annot /Subtype /Widget /FT /Sig /T (ChuKy) /F 4"
            b" /Rect [50 650 550 760] /P 21 0 R /V 12 0 R >>",
            12: b"SIGDICT",
        },
    )
    with pytest.raises(ActivationInvalid):
        check(doc, prepared, attributes, approved)


# ---------------------------------------------------------------------------------
# Finding 5: an approved signature into a hierarchical empty field ("form1.ChuKy", as
# Adobe/LiveCycle forms name them) is refused by the bridge after the signer approved
# it: the binding takes the widget's /Parent for the field, which has no /FT and no /V.


def _nested_field_document() -> bytes:
    return _pdf(
        {
            1: b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [30 0 R] >> >>",
            2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            3: b"<< " + PAGE_KEYS + b" /Contents 4 0 R /Annots [20 0 R] >>",
            4: _stream(TEXT),
            5: FONT,
            30: b"<< /T (form1) /Kids [20 0 R] >>",
            20: b"<< /Type /Annot /Subtype /Widget /FT /Sig /T (ChuKy) /Parent 30 0 R /F 4"
            b" /Rect [300 80 520 180] /P 3 0 R >>",
        }
    )


def test_a_signature_into_a_hierarchical_empty_field_is_made(server, signer):
    from tests.conftest import approve, submit

    document = _nested_field_document()
    answer = submit(server, document, signer.username, field_name="form1.ChuKy")
    assert answer.status_code == 201, answer.text
    with server.tablet(signer.username, signer.password) as tablet:
        decision = approve(tablet, answer.json()["id"], signer.otp(), document)
    assert decision.status_code == 200, decision.text
    assert decision.json()["status"] == "signed", decision.text


# ---------------------------------------------------------------------------------
# Finding 6: a page object with a stray /Kids key (ISO 32000 ignores it on a leaf)
# passes intake with page_count 1 but no page size: a box on page 1 is a 500.


def test_a_box_on_a_page_with_a_stray_kids_key_is_not_a_500(server, signer):
    from tests.conftest import submit

    document = _pdf(
        {
            1: b"<< /Type /Catalog /Pages 2 0 R >>",
            2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            3: b"<< " + PAGE_KEYS + b" /Contents 4 0 R /Kids [] >>",
            4: _stream(TEXT),
            5: FONT,
        }
    )
    answer = submit(server, document, signer.username, page="1", box="50,50,200,120")
    assert answer.status_code == 201, answer.text
