"""Validation reports: every signature and document timestamp of a PDF, judged offline
by pyHanko with the installation's trust anchors and what the document embeds (its CMS,
its DSS, its timestamps); nothing is fetched, so a hostile document cannot make the
gateway call out. Read in a document worker (:mod:`gateway.requests.sandbox_tasks`),
under its memory and time limits.

For each signature: who signed (the certificate's subject, issuer and serial), when
(the time the signer claims, and the signature timestamp's, from which TSA), whether the
signed bytes are intact and the signature value valid, whether the signer chains to a
trust anchor, what it covers (``ENTIRE_FILE``; ``ENTIRE_REVISION`` when later revisions
were added, with what they changed: ``LTA_UPDATES`` (validation data, timestamps),
``FORM_FILLING`` (another signature), ``ANNOTATIONS``, ``OTHER``) and whether that fits
the document's modification policy (DocMDP, field locks), the PAdES level it reaches
and its status when it was made, from what the document embeds
(:mod:`gateway.signing.levels`: ``valid``, ``valid_revocation_unknown``,
``not_valid``), pyHanko's AdES long-term validation (ETSI EN 319 102-1 §5.6.3:
``PASSED``, or ``INDETERMINATE``/``FAILED`` with the sub-indication), and its status now
(intact, valid, and the signer chaining to a trust anchor today; revocation now is not
asked of the CA). Document timestamps are reported as timestamps.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from asn1crypto import x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.errors import NoDSSFoundError
from pyhanko.sign.validation.pdf_embedded import (
    EmbeddedPdfSignature,
    async_validate_pdf_signature,
    async_validate_pdf_timestamp,
)
from pyhanko_certvalidator import ValidationContext

from gateway.errors import DocumentTooComplex
from gateway.signing.levels import long_term_indication, reached_level
from hsm_bridge.pades import PadesLevel

__all__ = [
    "MAX_SIGNATURES",
    "SignatureReport",
    "ValidationReport",
    "report_json",
    "validation_report",
]

# the most signatures and timestamps one report covers: each is validated with a
# difference analysis whose cost grows with the document's revisions
MAX_SIGNATURES = 30

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SignatureReport:
    """One signature (``kind`` ``signature``) or document timestamp (``timestamp``) of
    a PDF, as described in the module's docstring: ``signer``, ``issuer`` and
    ``timestamp_authority`` are common names, ``signer_subject`` the signer's whole
    name (title, organisation, place); times are aware UTC; ``revision``
    counts the document's revisions from 1; ``problems`` lists what failed:
    ``bytes_changed``, ``signature_invalid``, ``not_trusted`` (the certificate does not
    chain to a trust anchor at this time: an unknown CA, or expired),
    ``changes_not_allowed`` (later changes the document's policy forbids),
    ``changed_after_signing`` (form fields, listed in ``unsigned_changes``, were added or
    changed after it by a revision no signature covers),
    ``cannot_validate`` (pyHanko could not read it)."""

    field_name: str
    kind: str
    revision: int
    signer: str | None = None
    signer_subject: str | None = None
    issuer: str | None = None
    certificate_serial: str | None = None
    claimed_time: dt.datetime | None = None
    timestamp_time: dt.datetime | None = None
    timestamp_authority: str | None = None
    intact: bool = False
    valid: bool = False
    trusted: bool = False
    coverage: str = "UNCLEAR"
    covers_whole_file: bool = False
    modifications_after: str | None = None
    docmdp_ok: bool | None = None
    status_at_signing: str | None = None
    ades_indication: str | None = None
    status_now: str = "failed"
    pades_level: str | None = None
    unsigned_changes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """The report of one PDF: its SHA-256 (hex), when it was validated, the trust
    anchors' subjects, and its signatures and timestamps in the order they were added."""

    document_sha256: str
    validated_at: dt.datetime
    trust_anchors: list[str]
    signatures: list[SignatureReport]


def validation_report(
    pdf: bytes, trust_anchors: Sequence[bytes], *, now: dt.datetime
) -> ValidationReport:
    """The report of ``pdf`` with ``trust_anchors`` (DER roots) at ``now`` (aware).
    Raises pyHanko's PdfReadError (and its kin) when the document cannot be read at all;
    a signature that cannot be validated is reported with its problem instead."""
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    if reader.encrypted:
        reader.decrypt("")  # one that opens without a password; others fail to read
    anchors = [x509.Certificate.load(der) for der in trust_anchors]
    found = sorted(reader.embedded_signatures, key=lambda s: s.signed_revision)
    if len(found) > MAX_SIGNATURES:
        raise DocumentTooComplex(
            f"the document has {len(found)} signatures; a report covers at most {MAX_SIGNATURES}"
        )
    entries = asyncio.run(_entries(reader, found, anchors, now))
    return ValidationReport(
        document_sha256=hashlib.sha256(pdf).hexdigest(),
        validated_at=now,
        trust_anchors=[a.subject.human_friendly for a in anchors],
        signatures=entries,
    )


async def _entries(
    reader: PdfFileReader,
    found: list[EmbeddedPdfSignature],
    anchors: list[x509.Certificate],
    now: dt.datetime,
) -> list[SignatureReport]:
    context = _context(reader, anchors, now)
    signed_fields = {str(s.field_name) for s in found}
    entries = []
    for signature in found:
        try:
            if signature.sig_object_type == "/DocTimeStamp":
                entries.append(await _timestamp(signature, context))
            else:
                entries.append(await _signature(reader, signature, anchors, context, signed_fields))
        except Exception as exc:  # noqa: BLE001 - a hostile signature is reported, not fatal
            log.info("signature %s not validated: %s", signature.field_name, _words(exc))
            entries.append(
                SignatureReport(
                    field_name=str(signature.field_name),
                    kind="signature",
                    revision=signature.signed_revision + 1,
                    problems=["cannot_validate"],
                )
            )
    return entries


def report_json(report: ValidationReport) -> bytes:
    """``report`` as UTF-8 JSON (times ISO 8601); a lone surrogate a hostile document
    put in a name is escaped, never an error."""
    text = json.dumps(dataclasses.asdict(report), default=_iso, ensure_ascii=False)
    return text.encode("utf-8", "backslashreplace")


def _iso(value: object) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def _context(
    reader: PdfFileReader, anchors: list[x509.Certificate], now: dt.datetime
) -> ValidationContext:
    """Offline, at ``now``: the trust anchors and the certificates the DSS holds (for
    the chains), revocation not judged (what a document embeds is about when it was
    signed; whether a certificate is revoked now needs its CA, which a report does not
    call)."""
    try:
        certificates = list(DocumentSecurityStore.read_dss(reader).load_certs())
    except NoDSSFoundError:
        certificates = []
    return ValidationContext(
        trust_roots=anchors,
        other_certs=certificates,
        allow_fetching=False,
        revocation_mode="soft-fail",
        moment=now,
    )


async def _signature(
    reader: PdfFileReader,
    signature: EmbeddedPdfSignature,
    anchors: list[x509.Certificate],
    context: ValidationContext,
    signed_fields: set[str],
) -> SignatureReport:
    status = await async_validate_pdf_signature(signature, context, ts_validation_context=context)
    # a form field changed after this signature that no later signature or timestamp
    # fills is an unsigned change (a new widget's appearance can show anything)
    changed = getattr(status.diff_result, "changed_form_fields", None) or set()
    unsigned = sorted(str(name) for name in changed if str(name) not in signed_fields)
    certificate = status.signing_cert
    timestamp = status.timestamp_validity
    problems = _problems(status.intact, status.valid, status.trusted)
    modification = status.modification_level.name if status.modification_level else None
    if status.docmdp_ok is False:
        problems.append("changes_not_allowed")
    if unsigned:
        problems.append("changed_after_signing")
    level = await reached_level(reader, signature, anchors)
    return SignatureReport(
        field_name=str(signature.field_name),
        kind="signature",
        revision=signature.signed_revision + 1,
        signer=_name(certificate.subject),
        signer_subject=certificate.subject.human_friendly,
        issuer=_name(certificate.issuer),
        certificate_serial=format(certificate.serial_number, "x"),
        claimed_time=status.signer_reported_dt,
        timestamp_time=timestamp.timestamp if timestamp is not None else None,
        timestamp_authority=_name(timestamp.signing_cert.subject) if timestamp else None,
        intact=bool(status.intact),
        valid=bool(status.valid),
        trusted=bool(status.trusted),
        coverage=status.coverage.name if status.coverage else "UNCLEAR",
        covers_whole_file=status.coverage is not None and status.coverage.name == "ENTIRE_FILE",
        modifications_after=modification,
        docmdp_ok=status.docmdp_ok,
        status_at_signing=_at_signing(level),
        ades_indication=await long_term_indication(signature, anchors),
        status_now="valid" if not problems else "failed",
        pades_level=level,
        unsigned_changes=unsigned,
        problems=problems,
    )


async def _timestamp(
    signature: EmbeddedPdfSignature, context: ValidationContext
) -> SignatureReport:
    status = await async_validate_pdf_timestamp(signature, context)
    problems = _problems(status.intact, status.valid, status.trusted)
    return SignatureReport(
        field_name=str(signature.field_name),
        kind="timestamp",
        revision=signature.signed_revision + 1,
        signer=_name(status.signing_cert.subject),
        signer_subject=status.signing_cert.subject.human_friendly,
        issuer=_name(status.signing_cert.issuer),
        certificate_serial=format(status.signing_cert.serial_number, "x"),
        timestamp_time=status.timestamp,
        timestamp_authority=_name(status.signing_cert.subject),
        intact=bool(status.intact),
        valid=bool(status.valid),
        trusted=bool(status.trusted),
        coverage=status.coverage.name if status.coverage else "UNCLEAR",
        covers_whole_file=status.coverage is not None and status.coverage.name == "ENTIRE_FILE",
        modifications_after=status.modification_level.name if status.modification_level else None,
        status_now="valid" if not problems else "failed",
        problems=problems,
    )


def _at_signing(level: str | None) -> str:
    """The signature's status when it was made (at its timestamp's time), from the level
    it reaches: ``valid`` with the revocation data of its chain embedded (B-LT, B-LTA),
    ``valid_revocation_unknown`` without it, else ``not_valid``."""
    if level in PadesLevel.WITH_VALIDATION_DATA:
        return "valid"
    return "valid_revocation_unknown" if level is not None else "not_valid"


def _problems(intact: object, valid: object, trusted: object) -> list[str]:
    problems = []
    if not intact:
        problems.append("bytes_changed")
    if not valid:
        problems.append("signature_invalid")
    if not trusted:
        problems.append("not_trusted")
    return problems


def _name(name: x509.Name) -> str:
    """A certificate name's common name (its whole text when it has none)."""
    common = name.native.get("common_name") if isinstance(name.native, dict) else None
    return str(common) if common else str(name.human_friendly)


def _words(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]
