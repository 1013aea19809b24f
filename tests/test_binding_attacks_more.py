"""More of the web tier as the attacker against the bridge's check of the prepared PDF
(a third review's cases, each a hole until fixed): extra revisions hidden in the
update, /Prev skipping a revision of the approved document, objects the original
referred to without defining, an object number reused under another generation,
streams typed /Metadata, another empty field given an appearance, a new field drawn
over the page, a direct AcroForm replaced; and a PNG bomb at the CLI."""

from __future__ import annotations

import io
import struct
import zlib

import pytest

from hsm_bridge.errors import ActivationInvalid
from tests.binding_harness import (
    CLAUSE,
    FONT,
    FORGED,
    INVISIBLE,
    PAGE_KEYS,
    SIG_FIELD,
    SIGNATURE,
    TEXT,
    _page,
    _pdf,
    _rehash,
    _stream,
    check,
    original,
    pdftotext,
    render_ink,
    revision,
    sign_on_top,
    update,
)

# the objects of a plain, accepted signature update (see the sanity test of the harness)


# ---------------------------------------------------------------------------------
# B1: the update may hold two revisions (two xref sections); only the last is compared
# with the one before it, which is not the approved document but the attacker's own.


def test_a_first_revision_inside_the_update_is_checked_too():
    doc = original()
    forged = revision(doc, {4: _stream(FORGED)})  # page content replaced, no signature
    prepared, attributes = sign_on_top(forged, SIGNATURE)
    assert "PAY 10 BILLION VND" in pdftotext(prepared)
    assert "duoc phe duyet" not in pdftotext(prepared)
    with pytest.raises(ActivationInvalid):
        check(doc, prepared, attributes)


# ---------------------------------------------------------------------------------
# B2: /Prev of the update may skip the approved document's last revision: the signed
# file shows an earlier revision of the document (here the unamended amount).


def test_the_update_cannot_roll_back_a_revision_of_the_approved_document():
    first = original(contents=b"[4 0 R 8 0 R]", extra={8: _stream(FORGED)})
    first_startxref = int(first.rsplit(b"startxref", 1)[1].split()[0])
    # the approved document: a later revision removes the amount (object 8 -> the clause)
    doc = revision(first, {8: _stream(CLAUSE)})
    assert "PAY 10 BILLION VND" not in pdftotext(doc)
    # the signature update chains to the *first* revision's xref
    rolled_back = revision(doc, {13: b"<< >>"}, prev=first_startxref)
    prepared, attributes = sign_on_top(
        rolled_back, {**SIGNATURE, 3: _page(contents=b"[4 0 R 8 0 R]")}
    )
    assert "PAY 10 BILLION VND" in pdftotext(prepared)
    with pytest.raises(ActivationInvalid):
        check(doc, prepared, attributes)


def test_a_single_update_with_prev_to_an_earlier_revision_is_refused():
    first = original(contents=b"[4 0 R 8 0 R]", extra={8: _stream(FORGED)})
    first_startxref = int(first.rsplit(b"startxref", 1)[1].split()[0])
    doc = revision(first, {8: _stream(CLAUSE)})
    # one update whose trailer's /Prev is the first revision's xref: rewrite the /Prev
    prepared, _ = update(doc, {**SIGNATURE, 3: _page(contents=b"[4 0 R 8 0 R]")})
    doc_startxref = int(doc.rsplit(b"startxref", 1)[1].split()[0])
    tail = prepared[len(doc) :]
    old_prev = b"/Prev %d" % doc_startxref
    new_prev = (b"/Prev %d" % first_startxref).ljust(len(old_prev))
    prepared = doc + tail.replace(old_prev, new_prev)
    prepared, attributes = _rehash(prepared, len(doc))
    assert "PAY 10 BILLION VND" in pdftotext(prepared)
    with pytest.raises(ActivationInvalid):
        check(doc, prepared, attributes)


# ---------------------------------------------------------------------------------
# B3: object resurrection: an object number the approved document references but does
# not define (renders as nothing) is "new" in the update and skipped.


def test_an_object_referenced_but_missing_in_the_approved_document_cannot_be_defined():
    doc = original(contents=b"[4 0 R 8 0 R]")  # 8 is referenced, never defined
    assert "PAY 10 BILLION VND" not in pdftotext(doc)
    prepared, attributes = update(
        doc, {**SIGNATURE, 3: _page(contents=b"[4 0 R 8 0 R]"), 8: _stream(FORGED)}
    )
    assert "PAY 10 BILLION VND" in pdftotext(prepared)
    with pytest.raises(ActivationInvalid):
        check(doc, prepared, attributes)


def test_a_freed_object_of_the_approved_document_cannot_be_resurrected():
    # the page references 8 0 R; the document's xref lists 8 as free (gen 0 next)
    doc = original(contents=b"[4 0 R 8 0 R]", extra={9: b"<< >>"})
    assert b"0000000000 00000 f \n" in doc  # 6, 7, 8 listed free
    prepared, attributes = update(
        doc, {**SIGNATURE, 3: _page(contents=b"[4 0 R 8 0 R]"), 8: _stream(FORGED)}
    )
    assert "PAY 10 BILLION VND" in pdftotext(prepared)
    with pytest.raises(ActivationInvalid):
        check(doc, prepared, attributes)


