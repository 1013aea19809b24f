"""The text of a visible signature, as a reader extracts it: Vietnamese with its
diacritics (an embedded subset of an OpenType font with full coverage, never the
Latin-only default), and the signing time in ISO 8601 with the +07:00 offset
(docs/vn-signature-format.md)."""

from __future__ import annotations

import datetime as dt
import io
import re

from pyhanko.pdf_utils.reader import PdfFileReader

from signing_gateway.demo.sample_pdf import sample_pdf
from tests.conftest import approve, submit
from tests.factories import make_signer
from tests.pdf_reading import appearance_text


def _signed_visibly(server, person, box: str) -> bytes:
    """A one-page document signed by ``person`` in ``box`` (x1,y1,x2,y2) on page 1."""
    document = sample_pdf(["CÔNG VĂN"])
    created = submit(server, document, person.username, page="1", box=box).json()
    with server.tablet(person.username, person.password) as tablet:
        decision = approve(tablet, created["id"], person.otp(), document)
    assert decision.json()["status"] == "signed", decision.text
    with server.client() as http:
        return http.get(f"/api/v1/signing-requests/{created['id']}/signed-document").content


def test_the_appearance_reads_in_vietnamese_with_the_vietnam_time(server, db, box):
    person = make_signer(db, box, like="clerk1")  # no signature image: the text appearance
    signed = _signed_visibly(server, person, "300,80,560,150")

    (ours,) = PdfFileReader(io.BytesIO(signed)).embedded_signatures
    signer_name = ours.signer_cert.subject.native["common_name"]
    text = appearance_text(signed)
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


def test_the_text_names_the_signers_position_from_the_certificate(server, db, box):
    person = make_signer(db, box)  # leader1's certificate: title and organisation
    signed = _signed_visibly(server, person, "300,70,570,150")
    lines = [line.strip() for line in appearance_text(signed).splitlines()]
    at = lines.index("Ký số bởi: Nguyễn Văn An")
    assert lines[at + 1] == "Giám đốc Sở Tài chính tỉnh Hà Nam", lines
    assert re.fullmatch(r"Thời gian: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+07:00", lines[at + 2]), lines


def test_text_over_a_signature_image_is_a_setting(tmp_path):
    """docs/vn-signature-format.md marks "no visible name/time text on the main document" as
    unconfirmed: off by default, on with SIGNATURE_TEXT_WITH_IMAGE."""
    import dataclasses
    import hashlib

    from hsm_bridge.pades import SignatureParameters, build_signed_pdf
    from signing_gateway.demo.images import demo_signature_png
    from tests.pdf_builders import software_key

    key = software_key("Nguyễn Thị Ánh", "Giám đốc", "Sở Tài chính")
    png = demo_signature_png()
    params = SignatureParameters(
        page=1, box=(300.0, 70.0, 570.0, 170.0), image_sha256=hashlib.sha256(png).hexdigest()
    )
    document = sample_pdf(["QUYẾT ĐỊNH"])

    def signed(text_with_image: bool) -> str:
        pdf = build_signed_pdf(
            document,
            dataclasses.replace(params, text_with_image=text_with_image),
            key.identity,
            image=png,
            signing_time=dt.datetime.now(dt.UTC),
            sign_digest=key.sign_digest,
        )
        return appearance_text(pdf)

    assert "Ký số bởi" not in signed(False)
    with_text = signed(True)
    assert "Ký số bởi: Nguyễn Thị Ánh" in with_text, with_text
    assert "Giám đốc Sở Tài chính" in with_text, with_text
