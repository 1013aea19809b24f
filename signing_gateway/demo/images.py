"""Plausible images for the demo installation, drawn with Pillow: a handwritten signature
in blue ink and an organisation's round seal in red, both on a transparent background
(PNG)."""

from __future__ import annotations

import io
import math

from PIL import Image, ImageDraw

__all__ = ["BLUE_INK", "DEMO_SEAL_DIAMETER_MM", "RED_INK", "demo_seal_png", "demo_signature_png"]

BLUE_INK = (20, 40, 170, 255)
RED_INK = (210, 20, 30, 255)
# a common size of a provincial department's seal
DEMO_SEAL_DIAMETER_MM = 36.0


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


def demo_seal_png(size: int = 600) -> bytes:
    """A round seal (PNG bytes, RGBA, ``size`` pixels square, red, transparent
    elsewhere) filling the image edge to edge: two outer rings, a band of marks where
    the organisation's name would run, an inner ring and a five-pointed star."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    c = size / 2
    for radius, width in ((c - 2, 14), (c - 26, 5), (c * 0.55, 6)):
        draw.ellipse((c - radius, c - radius, c + radius, c + radius), outline=RED_INK, width=width)
    # the band between the rings: short strokes standing for the lettering
    for i in range(48):
        if 20 <= i <= 28:
            continue  # a gap at the bottom, as on real seals
        angle = math.radians(90 + i * 7.5)
        inner, outer = c * 0.64, c * 0.82
        draw.line(
            [
                (c + inner * math.cos(angle), c - inner * math.sin(angle)),
                (c + outer * math.cos(angle), c - outer * math.sin(angle)),
            ],
            fill=RED_INK,
            width=9,
        )
    star = [
        (
            c + (c * 0.42 if k % 2 == 0 else c * 0.17) * math.cos(math.radians(90 + k * 36)),
            c - (c * 0.42 if k % 2 == 0 else c * 0.17) * math.sin(math.radians(90 + k * 36)),
        )
        for k in range(10)
    ]
    draw.polygon(star, fill=RED_INK)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
