"""Automatic placement of the signature: the signer block on the last page.

On an official document the signer block ends the last page: the line with the signer's
title (e.g. "GIÁM ĐỐC"), blank lines where the signature goes, then the line with the
signer's full name. Text extraction (pdfium) finds the name line and the nearest line
above it that overlaps it horizontally; the signature box is centred between them
(../shared/VN-SIGNATURE-FORMAT.md: the leader's image is centred between the title and
the name).
"""

from __future__ import annotations

import io
import unicodedata
from dataclasses import dataclass

import pypdfium2

from gateway.errors import SignerBlockNotFound

__all__ = ["TextLine", "signer_block_box", "text_lines"]

Box = tuple[float, float, float, float]
# the gap between the two lines must hold a signature at least this tall (points)
MIN_GAP = 24.0


@dataclass(frozen=True, slots=True)
class TextLine:
    """A line of text on a page and its box (x1, y1, x2, y2, points, page space)."""

    text: str
    box: Box


def _normalised(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def text_lines(document: bytes, page_index: int) -> list[TextLine]:
    """The text runs pdfium finds on page ``page_index`` (0-based), top to bottom."""
    pdf = pypdfium2.PdfDocument(io.BytesIO(document))
    try:
        page = pdf[page_index]
        textpage = page.get_textpage()
        lines = []
        for index in range(textpage.count_rects()):
            x1, y1, x2, y2 = textpage.get_rect(index)
            text = textpage.get_text_bounded(x1, y1, x2, y2).strip()
            if text:
                lines.append(TextLine(text, (x1, y1, x2, y2)))
        rotation = page.get_rotation()
    finally:
        pdf.close()
    if rotation % 360:
        raise SignerBlockNotFound("automatic placement needs an upright last page")
    return sorted(lines, key=lambda line: -line.box[3])


def signer_block_box(
    document: bytes, page_count: int, display_name: str, *, aspect: float
) -> tuple[int, Box]:
    """The 1-based page and the box (points, page as displayed) for the signature of
    ``display_name`` on the last page: centred on the name line, between it and the
    title line above, ``aspect`` (width / height) kept. Raises SignerBlockNotFound."""
    lines = text_lines(document, page_count - 1)
    wanted = _normalised(display_name)
    names = [line for line in lines if wanted and wanted in _normalised(line.text)]
    if not names:
        raise SignerBlockNotFound(f"no line with {display_name!r} on the last page")
    name = names[-1]  # the lowest: the signer block ends the page
    above = [
        line
        for line in lines
        if line.box[1] >= name.box[3] and line.box[0] < name.box[2] and line.box[2] > name.box[0]
    ]
    if not above:
        raise SignerBlockNotFound("no title line above the signer's name")
    title = min(above, key=lambda line: line.box[1] - name.box[3])
    gap = title.box[1] - name.box[3]
    if gap < MIN_GAP:
        raise SignerBlockNotFound("no room for a signature between the title and the name")
    height = gap * 0.8
    width = height * aspect
    centre_x = (name.box[0] + name.box[2]) / 2
    bottom = name.box[3] + gap * 0.1
    box = (centre_x - width / 2, bottom, centre_x + width / 2, bottom + height)
    return page_count, tuple(round(v, 2) for v in box)  # type: ignore[return-value]
