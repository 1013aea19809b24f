"""The web tier as the attacker against the bridge's check of the prepared PDF, through
the trailer and the AcroForm (a fourth review's cases, each a hole until fixed): a new
catalog or Info named by the update's trailer, an AcroForm swapped or its default
resources redefined so that viewers redraw a field differently, a hidden field shown.
Each test first shows that a viewer displays what the signer did not approve."""

from __future__ import annotations

import pytest

from hsm_bridge.errors import ActivationInvalid
from tests.binding_harness import (
    FONT,
    FORGED,
    INVISIBLE,
    PAGE_KEYS,
    SIG_FIELD,
    TEXT,
    _page,
    _pdf,
    _retrailer,
    _stream,
    check,
    original,
    pdfinfo,
    pdfium_text,
    pdftotext,
    render_ink,
    update,
)

# ---------------------------------------------------------------------------------
# C1: the update's trailer is never compared with the original's: a new /Root (a new
# catalog, page tree and page, all "new objects") replaces the whole document. No
# object of the original is touched, so every per-object rule holds.


def test_the_update_trailer_cannot_point_to_a_new_catalog():
    doc = original()
    prepared, _ = update(
        doc,
        {
            13: b"<< /Type /Catalog /Pages 14 0 R /AcroForm 11 0 R >>",
            14: b"<< /Type /Pages /Kids [15 0 R] /Count 1 >>",
            15: b"<< /Type /Page /Parent 14 0 R /MediaBox [0 0 595 842]"
            b" /Resources << /Font << /F1 5 0 R >> >> /Contents 16 0 R /Annots [10 0 R] >>",
            16: _stream(FORGED),
            10: SIG_FIELD.replace(b"/P 3 0 R", b"/P 15 0 R"),
            11: b"<< /Fields [10 0 R] /SigFlags 3 >>",
            12: b"SIGDICT",
        },
    )
    prepared, attributes = _retrailer(doc, prepared, b"/Root 1 0 R", b"/Root 13 0 R")
    assert "PAY 10 BILLION VND" in pdftotext(prepared)  # poppler
    assert "PAY 10 BILLION VND" in pdfium_text(prepared)  # pdfium
    assert "duoc phe duyet" not in pdftotext(prepared)  # the approved text is gone
    with pytest.raises(ActivationInvalid):
        check(doc, prepared, attributes)


# ---------------------------------------------------------------------------------
# C2: an AcroForm the approved document holds as its own object may be swapped for a
# new one (the catalog's /AcroForm key may change; the new-AcroForm rules only run when
# there was none, or it was direct): /NeedAppearances true makes viewers redraw every
# field, and the new /DR gives the amount field's font an encoding without "1".


def _form_document(with_appearance: bool) -> bytes:
    appearance = _stream(
        b"/Tx BMC q BT /Helv 14 Tf 0 g 2 8 Td (10 000 000 VND) Tj ET Q EMC",
        b"/Type /XObject /Subtype /Form /BBox [0 0 330 30]"
        b" /Resources << /Font << /Helv 5 0 R >> >> ",
    )
    return _pdf(
        {
            1: b"<< /Type /Catalog /Pages 2 0 R /AcroForm 9 0 R >>",
            2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            3: b"<< " + PAGE_KEYS + b" /Contents 4 0 R /Annots [20 0 R] >>",
            4: _stream(TEXT),
            5: FONT,
            9: b"<< /Fields [20 0 R] /DA (/Helv 14 Tf 0 g) /DR << /Font << /Helv 5 0 R >> >> >>",
            # a read-only amount field
            20: b"<< /Type /Annot /Subtype /Widget /FT /Tx /T (SoTien) /V (10 000 000 VND)"
            b" /F 4 /Ff 1 /Rect [72 600 402 630] /P 3 0 R"
            + (b" /AP << /N 21 0 R >>" if with_appearance else b"")
            + b" >>",
            **({21: appearance} if with_appearance else {}),
        }
    )


# Helvetica whose code 49 ("1") is the glyph "nine": no code draws a "1"
NO_ONE_FONT = (
    b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding << /Type /Encoding"
    b" /BaseEncoding /WinAnsiEncoding /Differences [49 /nine] >> >>"
)
NEW_SIGNATURE = {
    3: _page(annots=b"[20 0 R 30 0 R]"),
    30: SIG_FIELD.replace(b"12 0 R", b"32 0 R"),
    32: b"SIGDICT",
}


