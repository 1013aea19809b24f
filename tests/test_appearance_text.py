"""The text of a visible signature, as a reader extracts it: Vietnamese with its
diacritics (an embedded subset of an OpenType font with full coverage, never the
Latin-only default), and the signing time in ISO 8601 with the +07:00 offset
(../shared/VN-SIGNATURE-FORMAT.md)."""

from __future__ import annotations

import io
import re

import pypdfium2
from pyhanko.pdf_utils.reader import PdfFileReader

from gateway.sample_pdf import sample_pdf
from tests.conftest import approve, submit
from tests.factories import make_signer


def _appearance_text(pdf: bytes) -> str:
    """The page's text after the signature widget is flattened into it (pdfium)."""
    document = pypdfium2.PdfDocument(io.BytesIO(pdf))
    document.init_forms()
    try:
        document[0].flatten()
        flattened = io.BytesIO()
        document.save(flattened)
    finally:
        document.close()
    again = pypdfium2.PdfDocument(flattened.getvalue())
    try:
        return again[0].get_textpage().get_text_range()
    finally:
        again.close()


def test_the_appearance_reads_in_vietnamese_with_the_vietnam_time(server, db, box):
    person = make_signer(db, box, like="clerk1")  # no signature image: the text appearance
    document = sample_pdf(["CÔNG VĂN"])
    created = submit(server, document, person.username, page="1", box="300,80,560,150").json()
    with server.tablet(person.username, person.password) as tablet:
        decision = approve(tablet, created["id"], person.otp(), document)
    assert decision.json()["status"] == "signed", decision.text
    with server.client() as http:
        signed = http.get(f"/api/v1/signing-requests/{created['id']}/signed-document").content

    (ours,) = PdfFileReader(io.BytesIO(signed)).embedded_signatures
    signer_name = ours.signer_cert.subject.native["common_name"]
    text = _appearance_text(signed)
    assert f"Ký số bởi: {signer_name}" in text, text
    assert re.search(r"Thời gian: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+07:00", text), text
    # the font is an embedded subset (a six-letter tag), not a standard Latin font
    widget = ours.sig_field
    appearance = widget["/AP"]["/N"]
    fonts = appearance["/Resources"]["/Font"]
    (font,) = (fonts[name] for name in fonts)
    base = str(font["/BaseFont"])
    assert re.match(r"^/[A-Z]{6}\+", base), base
    descendant = font["/DescendantFonts"][0]
    assert (
        "/FontFile2" in descendant["/FontDescriptor"]
        or "/FontFile3" in descendant["/FontDescriptor"]
    )
