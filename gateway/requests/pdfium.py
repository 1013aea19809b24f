"""The one door to PDFium (pypdfium2) in this process.

PDFium is not thread-safe: two threads inside it at once (a page preview while automatic
placement extracts text) crash the whole process (``trap int3 in libpdfium.so``). Every
use of pypdfium2 in the service goes through :func:`open_pdf`, which holds one
process-wide lock for as long as the document is open.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pypdfium2

__all__ = ["open_pdf"]

_LOCK = threading.Lock()


@contextmanager
def open_pdf(document: bytes) -> Iterator[pypdfium2.PdfDocument]:
    """``document`` (PDF bytes) opened by PDFium, with the process-wide PDFium lock held
    until the block ends; the document is closed on the way out. Raises pypdfium2's
    ``PdfiumError`` for a document PDFium cannot open."""
    with _LOCK:
        pdf = pypdfium2.PdfDocument(document)
        try:
            yield pdf
        finally:
            pdf.close()
