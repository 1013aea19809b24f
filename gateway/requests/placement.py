"""Automatic placement of the signature: the signer block on the last page.

On an official document the signer block ends the last page: the line with the signer's
title (e.g. "GIÁM ĐỐC"), blank lines where the signature goes, then the line with the
signer's full name. Text extraction (pdfium) finds the name line and the nearest line
above it that overlaps it horizontally; the signature box is centred between them
(docs/vn-signature-format.md: the leader's image is centred between the title and
the name).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from gateway.errors import ParameterInvalid, SignerBlockNotFound
from gateway.requests.pdfium import open_pdf
from hsm_bridge.pades.fonts import text_width

__all__ = ["TOP_RIGHT_OFFSETS", "TextLine", "signer_block_box", "text_lines", "top_right_box"]

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
    with open_pdf(document) as pdf:
        page = pdf[page_index]
        textpage = page.get_textpage()
        lines = []
        for index in range(textpage.count_rects()):
            x1, y1, x2, y2 = textpage.get_rect(index)
            text = textpage.get_text_bounded(x1, y1, x2, y2).strip()
            if text:
                lines.append(TextLine(text, (x1, y1, x2, y2)))
        rotation = page.get_rotation()
    if rotation % 360:
        raise SignerBlockNotFound("automatic placement needs an upright last page")
    return sorted(lines, key=lambda line: -line.box[3])


def signer_block_box(lines: list[TextLine], display_name: str, *, aspect: float) -> Box:
    """The box (points, page space) for the signature of ``display_name`` in the signer
    block of a page whose text is ``lines`` (:func:`text_lines`): centred on the name
    line, between it and the title line above, ``aspect`` (width / height) kept. Raises
    SignerBlockNotFound."""
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
    x1, y1, x2, y2 = (round(v, 2) for v in box)
    return (x1, y1, x2, y2)


# Where an attachment's or copy's text line goes (docs/vn-signature-format.md: the top right
# of the first page): its box's top this far below the page's top, its right edge this
# far from the page's right edge (points; 8 mm and 15 mm, inside the top margin of
# 20 mm and the right margin of 15 to 20 mm of Decree 30's page layout).
TOP_RIGHT_OFFSETS = (8 * 72 / 25.4, 15 * 72 / 25.4)
# 10 pt text: its size, line height and the room the stamp leaves around it (points)
TEXT_SIZE = 10.0
_LINE_HEIGHT = 12.5
_PADDING = 16.0
# the widest signing time, as written under the text (ISO 8601, +07:00)
_TIME_SAMPLE = "2026-12-31T23:59:59+07:00"


def top_right_box(lines: list[str], page_size: tuple[float, float]) -> Box:
    """The box (points, page as displayed, ``page_size``: width, height) of a 10 pt text
    of ``lines`` plus the signing time line, at the top right of the page
    (:data:`TOP_RIGHT_OFFSETS`), as wide as the longest line in the appearance font
    (:func:`hsm_bridge.pades.fonts.text_width`) so that it is drawn at its size. Raises
    ParameterInvalid when a line does not fit half the page's width."""
    width, height = page_size
    widest = max(text_width(line, TEXT_SIZE) for line in [*lines, _TIME_SAMPLE])
    box_width = widest + _PADDING
    if box_width > width / 2:
        raise ParameterInvalid(
            f"the text is {widest:.0f} points wide at {TEXT_SIZE:g} pt: more than the top"
            f" right of page 1 holds ({width / 2 - _PADDING:.0f} points)"
        )
    box_height = (len(lines) + 1) * _LINE_HEIGHT + 8
    top, right = TOP_RIGHT_OFFSETS
    x2, y2 = max(width - right, box_width), max(height - top, box_height)
    return (round(x2 - box_width, 2), round(y2 - box_height, 2), round(x2, 2), round(y2, 2))
