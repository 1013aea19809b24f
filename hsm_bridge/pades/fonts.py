"""Fonts for signature appearances: an embedded subset of an OpenType font with full
Vietnamese coverage, through pyHanko's glyph accumulator.

pyHanko 0.38 writes the CIDFont ``/W`` widths in font units; PDF wants thousandths of
an em (ISO 32000-1 §9.7.4.3). With a 1000-unit font that is the same number, but
TrueType fonts such as DejaVu or Liberation use 2048 units per em and readers then
space the letters twice too wide. :class:`EmScaledGlyphAccumulator` scales them.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyhanko.pdf_utils.font.opentype import GlyphAccumulator, GlyphAccumulatorFactory

__all__ = ["FONT_CANDIDATES", "EmScaledFontFactory", "find_font", "missing_glyphs", "text_width"]

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
)


def find_font() -> str | None:
    """Path of the first installed font of :data:`FONT_CANDIDATES`, or None."""
    return next((p for p in FONT_CANDIDATES if Path(p).exists()), None)


@functools.lru_cache(maxsize=4)
def _metrics(path: str) -> tuple[dict[int, str], dict[str, tuple[int, int]], int]:
    from fontTools.ttLib import TTFont

    with TTFont(path, lazy=True) as font:
        return dict(font.getBestCmap()), dict(font["hmtx"].metrics), font["head"].unitsPerEm


def missing_glyphs(text: str) -> list[str]:
    """The characters of ``text`` (NFC) that the appearance font (:func:`find_font`)
    cannot draw, in order of appearance; every non-ASCII one when no font is installed
    (pyHanko's default is Latin-only)."""
    path = find_font()
    text = unicodedata.normalize("NFC", text)
    if path is None:
        return list(dict.fromkeys(c for c in text if ord(c) > 126))
    cmap = _metrics(path)[0]
    return list(dict.fromkeys(c for c in text if ord(c) not in cmap and not c.isspace()))


def text_width(text: str, size: float) -> float:
    """The advance width of ``text`` (NFC) in points at ``size`` points in the
    appearance font, from its horizontal metrics (no kerning); an estimate of half an
    em a character when no font is installed."""
    path = find_font()
    text = unicodedata.normalize("NFC", text)
    if path is None:
        return len(text) * size * 0.5
    cmap, advances, units = _metrics(path)
    total = sum(advances.get(cmap.get(ord(c), ".notdef"), (units // 2, 0))[0] for c in text)
    return total * size / units


class EmScaledGlyphAccumulator(GlyphAccumulator):
    """A glyph accumulator whose ``/W`` widths are in thousandths of an em.

    Layout keeps working in font units (HarfBuzz advances and glyph widths agree
    there); only the widths written into the font dictionary are rescaled."""

    def prepare_write(self) -> None:
        """Write the font with ``/W`` in thousandths of an em."""
        in_font_units = self._glyphs
        self._glyphs = {
            gid: (cid, round(width * 1000 / self.units_per_em))
            for gid, (cid, width) in in_font_units.items()
        }
        try:
            super().prepare_write()  # type: ignore[no-untyped-call]  # unannotated in pyHanko
        finally:
            self._glyphs = in_font_units


@dataclass(frozen=True)
class EmScaledFontFactory(GlyphAccumulatorFactory):
    """:class:`GlyphAccumulatorFactory` producing :class:`EmScaledGlyphAccumulator`."""

    def create_font_engine(self, writer: Any, obj_stream: Any = None) -> GlyphAccumulator:
        """Open the font file and build the accumulator for ``writer``."""
        engine = super().create_font_engine(writer, obj_stream)
        engine.__class__ = EmScaledGlyphAccumulator
        return engine
