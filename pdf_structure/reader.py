"""One way to open a PDF for reading, on both tiers: pyHanko's reader, non-strict (as
viewers are), with pyHanko's decoding limits, and with each object stream's header
read once.

pyHanko's own lookup of an object inside an object stream (PDF 1.5, ISO 32000-1
§7.5.7) copies the stream's decoded data and rescans its header from the start for
every object: a document whose thousands of objects share one object stream costs
time quadratic in their number (5,000 pages in 82 KB took 97 s). Here the header is
parsed once per stream into an index, so each lookup costs only its own object.
pypdf fixed the same pattern upstream (py-pdf/pypdf#3677).
"""

from __future__ import annotations

import io
from typing import Any

from pyhanko.pdf_utils import generic, misc
from pyhanko.pdf_utils.decode_limits import DecodeLimits, DecodePurpose
from pyhanko.pdf_utils.reader import PdfFileReader

__all__ = ["IndexedPdfReader", "open_reader"]


class IndexedPdfReader(PdfFileReader):
    """:class:`PdfFileReader` that indexes each object stream once (object number →
    offset in the decoded data) instead of rescanning it per object."""

    def __init__(self, stream: Any, *, strict: bool, decode_limits: DecodeLimits | None) -> None:
        self._object_stream_index: dict[int, tuple[bytes, int, dict[int, tuple[int, int]]]] = {}
        super().__init__(stream, strict=strict, decode_limits=decode_limits)

    def _get_object_from_stream(self, idnum: int, stmnum: int, idx: int) -> Any:
        data, first, index = self._indexed(stmnum)
        found = index.get(idnum)
        if found is None or (self.strict and found[0] != idx):
            if self.strict:
                raise misc.PdfStrictReadError("Object not found in its object stream")
            return generic.NullObject()
        buffer = io.BytesIO(data)
        buffer.seek(first + found[1])
        try:
            obj = generic.read_object(buffer, generic.Reference(idnum, 0, self))
        except (misc.PdfStreamError, misc.PdfReadError):
            if self.strict:
                raise
            return generic.NullObject()
        if isinstance(obj, generic.StreamObject | generic.IndirectObject) and self.strict:
            raise misc.PdfStrictReadError("Encountered forbidden object type in object stream")
        return obj

    def _indexed(self, stmnum: int) -> tuple[bytes, int, dict[int, tuple[int, int]]]:
        """The object stream ``stmnum``'s decoded data (bounded by pyHanko's object
        stream limits), its /First and its header as object number → (index,
        offset); the first occurrence of a number wins, as in pyHanko."""
        cached = self._object_stream_index.get(stmnum)
        if cached is not None:
            return cached
        stream = generic.Reference(stmnum, 0, self).get_object()
        if not isinstance(stream, generic.StreamObject) or stream.get("/Type") != "/ObjStm":
            raise misc.PdfReadError(f"object {stmnum} is not an object stream")
        data = stream.read_data(DecodePurpose.OBJECT_STREAM)
        first, count = int(stream["/First"]), int(stream["/N"])
        header = io.BytesIO(data[:first])
        index: dict[int, tuple[int, int]] = {}
        for position in range(count):
            try:
                misc.read_non_whitespace(header, seek_back=True)
                number = int(generic.NumberObject.read_from_stream(header))
                misc.read_non_whitespace(header, seek_back=True)
                offset = int(generic.NumberObject.read_from_stream(header))
            except (ValueError, misc.PdfReadError):
                if self.strict:
                    raise misc.PdfStrictReadError(
                        "Object stream header possibly corrupted"
                    ) from None
                break
            index.setdefault(number, (position, offset))
        entry = (data, first, index)
        self._object_stream_index[stmnum] = entry
        return entry


def open_reader(data: bytes, *, decode_limits: DecodeLimits | None = None) -> IndexedPdfReader:
    """``data`` (PDF bytes) opened for reading, non-strict, with ``decode_limits``
    (pyHanko's defaults for untrusted input when None). Raises what pyHanko raises for
    a file it cannot parse (PdfReadError, and ValueError or AssertionError on some
    damaged files)."""
    return IndexedPdfReader(io.BytesIO(data), strict=False, decode_limits=decode_limits)