def test_a_missing_annots_array_cannot_be_resurrected_with_a_stamp():
    doc = original(annots=b"7 0 R")  # /Annots 7 0 R, 7 undefined: no annotations shown
    stamp_ap = _stream(
        b"0 g BT /F1 30 Tf 10 10 Td (PAY 10 BILLION VND) Tj ET",
        b"/Type /XObject /Subtype /Form /BBox [0 0 500 60] /Resources << /Font << /F1 5 0 R >> >> ",
    )
    prepared, attributes = update(
        doc,
        {
            1: b"<< /Type /Catalog /Pages 2 0 R /AcroForm 11 0 R >>",
            7: b"[10 0 R 14 0 R]",
            10: SIG_FIELD,
            11: b"<< /Fields [10 0 R] /SigFlags 3 >>",
            12: b"SIGDICT",
            14: b"<< /Type /Annot /Subtype /Stamp /F 4 /Rect [50 500 550 560] /AP << /N 15 0 R >>"
            b" >>",
            15: stamp_ap,
        },
    )
    assert render_ink(prepared) > render_ink(doc)
    with pytest.raises(ActivationInvalid):
        check(doc, prepared, attributes)


# ---------------------------------------------------------------------------------
# B4: the "XMP may change" rule is by /Type: any stream of the approved document that
# says /Type /Metadata may get new content, including the page's content stream.


def test_a_content_stream_typed_metadata_cannot_be_rewritten():
    doc = original(extra={4: _stream(TEXT, b"/Type /Metadata /Subtype /XML ")})
    assert "duoc phe duyet" in pdftotext(doc)
    prepared, attributes = update(
        doc, {**SIGNATURE, 4: _stream(FORGED, b"/Type /Metadata /Subtype /XML ")}
    )
    assert "PAY 10 BILLION VND" in pdftotext(prepared)
    with pytest.raises(ActivationInvalid):
        check(doc, prepared, attributes)


def test_a_form_xobject_typed_metadata_cannot_be_rewritten():
    # /Type is optional on a form XObject; viewers go by /Subtype /Form
    doc = original(
        extra={
            4: _stream(b"/X1 Do"),
            3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1"
            b" 5 0 R >>"
            b" /XObject << /X1 6 0 R >> >> /Contents 4 0 R >>",
            6: _stream(
                TEXT,
                b"/Type /Metadata /Subtype /Form /BBox [0 0 595 842] /Resources << /Font << /F1 5"
                b" 0 R >> >> ",
            ),
        }
    )
    assert "duoc phe duyet" in pdftotext(doc)
    prepared, attributes = update(
        doc,
        {
            **SIGNATURE,
            3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1"
            b" 5 0 R >>"
            b" /XObject << /X1 6 0 R >> >> /Contents 4 0 R /Annots [10 0 R] >>",
            6: _stream(
                FORGED,
                b"/Type /Metadata /Subtype /Form /BBox [0 0 595 842] /Resources << /Font << /F1 5"
                b" 0 R >> >> ",
            ),
        },
    )
    assert "PAY 10 BILLION VND" in pdftotext(prepared)
    with pytest.raises(ActivationInvalid):
        check(doc, prepared, attributes)


# ---------------------------------------------------------------------------------
# B5: every empty signature field of the approved document may get a new /AP and /F,
# not only the one being signed: the other party's empty field shows what the web tier
# draws (here: over the body of the page), without a signature in it.


def _two_empty_fields() -> bytes:
    return _pdf(
        {
            1: b"<< /Type /Catalog /Pages 2 0 R /AcroForm 9 0 R >>",
            2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            3: b"<< " + PAGE_KEYS + b" /Contents 4 0 R /Annots [20 0 R 21 0 R] >>",
            4: _stream(TEXT),
            5: FONT,
            9: b"<< /Fields [20 0 R 21 0 R] >>",
            20: b"<< /Type /Annot /Subtype /Widget /FT /Sig /T (BenA) /F 4 /Rect [60 80 280 180]"
            b" /P 3 0 R >>",
            # the other party's field: hidden (/F 2), spanning the page
            21: b"<< /Type /Annot /Subtype /Widget /FT /Sig /T (BenB) /F 2 /Rect [0 0 595 842] /P"
            b" 3 0 R >>",
        }
    )


