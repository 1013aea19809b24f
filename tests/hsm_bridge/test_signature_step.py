"""The bridge builds what it signs (docs/design.md invariant 1), from the attacker's position
of a compromised web tier: what the tablet showed is what the bridge draws, nothing
else on the page changes, the time is the bridge's own, and the image is the approved
one. Renders come from two engines nobody here wrote: pdfium (pypdfium2) and poppler
(``pdftoppm``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageChops
from pyhanko.pdf_utils.reader import PdfFileReader

from gateway.bridges import bridge_config
from gateway.requests.rendering import render_page_png
from gateway.secrets_at_rest import InstallationKeys
from hsm_bridge import Bridge
from hsm_bridge.errors import ActivationInvalid, CertificateNotUsable
from hsm_bridge.pades import SignatureParameters
from hsm_bridge.sam.activation import ActivationIssuer
from signing_gateway.demo.images import demo_signature_png
from signing_gateway.demo.sample_pdf import sample_pdf
from tests.commands import cli
from tests.conftest import approve, submit
from tests.factories import make_signer
from tests.pdf_reading import appearance_text
from tests.sads import request_for

WIDTH = 600
BOX = (320.0, 90.0, 520.0, 170.0)
PAGE_HEIGHT = 842.0  # sample_pdf pages are A4


def _png(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def _poppler(pdf: bytes, folder: Path, name: str) -> Image.Image:
    tool = shutil.which("pdftoppm")
    assert tool is not None, "poppler-utils is a test dependency (scripts/system-deps.sh)"
    source = folder / f"{name}.pdf"
    source.write_bytes(pdf)
    subprocess.run(
        [tool, "-png", "-r", "72", "-singlefile", str(source), str(folder / name)],
        check=True,
        timeout=60,
    )
    return Image.open(folder / f"{name}.png").convert("RGB")


def _outside(image: Image.Image, box_pixels: tuple[int, int, int, int]) -> Image.Image:
    """``image`` with the box (and 2 px around it, for anti-aliasing) painted white."""
    copy = image.copy()
    left, top, right, bottom = box_pixels
    copy.paste((255, 255, 255), (left - 2, top - 2, right + 2, bottom + 2))
    return copy


def _box_pixels(scale: float) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = BOX
    return (
        int(x1 * scale),
        int((PAGE_HEIGHT - y2) * scale),
        int(x2 * scale) + 1,
        int((PAGE_HEIGHT - y1) * scale) + 1,
    )


@pytest.mark.invariant(1)
def test_the_tablets_preview_is_what_the_bridge_draws_and_nothing_else_changes(
    installation, server, db, box, tmp_path
):
    person = make_signer(db, box)
    (tmp_path / "ky.png").write_bytes(demo_signature_png(seed=7))
    kept = cli(installation, "users", "signature-image", person.username, str(tmp_path / "ky.png"))
    assert kept.returncode == 0, kept.stderr
    document = sample_pdf(["TỜ TRÌNH", "Đề nghị chi 5.000.000 đồng", "GIÁM ĐỐC"])
    created = submit(server, document, person.username, page="1", box=",".join(map(str, BOX)))
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    with server.tablet(person.username, person.password) as tablet:
        page = f"/mobile/v1/signing-requests/{request_id}/pages/1.png?width={WIDTH}"
        plain = tablet.get(page)
        preview = tablet.get(page + "&signature=true")
        assert plain.status_code == 200 and preview.status_code == 200, preview.text
        decision = approve(tablet, request_id, person.otp(), document)
    assert decision.json()["status"] == "signed", decision.text
    with server.client() as http:
        signed = http.get(f"/api/v1/signing-requests/{request_id}/signed-document").content

    scale = WIDTH / 595.0
    shown = _png(preview.content)
    drawn = _png(render_page_png(signed, 1, WIDTH, max_width=2000))
    # what the tablet showed inside the box is what the signed page shows (pdfium)
    assert ImageChops.difference(shown, drawn).getbbox() is None
    # and the signature changed nothing outside its box, in pdfium and in poppler
    original = _png(plain.content)
    assert ImageChops.difference(original, drawn).getbbox() is not None  # ink was drawn
    pixels = _box_pixels(scale)
    assert (
        ImageChops.difference(_outside(original, pixels), _outside(drawn, pixels)).getbbox() is None
    )
    before, after = _poppler(document, tmp_path, "before"), _poppler(signed, tmp_path, "after")
    assert ImageChops.difference(before, after).getbbox() is not None
    pixels = _box_pixels(1.0)
    assert (
        ImageChops.difference(_outside(before, pixels), _outside(after, pixels)).getbbox() is None
    )


@pytest.fixture(scope="module")
def issuer(installation) -> ActivationIssuer:
    return ActivationIssuer(InstallationKeys.load(installation.secrets_dir).activation_key)


def _bridge(installation, clock) -> Bridge:
    config = bridge_config(installation, InstallationKeys.load(installation.secrets_dir))
    return Bridge(config, clock=clock)


@pytest.mark.invariant(1)
def test_the_signing_time_is_the_bridges_clock(installation, demo_keys, issuer):
    """Break 2: the web tier set the CMS signingTime and /M to 2025-01-01. The bridge
    writes its own clock's time into both and into the appearance."""
    moment = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=30)
    bridge = _bridge(installation, lambda: moment)
    ref, mechanism = demo_keys["leader1"]
    document = sample_pdf(["Giấy mời"])
    params = SignatureParameters(page=1, box=BOX)
    request = request_for(
        issuer,
        ref,
        mechanism,
        document,
        bridge.certificate(ref),
        params,
        now=moment,
    )
    signed = bridge.sign(request)
    (signature,) = PdfFileReader(io.BytesIO(signed)).embedded_signatures
    assert signature.self_reported_timestamp == moment
    assert signature.sig_object["/M"].startswith("D:" + moment.strftime("%Y%m%d"))
    shown = moment.astimezone(dt.timezone(dt.timedelta(hours=7))).isoformat(timespec="seconds")
    assert shown in appearance_text(signed)


