"""A visible signature lands where the request's box says on the page as the reader
sees it (CropBox origin, after /Rotate), and reads upright: checked on the rendered
page (pypdfium2, as the tablet's preview renders it), through the whole pipeline
including the bridge's check of the widget against the approved box."""

from __future__ import annotations

import io

import pypdfium2
import pytest
from PIL import Image, ImageChops

from gateway.signing.validation import pdfsig_verdicts
from tests.conftest import approve, submit
from tests.pdf_builders import page_with_geometry

SCALE = 2  # pixels per point
BOX = (300.0, 300.0, 520.0, 380.0)  # as displayed: 220 x 80 points, on every page here


def _render(pdf: bytes) -> Image.Image:
    """The first page as the reader sees it, ink in white on black (mode L)."""
    document = pypdfium2.PdfDocument(io.BytesIO(pdf))
    document.init_forms()  # signature widgets are form fields
    try:
        bitmap = document[0].render(scale=SCALE, may_draw_forms=True)
        return bitmap.to_pil().convert("L").point(lambda p: 255 if p < 128 else 0)
    finally:
        document.close()


def _count(image: Image.Image) -> int:
    return image.histogram()[255]


@pytest.mark.parametrize(
    ("rotate", "crop"),
    [(0, (30, 40, 565, 802)), (90, (30, 40, 565, 802)), (180, None), (270, (30, 40, 565, 802))],
)
def test_the_box_is_where_the_reader_sees_it_and_the_text_is_upright(rotate, crop, server, signer):
    document = page_with_geometry(rotate, crop=crop)
    box = ",".join(f"{v:g}" for v in BOX)
    answer = submit(server, document, signer.username, page="1", box=box)
    assert answer.status_code == 201, answer.text
    request_id = answer.json()["id"]
    with server.tablet(signer.username, signer.password) as tablet:
        decision = approve(tablet, request_id, signer.otp(), document)
    assert decision.status_code == 200 and decision.json()["status"] == "signed", decision.text
    with server.client() as http:
        signed = http.get(f"/api/v1/signing-requests/{request_id}/signed-document").content
    assert pdfsig_verdicts(signed) == ["Signature is Valid."]

    added = ImageChops.subtract(_render(signed), _render(document))
    height = added.height
    # the box in pixels, image rows counted from the top
    left, right = round(BOX[0] * SCALE), round(BOX[2] * SCALE)
    top, bottom = height - round(BOX[3] * SCALE), height - round(BOX[1] * SCALE)
    assert _count(added) > 200, "the signature appearance drew nothing"
    x1, y1, x2, y2 = added.getbbox()
    # everything the signature drew is inside the box, and its border reaches the edges
    assert abs(x1 - left) <= 2 and abs(x2 - right) <= 2, (x1, x2, left, right)
    assert abs(y1 - top) <= 2 and abs(y2 - bottom) <= 2, (y1, y2, top, bottom)
    # upright: inside the border, the lines of text run left to right (much wider than
    # tall, starting near the left edge), not top to bottom
    inner = added.crop((left + 6, top + 6, right - 6, bottom - 6))
    assert _count(inner) > 100
    t1, u1, t2, u2 = inner.getbbox()
    assert (t2 - t1) > 2 * (u2 - u1), (t2 - t1, u2 - u1)
    assert t1 < inner.width / 4


def test_a_box_off_the_visible_page_is_refused_at_intake(server, signer):
    # 762 x 535 points as displayed: x up to 762 fits, y up to 600 does not
    document = page_with_geometry(90)
    fits = submit(server, document, signer.username, page="1", box="600,400,760,530")
    assert fits.status_code == 201, fits.text
    off = submit(server, document, signer.username, page="1", box="600,500,760,600")
    assert off.status_code == 422 and off.json()["code"] == "parameter_invalid"
    assert "762 x 535" in off.json()["detail"]


@pytest.fixture
def signer(db, box):
    from tests.factories import make_signer

    return make_signer(db, box)


@pytest.mark.parametrize("rotate", [0, 90, 180, 270])
def test_a_widget_rectangle_maps_back_to_the_box_the_reader_sees(rotate):
    """from_user_space undoes to_user_space on a cropped, rotated page, so a field the
    document already has is known by where it shows."""
    from pdf_structure.geometry import PageGeometry, from_user_space, to_user_space

    geometry = PageGeometry((10.0, 20.0, 582.0, 752.0), rotate)
    shown = (40.5, 60.25, 210.0, 130.0)
    rect = to_user_space(shown, geometry)
    if rotate == 0:
        assert rect == pytest.approx((50.5, 80.25, 220.0, 150.0))  # moved by the crop's corner
    assert from_user_space(rect, geometry) == pytest.approx(shown)
