"""What ties an approved document to the digest a token signs, checked by the bridge.

An approval names a document by its SHA-256. The token signs a digest. Between the two
lie the prepared PDF and the CMS signed attributes; :func:`verify_signing_input` walks
that chain itself instead of trusting a digest from the web tier:

1. the first ``original_length`` bytes of the prepared PDF hash to the approved
   document's SHA-256 (the signature is an incremental update of exactly that file);
2. the update holds exactly one ``/ByteRange [0 b c d]``, which covers the whole file
   except a zero-filled hex ``/Contents`` placeholder lying inside the update
   (ISO 32000-2 §12.8.1; ETSI EN 319 142-1 §5.1: the whole file but the signature value);
3. the SHA-256 over that /ByteRange is recomputed;
4. the DER signed attributes (RFC 5652 §5.4) carry exactly one messageDigest, equal to
   that digest, and the content type id-data;
5. the update adds a signature and nothing else (:func:`_check_update`): of the objects
   that existed before, it may change only the catalog's /AcroForm, /Extensions,
   /Version and /Metadata, a page's /Annots (adding signature widgets only), the
   document information's /ModDate and /Producer, the XMP metadata, the AcroForm's
   /Fields, /SigFlags and /DR, an empty signature field's /V, /AP, /AS and /F, and
   arrays that only grow; new objects are reachable only through those. A web tier that
   slips new page content into the update is refused. Besides the signature's own
   widget, the update may add only the empty signature fields the parameters approve
   (``empty_fields``: the seal's field of a workflow), each by name, page and box, with
   no value and an empty appearance;
6. the digest to sign is SHA-256 of those signed attributes (RFC 5652 §5.4).

Anything else raises :class:`~hsm_bridge.errors.ActivationInvalid` with a ``reason``.
What a signature widget's own appearance draws (inside its /Rect) is not checked here.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import re
from typing import Any

from asn1crypto import cms

from hsm_bridge.errors import ActivationInvalid
from hsm_bridge.page_geometry import page_geometry, to_user_space

__all__ = ["verify_signing_input"]

_BYTE_RANGE = re.compile(
    rb"/ByteRange\s*\[\s*(\d{1,15})\s+(\d{1,15})\s+(\d{1,15})\s+(\d{1,15})\s*\]"
)


def _refuse(message: str, reason: str) -> ActivationInvalid:
    return ActivationInvalid(message, reason=reason)


def verify_signing_input(
    prepared_pdf: bytes,
    original_length: int,
    signed_attributes: bytes,
    *,
    document_sha256: bytes,
    parameters: dict[str, object] | None = None,
) -> bytes:
    """Check the chain from the approved document (``document_sha256``, 32 bytes) to
    the signed attributes, and return the 32-byte SHA-256 digest the token must sign.

    ``prepared_pdf``: the original bytes followed by the incremental update with the
    signature dictionary (placeholder not filled in); ``original_length`` in bytes;
    ``signed_attributes``: DER of the CMS SignedAttributes (the SET OF Attribute).
    ``parameters``: the approved signature parameters (``reason``, ``location``,
    ``contact_info``, ``field_name``, ``page`` 1-based, ``box`` in PDF points); when given,
    the new signature dictionary and its widget must carry exactly those
    (``parameters_mismatch`` otherwise).
    Raises ActivationInvalid with reason ``document_mismatch``, ``byte_range_invalid``,
    ``signed_attributes_invalid`` or ``update_not_allowed``."""
    if not 0 < original_length < len(prepared_pdf):
        raise _refuse("the prepared PDF does not extend the document", "document_mismatch")
    # The /ByteRange starts with the original, so one pass hashes both: the prefix's
    # state is copied for the document check and then carried on over the range.
    prefix = hashlib.sha256(memoryview(prepared_pdf)[:original_length])
    if not hmac.compare_digest(prefix.copy().digest(), document_sha256):
        raise _refuse(
            "the prepared PDF is not an update of the approved document", "document_mismatch"
        )
    digest = _byte_range_digest(prepared_pdf, original_length, prefix)
    _check_signed_attributes(signed_attributes, digest)
    _check_update(prepared_pdf, original_length, parameters)
    return hashlib.sha256(signed_attributes).digest()


def _byte_range_digest(prepared_pdf: bytes, original_length: int, prefix: Any) -> bytes:
    """SHA-256 over the /ByteRange, continuing ``prefix`` (a hasher that has taken the
    first ``original_length`` bytes)."""
    update = prepared_pdf[original_length:]
    found = _BYTE_RANGE.findall(update)
    if len(found) != 1:
        raise _refuse(
            f"the update holds {len(found)} /ByteRange entries, not one", "byte_range_invalid"
        )
    start, first_length, second_start, second_length = (int(n) for n in found[0])
    size = len(prepared_pdf)
    if (
        start != 0
        or first_length < original_length
        or second_start <= first_length + 1
        or second_start + second_length != size
    ):
        raise _refuse("the /ByteRange does not cover the whole file", "byte_range_invalid")
    placeholder = prepared_pdf[first_length:second_start]
    if placeholder[:1] != b"<" or placeholder[-1:] != b">" or placeholder[1:-1].strip(b"0"):
        raise _refuse(
            "the gap in the /ByteRange is not an empty /Contents placeholder",
            "byte_range_invalid",
        )
    view = memoryview(prepared_pdf)
    prefix.update(view[original_length:first_length])
    prefix.update(view[second_start:])
    return prefix.digest()  # type: ignore[no-any-return]


# OIDs of the two attributes that tie the signature to the document (RFC 5652 §11.1, §11.2)
_CONTENT_TYPE = "1.2.840.113549.1.9.3"
_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_ID_DATA = "1.2.840.113549.1.7.1"


def _check_signed_attributes(signed_attributes: bytes, digest: bytes) -> None:
    try:
        attributes = cms.CMSAttributes.load(signed_attributes, strict=True)
        found: dict[str, list[bytes]] = {_CONTENT_TYPE: [], _MESSAGE_DIGEST: []}
        for attribute in attributes:
            oid = attribute["type"].dotted
            if oid in found:
                found[oid].extend(value.contents for value in attribute["values"])
    except (ValueError, TypeError, KeyError) as exc:
        raise _refuse(
            "the signed attributes are not DER CMS attributes", "signed_attributes_invalid"
        ) from exc
    content_types, message_digests = found[_CONTENT_TYPE], found[_MESSAGE_DIGEST]
    if len(message_digests) != 1 or len(content_types) != 1:
        raise _refuse(
            "the signed attributes need one messageDigest and one contentType",
            "signed_attributes_invalid",
        )
    if content_types[0] != _encoded_oid(_ID_DATA):
        raise _refuse("the signed content type is not id-data", "signed_attributes_invalid")
    if not hmac.compare_digest(message_digests[0], digest):
        raise _refuse(
            "the messageDigest is not the digest of this /ByteRange", "signed_attributes_invalid"
        )


def _encoded_oid(dotted: str) -> bytes:
    return cms.ContentType(dotted).contents  # type: ignore[no-any-return]


# What an update that adds a signature may change in objects that existed before it,
# by the object's kind (ISO 32000-2 §12.7, §12.8, §14.3).
_CATALOG_KEYS = frozenset({"/AcroForm", "/Extensions", "/Version", "/Metadata"})
_PAGE_KEYS = frozenset({"/Annots"})
_INFO_KEYS = frozenset({"/ModDate", "/Producer"})
_ACROFORM_KEYS = frozenset({"/Fields", "/SigFlags", "/DR"})  # /DR: see _check_acroform_change
_SIGNATURE_FIELD_KEYS = frozenset({"/V", "/AP", "/AS", "/F"})


_STARTXREF = re.compile(rb"startxref\s+(\d{1,15})")


def _check_update(
    prepared_pdf: bytes, original_length: int, parameters: dict[str, object] | None = None
) -> None:
    """Refuse an update that changes more than adding one signature needs, or whose new
    signature does not carry the approved ``parameters``.

    The update is one revision, chained by /Prev to the original's last one. Of the
    objects that existed before: the catalog, pages, Info, the document's XMP metadata
    and the AcroForm may change only the keys a signature needs; the signature field
    being signed gets its value and appearance; an existing array may only grow, and
    only a page's /Annots (by the new widget) or the AcroForm's /Fields; nothing else
    changes. A new object takes a number the original never used nor referred to. The
    update adds exactly one annotation: the new signature's widget."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        reader = PdfFileReader(io.BytesIO(prepared_pdf), strict=False)
        last = reader.xrefs.total_revisions - 1
        if last < 1:
            raise _refuse("the prepared PDF has no update", "update_not_allowed")
        _check_one_revision(reader, prepared_pdf, original_length, last)
        _check_update_objects(reader, prepared_pdf, original_length, last)
        before = reader.get_historical_resolver(last - 1)
        _check_trailer(reader, before)
        info = _reference(reader.trailer_view, "/Info")
        acroform_before = _reference(before.root, "/AcroForm")
        metadata_before = _reference(before.root, "/Metadata")
        growable = _growable_arrays(before)
        used_before = _numbers_of_original(reader, before, last)
        added_annotations = 0
        added_fields: list[Any] = []  # what the update appends to the AcroForm's /Fields
        filled_fields: set[tuple[int, int]] = set()
        empty_fields = list((parameters or {}).get("empty_fields") or [])  # type: ignore[call-overload]

        def is_new(ref: Any) -> bool:
            return hasattr(ref, "idnum") and reader.xrefs.get_introducing_revision(ref) == last

        for ref in reader.xrefs.explicit_refs_in_revision(last):
            if reader.xrefs.get_introducing_revision(ref) == last:
                if ref.idnum in used_before:
                    raise _refuse(
                        f"the update redefines object {ref.idnum} of the original",
                        "update_not_allowed",
                    )
                continue  # new: reachable only through the changes checked below
            new, old = ref.get_object(), before(ref)
            if isinstance(new, generic.ArrayObject) and isinstance(old, generic.ArrayObject):
                if list(new) == list(old):
                    continue
                kind = growable.get((ref.idnum, ref.generation))
                if kind is None or list(old) != list(new)[: len(old)]:
                    raise _refuse("an existing array was changed", "update_not_allowed")
                if kind == "/Annots":
                    added_annotations += _check_new_annotations(old, new, is_new)
                else:
                    _check_new_fields(list(new)[len(old) :], added_fields)
                continue
            if not isinstance(new, generic.DictionaryObject) or not isinstance(
                old, generic.DictionaryObject
            ):
                raise _refuse("an existing object was replaced", "update_not_allowed")
            changed = {k for k in set(new) | set(old) if new.get(k) != old.get(k)}
            if isinstance(new, generic.StreamObject) and new.data != old.data:
                changed.add("(content)")
            allowed = _allowed_changes(old, ref, info, acroform_before, metadata_before)
            if allowed is _ACROFORM_KEYS:
                changed = _without_harmless(changed, new)
            if not changed <= allowed:
                raise _refuse(
                    f"the update changes {sorted(changed)} of an existing object",
                    "update_not_allowed",
                )
            if allowed is _SIGNATURE_FIELD_KEYS and changed:
                filled_fields.add((ref.idnum, ref.generation))
                if "/F" in changed and _unhides(_value(old, "/F"), _value(new, "/F")):
                    raise _refuse("the update shows a hidden field", "update_not_allowed")
            if "/Annots" in changed:
                added_annotations += _check_new_annotations(
                    old.get("/Annots"), new.get("/Annots"), is_new
                )
            if allowed is _CATALOG_KEYS and "/AcroForm" in changed:
                # another AcroForm (direct, or a new object): checked as a change of it
                _check_acroform_change(old.get("/AcroForm"), new.get("/AcroForm"), added_fields)
            if allowed is _ACROFORM_KEYS:
                _check_acroform_change(old, new, added_fields)
        if added_annotations > 1 + len(empty_fields):
            raise _refuse("the update adds more widgets than approved", "update_not_allowed")
        _check_title(reader, before)
        placed = _placed_signature(reader, last)
        widget, field = placed[1], placed[2]
        if any(key in widget for key in ("/A", "/AA")) or "/AA" in field:
            raise _refuse("the signature's widget carries actions", "update_not_allowed")
        # only the field being signed may change; no other empty field gets a look
        if not filled_fields <= {placed[3], placed[5]}:
            raise _refuse("the update changes another signature field", "update_not_allowed")
        if parameters is not None:
            _check_parameters(reader, before, last, placed, parameters)
        made_empty = _check_empty_fields(reader, last, placed[5], empty_fields)
        _check_added_fields(added_fields, {placed[3]}, made_empty)
    except ActivationInvalid:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure is a refusal
        raise _refuse(
            f"the prepared PDF cannot be read ({type(exc).__name__})", "update_not_allowed"
        ) from exc


