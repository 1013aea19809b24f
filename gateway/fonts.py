"""Fonts for signature appearances: an embedded subset of an OpenType font with full
Vietnamese coverage, through pyHanko's glyph accumulator.

pyHanko 0.38 writes the CIDFont ``/W`` widths in font units; PDF wants thousandths of
an em (ISO 32000-1 §9.7.4.3). With a 1000-unit font that is the same number, but
TrueType fonts such as DejaVu or Liberation use 2048 units per em and readers then
space the letters twice too wide. :class:`EmScaledGlyphAccumulator` scales them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyhanko.pdf_utils.font.opentype import GlyphAccumulator, GlyphAccumulatorFactory

__all__ = ["FONT_CANDIDATES", "EmScaledFontFactory", "find_font"]

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
)


def find_font() -> str | None:
    """Path of the first installed font of :data:`FONT_CANDIDATES`, or None."""
    return next((p for p in FONT_CANDIDATES if Path(p).exists()), None)


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
            super().prepare_write()
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
