"""Checks a submitted PDF before anything is stored or anyone is notified.

Refusals raise the matching :mod:`gateway.errors` class; what can be signed but deserves
the signer's attention comes back as warning codes. pyHanko is the parser of record
(it writes the incremental update later), so a file it cannot read is refused even when
more forgiving readers would recover it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields
from pyhanko.sign.fields import MDPPerm
from pyhanko.sign.validation import (
    read_certification_data,
    validate_pdf_signature,
    validate_pdf_timestamp,
)
from pyhanko.sign.validation.status import SignatureCoverageLevel

from gateway.errors import (
    DocumentCertifiedNoChanges,
    DocumentEmpty,
    DocumentEncrypted,
    DocumentNotPdf,
    DocumentTooComplex,
    DocumentTooLarge,
    DocumentTruncated,
    DocumentUnreadable,
    DocumentXfa,
)
from pdf_structure.fields import empty_field_flags, field_names, signature_field_places
from pdf_structure.geometry import from_user_space, page_geometries
from pdf_structure.limits import DocumentLimits, LimitExceeded, check_limits, human_bytes
from pdf_structure.reader import open_reader

__all__ = ["DocumentReport", "inspect_pdf", "unreadable_reason"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DocumentReport:
    """What intake learned: page count, the names of the signature fields already
    signed and of the empty ones (decoded text, UTF-16 names included), each page's
    width and height as displayed (points, after CropBox and /Rotate) and the CropBox's
    lower-left corner in user space, the author's
    certification when there is one (``fill_forms``: DocMDP P=2, a new signature may go
    only into an existing empty field; ``annotate``: P=3), the fully qualified names of
    all form fields of any type (``field_names``: a new field must take another), where
    each empty signature field shows (``empty_field_places``: its 1-based page and its
    box as that page is displayed, points; fields with no widget on a page are left
    out) and what each carries that a signer's own signature cannot honour
    (``empty_field_flags``: ``hidden`` (flags or optional content), ``widgets`` (not
    exactly one widget), ``lock`` for a /Lock that the signature would apply,
    ``seed_value`` for /SV constraints), the fields that earlier signatures' field
    locks (FieldMDP, ISO 32000-1 §12.8.2.4, from the signature's /Reference or the
    field's /Lock) forbid to change (``locked_fields``) and whether they also cover any
    field a new signature would create (``new_fields_locked``: /All or /Exclude); a
    signature's DocMDP level (/P) of 1 refuses the document, 2 and 3 count as a
    certification; and warning codes
    (``document_javascript``, ``document_usage_rights``, ``existing_signature_invalid``,
    ``document_certified``)."""

    page_count: int
    signature_fields: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    empty_signature_fields: list[str] = field(default_factory=list)
    certification: str | None = None
    page_sizes: list[tuple[float, float]] = field(default_factory=list)
    page_origins: list[tuple[float, float]] = field(default_factory=list)
    field_names: list[str] = field(default_factory=list)
    empty_field_places: dict[str, tuple[int, tuple[float, float, float, float]]] = field(
        default_factory=dict
    )
    empty_field_flags: dict[str, list[str]] = field(default_factory=dict)
    locked_fields: list[str] = field(default_factory=list)
    new_fields_locked: bool = False


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    try:
        return obj[key]  # pyHanko dereferences indirect objects on item access
    except (KeyError, TypeError):
        return None


def inspect_pdf(
    data: bytes, *, max_bytes: int, limits: DocumentLimits | None = None
) -> DocumentReport:
    """Inspect ``data`` (the uploaded bytes, at most ``max_bytes``) within ``limits``
    (:class:`~pdf_structure.limits.DocumentLimits`; the defaults when None).

    Raises DocumentTooLarge, DocumentNotPdf (no ``%PDF-`` header in the first 1024
    bytes), DocumentTruncated (no ``%%EOF`` near the end), DocumentUnreadable (pyHanko
    cannot parse it or its page tree, or the tree's page count is false),
    DocumentEncrypted (any security handler), DocumentTooComplex (past ``limits``),
    DocumentCertifiedNoChanges (DocMDP P=1, ISO 32000-1 §12.8.2.2), DocumentXfa
    (dynamic XFA), DocumentEmpty (no page).
    """
    if len(data) > max_bytes:
        raise DocumentTooLarge(
            f"the document has {human_bytes(len(data))}; the limit is {human_bytes(max_bytes)}"
        )
    if b"%PDF-" not in data[:1024]:
        raise DocumentNotPdf("the file does not start like a PDF (no %PDF- header)")
    if b"%%EOF" not in data[-1024:]:
        raise DocumentTruncated("the file ends early (no %%EOF marker): it is incomplete")
    try:
        reader = open_reader(data)
        encrypted = reader.encrypted
    except Exception as exc:  # noqa: BLE001 - pyHanko raises bare ValueError/AssertionError
        raise DocumentUnreadable(unreadable_reason(exc)) from exc
    if encrypted:
        raise DocumentEncrypted("encrypted PDFs are not accepted; submit the decrypted file")
    try:
        return _examine(reader, limits or DocumentLimits())
    except (DocumentCertifiedNoChanges, DocumentXfa, DocumentEmpty, DocumentUnreadable):
        raise
    except LimitExceeded as exc:
        raise DocumentTooComplex(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - any failure of the parser on a damaged file
        raise DocumentUnreadable(unreadable_reason(exc)) from exc


# What pyHanko's messages mean, in words a clerk can pass on to whoever made the file.
_REASONS = (
    ("header", "the file does not start like a PDF"),
    ("eof marker", "the end of the file is missing"),
    ("startxref", "the table that locates the file's parts (cross-reference) is missing"),
    ("xref", "the table that locates the file's parts (cross-reference) is damaged"),
    ("trailer", "the file's trailer is damaged"),
    ("meets a node twice", "the page list loops back on itself"),
    ("object stream", "a compressed part of the file (object stream) is damaged"),
    ("decod", "a compressed part of the file cannot be decompressed"),
    ("/pages", "the file has no page list"),
)


def unreadable_reason(exc: BaseException) -> str:
    """Why the PDF cannot be read, for the document system's clerk: the damage named
    in plain words (pyHanko's message mapped), and what to do about it."""
    text = f"{exc} {type(exc).__name__}".casefold()
    reason = next((words for marker, words in _REASONS if marker in text), "the file is damaged")
    return f"the PDF cannot be read: {reason}; open it and save it again as PDF"


def _examine(reader: PdfFileReader, limits: DocumentLimits) -> DocumentReport:
    root = reader.root
    declared = int(root["/Pages"]["/Count"])
    # The page tree walked (a loop refused), every page within the limits; the count
    # the tree declares must be the count it holds (readers trust one or the other).
    page_count = check_limits(root["/Pages"], limits)
    if page_count < 1:
        raise DocumentEmpty("the PDF has no pages")
    if declared != page_count:
        raise DocumentUnreadable(
            f"the PDF cannot be read: its page list says {declared} pages but holds"
            f" {page_count}; open it and save it again as PDF"
        )
    warnings: list[str] = []
    acroform = _get(root, "/AcroForm")
    if _get(acroform, "/XFA") is not None and bool(_get(root, "/NeedsRendering")):
        raise DocumentXfa("the signer would see a placeholder page, not the form")
    certification = read_certification_data(reader)
    certified: str | None = None
    if certification is not None:
        if certification.permission == MDPPerm.NO_CHANGES:
            raise DocumentCertifiedNoChanges("the author's certification forbids any change")
        warnings.append("document_certified")
        certified = "fill_forms" if certification.permission == MDPPerm.FILL_FORMS else "annotate"
    perms = _get(root, "/Perms")
    if _get(perms, "/UR3") is not None:
        warnings.append("document_usage_rights")
    names = _get(root, "/Names")
    if _get(names, "/JavaScript") is not None or _has_javascript_action(root):
        warnings.append("document_javascript")
    all_fields = field_names(acroform)
    locked, new_fields_locked, permission = _field_locks(reader, all_fields)
    if permission == 1:
        raise DocumentCertifiedNoChanges("an earlier signature's lock forbids any change")
    if permission == 2 or (permission == 3 and certified is None):
        certified = "fill_forms" if permission == 2 else "annotate"
        warnings.append("document_certified")
    signature_fields: list[str] = []
    for sig in reader.embedded_signatures:
        signature_fields.append(sig.field_name)
        if not _signature_intact(sig):
            warnings.append("existing_signature_invalid")
    sig_fields = list(fields.enumerate_sig_fields(reader))
    empty = [name for name, value, _ in sig_fields if value is None]
    geometries = page_geometries(root["/Pages"])
    return DocumentReport(
        page_count=page_count,
        signature_fields=signature_fields,
        warnings=sorted(set(warnings)),
        empty_signature_fields=empty,
        certification=certified,
        page_sizes=[g.displayed_size for g in geometries],
        page_origins=[(g.crop[0], g.crop[1]) for g in geometries],
        field_names=all_fields,
        empty_field_flags={
            name: empty_field_flags(ref) for name, value, ref in sig_fields if value is None
        },
        locked_fields=locked,
        new_fields_locked=new_fields_locked,
        empty_field_places={
            name: (index + 1, from_user_space(rect, geometries[index]))
            for name, (index, rect) in signature_field_places(reader, root["/Pages"]).items()
            if name in empty
        },
    )


def _field_locks(reader: PdfFileReader, names: list[str]) -> tuple[list[str], bool, int | None]:
    """What the signatures already made lock: the existing fields they forbid to change
    (Action /All: every field; /Include: those listed; /Exclude: all others), whether
    that covers fields a later signature would create (/All, /Exclude), and the
    strictest DocMDP level (/P) any of them requires, or None. A lock is read where
    pyHanko's validation reads it (the signature's /Reference, FieldMDP) and from the
    field's /Lock; one that cannot be read locks everything."""
    locked: set[str] = set()
    new_fields_locked = False
    permission: int | None = None
    for sig in reader.embedded_signatures:
        specs: list[tuple[str, set[str]]] = []
        try:
            spec = sig.fieldmdp
            if spec is not None:
                specs.append((str(spec.action.value), set(spec.fields or ())))
            level = sig.docmdp_level
        except Exception:  # noqa: BLE001 - an unreadable policy is the strictest one
            specs.append(("/All", set()))
            level = None
        lock = _get(sig.sig_field, "/Lock")
        if lock is not None:
            listed = {str(name) for name in (_get(lock, "/Fields") or [])}
            specs.append((str(_get(lock, "/Action") or "/All"), listed))
        for action, listed in specs:
            if action == "/Include":
                locked |= listed
            else:
                locked |= set(names) - listed if action == "/Exclude" else set(names)
                new_fields_locked = True
        if level is not None:
            value = int(level.value)
            permission = value if permission is None else min(permission, value)
    return sorted(locked), new_fields_locked, permission


def _has_javascript_action(root: Any) -> bool:
    action = _get(root, "/OpenAction")
    return isinstance(action, generic.DictionaryObject) and _get(action, "/S") == "/JavaScript"


def _signature_intact(sig: Any) -> bool:
    """True when the earlier signature's digest and signature value check out (trust is
    not the question here: only whether the bytes it covers are unchanged). A document
    timestamp (/DocTimeStamp, PAdES-LTA, ETSI EN 319 142-1 §5.4) is checked as the
    RFC 3161 timestamp it is, not as a signature."""
    try:
        if sig.sig_object_type == "/DocTimeStamp":
            stamp = validate_pdf_timestamp(sig, skip_diff=True)
            return bool(stamp.intact and stamp.valid)
        status = validate_pdf_signature(sig, skip_diff=True)
        whole = status.coverage in (
            SignatureCoverageLevel.ENTIRE_REVISION,
            SignatureCoverageLevel.ENTIRE_FILE,
        )
        return bool(status.intact and status.valid and whole)
    except Exception:  # noqa: BLE001 - a broken earlier signature is a warning, not a refusal
        return False