def _check_one_revision(reader: Any, prepared_pdf: bytes, original_length: int, last: int) -> None:
    """The update is exactly one cross-reference section, after the original, whose
    /Prev is the original's own startxref (so no revision of the original is skipped
    and no extra revision hides in the update)."""
    found = _STARTXREF.findall(prepared_pdf[max(0, original_length - 2048) : original_length])
    if not found:
        raise _refuse("the original has no startxref", "update_not_allowed")
    xrefs = reader.xrefs
    if xrefs.get_xref_container_info(last).start_location < original_length:
        raise _refuse("the update's cross-reference is not in the update", "update_not_allowed")
    for revision in range(last):
        if xrefs.get_xref_container_info(revision).start_location >= original_length:
            raise _refuse("the update holds more than one revision", "update_not_allowed")
    if xrefs.get_startxref_for_revision(last - 1) != int(found[-1]):
        raise _refuse(
            "the update does not follow the original's last revision", "update_not_allowed"
        )


_DC_TITLE = re.compile(rb"<dc:title\b.*?</dc:title>", re.DOTALL)
_TAG = re.compile(rb"<[^>]*>")


def _title_of(resolver: Any) -> str | None:
    """The document title a viewer may show: the XMP dc:title (text, tags stripped),
    else the Info /Title."""
    catalog = resolver.root
    if "/Metadata" in catalog:
        xmp = catalog["/Metadata"]
        found = _DC_TITLE.search(bytes(getattr(xmp, "data", b"")))
        if found:
            return " ".join(_TAG.sub(b" ", found.group(0)).decode("utf-8", "replace").split())
    info = resolver.trailer_view["/Info"] if "/Info" in resolver.trailer_view else None
    if info is not None and "/Title" in info:
        return " ".join(str(info["/Title"]).split())
    return None


