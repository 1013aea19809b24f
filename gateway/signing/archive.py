"""The archive of signed documents, kept verifiable for years (PAdES B-LTA, ETSI EN 319
142-1 §5.5; the renewal of ETSI TS 119 511's preservation "augmentation").

Every signed document that is a final output (a request outside workflows, or a
workflow's last signed step) is archived in the document store with its validation
material (the DSS and document timestamps it embeds). A document timestamp is only as
good as its TSA's certificate and its digest algorithm: before the newest one's
certificate ends (``archive_renew_before_days`` ahead, a setting) or when its algorithm
is weak (SHA-1, MD5), :meth:`Archive.renew` adds the validation data of that timestamp
(its TSA chain's OCSP responses or CRLs, fetched now) and a new document timestamp from
``archive_tsa_url`` (pyHanko's ``update_archival_timestamp_chain``). The renewal is an
incremental update: the signed document stays a byte prefix, every earlier signature
stays as it was. :meth:`Archive.verify` judges every archived document and says which
need attention.

Renewals are kept as ``archive.update`` beside the signed update
(:meth:`~gateway.requests.document_store.DocumentStore.write_archive`); downloads give
the renewed document.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from asn1crypto import x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.signers.pdf_signer import PdfTimeStamper
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.fetchers.requests_fetchers import RequestsFetcherBackend
from sqlalchemy import select

from gateway.config import Settings
from gateway.db.database import Database
from gateway.db.models import SigningRequest
from gateway.requests.document_store import DocumentStore
from gateway.requests.lifecycle import RequestStatus
from gateway.signing.levels import signature_levels
from hsm_bridge.clock import Clock, utcnow
from hsm_bridge.pades.chain import load_ca_file

__all__ = ["Archive", "ArchiveEntry", "last_timestamp"]

log = logging.getLogger(__name__)

WEAK_DIGESTS = frozenset({"md5", "sha1"})


@dataclass(frozen=True, slots=True)
class LastTimestamp:
    """The newest timestamp of a document (a document timestamp, else the newest
    signature timestamp): when, by which TSA, whose certificate ends when, and its
    message digest algorithm."""

    time: dt.datetime
    authority: str
    authority_not_after: dt.datetime
    digest_algorithm: str


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    """One archived document as :meth:`Archive.verify` and :meth:`Archive.renew` see
    it: its request, title, the levels its signatures reach (oldest first), its newest
    timestamp, whether it is due for renewal, and what needs attention (words)."""

    request_id: str
    title: str | None
    levels: list[str | None]
    last: LastTimestamp | None
    due: bool
    attention: list[str]


class Archive:
    """The installation's archive: ``settings`` (trust anchors, ``archive_tsa_url``,
    ``archive_renew_before_days``), the database and the document store; ``clock`` is
    the time renewals are decided at."""

    def __init__(
        self, settings: Settings, db: Database, store: DocumentStore, *, clock: Clock = utcnow
    ) -> None:
        self.settings = settings
        self.db = db
        self.store = store
        self.clock = clock

    def document_ids(self) -> list[str]:
        """The final signed documents: signed requests on whose output no later step of
        their workflow was signed."""
        with self.db.transaction() as session:
            signed = list(
                session.scalars(
                    select(SigningRequest).where(SigningRequest.status == RequestStatus.SIGNED)
                )
            )
        later = {(r.workflow_id, r.step) for r in signed if r.workflow_id is not None}
        return [
            r.id
            for r in sorted(signed, key=lambda r: r.created_at)
            if r.workflow_id is None or (r.workflow_id, r.step + 1) not in later
        ]

    def verify(self, request_ids: Sequence[str] = ()) -> list[ArchiveEntry]:
        """Every archived document (or those of ``request_ids``) judged now (offline,
        the trust anchors)."""
        return [self._entry(request_id) for request_id in self._chosen(request_ids)]

    def renew(self, request_ids: Sequence[str] = ()) -> list[ArchiveEntry]:
        """Renew every archived document (or those of ``request_ids``) that is due (see
        the module's docstring); the entries of those renewed, as they are after
        renewal. Raises ValueError when no archive TSA is configured and a document is
        due, and pyHanko's errors when a renewal fails (the documents renewed before it
        stay renewed)."""
        renewed = []
        for request_id in self._chosen(request_ids):
            entry = self._entry(request_id)
            if not entry.due:
                continue
            self._renew(request_id)
            renewed.append(self._entry(request_id))
        return renewed

    def _chosen(self, request_ids: Sequence[str]) -> list[str]:
        archived = self.document_ids()
        unknown = [r for r in request_ids if r not in archived]
        if unknown:
            raise ValueError(f"not archived (not a signed final document): {', '.join(unknown)}")
        return list(request_ids) or archived

    def _renew(self, request_id: str) -> None:
        url = self.settings.archive_tsa_url or self.settings.tsa_url
        if not url:
            raise ValueError("no TSA for the archive: set archive_tsa_url (or tsa_url)")
        document = self.store.read_signed(request_id)
        renewed = renew_document(
            document,
            url,
            load_ca_file(self.settings.effective_trust_anchors_file),
            timeout_seconds=self.settings.revocation_timeout_seconds,
        )
        self.store.write_archive(request_id, renewed)
        log.info("archived document %s renewed with a document timestamp", request_id)

    def _entry(self, request_id: str) -> ArchiveEntry:
        with self.db.transaction() as session:
            request = session.get(SigningRequest, request_id)
            title = request.title if request is not None else None
        document = self.store.read_signed(request_id)
        anchors = load_ca_file(self.settings.effective_trust_anchors_file)
        levels = [level for _, level in signature_levels(document, anchors)]
        last = last_timestamp(document)
        now = self.clock()
        horizon = now + dt.timedelta(days=self.settings.archive_renew_before_days)
        attention = []
        if any(level is None for level in levels):
            attention.append("a signature does not validate with the trust anchors")
        elif levels and levels[-1] != "B-LTA":
            attention.append(f"the newest signature is {levels[-1]}, not B-LTA")
        due = last is not None and (
            last.authority_not_after <= horizon or last.digest_algorithm in WEAK_DIGESTS
        )
        if last is not None and last.authority_not_after <= now:
            ended = f"{last.authority_not_after:%Y-%m-%d}"
            attention.append(f"the last timestamp's TSA certificate ended {ended}")
        elif due and last is not None:
            attention.append(f"renew before {last.authority_not_after:%Y-%m-%d}")
        return ArchiveEntry(request_id, title, levels, last, due, attention)


def renew_document(
    document: bytes, tsa_url: str, trust_anchors: Sequence[bytes], *, timeout_seconds: float
) -> bytes:
    """``document`` (PDF bytes) with the validation data of its newest timestamp and a
    new document timestamp from ``tsa_url`` added as an incremental update. Raises
    pyHanko's errors when the newest timestamp does not validate or the TSA fails."""
    context = ValidationContext(
        trust_roots=[x509.Certificate.load(der) for der in trust_anchors],
        allow_fetching=True,
        fetcher_backend=RequestsFetcherBackend(per_request_timeout=timeout_seconds),
    )
    reader = PdfFileReader(io.BytesIO(document), strict=False)
    stamper = PdfTimeStamper(HTTPTimeStamper(tsa_url, timeout=int(timeout_seconds * 2)))
    output = stamper.update_archival_timestamp_chain(reader, context, in_place=False)
    renewed = bytes(output.getvalue())
    if not renewed.startswith(document):
        raise ValueError("the renewal did not append to the document")
    return renewed


