"""The web tier as the attacker against the bridge's check of the prepared PDF, through a
hybrid cross-reference in the update (a seventh review's cases, each a hole until
fixed): a classic table whose trailer names an /XRefStm listing an object where none
starts, so that poppler rebuilds the cross-reference onto an unlisted object numbered
like the stream; and stream entries of a type pyHanko ignores or past the end of the
file."""

from __future__ import annotations

import re
import struct

import pypdfium2
import pytest

from hsm_bridge.errors import ActivationInvalid
from tests.binding_harness import (
    FORGED,
    _page,
    _rehash,
    _stream,
    _two_page_document,
    check,
    pdftotext,
    update,
)

# ---------------------------------------------------------------------------------
# H1 (critical): a hybrid update. The classic table carries the signature objects and
# the trailer a /XRefStm. `_check_update_objects` then
#   * exempts from its header scan *every* "N G obj" whose (N, G) is the /XRefStm's own
#     reference: numbering the XRefStm 7 (page 2's content stream in the original)
#     lets a second, forged "7 0 obj" sit in the update unlisted and unchecked;
#   * checks only the classic section's entries against the bytes (the hybrid
#     stream's type-1 entries may point anywhere), and skips the table-format check.
# The XRefStm lists the widget's /AP (13) at an offset where no object is. pyHanko never
# opens /AP; poppler, drawing the widget on page 1, fails to fetch 13, reconstructs the
# cross-reference by scanning the file, and takes the forged "7 0 obj" (the last one) as
# page 2's content: "Khong duoc chi qua 10 trieu dong" becomes "PAY 10 BILLION VND".


def _hybrid_attack(xrefstm_entry: bytes | None = None) -> tuple[bytes, bytes, bytes]:
    doc = _two_page_document()
    widget = (
        b"<< /Type /Annot /Subtype /Widget /FT /Sig /T (Signature1) /F 132 /Rect [0 0 0 0]"
        b" /P 3 0 R /V 12 0 R /AP 13 0 R >>"
    )
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R /AcroForm 11 0 R >>",
        3: _page(),
        10: widget,
        11: b"<< /Fields [10 0 R] /SigFlags 3 >>",
        12: b"SIGDICT",
    }
    prepared, _ = update(doc, objects)
    cut = prepared.rindex(b"\nxref\n") + 1
    body, table_and_trailer = prepared[:cut], prepared[cut:]
    nowhere = body.index(b"/Filter /Adobe.PPKLite", len(doc))  # no object starts here
    data = xrefstm_entry or b"\x01" + struct.pack(">I", nowhere) + b"\x00\x00"
    xrefstm_at = len(body)
    body += (
        b"7 0 obj\n<< /Type /XRef /Size 14 /W [1 4 2] /Index [13 1] /Length %d >>\nstream\n"
        % len(data)
        + data
        + b"\nendstream\nendobj\n"
        + b"7 0 obj\n"  # the forged page-2 content, listed nowhere
        + _stream(FORGED)
        + b"\nendobj\n"
    )
    table, trailer = table_and_trailer.split(b"trailer\n")
    trailer = re.sub(rb"startxref\n\d+", b"startxref\n%d" % len(body), trailer)
    trailer = trailer.replace(b"/Size 13", b"/Size 14")
    trailer = trailer.replace(b"/Prev", b"/XRefStm %d /Prev" % xrefstm_at)
    prepared = body + table + b"trailer\n" + trailer
    at = prepared.index(b"/ByteRange [", len(doc)) + len(b"/ByteRange [")
    a, b, c, _ = (int(n) for n in prepared[at : at + 43].split())
    ranges = b"%010d %010d %010d %010d" % (a, b, c, len(prepared) - c)
    prepared, attributes = _rehash(prepared[:at] + ranges + prepared[at + 43 :], len(doc))
    return doc, prepared, attributes


def _pdfium_pages(pdf: bytes) -> list[str]:
    document = pypdfium2.PdfDocument(pdf)
    try:
        return [document[i].get_textpage().get_text_range() for i in range(len(document))]
    finally:
        document.close()


def test_a_hybrid_xrefstm_cannot_smuggle_an_unlisted_object_for_poppler_to_rebuild_onto():
    doc, prepared, attributes = _hybrid_attack()
    assert "Khong duoc chi qua 10 trieu dong" in pdftotext(doc)
    shown = pdftotext(prepared)  # poppler (Evince, Okular, ...)
    assert "Khong duoc chi qua 10 trieu dong" not in shown  # the approved clause is gone
    assert "PAY 10 BILLION VND" in shown
    assert _pdfium_pages(prepared)[1] == "Khong duoc chi qua 10 trieu dong"  # pdfium: not
    with pytest.raises(ActivationInvalid):
        check(doc, prepared, attributes)


@pytest.mark.parametrize(
    "entry",
    [
        b"\x03\x00\x00\x00\x00\x00\x00",  # an entry type pyHanko ignores
        b"\x01\xff\xff\xff\xf0\x00\x00",  # an offset past the end of the file
    ],
    ids=["unknown-type", "offset-past-eof"],
)
def test_hybrid_xrefstm_entries_are_checked_against_the_bytes_like_table_entries(entry):
    doc, prepared, attributes = _hybrid_attack(entry)
    assert "PAY 10 BILLION VND" in pdftotext(prepared)
    with pytest.raises(ActivationInvalid):
        check(doc, prepared, attributes)