def _check_title(reader: Any, before: Any) -> None:
    """The update may refresh the XMP metadata (pyHanko writes its producer and dates)
    but not retitle the document: viewers show the title."""
    old, new = _title_of(before), _title_of(reader)
    if new is not None and new != old:
        raise _refuse("the update changes the document's title", "update_not_allowed")


def _check_trailer(reader: Any, before: Any) -> None:
    """The update's trailer names the original's catalog and Info (a new /Info only
    when the original had none, holding /ModDate and /Producer), no /Encrypt, and the
    original's permanent /ID."""
    new, old = reader.trailer_view, before.trailer_view
    if _same_ref(new, old, "/Root") is not True:
        raise _refuse("the update names another catalog", "update_not_allowed")
    same_info = _same_ref(new, old, "/Info")
    if same_info is False:
        if "/Info" in old or not set(new["/Info"].get_object()) <= _INFO_KEYS:
            raise _refuse("the update names another Info dictionary", "update_not_allowed")
    if "/Encrypt" in new:
        raise _refuse("the update adds encryption", "update_not_allowed")
    if "/ID" in old and ("/ID" not in new or new["/ID"][0] != old["/ID"][0]):
        raise _refuse("the update changes the document's permanent ID", "update_not_allowed")


def _same_ref(new: Any, old: Any, key: str) -> bool | None:
    """Whether both name the same object under ``key``; None when neither has it."""
    if key not in new and key not in old:
        return None
    if key not in new or key not in old:
        return False
    a, b = new.raw_get(key), old.raw_get(key)
    if not (hasattr(a, "idnum") and hasattr(b, "idnum")):
        return False
    return (a.idnum, a.generation) == (b.idnum, b.generation)


