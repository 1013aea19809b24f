"""The leader's handwritten signature image (blue, transparent PNG) is drawn in the
visible signature, inside the approved box: checked on the rendered page. The image is
part of what the signer approves: another image after approval signs nothing."""

from __future__ import annotations

import hashlib
import io

import pypdfium2
from PIL import Image

from gateway.requests.placement import text_lines
from gateway.signing.validation import pdfsig_verdicts
from signing_gateway.demo.images import demo_signature_png
from signing_gateway.demo.sample_pdf import sample_pdf
from tests.commands import cli
from tests.conftest import approve, submit
from tests.factories import make_signer
from tests.pdf_builders import signer_block_pdf

SCALE = 2
BOX = (320.0, 90.0, 520.0, 170.0)


def _blue_pixels(pdf: bytes) -> list[tuple[int, int]]:
    document = pypdfium2.PdfDocument(io.BytesIO(pdf))
    document.init_forms()
    try:
        image = document[0].render(scale=SCALE, may_draw_forms=True).to_pil().convert("RGB")
    finally:
        document.close()
    width = image.width
    return [
        (i % width, i // width)
        for i, (r, g, b) in enumerate(image.get_flattened_data())
        if b > 120 and r < 90 and g < 110
    ]


def test_the_signature_image_is_drawn_blue_inside_the_box(installation, server, db, box, tmp_path):
    person = make_signer(db, box)
    png = demo_signature_png(seed=3)
    (tmp_path / "ky.png").write_bytes(png)
    kept = cli(installation, "users", "signature-image", person.username, str(tmp_path / "ky.png"))
    assert kept.returncode == 0, kept.stderr
    document = sample_pdf(["QUYẾT ĐỊNH", "GIÁM ĐỐC", "", "", "Nguyễn Văn An"])
    answer = submit(server, document, person.username, page="1", box=",".join(map(str, BOX)))
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["parameters"]["image_sha256"] == hashlib.sha256(png).hexdigest()
    with server.tablet(person.username, person.password) as tablet:
        decision = approve(tablet, created["id"], person.otp(), document)
    assert decision.status_code == 200 and decision.json()["status"] == "signed", decision.text
    with server.client() as http:
        signed = http.get(f"/api/v1/signing-requests/{created['id']}/signed-document").content
    assert pdfsig_verdicts(signed) == ["Signature is Valid."]

    assert _blue_pixels(document) == []
    blue = _blue_pixels(signed)
    assert len(blue) > 500, len(blue)
    height = round(sample_pdf_height(document) * SCALE)
    left, right = BOX[0] * SCALE, BOX[2] * SCALE
    top, bottom = height - BOX[3] * SCALE, height - BOX[1] * SCALE
    outside = [(x, y) for x, y in blue if not (left <= x <= right and top <= y <= bottom)]
    assert outside == []
    # centred: the ink spans most of the box's width (the image is scaled to fit)
    xs = [x for x, _ in blue]
    assert max(xs) - min(xs) > 0.7 * (right - left)


def test_another_image_after_approval_signs_nothing(installation, server, db, box, tmp_path):
    person = make_signer(db, box)
    (tmp_path / "a.png").write_bytes(demo_signature_png(seed=1))
    assert (
        cli(
            installation, "users", "signature-image", person.username, str(tmp_path / "a.png")
        ).returncode
        == 0
    )
    document = sample_pdf(["CÔNG VĂN"])
    created = submit(server, document, person.username, page="1", box="300,80,500,160").json()
    (tmp_path / "b.png").write_bytes(demo_signature_png(seed=2))
    assert (
        cli(
            installation, "users", "signature-image", person.username, str(tmp_path / "b.png")
        ).returncode
        == 0
    )
    with server.tablet(person.username, person.password) as tablet:
        decision = approve(tablet, created["id"], person.otp(), document)
    assert decision.status_code == 200, decision.text
    assert decision.json()["status"] == "failed"
    assert decision.json()["failure_code"] == "document_changed"


def test_an_image_without_transparency_or_not_a_png_is_refused(installation, tmp_path):
    opaque = tmp_path / "opaque.png"
    Image.new("RGB", (100, 40), (255, 255, 255)).save(opaque)
    refused = cli(installation, "users", "signature-image", "leader1", str(opaque))
    assert refused.returncode == 1 and "transparent" in refused.stderr
    jpeg = tmp_path / "ky.jpg"
    Image.new("RGB", (100, 40)).save(jpeg, format="JPEG")
    refused = cli(installation, "users", "signature-image", "leader1", str(jpeg))
    assert refused.returncode == 1 and "PNG" in refused.stderr


def sample_pdf_height(document: bytes) -> float:
    pdf = pypdfium2.PdfDocument(io.BytesIO(document))
    try:
        return pdf[0].get_height()
    finally:
        pdf.close()


def test_automatic_placement_centres_the_image_between_title_and_name(
    installation, server, db, box, tmp_path
):
    person = make_signer(db, box)
    png = demo_signature_png(seed=5)
    (tmp_path / "ky.png").write_bytes(png)
    assert (
        cli(
            installation, "users", "signature-image", person.username, str(tmp_path / "ky.png")
        ).returncode
        == 0
    )
    display_name = f"Người thử {person.username}"
    document = signer_block_pdf("GIÁM ĐỐC", display_name)
    lines = {line.text: line.box for line in text_lines(document, 0)}
    title, name = lines["GIÁM ĐỐC"], lines[display_name]
    answer = submit(server, document, person.username, placement="auto")
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["parameters"]["page"] == 1
    x1, y1, x2, y2 = created["parameters"]["box"]
    assert name[3] <= y1 < y2 <= title[1]  # between the name line and the title line
    assert abs((x1 + x2) / 2 - (name[0] + name[2]) / 2) < 1  # centred on the name
    with server.tablet(person.username, person.password) as tablet:
        decision = approve(tablet, created["id"], person.otp(), document)
    assert decision.json()["status"] == "signed", decision.text
    with server.client() as http:
        signed = http.get(f"/api/v1/signing-requests/{created['id']}/signed-document").content
    blue = _blue_pixels(signed)
    assert len(blue) > 300
    height = round(sample_pdf_height(document) * SCALE)
    ys = [height - y / 1 for _, y in blue]  # rows counted from the bottom, in pixels
    assert min(ys) >= name[3] * SCALE - 1 and max(ys) <= title[1] * SCALE + 1
    # a document without the signer's name on its last page is refused at intake
    other = submit(
        server, signer_block_pdf("GIÁM ĐỐC", "Trần Văn Khác"), person.username, placement="auto"
    )
    assert other.status_code == 422 and other.json()["code"] == "signer_block_not_found"