def test_an_indirect_acroform_cannot_be_replaced_by_one_with_need_appearances():
    doc = _form_document(with_appearance=True)
    assert "10 000 000 VND" in pdftotext(doc)
    prepared, attributes = update(
        doc,
        {
            **NEW_SIGNATURE,
            1: b"<< /Type /Catalog /Pages 2 0 R /AcroForm 33 0 R >>",
            33: b"<< /Fields [20 0 R 30 0 R] /SigFlags 3 /NeedAppearances true"
            b" /DA (/Helv 14 Tf 0 g) /DR << /Font << /Helv 34 0 R >> >> >>",
            34: NO_ONE_FONT,
        },
    )
    shown = pdftotext(prepared)  # poppler redraws the field: the "1" is gone
    assert "10 000 000 VND" not in shown and "0 000 000 VND" in shown
    with pytest.raises(ActivationInvalid):
        check(doc, prepared, attributes)


# ---------------------------------------------------------------------------------
# C3: /DR of an existing AcroForm may change ("/Fields, /SigFlags and /DR"); a field
# with no appearance of its own is drawn by viewers with the AcroForm's resources, so
# the new /DR changes what the field shows.


def test_the_acroform_default_resources_cannot_change_what_a_field_shows():
    doc = _form_document(with_appearance=False)
    assert "10 000 000 VND" in pdftotext(doc)
    prepared, attributes = update(
        doc,
        {
            **NEW_SIGNATURE,
            9: b"<< /Fields [20 0 R 30 0 R] /SigFlags 3"
            b" /DA (/Helv 14 Tf 0 g) /DR << /Font << /Helv 34 0 R >> >> >>",
            34: NO_ONE_FONT,
        },
    )
    shown = pdftotext(prepared)
    assert "10 000 000 VND" not in shown and "0 000 000 VND" in shown
    with pytest.raises(ActivationInvalid):
        check(doc, prepared, attributes)


# ---------------------------------------------------------------------------------
# C4 (minor): the same unchecked trailer gives the document a new /Info: the title
# viewers show in the window bar / document properties ("only /ModDate and /Producer
# of the Info may change").


def test_the_update_trailer_cannot_bring_a_new_document_information_dictionary():
    doc = original()
    prepared, _ = update(
        doc,
        {
            1: b"<< /Type /Catalog /Pages 2 0 R /AcroForm 11 0 R >>",
            3: _page(),
            10: SIG_FIELD,
            11: b"<< /Fields [10 0 R] /SigFlags 3 >>",
            12: b"SIGDICT",
            13: b"<< /Title (Dong y chi 10 ty dong) /Subject (PAY 10 BILLION VND) >>",
        },
    )
    prepared, attributes = _retrailer(
        doc, prepared, b"/Root 1 0 R /Prev", b"/Info 13 0 R /Root 1 0 R /Prev"
    )
    assert "PAY 10 BILLION VND" in pdfinfo(prepared)
    with pytest.raises(ActivationInvalid):
        check(doc, prepared, attributes)


# ---------------------------------------------------------------------------------
# C5: an empty signature field the author left hidden (/F 2) and spanning the page is
# the one field the gateway picks by itself (_placement: "the one there is"); the update
# may set its /F (unhiding it) and give it any /AP: a full-page drawing over the text.


def test_signing_a_hidden_field_cannot_unhide_it_over_the_page():

    doc = _pdf(
        {
            1: b"<< /Type /Catalog /Pages 2 0 R /AcroForm 9 0 R >>",
            2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            3: b"<< " + PAGE_KEYS + b" /Contents 4 0 R /Annots [21 0 R] >>",
            4: _stream(TEXT),
            5: FONT,
            9: b"<< /Fields [21 0 R] >>",
            21: b"<< /Type /Annot /Subtype /Widget /FT /Sig /T (ChuKy) /F 2"
            b" /Rect [0 0 595 842] /P 3 0 R >>",
        }
    )
    overlay = _stream(
        b"1 1 1 rg 0 0 595 842 re f 0 g BT /F1 30 Tf 72 600 Td (PAY 10 BILLION VND) Tj ET",
        b"/Type /XObject /Subtype /Form /BBox [0 0 595 842]"
        b" /Resources << /Font << /F1 5 0 R >> >> ",
    )
    approved = {**INVISIBLE, "field_name": "ChuKy"}  # what _placement picks
    prepared, attributes = update(
        doc,
        {
            21: b"<< /Type /Annot /Subtype /Widget /FT /Sig /T (ChuKy) /F 4"
            b" /Rect [0 0 595 842] /P 3 0 R /V 32 0 R /AP << /N 33 0 R >> >>",
            32: b"SIGDICT",
            33: overlay,
        },
    )
    assert "PAY 10 BILLION VND" not in pdftotext(doc)
    assert "PAY 10 BILLION VND" in pdftotext(prepared)
    assert render_ink(prepared) != render_ink(doc)
    with pytest.raises(ActivationInvalid):
        check(doc, prepared, attributes, approved)