# Annotation flags (ISO 32000-1 §12.5.3): Invisible, Hidden, NoView.
_HIDING_FLAGS = 1 | 2 | 32


def _unhides(old: Any, new: Any) -> bool:
    """Whether a change of an annotation's /F clears a flag that kept it from view."""
    before = int(old or 0) & _HIDING_FLAGS
    return bool(before & ~(int(new or 0)))


# "N G obj" as a viewer rebuilding a cross-reference finds it: anywhere, whatever the
# whitespace (poppler also takes CR and form feed; pdfium any token boundary).
_ANY_OBJECT_HEADER = re.compile(
    rb"(?<![0-9])(\d{1,10})[\x00\t\n\x0c\r ]+(\d{1,5})[\x00\t\n\x0c\r ]+obj"
)
_XREF_ENTRY = re.compile(rb"^\d{10} \d{5} [nf](?: \r| \n|\r\n)$")


def _check_update_objects(
    reader: Any, prepared_pdf: bytes, original_length: int, last: int
) -> None:
    """The update's bytes and its cross-reference agree exactly: every entry points at
    the header of that very object, every object header anywhere in the update is one
    of them, and a classic table (read from the update's own startxref) has only
    well-formed entries. A viewer that rebuilds a cross-reference by scanning the file
    (poppler, pdfium do, on a damaged entry or a missing object) must find nothing
    else than what this check read."""
    data = reader.xrefs.get_xref_data(last)
    info = reader.xrefs.get_xref_container_info(last)
    # pyHanko writes a signature's update with a classic table, or a cross-reference
    # stream (and object streams) when the original has one; never a hybrid of both,
    # whose stream entries some viewers read and others do not
    if data.hybrid is not None or "/XRefStm" in reader.trailer_view:
        raise _refuse("the update's cross-reference is hybrid", "update_not_allowed")
    entries = dict(data.standard_xrefs)
    _check_object_streams(reader, data, entries)
    named: set[int] = set()
    for number, (generation, offset) in entries.items():
        found = _ANY_OBJECT_HEADER.match(prepared_pdf, offset)
        if (
            offset < original_length
            or found is None
            or (int(found.group(1)), int(found.group(2))) != (number, generation)
        ):
            raise _refuse(
                f"the update's cross-reference names object {number} where it is not",
                "update_not_allowed",
            )
        named.add(offset)
    stream_ref = info.stream_ref
    for found in _ANY_OBJECT_HEADER.finditer(prepared_pdf, original_length):
        if found.start() in named:
            continue
        header = (int(found.group(1)), int(found.group(2)))
        if (
            stream_ref is not None
            and found.start() == info.declared_startxref
            and header == (stream_ref.idnum, stream_ref.generation)
        ):
            continue  # the cross-reference stream itself, where startxref points
        raise _refuse(
            f"the update defines object {header[0]} outside its cross-reference",
            "update_not_allowed",
        )
    if stream_ref is not None:
        return
    # the classic table, read from the update's own startxref
    table = prepared_pdf[info.declared_startxref : info.end_location]
    if not table.startswith(b"xref"):
        raise _refuse("the update's cross-reference table is unreadable", "update_not_allowed")
    for line in table[4:].splitlines(keepends=True):
        body = line.strip()
        if not body or re.fullmatch(rb"\d+ \d+", body) or body.startswith(b"trailer"):
            continue  # a subsection header, or where the table ends
        entry = line if line.endswith((b"\n", b"\r")) else line + b"\n"
        if not _XREF_ENTRY.match(entry):
            raise _refuse("the update's cross-reference table is malformed", "update_not_allowed")


