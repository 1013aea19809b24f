"""How a visible signature looks: the signer's image (or the organisation's seal), or the
signature's text, drawn upright on the page as the reader sees it.

One piece of code for both sides: the bridge draws it into the signature it builds, and
the gateway's preview of the signature's place and look runs the same builder
(:func:`hsm_bridge.pades.builder.placeholder_signature`), so the tablet shows what will be
signed. The text is Vietnamese in an embedded font subset (:mod:`hsm_bridge.pades.fonts`);
the time is ISO 8601 in Vietnam time (VN-SIGNATURE-FORMAT: ``2026-11-30T14:05:09+07:00``).
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from typing import Any

from asn1crypto import x509
from PIL import Image
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.layout import AxisAlignment, BoxConstraints, Margins, SimpleBoxLayoutRule
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.stamp import TextStamp, TextStampStyle

from hsm_bridge.pades.fonts import EmScaledFontFactory, find_font
from hsm_bridge.pades.parameters import SignatureParameters

__all__ = [
    "IMAGE_MARGIN",
    "SEAL_MARGIN",
    "VIETNAM_TIME",
    "appearance_style",
    "local_time_text",
    "position_of",
]

# Points between a signature image and its box's edge. The seal is drawn at its real
# size: its box is its diameter, and its margin is only what keeps pyHanko's layout from
# finding the image wider than the box by a rounding error.
IMAGE_MARGIN = 2.0
SEAL_MARGIN = 0.01
# Signing times shown in appearances use Vietnam time, ISO 8601 (docs/vn-signature-format.md).
VIETNAM_TIME = dt.timezone(dt.timedelta(hours=7), "ICT")


def local_time_text(signing_time: dt.datetime) -> str:
    """``signing_time`` (aware) as shown in an appearance: ISO 8601 to the second, in
    Vietnam time (``2026-11-30T14:05:09+07:00``)."""
    return signing_time.astimezone(VIETNAM_TIME).isoformat(timespec="seconds")


def position_of(certificate: x509.Certificate) -> str:
    """The signer's position as their certificate names it: its title and organisation
    (X.520 title, organizationName), e.g. "Giám đốc Sở Tài chính tỉnh Hà Nam"; "" when
    it names neither."""
    subject = certificate.subject.native
    parts = [subject.get("title"), subject.get("organization_name")]
    return " ".join(str(p) for p in parts if p)


@dataclass(frozen=True)
class UprightTextStampStyle(TextStampStyle):
    """A text stamp that reads upright on a page with /Rotate: drawn in the box as the
    reader sees it and turned by the page's rotation through the appearance's /Matrix
    (ISO 32000-1 §12.5.5 maps the turned /BBox onto the widget's /Rect)."""

    page_rotation: int = 0

    def create_stamp(
        self, writer: Any, box: BoxConstraints, text_params: dict[str, Any]
    ) -> TextStamp:
        """A :class:`_TurnedTextStamp` for ``box`` (the widget's width and height in
        user space; swapped for a quarter turn)."""
        if self.page_rotation in (90, 270):
            box = BoxConstraints(width=box.height, height=box.width)
        stamp = _TurnedTextStamp(writer=writer, style=self, box=box, text_params=text_params)
        stamp.rotation = self.page_rotation
        return stamp


class _TurnedTextStamp(TextStamp):
    rotation = 0

    def as_form_xobject(self) -> Any:
        xobject = super().as_form_xobject()
        if self.rotation:
            w, h = self.box.width, self.box.height
            # counter-clockwise by the page's clockwise /Rotate, kept in the first quadrant
            matrix = {90: (0, 1, -1, 0, h, 0), 180: (-1, 0, 0, -1, w, h), 270: (0, -1, 1, 0, 0, w)}
            xobject[generic.pdf_name("/Matrix")] = generic.ArrayObject(
                generic.FloatObject(v) for v in matrix[self.rotation]
            )
        return xobject


def appearance_style(
    params: SignatureParameters,
    image_png: bytes | None,
    certificate: x509.Certificate,
    page_rotation: int,
) -> TextStampStyle | None:
    """The stamp style of the signature ``params`` describe, drawn upright on a page with
    /Rotate ``page_rotation``: None for an invisible signature; the image ``image_png``
    (the PNG whose SHA-256 ``params.image_sha256`` names; the caller checked it) centred
    in the box, a seal at its real size, with the signature's text over it when
    ``params.text_with_image``; the attachment text ``params.stamp_text`` with the time;
    else the signature's text (signer, position from ``certificate``, time)."""
    if not params.visible:
        return None
    if params.image_sha256 is not None:
        if image_png is None:
            raise ValueError("the signature's image is missing")
        image = Image.open(io.BytesIO(image_png)).convert("RGBA")
        return _image_style(
            image,
            page_rotation,
            SEAL_MARGIN if params.seal else IMAGE_MARGIN,
            text=params.text_with_image and not params.seal,
            position=position_of(certificate),
        )
    if params.stamp_text is not None:
        return _plain_text_style(params.stamp_text, page_rotation)
    return _signature_text_style(page_rotation, position_of(certificate))


def _image_style(
    image: Image.Image, page_rotation: int, margin: float, *, text: bool, position: str
) -> TextStampStyle:
    """The image, centred in the box less ``margin`` points on each side and scaled to
    fit it (its aspect kept), fully opaque where the PNG is; no border. With ``text``,
    the signature's text (:func:`_signature_text_style`) is written over it."""
    words = _signature_text_style(page_rotation, position) if text else None
    return UprightTextStampStyle(
        stamp_text=words.stamp_text if words is not None else "",
        text_box_style=words.text_box_style if words is not None else TextBoxStyle(),
        border_width=0,
        background=PdfImage(image),
        background_opacity=1.0,
        background_layout=SimpleBoxLayoutRule(
            x_align=AxisAlignment.ALIGN_MID,
            y_align=AxisAlignment.ALIGN_MID,
            margins=Margins.uniform(margin),
        ),
        page_rotation=page_rotation,
    )


def _text_box_style(size: int) -> tuple[TextBoxStyle, bool]:
    """Text of ``size`` points in the embedded Vietnamese font (:func:`find_font`), and
    whether that font was found (else pyHanko's Latin-only default)."""
    font = find_font()
    if font is None:
        return TextBoxStyle(font_size=size), False
    # the font engine and the text box must agree on the size (pyHanko issue #733)
    return TextBoxStyle(font=EmScaledFontFactory(font, font_size=size), font_size=size), True


def _signature_text_style(page_rotation: int, position: str) -> TextStampStyle:
    """The signature's text: who signed (the certificate's common name), their
    ``position`` when known, and the signing time; Vietnamese in the embedded font."""
    text_box, vietnamese = _text_box_style(9)
    line = position.replace("%", "%%") + "\n" if position else ""
    text = (
        f"Ký số bởi: %(signer)s\n{line}Thời gian: %(local_time)s"
        if vietnamese
        else f"Signed by: %(signer)s\n{line}%(local_time)s"
    )
    return UprightTextStampStyle(
        stamp_text=text, text_box_style=text_box, page_rotation=page_rotation
    )


def _plain_text_style(text: str, page_rotation: int) -> TextStampStyle:
    """``text`` (escaped for pyHanko's %-interpolation) and the signing time under it:
    10 pt upright black text in the embedded Vietnamese font, no border
    (docs/vn-signature-format.md, attachments signed by the organisation)."""
    text_box, _ = _text_box_style(10)
    return UprightTextStampStyle(
        stamp_text=text.replace("%", "%%") + "\n%(local_time)s",
        text_box_style=text_box,
        border_width=0,
        page_rotation=page_rotation,
    )