def test_another_empty_signature_field_cannot_get_an_appearance():
    doc = _two_empty_fields()
    overlay = _stream(
        b"0 g BT /F1 30 Tf 72 600 Td (PAY 10 BILLION VND) Tj ET",
        b"/Type /XObject /Subtype /Form /BBox [0 0 595 842] /Resources << /Font << /F1 5 0 R >>"
        b" >> ",
    )
    approved = {**INVISIBLE, "field_name": "BenA"}
    prepared, attributes = update(
        doc,
        {
            20: b"<< /Type /Annot /Subtype /Widget /FT /Sig /T (BenA) /F 4 /Rect [60 80 280 180]"
            b" /P 3 0 R /V 12 0 R >>",
            21: b"<< /Type /Annot /Subtype /Widget /FT /Sig /T (BenB) /F 4 /Rect [0 0 595 842]"
            b" /P 3 0 R /AP << /N 17 0 R >> >>",
            12: b"SIGDICT",
            17: overlay,
        },
    )
    assert render_ink(prepared) > render_ink(doc) + 20
    with pytest.raises(ActivationInvalid):
        check(doc, prepared, attributes, approved)


# ---------------------------------------------------------------------------------
# B6: a signature approved into a *new* named field with no box (what the gateway's
# _placement lets through: field_name of no existing field, no page, no box) has its
# /Rect and appearance unchecked: a full-page widget drawing anything.


def test_a_new_named_field_without_a_box_is_not_a_full_page_drawing():
    doc = original()
    overlay = _stream(
        b"1 1 1 rg 0 0 595 842 re f 0 g BT /F1 30 Tf 72 600 Td (PAY 10 BILLION VND) Tj ET",
        b"/Type /XObject /Subtype /Form /BBox [0 0 595 842] /Resources << /Font << /F1 5 0 R >>"
        b" >> ",
    )
    approved = {**INVISIBLE, "field_name": "Signature1"}
    prepared, attributes = update(
        doc,
        {
            **SIGNATURE,
            10: b"<< /Type /Annot /Subtype /Widget /FT /Sig /T (Signature1) /F 4 /Rect [0 0 595"
            b" 842]"
            b" /P 3 0 R /V 12 0 R /AP << /N 17 0 R >> >>",
            17: overlay,
        },
    )
    assert render_ink(prepared) != render_ink(doc)
    with pytest.raises(ActivationInvalid):
        check(doc, prepared, attributes, approved)


# ---------------------------------------------------------------------------------
# B7: an AcroForm that the approved document holds as a direct dictionary in the
# catalog may be replaced by anything (the catalog's /AcroForm key may change; the new
# AcroForm checks only run when there was none): /NeedAppearances, /XFA, other fields.


def test_a_direct_acroform_cannot_gain_need_appearances_or_xfa():
    doc = _pdf(
        {
            1: b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [] >> >>",
            2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            3: b"<< " + PAGE_KEYS + b" /Contents 4 0 R >>",
            4: _stream(TEXT),
            5: FONT,
        }
    )
    prepared, attributes = update(
        doc,
        {
            **SIGNATURE,
            1: b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [10 0 R 18 0 R] /SigFlags 3"
            b" /NeedAppearances true /XFA 19 0 R >> >>",
            18: b"<< /FT /Tx /T (SoTien) /V (10 000 000 000) >>",
            19: _stream(b"<xdp:xdp xmlns:xdp='http://ns.adobe.com/xdp/'/>"),
        },
    )
    with pytest.raises(ActivationInvalid):
        check(doc, prepared, attributes)


# ---------------------------------------------------------------------------------
# B8: a PNG whose header claims a huge size makes Pillow raise DecompressionBombError
# (not an OSError): check_signature_image lets it escape instead of ParameterInvalid
# (the CLI's `users signature-image` prints a traceback).


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def test_a_png_claiming_a_huge_size_is_a_parameter_error():
    from gateway.errors import ParameterInvalid
    from gateway.signature_images import check_signature_image

    with pytest.raises(ParameterInvalid):
        check_signature_image(_png_header_only(20000, 20000))


# ---------------------------------------------------------------------------------
# B9: an existing object redefined in the update under another generation ("4 1 obj",
# xref entry generation 1) is "new" to the check (its (number, generation) was never
# defined), yet readers that go by number show it: pdfium (Chrome, and the gateway's
# own placement) shows the forged content, poppler drops the approved text, and pyHanko
# alone still sees the approved stream.


def test_an_existing_object_cannot_be_redefined_under_another_generation():
    import pypdfium2

    doc = original()
    prepared, _ = update(doc, {**SIGNATURE, 4: _stream(FORGED)})
    at = prepared.index(b"4 0 obj", len(doc))
    prepared = prepared[:at] + b"4 1 obj" + prepared[at + 7 :]
    entry = prepared.rindex(b"\n4 1\n") + len(b"\n4 1\n")
    prepared = prepared[: entry + 11] + b"00001" + prepared[entry + 16 :]
    prepared, attributes = _rehash(prepared, len(doc))
    pdf = pypdfium2.PdfDocument(io.BytesIO(prepared))
    try:
        shown = pdf[0].get_textpage().get_text_range()
    finally:
        pdf.close()
    assert "PAY 10 BILLION VND" in shown  # pdfium
    assert "duoc phe duyet" not in pdftotext(prepared)  # poppler: the approved text is gone
    with pytest.raises(ActivationInvalid):
        check(doc, prepared, attributes)