def _check_object_streams(reader: Any, data: Any, entries: dict[int, Any]) -> None:
    """Objects the update packs in object streams sit in streams the update itself
    defines, and each such stream holds exactly the objects its cross-reference says
    (nothing a viewer rebuilding the cross-reference would find besides)."""
    from pyhanko.pdf_utils import generic

    packed: dict[int, set[int]] = {}
    for number, where in data.xrefs_in_objstm.items():
        packed.setdefault(where.obj_stream_id, set()).add(number)
    for stream_id, numbers in packed.items():
        if stream_id not in entries:
            raise _refuse(
                "the update packs objects in a stream it does not define", "update_not_allowed"
            )
        stream = generic.Reference(stream_id, entries[stream_id][0], pdf=reader).get_object()
        first = int(stream["/First"])
        header = stream.data[:first].split()
        held = {int(header[k]) for k in range(0, len(header), 2)}
        if held != numbers or len(header) != 2 * int(stream["/N"]):
            raise _refuse(
                "an object stream of the update holds other objects than listed",
                "update_not_allowed",
            )


def _numbers_of_original(reader: Any, before: Any, last: int) -> set[int]:
    """Object numbers the original defines (in any revision, any generation) or refers
    to from anything reachable (a number it refers to without defining must not be
    defined by the update: that would change what an unchanged object shows)."""
    from pyhanko.pdf_utils import generic

    numbers: set[int] = set()
    for revision in range(last):
        numbers.update(ref.idnum for ref in reader.xrefs.explicit_refs_in_revision(revision))
    seen: set[tuple[int, int]] = set()
    stack: list[Any] = [before.root, before.trailer_view]
    while stack:
        obj = stack.pop()
        if isinstance(obj, generic.IndirectObject):
            numbers.add(obj.idnum)
            key = (obj.idnum, obj.generation)
            if key in seen:
                continue
            seen.add(key)
            try:
                stack.append(before(obj.reference))
            except Exception:  # noqa: BLE001, S112 - a dangling reference: its number stays taken
                continue
        elif isinstance(obj, generic.DictionaryObject):
            stack.extend(obj.raw_get(k) for k in obj)
        elif isinstance(obj, generic.ArrayObject):
            stack.extend(obj.raw_get(i) for i in range(len(obj)))
    return numbers


def _reference(dictionary: Any, key: str) -> Any:
    """The indirect reference under ``key``, or None (absent, or a direct object whose
    changes then show in its container)."""
    from pyhanko.pdf_utils.misc import IndirectObjectExpected

    try:
        return dictionary.get_value_as_reference(key, optional=True)
    except IndirectObjectExpected:
        return None


def _growable_arrays(before: Any) -> dict[tuple[int, int], str]:
    """The arrays stored as objects of their own that a signature may extend: each
    page's /Annots and the AcroForm's /Fields, by (object number, generation)."""
    found: dict[tuple[int, int], str] = {}
    for page in _pages(before.root["/Pages"]):
        ref = _reference(page, "/Annots")
        if ref is not None:
            found[(ref.idnum, ref.generation)] = "/Annots"
    acroform = before.root.get("/AcroForm")
    if acroform is not None:
        ref = _reference(acroform.get_object(), "/Fields")
        if ref is not None:
            found[(ref.idnum, ref.generation)] = "/Fields"
    return found


_METADATA_KEYS = frozenset({"/Length", "(content)"})


def _allowed_changes(old: Any, ref: Any, info: Any, acroform: Any, metadata: Any) -> frozenset[str]:
    kind = old.get("/Type")
    if kind == "/Catalog":
        return _CATALOG_KEYS
    if kind == "/Page":
        return _PAGE_KEYS
    if metadata is not None and ref == metadata:
        return _METADATA_KEYS  # the document's XMP, by reference (not by its /Type)
    if info is not None and ref == info:
        return _INFO_KEYS
    if acroform is not None and ref == acroform:
        return _ACROFORM_KEYS
    if _field_type(old) == "/Sig" and "/V" not in old:
        return _SIGNATURE_FIELD_KEYS  # an empty signature field, being filled
    return frozenset()


