"""Resource limits on a document, checked before anything draws or rewrites it.

PDFium, which draws previews and extracts text, inflates whole streams: a 1 MB file
whose page lists one 1 GiB content stream eight times took a server from 173 MB to
2.2 GB. pyHanko bounds what *it* decodes (its ``DecodeLimits``), not what a renderer
will. :func:`check_limits` measures, without keeping it, what each page draws from:
its content streams (as often as they are listed), the form XObjects, images, fonts,
patterns, shadings, soft masks and annotation appearances its resources name, down to
``max_depth`` levels; Flate data is inflated in bounded chunks and only counted.

Both tiers call it with the same :class:`DocumentLimits`: the gateway at intake (so an
accepted document can be previewed and signed), the bridge before it builds a signature
(a compromised web tier may hand it anything a signer was shown).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from pyhanko.pdf_utils import generic

from pdf_structure.geometry import pages_with_resources

__all__ = ["DocumentLimits", "LimitExceeded", "check_limits", "human_bytes"]

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class DocumentLimits:
    """What one document may ask of a reader. ``max_pages``: pages in the page tree.
    ``max_stream_bytes``: one stream, decoded (bytes). ``max_page_bytes``: everything
    one page draws from, decoded (bytes; a stream listed twice counts twice).
    ``max_image_pixels``: one image's width × height. ``max_depth``: nesting of forms
    and resources. ``max_objects``: objects visited while measuring."""

    max_pages: int = 5_000
    max_stream_bytes: int = 128 * MiB
    max_page_bytes: int = 256 * MiB
    max_image_pixels: int = 64_000_000
    max_depth: int = 32
    max_objects: int = 2_000_000


class LimitExceeded(ValueError):
    """The document asks more than :class:`DocumentLimits` allow; the message says
    which limit, where, in words a clerk can pass on. ``limit``: ``pages``,
    ``stream``, ``page``, ``image``, ``depth`` or ``objects``."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


def human_bytes(count: int) -> str:
    """``count`` bytes as MB or GB (decimal prefixes, one decimal)."""
    if count >= 1_000_000_000:
        return f"{count / 1_000_000_000:.1f} GB"
    return f"{count / 1_000_000:.1f} MB"


def check_limits(pages_root: Any, limits: DocumentLimits) -> int:
    """Check every page under the /Pages node ``pages_root`` against ``limits``; the
    page count. Raises :class:`LimitExceeded`, and ValueError for a page tree that
    meets a node twice."""
    pages = pages_with_resources(pages_root)
    if len(pages) > limits.max_pages:
        raise LimitExceeded(
            "pages", f"the document has {len(pages)} pages; the limit is {limits.max_pages}"
        )
    meter = _Meter(limits)
    for number, (page, resources) in enumerate(pages, start=1):
        meter.page(number, page, resources)
    return len(pages)