@pytest.mark.invariant(1)
def test_a_sad_outlives_nothing_the_bridge_clock_says(installation, demo_keys, issuer):
    """A SAD issued five minutes before the bridge's clock is expired there."""
    moment = dt.datetime.now(dt.UTC)
    bridge = _bridge(installation, lambda: moment + dt.timedelta(seconds=121))
    ref, mechanism = demo_keys["leader1"]
    document = sample_pdf(["Hết hạn"])
    request = request_for(issuer, ref, mechanism, document, bridge.certificate(ref), now=moment)
    with pytest.raises(ActivationInvalid) as refused:
        bridge.sign(request)
    assert refused.value.reason == "expired"


@pytest.mark.invariant(6)
def test_a_certificate_past_its_end_at_the_bridges_clock_signs_nothing(
    installation, demo_keys, issuer
):
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=3650)
    bridge = _bridge(installation, lambda: later)
    ref, mechanism = demo_keys["leader1"]
    document = sample_pdf(["Quá hạn"])
    request = request_for(issuer, ref, mechanism, document, bridge.certificate(ref), now=later)
    with pytest.raises(CertificateNotUsable):
        bridge.sign(request)


@pytest.mark.invariant(1)
def test_only_the_approved_image_is_drawn(installation, demo_keys, issuer):
    """Break 2: the widget's appearance was replaced by text naming another signer. The
    image is named by its SHA-256 in the approved parameters: another one is refused,
    and the refusal spends the SAD."""
    bridge = _bridge(installation, lambda: dt.datetime.now(dt.UTC))
    ref, mechanism = demo_keys["leader1"]
    approved, other = demo_signature_png(seed=1), demo_signature_png(seed=2)
    params = SignatureParameters(page=1, box=BOX, image_sha256=hashlib.sha256(approved).hexdigest())
    document = sample_pdf(["Quyết định"])
    request = request_for(issuer, ref, mechanism, document, bridge.certificate(ref), params)
    swapped = dataclasses.replace(request, images={params.image_sha256: other})
    with pytest.raises(ActivationInvalid) as refused:
        bridge.sign(swapped)
    assert refused.value.reason == "wrong_image"
    with pytest.raises(ActivationInvalid) as spent:
        bridge.sign(dataclasses.replace(request, images={params.image_sha256: approved}))
    assert spent.value.reason == "reused"
    fresh = request_for(issuer, ref, mechanism, document, bridge.certificate(ref), params)
    signed = bridge.sign(dataclasses.replace(fresh, images={params.image_sha256: approved}))
    assert signed.startswith(document)