def _field_type(node: Any) -> Any:
    """A field's /FT, inherited from its ancestors (ISO 32000-1 §12.7.3.1)."""
    seen = 0
    while node is not None and seen < 32:
        if "/FT" in node:
            return node.get("/FT")
        node = node.get("/Parent")
        node = node.get_object() if node is not None else None
        seen += 1
    return None


def _qualified_name(field: Any) -> str:
    """A field's fully qualified name: the /T of it and its ancestors, joined by dots."""
    parts: list[str] = []
    node, seen = field, 0
    while node is not None and seen < 32:
        if "/T" in node:
            parts.append(str(node.get("/T")))
        node = node.get("/Parent")
        node = node.get_object() if node is not None else None
        seen += 1
    return ".".join(reversed(parts))


def _check_new_annotations(old: Any, new: Any, is_new: Any) -> int:
    """The page's annotations may only gain signature widgets that the update itself
    defines (``is_new`` of their reference); returns how many."""
    old_list = list(old.get_object()) if old is not None else []
    new_list = list(new.get_object()) if new is not None else []
    if new_list[: len(old_list)] != old_list:
        raise _refuse("the update removes or reorders annotations", "update_not_allowed")
    for annotation in new_list[len(old_list) :]:
        widget = annotation.get_object()
        if widget.get("/Subtype") != "/Widget" or _field_type(widget) != "/Sig":
            raise _refuse(
                "the update adds an annotation that is not a signature", "update_not_allowed"
            )
        if not is_new(annotation):
            raise _refuse("the update shows an earlier widget again", "update_not_allowed")
    return len(new_list) - len(old_list)


# What an empty signature field the update creates may hold (as pyHanko writes one): no
# value, kids, parent, actions, seed value, lock, appearance characteristics or default
# appearance, nothing a viewer could draw or a later signer would have to obey.
_EMPTY_FIELD_KEYS = frozenset({"/FT", "/T", "/Type", "/Subtype", "/F", "/Rect", "/P", "/AP"})


