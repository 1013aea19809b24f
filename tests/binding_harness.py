"""The harness of the attack suites against the bridge's check of the prepared PDF
(tests/test_binding_attacks*.py): hand-made PDFs, an incremental update with a
signature field, a /ByteRange, an empty /Contents placeholder and matching CMS signed
attributes (what a compromised web tier would send to POST /v1/sign), the check
itself, and what poppler and pdfium show of a file."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import tempfile
from pathlib import Path

from asn1crypto import cms

from hsm_bridge.binding import verify_signing_input


def _pdf(objects: dict[int, bytes]) -> bytes:
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out.extend(b"%d 0 obj\n" % number + objects[number] + b"\nendobj\n")
    size = max(objects) + 1
    table_at = len(out)
    out.extend(b"xref\n0 %d\n0000000000 65535 f \n" % size)
    for number in range(1, size):
        if number in offsets:
            out.extend(b"%010d 00000 n \n" % offsets[number])
        else:
            out.extend(b"0000000000 00000 f \n")
    out.extend(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, table_at))
    return bytes(out)


def _stream(data: bytes, extra: bytes = b"") -> bytes:
    return b"<< /Length %d %s>>\nstream\n" % (len(data), extra) + data + b"\nendstream"


PAGE_KEYS = (
    b"/Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 5 0 R >> >>"
)

TEXT = b"BT /F1 18 Tf 72 720 Td (Cong van so 12 - duoc phe duyet) Tj ET"

CLAUSE = b"BT /F1 18 Tf 72 680 Td (Khong duoc chi qua 10 trieu dong) Tj ET"

FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def original(contents: bytes = b"4 0 R", annots: bytes | None = None, extra: dict | None = None):
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        3: b"<< "
        + PAGE_KEYS
        + b" /Contents "
        + contents
        + (b" /Annots " + annots if annots is not None else b"")
        + b" >>",
        4: _stream(TEXT),
        5: FONT,
    }
    objects.update(extra or {})
    return _pdf(objects)


INVISIBLE = {
    "box": None,
    "contact_info": None,
    "field_name": None,
    "location": None,
    "page": None,
    "pades_level": "B-B",
    "reason": None,
}


def update(
    document: bytes,
    objects: dict[int, bytes],
    *,
    freed: tuple[int, ...] = (),
    freed_generation: int = 1,
) -> tuple[bytes, bytes]:
    """``document`` + an incremental update holding ``objects`` (number -> body; one of
    them must contain ``SIGDICT``, replaced by a signature dictionary with /ByteRange
    and placeholder), with ``freed`` object numbers marked free. Returns the prepared
    PDF and DER signed attributes whose messageDigest is that of the /ByteRange."""
    startxref = int(document.rsplit(b"startxref", 1)[1].split()[0])
    size = int(document.rsplit(b"/Size", 1)[1].split()[0])
    placeholder = b"<" + b"0" * 2048 + b">"
    sigdict = (
        b"<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached "
        b"/ByteRange [0000000000 0000000000 0000000000 0000000000] /Contents "
        + placeholder
        + b" >>"
    )
    out = bytearray(document)
    if not out.endswith(b"\n"):
        out.extend(b"\n")
    offsets: dict[int, int] = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out.extend(
            b"%d 0 obj\n" % number + objects[number].replace(b"SIGDICT", sigdict) + b"\nendobj\n"
        )
    new_size = max([size, *(n + 1 for n in objects), *(n + 1 for n in freed)])
    table_at = len(out)
    out.extend(b"xref\n")
    for number in sorted(set(objects) | set(freed)):
        if number in freed:
            out.extend(b"%d 1\n0000000000 %05d f \n" % (number, freed_generation))
        else:
            out.extend(b"%d 1\n%010d 00000 n \n" % (number, offsets[number]))
    out.extend(
        b"trailer\n<< /Size %d /Root 1 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n"
        % (new_size, startxref, table_at)
    )
    prepared = bytes(out)
    # fill in the /ByteRange
    gap_start = prepared.index(placeholder, len(document))
    gap_end = gap_start + len(placeholder)
    ranges = b"[%010d %010d %010d %010d]" % (0, gap_start, gap_end, len(prepared) - gap_end)
    at = prepared.index(b"/ByteRange [", len(document)) + len(b"/ByteRange ")
    prepared = prepared[:at] + ranges + prepared[at + len(ranges) :]
    digest = hashlib.sha256(prepared[:gap_start] + prepared[gap_end:]).digest()
    attributes = cms.CMSAttributes(
        [
            cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
            cms.CMSAttribute({"type": "message_digest", "values": [digest]}),
        ]
    ).dump()
    return prepared, attributes


def check(document: bytes, prepared: bytes, attributes: bytes, parameters=INVISIBLE) -> bytes:
    return verify_signing_input(
        prepared,
        len(document),
        attributes,
        document_sha256=hashlib.sha256(document).digest(),
        parameters=parameters,
    )


SIG_FIELD = (
    b"<< /Type /Annot /Subtype /Widget /FT /Sig /T (Signature1) /F 132 /Rect [0 0 0 0]"
    b" /P 3 0 R /V 12 0 R >>"
)


def _page(contents: bytes = b"4 0 R", annots: bytes = b"[10 0 R]") -> bytes:
    return b"<< " + PAGE_KEYS + b" /Contents " + contents + b" /Annots " + annots + b" >>"


def pdftotext(pdf: bytes) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.pdf"
        path.write_bytes(pdf)
        return subprocess.run(
            ["pdftotext", str(path), "-"], capture_output=True, check=False, timeout=30
        ).stdout.decode("latin-1")


FORGED = b"BT /F1 30 Tf 72 600 Td (PAY 10 BILLION VND) Tj ET"

SIGNATURE = {
    1: b"<< /Type /Catalog /Pages 2 0 R /AcroForm 11 0 R >>",
    3: _page(),
    10: SIG_FIELD,
    11: b"<< /Fields [10 0 R] /SigFlags 3 >>",
    12: b"SIGDICT",
}


def revision(
    document: bytes,
    objects: dict[int, bytes],
    *,
    prev: int | None = None,
    generations: dict[int, int] | None = None,
) -> bytes:
    """``document`` + one plain incremental update (no signature) holding ``objects``;
    /Prev is ``prev`` (default: the document's startxref)."""
    generations = generations or {}
    startxref = int(document.rsplit(b"startxref", 1)[1].split()[0])
    size = int(document.rsplit(b"/Size", 1)[1].split()[0])
    out = bytearray(document)
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out.extend(
            b"%d %d obj\n" % (number, generations.get(number, 0)) + objects[number] + b"\nendobj\n"
        )
    table_at = len(out)
    out.extend(b"xref\n")
    for number in sorted(objects):
        out.extend(b"%d 1\n%010d %05d n \n" % (number, offsets[number], generations.get(number, 0)))
    out.extend(
        b"trailer\n<< /Size %d /Root 1 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n"
        % (max(size, max(objects) + 1), startxref if prev is None else prev, table_at)
    )
    return bytes(out)


def sign_on_top(prepared_so_far: bytes, objects: dict[int, bytes]) -> tuple[bytes, bytes]:
    """The harness's signature update, appended after ``prepared_so_far``."""
    return update(prepared_so_far, objects)


def render_ink(pdf: bytes) -> int:
    """Dark pixels of page 1 as poppler renders it (annotations included)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.pdf"
        path.write_bytes(pdf)
        subprocess.run(
            [
                "pdftoppm",
                "-r",
                "20",
                "-gray",
                "-f",
                "1",
                "-l",
                "1",
                str(path),
                str(Path(tmp) / "out"),
            ],
            check=True,
            timeout=60,
            capture_output=True,
        )
        (image,) = Path(tmp).glob("out*.pgm")
        data = image.read_bytes()
    # P5 header: 'P5\n<w> <h>\n255\n'
    header_end = 0
    for _ in range(3):
        header_end = data.index(b"\n", header_end) + 1
    return sum(1 for b in data[header_end:] if b < 128)


def _rehash(prepared: bytes, original_length: int) -> tuple[bytes, bytes]:
    """Signed attributes for ``prepared`` (its /ByteRange already filled in)."""

    a, b, c, d = (
        int(x)
        for x in re.search(
            rb"/ByteRange\s*\[(\d+) (\d+) (\d+) (\d+)\]", prepared[original_length:]
        ).groups()
    )
    digest = hashlib.sha256(prepared[a : a + b] + prepared[c : c + d]).digest()
    attributes = cms.CMSAttributes(
        [
            cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
            cms.CMSAttribute({"type": "message_digest", "values": [digest]}),
        ]
    ).dump()
    return prepared, attributes


def pdfium_text(pdf: bytes) -> str:
    import pypdfium2

    document = pypdfium2.PdfDocument(io.BytesIO(pdf))
    try:
        return document[0].get_textpage().get_text_range()
    finally:
        document.close()


def pdfinfo(pdf: bytes) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.pdf"
        path.write_bytes(pdf)
        return subprocess.run(
            ["pdfinfo", str(path)], capture_output=True, check=False, timeout=30
        ).stdout.decode("latin-1")


def _retrailer(document: bytes, prepared: bytes, old: bytes, new: bytes) -> tuple[bytes, bytes]:
    """Rewrite the update's trailer (``old`` -> ``new``, after the placeholder), fix the
    /ByteRange's last length and re-derive the signed attributes."""
    tail = prepared[len(document) :]
    assert tail.count(old) == 1
    prepared = document + tail.replace(old, new)
    at = prepared.index(b"/ByteRange [", len(document)) + len(b"/ByteRange [")
    a, b, c, _ = (int(n) for n in prepared[at : at + 43].split())
    ranges = b"%010d %010d %010d %010d" % (a, b, c, len(prepared) - c)
    return _rehash(prepared[:at] + ranges + prepared[at + 43 :], len(document))


def _hidden(number: int, separator: bytes = b"\r") -> bytes:
    """A definition of object ``number`` glued after an "endobj" so that no "\\n"
    precedes its number: `_OBJECT_HEADER` misses it, poppler/pdfium rebuilds find it."""
    return b"endobj" + separator + b"%d 0 obj\n" % number + _stream(FORGED) + b"\nendobj\n"


def _unheader(tail: bytes, number: int) -> bytes:
    """Drop the "N 0 obj" header of a harness object (same length): its cross-reference
    entry then names an offset where no object starts."""
    return tail.replace(b"\n%d 0 obj\n" % number, b"\n%%%d 0 obj\n" % (number % 10))


def _two_page_document() -> bytes:
    return _pdf(
        {
            1: b"<< /Type /Catalog /Pages 2 0 R >>",
            2: b"<< /Type /Pages /Kids [3 0 R 6 0 R] /Count 2 >>",
            3: b"<< " + PAGE_KEYS + b" /Contents 4 0 R >>",
            4: _stream(TEXT),
            5: FONT,
            6: b"<< " + PAGE_KEYS + b" /Contents 7 0 R >>",
            7: _stream(CLAUSE),
        }
    )
