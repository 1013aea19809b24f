"""The web tier as the attacker against the bridge's check of the prepared PDF, through
cross-reference rebuilding (a sixth review's cases, each a hole until fixed): a decoy
"xref ... trailer" string that once hid a malformed table from the check, object headers
after a bare CR, a form feed or on the endobj line, and a well-formed entry pointing at
no object; each makes poppler (and pdfium) rebuild the cross-reference by scanning the
file onto an object the check must therefore also see."""

from __future__ import annotations

import pytest

from hsm_bridge.errors import ActivationInvalid
from tests.binding_harness import (
    SIGNATURE,
    _hidden,
    _rehash,
    _two_page_document,
    _unheader,
    check,
    original,
    pdfium_text,
    pdftotext,
    render_ink,
    update,
)

# ---------------------------------------------------------------------------------
# G1 (critical): the classic-table check validates the lines between the update's
# *first* b"xref" and the following b"trailer" (`update.find(b"xref")`). A new object
# before the table holding the string (xref trailer) makes that span empty: the real
# table goes unchecked, and the F1 rebuild attack (an entry of type "x" that pyHanko
# skips and poppler refuses; an offset "+000000000" that pdfium refuses) is back. The
# hidden "4 0 obj" escapes `_OBJECT_HEADER` by following "endobj\r". One page, one
# approved text: both poppler and pdfium show the forged one instead.


def _table_decoy_attack(separator: bytes) -> tuple[bytes, bytes, bytes]:
    doc = original()
    objects = {
        **SIGNATURE,
        13: b"<< /Note (xref trailer) >>\n" + _hidden(4, separator),
        14: b"null",
        15: b"null",
    }
    prepared, _ = update(doc, objects)
    tail = _unheader(_unheader(prepared[len(doc) :], 14), 15)
    for number, entry in ((14, b"0000000000 00000 x \n"), (15, b"+000000000 00000 n \n")):
        header = b"\n%d 1\n" % number
        at = tail.index(header) + len(header)
        tail = tail[:at] + entry + tail[at + 20 :]
    prepared, attributes = _rehash(doc + tail, len(doc))
    return doc, prepared, attributes


@pytest.mark.parametrize("separator", [b"\r", b"\n\x0c", b" "], ids=["cr", "formfeed", "space"])
def test_a_decoy_xref_string_cannot_hide_a_malformed_table_from_the_check(separator):
    doc, prepared, attributes = _table_decoy_attack(separator)
    assert "PAY 10 BILLION VND" not in pdftotext(doc)
    assert "PAY 10 BILLION VND" in pdftotext(prepared)  # poppler (Evince, Okular, ...)
    assert "duoc phe duyet" not in pdftotext(prepared)  # the approved text is gone
    assert "PAY 10 BILLION VND" in pdfium_text(prepared)  # pdfium (Chrome, Edge, ...)
    assert "duoc phe duyet" not in pdfium_text(prepared)
    assert render_ink(prepared) != render_ink(doc)
    with pytest.raises(ActivationInvalid):
        check(doc, prepared, attributes)


# ---------------------------------------------------------------------------------
# G2 (critical): with a perfectly well-formed table. `_check_update_objects` goes only
# from headers it finds to entries, never from entries to what is at their offset. A
# new object (13) that pyHanko never reads (new objects are skipped; the widget's /AP
# is never opened) gets an entry pointing at no object. Poppler, drawing the widget,
# fetches /AP 13 0 R, finds no "13 0 obj" there and rebuilds the cross-reference by
# scanning: the hidden "7 0 obj" (after "endobj\r") replaces page 2's contents. The
# clause "Khong duoc chi qua 10 trieu dong" on page 2 becomes "PAY 10 BILLION VND".


def test_an_xref_entry_pointing_at_no_object_cannot_make_poppler_rebuild():
    doc = _two_page_document()
    widget = (
        b"<< /Type /Annot /Subtype /Widget /FT /Sig /T (Signature1) /F 132 /Rect [0 0 0 0]"
        b" /P 3 0 R /V 12 0 R /AP 13 0 R >>"
    )
    objects = {**SIGNATURE, 10: widget, 13: b"null", 14: b"<< >>\n" + _hidden(7)}
    prepared, _ = update(doc, objects)
    # the table stays well formed: "0000001234 00000 n" for 13, just nothing there
    prepared, attributes = _rehash(doc + _unheader(prepared[len(doc) :], 13), len(doc))
    assert "Khong duoc chi qua 10 trieu dong" in pdftotext(doc)
    shown = pdftotext(prepared)
    assert "Khong duoc chi qua 10 trieu dong" not in shown  # the clause is gone
    assert "PAY 10 BILLION VND" in shown
    with pytest.raises(ActivationInvalid):
        check(doc, prepared, attributes)