def _check_empty_fields(
    reader: Any, last: int, signature_widget: tuple[int, int], approved: list[Any]
) -> set[tuple[int, int]]:
    """Every widget the update adds besides the signature's (``signature_widget``: its
    number and generation) is one of the ``approved`` empty fields (dicts with
    ``name``, ``page`` 1-based and ``box`` as the page is displayed), each exactly once:
    a terminal signature field of that name, on that page and at that box, holding no
    more than :data:`_EMPTY_FIELD_KEYS`, with an appearance that draws nothing.
    Returns their numbers and generations."""
    remaining = {str(f["name"]): f for f in approved}
    made: set[tuple[int, int]] = set()
    if len(remaining) != len(approved):
        raise _refuse("an empty field is approved twice", "parameters_mismatch")
    for index, page in enumerate(_pages(reader.root["/Pages"])):
        annotations = page.get("/Annots")
        for annotation in annotations.get_object() if annotations is not None else []:
            if not hasattr(annotation, "idnum"):
                raise _refuse("a direct annotation dictionary", "update_not_allowed")
            ref = (annotation.idnum, annotation.generation)
            if ref == signature_widget or reader.xrefs.get_introducing_revision(annotation) != last:
                continue
            widget = annotation.get_object()
            name = str(widget.get("/T", ""))
            expected = remaining.pop(name, None)
            if (
                expected is None
                or _field_type(widget) != "/Sig"
                or not set(widget) <= _EMPTY_FIELD_KEYS
            ):
                raise _refuse(
                    "the update adds a field that was not approved", "parameters_mismatch"
                )
            if index != int(expected["page"]) - 1:
                raise _refuse("an empty field is not on its approved page", "parameters_mismatch")
            if not _draws_nothing(widget):
                raise _refuse("an empty field has an appearance", "update_not_allowed")
            if int(_value(widget, "/F", 0)) & _HIDING_FLAGS:
                # the later signature would be made, and never be seen
                raise _refuse("an empty field is hidden", "update_not_allowed")
            x1, y1, x2, y2 = (float(v) for v in _value(widget, "/Rect", [0, 0, 0, 0]))
            rect = (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
            shown = tuple(float(v) for v in expected["box"])
            wanted = to_user_space(shown, page_geometry(reader.root["/Pages"], index))  # type: ignore[arg-type]
            if any(abs(a - b) > 0.01 for a, b in zip(rect, wanted, strict=True)):
                raise _refuse("an empty field's box is not the approved one", "parameters_mismatch")
            made.add(ref)
    if remaining:
        raise _refuse("an approved empty field is missing", "parameters_mismatch")
    return made


def _draws_nothing(widget: Any) -> bool:
    """Whether a widget's appearance is absent or one normal appearance stream with no
    content (as pyHanko writes an empty signature field)."""
    if "/AP" not in widget:
        return True
    appearance = widget["/AP"]
    if set(appearance) != {"/N"}:
        return False
    normal = appearance["/N"]
    if not hasattr(normal, "data") or normal.data.strip():
        return False
    return "/Resources" not in normal or not normal["/Resources"]


# What an AcroForm that the update creates may hold.
_NEW_ACROFORM_KEYS = frozenset({"/Fields", "/SigFlags", "/DR", "/DA"})


def _check_new_fields(added: list[Any], collected: list[Any]) -> None:
    """Fields an update adds to the AcroForm are signature fields; they are kept in
    ``collected`` for :func:`_check_added_fields`."""
    for field in added:
        if _field_type(field.get_object()) != "/Sig":
            raise _refuse("the update adds a field that is not a signature", "update_not_allowed")
        collected.append(field)


def _check_added_fields(
    added: list[Any], signature: set[tuple[int, int]], empty: set[tuple[int, int]]
) -> None:
    """The fields the update appends to the AcroForm are the signature's own and the
    approved empty fields (``empty``: their numbers and generations), each by
    reference, and every approved empty field is among them (a widget on a page that
    the form does not list would be another, unsigned field)."""
    refs = set()
    for field in added:
        if not hasattr(field, "idnum"):
            raise _refuse("the update adds a direct field dictionary", "update_not_allowed")
        refs.add((field.idnum, field.generation))
    if not refs <= signature | empty:
        raise _refuse("the update adds a field that was not approved", "parameters_mismatch")
    if not empty <= refs:
        raise _refuse("an approved empty field is not in the form", "parameters_mismatch")


def _check_acroform_change(old: Any, new: Any, collected: list[Any]) -> None:
    """An AcroForm the update creates holds signature fields and nothing that would make
    a viewer redraw or replace what the signer saw (/NeedAppearances, /XFA); one that
    existed changes only /Fields (which may only grow, by signature fields), /SigFlags
    and /DR."""
    old = old.get_object() if old is not None else None
    new = new.get_object() if new is not None else None
    if new is None:
        raise _refuse("the update removes the AcroForm", "update_not_allowed")
    if old is None:
        if not set(new) <= _NEW_ACROFORM_KEYS:
            raise _refuse("the update adds an AcroForm with more than fields", "update_not_allowed")
        _check_new_fields(list(_value(new, "/Fields", [])), collected)
        return
    changed = _without_harmless({k for k in set(new) | set(old) if new.get(k) != old.get(k)}, new)
    if not changed <= _ACROFORM_KEYS:
        raise _refuse(f"the update changes {sorted(changed)} of the AcroForm", "update_not_allowed")
    if "/DR" in changed:
        # a viewer draws fields without their own appearance with these: a new entry
        # can give an existing field's /DA a font of the update's choosing
        raise _refuse("the update changes the default resources", "update_not_allowed")
    old_fields = list(_value(old, "/Fields", []))
    new_fields = list(_value(new, "/Fields", []))
    if new_fields[: len(old_fields)] != old_fields:
        raise _refuse("the update removes or reorders fields", "update_not_allowed")
    _check_new_fields(new_fields[len(old_fields) :], collected)


def _value(dictionary: Any, key: str, default: Any = None) -> Any:
    """``dictionary[key]`` resolved (an indirect value followed), or ``default``."""
    return dictionary[key] if key in dictionary else default


def _without_harmless(changed: set[str], new: Any) -> set[str]:
    """``changed`` keys of an AcroForm less /NeedAppearances when the update turns it
    off or drops it (pyHanko does, so that viewers keep the appearances as signed;
    turning it on would let them redraw fields)."""
    if "/NeedAppearances" in changed and not bool(new.get("/NeedAppearances", False)):
        return changed - {"/NeedAppearances"}
    return changed


def _placed_signature(
    reader: Any, last: int
) -> tuple[int, Any, Any, tuple[int, int], Any, tuple[int, int]]:
    """The one signature the update makes: (page index, widget, field, the field's
    (number, generation), the /V reference, the widget's (number, generation))."""
    placed = [
        found
        for found in _signature_widgets(reader)
        if reader.xrefs.get_introducing_revision(found[4]) == last
    ]
    if len(placed) != 1:
        raise _refuse(f"the update adds {len(placed)} signatures, not one", "parameters_mismatch")
    index, widget, field, field_ref, value, widget_ref = placed[0]
    return (
        index,
        widget,
        field,
        (field_ref.idnum, field_ref.generation),
        value,
        (widget_ref.idnum, widget_ref.generation),
    )


def _check_parameters(
    reader: Any, before: Any, last: int, placed: Any, parameters: dict[str, object]
) -> None:
    """The update's signature (``placed``, from :func:`_placed_signature`) carries the
    approved /Reason, /Location and /ContactInfo; its widget is in the approved field
    (the empty field of that fully qualified name that was there before, when there was
    one), and on the approved page and box (a zero-sized widget when no box was
    approved, unless it fills a field the document had)."""
    page_index, widget, field, field_ref, value, _ = placed
    signature = value.get_object()
    if signature.get("/Type") != "/Sig":
        raise _refuse("the new field value is not a signature", "parameters_mismatch")
    for key, name in (
        ("reason", "/Reason"),
        ("location", "/Location"),
        ("contact_info", "/ContactInfo"),
    ):
        found = signature.get(name)
        if (None if found is None else str(found)) != parameters.get(key):
            raise _refuse(f"the signature's {name} is not the approved one", "parameters_mismatch")
    field_name = parameters.get("field_name")
    pre_existing = False
    if field_name is not None:
        if _qualified_name(field) != field_name:
            raise _refuse("the signature is not in the approved field", "parameters_mismatch")
        existing = [ref for name, ref in _signature_fields(before) if name == field_name]
        if existing and (existing[0].idnum, existing[0].generation) != field_ref:
            raise _refuse(
                "the signature is not in the document's field of that name",
                "parameters_mismatch",
            )
        pre_existing = bool(existing)
    x1, y1, x2, y2 = (float(v) for v in _value(widget, "/Rect", [0, 0, 0, 0]))
    rect = (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
    box = parameters.get("box")
    if box is None:
        # a field the document had keeps its place; a new one is invisible
        if not pre_existing and rect[2] > rect[0] and rect[3] > rect[1]:
            raise _refuse("an invisible signature was approved", "parameters_mismatch")
        return
    page = parameters.get("page")
    if page is not None and page_index != int(page) - 1:  # type: ignore[call-overload]
        raise _refuse("the signature is not on the approved page", "parameters_mismatch")
    # the approved box is as the page is displayed; the /Rect is in user space
    shown = tuple(float(v) for v in box)  # type: ignore[attr-defined]
    approved = to_user_space(shown, page_geometry(reader.root["/Pages"], page_index))  # type: ignore[arg-type]
    if any(abs(a - b) > 0.01 for a, b in zip(rect, approved, strict=True)):
        raise _refuse("the signature's box is not the approved one", "parameters_mismatch")


def _signature_widgets(reader: Any) -> list[tuple[int, Any, Any, Any, Any, Any]]:
    """(page index, widget, field, the field's reference, the reference of its /V, the
    widget's reference) of every filled signature field reached through the pages'
    /Annots. A widget with a /T is its own (terminal) field; one without is a kid of
    its /Parent field."""
    found = []
    for index, page in enumerate(_pages(reader.root["/Pages"])):
        annotations = page.get("/Annots")
        for annotation in annotations.get_object() if annotations is not None else []:
            widget = annotation.get_object()
            if "/T" in widget or "/Parent" not in widget:
                field, field_ref = widget, annotation
            else:
                field_ref = widget.raw_get("/Parent")
                field = field_ref.get_object()
            value = field.raw_get("/V") if "/V" in field else None
            if _field_type(field) == "/Sig" and hasattr(value, "idnum"):
                found.append((index, widget, field, field_ref, value, annotation))
    return found


def _signature_fields(resolver: Any) -> list[tuple[str, Any]]:
    """(fully qualified name, reference) of every signature field of the document as
    ``resolver`` (a revision) sees it, through the AcroForm's field tree."""
    found: list[tuple[str, Any]] = []
    acroform = resolver.root.get("/AcroForm")
    if acroform is None:
        return found
    stack = [(ref, 0) for ref in _value(acroform.get_object(), "/Fields", [])]
    while stack:
        ref, depth = stack.pop()
        node = ref.get_object()
        kids = [k for k in _value(node, "/Kids", []) if "/T" in k.get_object()]
        if kids and depth < 32:
            stack.extend((kid, depth + 1) for kid in kids)
        elif _field_type(node) == "/Sig":
            found.append((_qualified_name(node), ref))
    return found


def _pages(node: Any, seen: set[tuple[int, int]] | None = None) -> list[Any]:
    """The page dictionaries under a /Pages node, in order. A node met twice (a cycle
    in the page tree, or a page listed twice) is refused."""
    seen = set() if seen is None else seen
    found: list[Any] = []
    for kid in node.get_object()["/Kids"]:
        key = (kid.idnum, kid.generation) if hasattr(kid, "idnum") else (-1, id(kid))
        if key in seen or len(seen) > _MAX_PAGE_NODES:
            raise _refuse("the page tree repeats a node", "update_not_allowed")
        seen.add(key)
        child = kid.get_object()
        found.extend(_pages(child, seen) if child.get("/Type") == "/Pages" else [child])
    return found


# More page-tree nodes than any document has (the deepest real trees are a few levels).
_MAX_PAGE_NODES = 1_000_000
