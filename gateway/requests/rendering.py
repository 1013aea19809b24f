"""Page previews rendered with pypdfium2 (PDFium) from the exact bytes to be signed. Runs
in a document worker (:mod:`gateway.requests.sandbox`), never in the service itself."""

from __future__ import annotations

import io

from gateway.errors import NotFound, ParameterInvalid
from gateway.requests.pdfium import open_pdf

__all__ = ["render_page_png"]

# Largest bitmap rendered (pixels): 2000 x 4000, about 32 MB of RGBA.
MAX_PIXELS = 8_000_000


def render_page_png(document: bytes, page_number: int, width: int, *, max_width: int) -> bytes:
    """PNG bytes of page ``page_number`` (1-based) scaled to ``width`` pixels wide,
    honouring /Rotate and the CropBox as viewers do, with the appearances of form fields
    (e.g. earlier visible signatures).

    Raises NotFound for a page outside the document and ParameterInvalid for a width
    outside 16..``max_width``."""
    if not 16 <= width <= max_width:
        raise ParameterInvalid(f"width must be between 16 and {max_width} pixels")
    with open_pdf(document) as pdf:
        # form fields (earlier signatures' widgets) are drawn only with a form env
        pdf.init_forms()
        if not 1 <= page_number <= len(pdf):
            raise NotFound(f"the document has {len(pdf)} pages")
        page = pdf[page_number - 1]
        upright = page.get_rotation() % 180 == 0
        page_width = page.get_width() if upright else page.get_height()
        page_height = page.get_height() if upright else page.get_width()
        if width * (page_height * width / page_width) > MAX_PIXELS:
            page.close()
            raise ParameterInvalid("this page is too tall to preview at that width")
        bitmap = page.render(scale=width / page_width, may_draw_forms=True)
        image = bitmap.to_pil()
        out = io.BytesIO()
        image.save(out, format="PNG", optimize=False)
        page.close()
        return out.getvalue()