class _Meter:
    """Decoded sizes, measured once per stream and summed per page."""

    def __init__(self, limits: DocumentLimits) -> None:
        self.limits = limits
        self.sizes: dict[Any, int] = {}
        self.visited = 0

    def page(self, number: int, page: Any, resources: Any) -> None:
        total = 0
        contents = _resolve(page.get("/Contents"))
        listed = contents if isinstance(contents, generic.ArrayObject) else [contents]
        for item in listed:  # a stream listed twice is drawn twice
            total += self._stream_size(item, number)
        seen: set[Any] = set()
        total += self._resources(resources, number, 0, seen)
        for annotation in _resolve(page.get("/Annots")) or []:
            appearance = _resolve(_get(_resolve(annotation), "/AP"))
            total += self._appearance(_get(appearance, "/N"), number, 1, seen)
        if total > self.limits.max_page_bytes:
            raise LimitExceeded(
                "page",
                f"page {number} draws from {human_bytes(total)} of decompressed data;"
                f" the limit is {human_bytes(self.limits.max_page_bytes)}",
            )

    def _resources(self, resources: Any, number: int, depth: int, seen: set[Any]) -> int:
        resources = _resolve(resources)
        if not isinstance(resources, generic.DictionaryObject):
            return 0
        if depth > self.limits.max_depth:
            raise LimitExceeded(
                "depth", f"page {number} nests forms deeper than {self.limits.max_depth} levels"
            )
        total = 0
        for category in ("/XObject", "/Pattern", "/Shading", "/Font", "/ExtGState"):
            for value in (_resolve(_get(resources, category)) or {}).values():
                total += self._resource(category, value, number, depth, seen)
        return total

    def _resource(self, category: str, value: Any, number: int, depth: int, seen: set[Any]) -> int:
        key = _key(value)
        if key is not None and key in seen:
            return 0
        if key is not None:
            seen.add(key)
        obj = _resolve(value)
        if category == "/Font":
            return self._font(obj, number, depth, seen)
        if category == "/ExtGState":
            mask = _resolve(_get(obj, "/SMask"))
            return self._appearance(_get(mask, "/G"), number, depth + 1, seen)
        total = 0
        if isinstance(obj, generic.StreamObject):
            if obj.get("/Subtype") == "/Image":
                self._image(obj, number)
            total += self._stream_size(value, number)
            total += self._resources(obj.get("/Resources"), number, depth + 1, seen)
        shading = _get(obj, "/Shading")
        if shading is not None:
            total += self._resource("/Shading", shading, number, depth + 1, seen)
        return total

    def _font(self, font: Any, number: int, depth: int, seen: set[Any]) -> int:
        total = 0
        for descendant in _resolve(_get(font, "/DescendantFonts")) or []:
            total += self._font(_resolve(descendant), number, depth + 1, seen)
        descriptor = _resolve(_get(font, "/FontDescriptor"))
        for entry in ("/FontFile", "/FontFile2", "/FontFile3"):
            program = _get(descriptor, entry)
            if program is not None:
                total += self._stream_size(program, number)
        for procedure in (_resolve(_get(font, "/CharProcs")) or {}).values():
            total += self._stream_size(procedure, number)
        return total + self._resources(_get(font, "/Resources"), number, depth + 1, seen)

    def _appearance(self, appearance: Any, number: int, depth: int, seen: set[Any]) -> int:
        appearance = _resolve(appearance)
        if isinstance(appearance, generic.StreamObject):
            return self._resource("/XObject", appearance, number, depth, seen)
        if isinstance(appearance, generic.DictionaryObject):  # one per appearance state
            return sum(
                self._resource("/XObject", state, number, depth, seen)
                for state in appearance.values()
            )
        return 0

    def _image(self, image: Any, number: int) -> None:
        try:
            pixels = int(_resolve(image.get("/Width", 0))) * int(_resolve(image.get("/Height", 0)))
        except (TypeError, ValueError):
            pixels = 0
        if pixels > self.limits.max_image_pixels:
            raise LimitExceeded(
                "image",
                f"an image on page {number} has {pixels / 1e6:.0f} million pixels;"
                f" the limit is {self.limits.max_image_pixels / 1e6:.0f} million",
            )

    def _stream_size(self, value: Any, number: int) -> int:
        self.visited += 1
        if self.visited > self.limits.max_objects:
            raise LimitExceeded(
                "objects", f"the document has more than {self.limits.max_objects} objects to draw"
            )
        key = _key(value)
        if key is not None and key in self.sizes:
            return self.sizes[key]
        stream = _resolve(value)
        size = _decoded_size(stream, self.limits.max_stream_bytes, number)
        if key is not None:
            self.sizes[key] = size
        return size


# how much an encoding may expand its input at most, for those not inflated here
_WORST_RATIO = {"/LZWDecode": 2_731, "/LZW": 2_731, "/RunLengthDecode": 128, "/RL": 128}


def _decoded_size(stream: Any, cap: int, number: int) -> int:
    """The decoded size of ``stream`` (0 for anything else), counted up to ``cap``:
    Flate is inflated in bounded chunks, ASCII hex and base-85 shrink, an image codec's
    output is judged by its pixels instead, LZW and run-length by their worst case."""
    if not isinstance(stream, generic.StreamObject):
        return 0
    raw = stream.encoded_data
    filters = _resolve(stream.get("/Filter"))
    names = [str(f) for f in filters] if isinstance(filters, generic.ArrayObject) else []
    if filters is not None and not names:
        names = [str(filters)]
    size = len(raw)
    for name in names:
        if name in ("/FlateDecode", "/Fl"):
            size = _inflated_size(raw, cap, number)
        elif name in _WORST_RATIO:
            size *= _WORST_RATIO[name]
        # ASCIIHex/ASCII85 shrink; DCT, JPX, CCITT, JBIG2: images, judged by pixels
        if size > cap:
            _too_large(number, cap)
    return size


def _inflated_size(raw: bytes, cap: int, number: int) -> int:
    """How many bytes zlib inflates ``raw`` to (a damaged tail ends the count, as
    viewers stop there); LimitExceeded past ``cap``."""
    inflater = zlib.decompressobj()
    size, pending = 0, raw
    try:
        while pending:
            chunk = inflater.decompress(pending, 1 << 20)
            size += len(chunk)
            if size > cap:
                _too_large(number, cap)
            pending = inflater.unconsumed_tail
            if not chunk and not pending:
                break
    except zlib.error:
        pass
    return size


def _too_large(number: int, cap: int) -> None:
    raise LimitExceeded(
        "stream",
        f"a stream on page {number} decompresses to more than {human_bytes(cap)}"
        " (a decompression bomb, or a scan saved without image compression)",
    )


def _resolve(value: Any) -> Any:
    return value.get_object() if isinstance(value, generic.IndirectObject) else value


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, generic.DictionaryObject) else None


def _key(value: Any) -> Any:
    if isinstance(value, generic.IndirectObject):
        return (value.idnum, value.generation)
    return None
