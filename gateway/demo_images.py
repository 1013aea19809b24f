"""Plausible images for the demo installation: a handwritten signature in blue ink on a
transparent background (PNG), drawn with Pillow from a few strokes."""

from __future__ import annotations

import io
import math

from PIL import Image, ImageDraw

__all__ = ["BLUE_INK", "demo_signature_png"]

BLUE_INK = (20, 40, 170, 255)


def demo_signature_png(seed: int = 7, *, width: int = 600, height: int = 240) -> bytes:
    """A signature-like scribble (PNG bytes, RGBA, blue strokes, transparent elsewhere);
    ``seed`` varies its shape."""
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    points = []
    for i in range(220):
        t = i / 219
        x = 40 + t * (width - 80)
        y = height / 2 + math.sin(t * (9 + seed % 5) * math.pi) * height * 0.28 * (1 - 0.5 * t)
        y += math.sin(t * 3.1 + seed) * height * 0.08
        points.append((x, y))
    draw.line(points, fill=BLUE_INK, width=7, joint="curve")
    # an underline flourish
    draw.line(
        [(width * 0.2, height * 0.82), (width * 0.55, height * 0.78), (width * 0.9, height * 0.84)],
        fill=BLUE_INK,
        width=5,
        joint="curve",
    )
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