def last_timestamp(document: bytes) -> LastTimestamp | None:
    """The newest timestamp of ``document``: its last document timestamp, else the
    signature timestamp of its newest signature; None when it has neither."""
    reader = PdfFileReader(io.BytesIO(document), strict=False)
    stamps = sorted(reader.embedded_timestamp_signatures, key=lambda s: s.signed_revision)
    if stamps:
        newest = stamps[-1]
        return _described(newest.signed_data)
    signatures = sorted(reader.embedded_regular_signatures, key=lambda s: s.signed_revision)
    for signature in reversed(signatures):
        for token in _signature_timestamps(signature):
            return _described(token)
    return None


def _signature_timestamps(signature: EmbeddedPdfSignature) -> Iterator[object]:
    attributes = signature.signer_info["unsigned_attrs"]
    for attribute in attributes if attributes.native is not None else ():
        if attribute["type"].native == "signature_time_stamp_token":
            yield attribute["values"][0]["content"]


def _described(signed_data: object) -> LastTimestamp:
    """What a timestamp token (CMS SignedData of a TSTInfo) says about itself."""
    info = signed_data["encap_content_info"]["content"].parsed  # type: ignore[index]
    signer_info = signed_data["signer_infos"][0]  # type: ignore[index]
    serial = signer_info["sid"].chosen["serial_number"].native
    certificates = [c.chosen for c in signed_data["certificates"]]  # type: ignore[index]
    tsa = next(c for c in certificates if c.serial_number == serial)
    return LastTimestamp(
        time=info["gen_time"].native,
        authority=str(tsa.subject.native.get("common_name", tsa.subject.human_friendly)),
        authority_not_after=tsa["tbs_certificate"]["validity"]["not_after"].native,
        digest_algorithm=str(info["message_imprint"]["hash_algorithm"]["algorithm"].native),
    )
