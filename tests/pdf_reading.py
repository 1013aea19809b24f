"""Reading signed PDFs as a reader does."""

from __future__ import annotations

import io

import pypdfium2


def appearance_text(pdf: bytes) -> str:
    """The page's text after the signature widget is flattened into it (pdfium)."""
    document = pypdfium2.PdfDocument(io.BytesIO(pdf))
    document.init_forms()
    try:
        document[0].flatten()
        flattened = io.BytesIO()
        document.save(flattened)
    finally:
        document.close()
    again = pypdfium2.PdfDocument(flattened.getvalue())
    try:
        return again[0].get_textpage().get_text_range()
    finally:
        again.close()
