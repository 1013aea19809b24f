"""End to end over HTTP on a real uvicorn server: real-world PDFs from the corpus are
submitted, approved with TOTP and signed on SoftHSM2; each result is checked with
pyHanko's validator (intact, valid, trusted to the demo root) and poppler's pdfsig, and
the submitted bytes must be an exact prefix of the signed file."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.signing.validation import pdfsig_verdicts, validate_with_pyhanko
from tests.conftest import approve, submit
from tests.factories import make_signer

SIGNABLE = [
    "plain-libreoffice-writer.pdf",
    "plain-google-docs-skia.pdf",
    "vn-word-text-hybrid-xref.pdf",
    "vn-scan-signed-certified-p2-11p.pdf",
    "scan-ricoh-ccitt-rotate270-pdfa1b.pdf",
    "pdfa1b-ghostscript.pdf",
    "pdfa3b-signed-libreoffice.pdf",
    "form-empty-sigfield.pdf",
    "form-libreoffice-fields.pdf",
    "signed-twice-pades.pdf",
    "many-pages-117p-objstm.pdf",
    "linearized-rotate90.pdf",
    "pdf20-incremental-save.pdf",
    "rotate-90-180-270-360-arabic.pdf",
    "boxes-cropbox-offset.pdf",
    "cjk-japanese-vertical.pdf",
    "pdf20-utf8.pdf",
    "javascript-document-level.pdf",
]


@pytest.mark.parametrize("name", SIGNABLE)
def test_corpus_document_is_signed_and_validates(
    name, corpus: Path, manifest, server, db, box, demo_credentials
):
    assert manifest[name]["expected"] in ("sign", "sign-with-warning")
    document = (corpus / "pdf" / name).read_bytes()
    person = make_signer(db, box)
    answer = submit(server, document, person.username, reason="Phê duyệt", location="Hà Nội")
    assert answer.status_code == 201, answer.text
    request_id = answer.json()["id"]

    with server.tablet(person.username, person.password) as tablet:
        shown = tablet.get(f"/mobile/v1/signing-requests/{request_id}/document")
        assert shown.content == document
        decision = approve(tablet, request_id, person.otp(), shown.content)
    assert decision.status_code == 200, decision.text
    assert decision.json()["status"] == "signed"

    with server.client() as http:
        signed = http.get(f"/api/v1/signing-requests/{request_id}/signed-document")
        assert signed.status_code == 200
        state = http.get(f"/api/v1/signing-requests/{request_id}").json()
    data = signed.content
    assert data.startswith(document), "the submitted bytes must be an exact prefix"
    assert state["signed_document_sha256"] == __import__("hashlib").sha256(data).hexdigest()

    verdicts = validate_with_pyhanko(data, Path(demo_credentials["trust_anchor"]))
    ours = verdicts[-1]
    assert ours.intact and ours.valid and ours.trusted, ours
    assert ours.covers_document
    assert "Nguyễn Văn An" in ours.signer

    assert pdfsig_verdicts(data)[-1] == "Signature is Valid."  # pdfsig is a test dependency


def test_visible_signature_in_a_box_validates(corpus: Path, server, db, box, demo_credentials):
    document = (corpus / "pdf" / "boxes-cropbox-offset.pdf").read_bytes()
    person = make_signer(db, box, like="clerk1")  # the EC P-256 key
    answer = submit(server, document, person.username, page="2", box="100,100,300,170")
    assert answer.status_code == 201, answer.text
    request_id = answer.json()["id"]
    with server.tablet(person.username, person.password) as tablet:
        png = tablet.get(
            f"/mobile/v1/signing-requests/{request_id}/pages/2.png", params={"width": 300}
        )
        assert png.status_code == 200
        assert png.content.startswith(b"\x89PNG")
        decision = approve(tablet, request_id, person.otp(), document)
    assert decision.json()["status"] == "signed", decision.text
    with server.client() as http:
        data = http.get(f"/api/v1/signing-requests/{request_id}/signed-document").content
    ours = validate_with_pyhanko(data, Path(demo_credentials["trust_anchor"]))[-1]
    assert ours.ok and "Trần Thị Bình" in ours.signer
    # the appearance text is real Vietnamese text (embedded Unicode font, ToUnicode map)
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(data)
    pdf.init_forms()
    page = pdf[1]
    page.flatten()  # bring the widget's appearance into the page content
    page.close()
    page = pdf[1]
    text = page.get_textpage().get_text_range()
    page.close()
    pdf.close()
    assert "Ký số bởi: Trần Thị Bình" in text, text
    assert "+07:00" in text
    assert pdfsig_verdicts(data)[-1] == "Signature is Valid."  # pdfsig is a test dependency
