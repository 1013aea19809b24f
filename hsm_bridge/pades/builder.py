"""Building a PAdES signature of an approved document, the raw signature coming from a
token (ETSI EN 319 142-1; pyHanko does the PDF and CMS work).

The stages, as in pyHanko's interrupted signing: open the document for an incremental
update; create the signature's field (and the empty fields a workflow's next signers
fill) and its appearance (:mod:`hsm_bridge.pades.appearance`); reserve the /Contents
placeholder and compute the /ByteRange digest; build the CMS signed attributes with the
signing time given (the bridge's clock); have the token sign their SHA-256; embed the
CMS. PAdES baseline B-B: subfilter ETSI.CAdES.detached, SHA-256, the signer's
certificate and chain embedded; B-T adds an RFC 3161 signature timestamp; B-LT adds,
in the document security store (DSS), the validation data of the signer's chain (the
CA answers the bridge checked just before signing) and of the timestamp's; B-LTA then
adds a document timestamp over it all (ETSI EN 319 142-1 §5.4, §5.5). pyHanko sizes the
signature container up front with a trial run (the chain and a real timestamp token
included), so a long chain never makes the signature overflow its placeholder.

Every input is one the signer approved or one the bridge holds itself: the document and
the parameters (bound by the SAD), the image (by its SHA-256 in the parameters), the
certificate and chain (read from the token), the time (the bridge's clock). Nothing else
decides a byte of the output.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hashlib
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from asn1crypto import algos, x509
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko.sign.timestamps import TimeStamper
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.fetchers.requests_fetchers import RequestsFetcherBackend
from pyhanko_certvalidator.registry import SimpleCertificateStore

from hsm_bridge.credentials import SignatureMechanism
from hsm_bridge.pades.appearance import appearance_style, local_time_text
from hsm_bridge.pades.parameters import Box, PadesLevel, SignatureParameters
from pdf_structure.fields import field_names, signature_field_places
from pdf_structure.geometry import page_geometries, page_geometry, to_user_space
from pdf_structure.limits import DocumentLimits, LimitExceeded
from pdf_structure.reader import open_reader

__all__ = [
    "SignerIdentity",
    "ValidationData",
    "build_signed_pdf",
    "check_images",
    "placeholder_signature",
]

# Signs the 32-byte SHA-256 of the DER signed attributes; returns the raw signature.
SignDigest = Callable[[bytes], bytes]


@dataclass(frozen=True, slots=True)
class SignerIdentity:
    """Who signs: the certificate (DER), the chain of its issuers (DER, any order) and
    the mechanism (it gives the CMS signatureAlgorithm, RFC 5652 §5.3, and must fit the
    certificate's key)."""

    certificate: bytes
    chain: tuple[bytes, ...]
    mechanism: SignatureMechanism


@dataclass(frozen=True, slots=True)
class ValidationData:
    """What a B-LT or B-LTA signature embeds: the trust anchors (DER roots), the CA
    answers that showed the signer's chain unrevoked (DER OCSP responses, CRLs), and the
    time allowed for fetching what the timestamp's chain needs (seconds)."""

    trust_anchors: tuple[bytes, ...]
    ocsps: tuple[bytes, ...] = ()
    crls: tuple[bytes, ...] = ()
    timeout_seconds: float = 5.0


def check_images(params: SignatureParameters, images: Mapping[str, bytes]) -> bytes | None:
    """The image ``params`` draws (PNG bytes), found in ``images`` (SHA-256 hex → bytes)
    and checked against the SHA-256 the parameters name; None when they draw none.
    Raises ValueError when it is missing or not the approved one."""
    if params.image_sha256 is None:
        return None
    image = images.get(params.image_sha256)
    if image is None or hashlib.sha256(image).hexdigest() != params.image_sha256:
        raise ValueError("the signature image is not the approved one")
    return image


@functools.lru_cache(maxsize=256)
def _certificate(der: bytes) -> x509.Certificate:
    """``der`` (a DER certificate) parsed once per distinct certificate. asn1crypto
    parses lazily and keeps what it parsed and computed (names, hashes, key
    identifiers), so the signer's certificate and chain, the same for every signature a
    credential makes, are not parsed and hashed again for each one; pyHanko only reads
    them."""
    return x509.Certificate.load(der)


class _TokenSigner(signers.Signer):
    """A pyHanko signer whose private key stays on a token: ``sign_digest`` receives the
    SHA-256 of the DER signed attributes and returns the raw signature (RSA PKCS#1 v1.5
    or RSASSA-PSS bytes, or a DER ECDSA-Sig-Value). For RSA-PSS the CMS names the RFC
    4055 parameters SHA-256, MGF1-SHA-256, 32-byte salt."""

    def __init__(self, identity: SignerIdentity, sign_digest: SignDigest) -> None:
        cert = _certificate(identity.certificate)
        is_rsa = cert.public_key.algorithm == "rsa"
        mechanism = identity.mechanism
        if (mechanism.key_type == "rsa") != is_rsa:
            raise ValueError(f"{mechanism} does not fit the certificate's key")
        # Placeholder size for pyHanko's dry run: RSA modulus bytes; a DER ECDSA-Sig-Value
        # is at most two INTEGERs of the order's size plus a sign byte and headers each.
        self.signature_size = (
            cert.public_key.byte_size if is_rsa else 2 * cert.public_key.byte_size + 9
        )
        super().__init__(
            signing_cert=cert,
            cert_registry=SimpleCertificateStore.from_certs(
                [_certificate(c) for c in identity.chain]
            ),
            signature_mechanism=_algorithm(mechanism, is_rsa),
        )
        self._sign_digest = sign_digest

    async def async_sign_raw(
        self, data: bytes, digest_algorithm: str, dry_run: bool = False
    ) -> bytes:
        """pyHanko hook: sign ``data`` (the DER signed attributes) hashed with SHA-256."""
        if digest_algorithm.lower() != "sha256":
            raise ValueError("only SHA-256 is supported")
        if dry_run:
            return bytes(self.signature_size)
        return self._sign_digest(hashlib.sha256(data).digest())


def _algorithm(mechanism: SignatureMechanism, is_rsa: bool) -> algos.SignedDigestAlgorithm:
    if mechanism is not SignatureMechanism.RSA_PSS_SHA256:
        return algos.SignedDigestAlgorithm(
            {"algorithm": "sha256_rsa" if is_rsa else "sha256_ecdsa"}
        )
    return algos.SignedDigestAlgorithm(
        {
            "algorithm": "rsassa_pss",
            "parameters": algos.RSASSAPSSParams(
                {
                    "hash_algorithm": {"algorithm": "sha256"},
                    "mask_gen_algorithm": {
                        "algorithm": "mgf1",
                        "parameters": {"algorithm": "sha256"},
                    },
                    "salt_length": mechanism.pss_salt_length,
                    "trailer_field": "trailer_field_bc",
                }
            ),
        }
    )


def placeholder_signature(identity: SignerIdentity) -> SignDigest:
    """A ``sign_digest`` that signs nothing: zero bytes of the size the key's signature
    has. With it :func:`build_signed_pdf` runs every stage of a real signature (the
    update, the fields, the appearance, the CMS) without a token: the preview of the
    signature's place and look, and the check at submission that the document can be
    signed, go through the very code the bridge runs."""
    size = _TokenSigner(identity, lambda _: b"").signature_size
    return lambda _digest: bytes(size)


def build_signed_pdf(
    document: bytes,
    params: SignatureParameters,
    identity: SignerIdentity,
    *,
    image: bytes | None,
    signing_time: dt.datetime,
    sign_digest: SignDigest,
    timestamper: TimeStamper | None = None,
    validation_data: ValidationData | None = None,
    max_pages: int = DocumentLimits().max_pages,
) -> bytes:
    """Sign ``document`` (PDF bytes) as ``params`` say, as an incremental update; return
    the signed PDF, of which ``document`` is an exact prefix.

    ``image``: the PNG ``params.image_sha256`` names (see :func:`check_images`).
    ``signing_time`` (aware): the CMS signingTime, the signature dictionary's /M and
    the time written in the appearance (in Vietnam time). ``sign_digest``: the token's
    raw signature of a 32-byte SHA-256 digest. ``timestamper``: the TSA, used from
    B-T up; ``validation_data``: what B-LT and B-LTA embed (ValueError without it or
    without a TSA for those levels).

    The fields of ``params.empty_fields`` are created empty in the same update, after
    the signature's own (so that they are drawn over it). Raises pyHanko's errors on a
    document it cannot update, the token's errors from ``sign_digest``,
    :class:`~pdf_structure.limits.LimitExceeded` past ``max_pages``, and ValueError when
    the output does not start with the input (never expected). The document is read as
    the gateway's intake reads it (:func:`pdf_structure.reader.open_reader`)."""
    writer = IncrementalPdfFileWriter.from_reader(open_reader(document))
    pages = _declared_pages(writer)
    if not 0 < pages <= max_pages:
        raise LimitExceeded("pages", f"the document has {pages} pages; the limit is {max_pages}")
    field_name = params.field_name or _free_field_name(writer, params)
    new_field, rotation = _add_fields(writer, params, field_name)
    token_signer = _TokenSigner(identity, sign_digest)
    level = params.pades_level
    if level in PadesLevel.TIMESTAMPED and timestamper is None:
        raise ValueError(f"PAdES {level} needs a time-stamping authority")
    long_term = level in PadesLevel.WITH_VALIDATION_DATA
    if long_term and validation_data is None:
        raise ValueError(f"PAdES {level} needs the chain's validation data")
    meta = signers.PdfSignatureMetadata(
        field_name=field_name,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        reason=params.reason,
        location=params.location,
        contact_info=params.contact_info,
        embed_validation_info=long_term,
        # without a timestamp every part of the CMS has a size known up front (the
        # dry run's signature is the largest the key makes): no margin to pad, nor to
        # read back as hex digits at every validation
        tight_size_estimates=level not in PadesLevel.TIMESTAMPED,
        use_pades_lta=level == PadesLevel.B_LTA,
        validation_context=(
            _validation_context(identity, validation_data)
            if long_term and validation_data is not None
            else None
        ),
    )
    pdf_signer = signers.PdfSigner(
        meta,
        signer=token_signer,
        timestamper=timestamper if level in PadesLevel.TIMESTAMPED else None,
        # also for an existing visible field: its appearance gets the Vietnamese font
        stamp_style=appearance_style(params, image, token_signer.signing_cert, rotation),
        new_field_spec=new_field,
    )
    # the coroutine returns the buffer, not its bytes: asyncio formats a task's result
    # for its debug representation, which costs a copy of a large document
    signed = asyncio.run(_sign(pdf_signer, writer, meta, signing_time)).getvalue()
    if not signed.startswith(document):
        raise ValueError("the signed output does not start with the original bytes")
    return signed


def _validation_context(identity: SignerIdentity, data: ValidationData) -> ValidationContext:
    """The context pyHanko validates the signer's chain in and collects the DSS from:
    the bridge's trust anchors, the CA answers the bridge checked, and fetching (bounded)
    for the timestamp's chain."""
    return ValidationContext(
        trust_roots=[_certificate(der) for der in data.trust_anchors],
        other_certs=[_certificate(der) for der in identity.chain],
        ocsps=list(data.ocsps),
        crls=list(data.crls),
        allow_fetching=True,
        fetcher_backend=RequestsFetcherBackend(per_request_timeout=data.timeout_seconds),
        revocation_mode="hard-fail",
    )


async def _sign(
    pdf_signer: signers.PdfSigner,
    writer: IncrementalPdfFileWriter,
    meta: signers.PdfSignatureMetadata,
    signing_time: dt.datetime,
) -> io.BytesIO:
    """pyHanko's interrupted signing (``async_digest_doc_for_signing``, then
    ``perform_signature``), with the signing session's clock set to ``signing_time`` so
    that /M and the CMS signingTime are the bridge's time, not pyHanko's own; the
    buffer holding the signed PDF."""
    session = pdf_signer.init_signing_session(writer)
    session.system_time = signing_time
    validation_info = await session.perform_presign_validation(writer)
    reserved = await session.estimate_signature_container_size(
        validation_info=validation_info, tight=meta.tight_size_estimates
    )
    tbs_document = session.prepare_tbs_document(
        validation_info=validation_info,
        bytes_reserved=reserved,
        appearance_text_params={"local_time": local_time_text(signing_time)},
    )
    output = io.BytesIO()
    prepared_digest, _ = tbs_document.digest_tbs_document(output=output)
    post_signature = await tbs_document.perform_signature(
        prepared_digest.document_digest,
        PdfCMSSignedAttributes(
            signing_time=signing_time, cades_signed_attrs=meta.cades_signed_attr_spec
        ),
    )
    await post_signature.post_signature_processing(output)
    return output


def _declared_pages(writer: IncrementalPdfFileWriter) -> int:
    """The page count the page tree's root declares (/Count; -1 when it declares none).
    Intake checked that it is the count the tree holds; here it bounds the work of a
    document the web tier might have swapped in: the bridge descends only to the pages
    it draws on (signing into a document's own field walks the tree once, to find the
    field's page)."""
    count = writer.root["/Pages"].get("/Count")
    return count if isinstance(count, int) and not isinstance(count, bool) else -1


def _add_fields(
    writer: IncrementalPdfFileWriter, params: SignatureParameters, field_name: str
) -> tuple[fields.SigFieldSpec | None, int]:
    """The new signature field's spec (None when it is added here already, or when the
    signature goes into an existing field or is invisible) and the /Rotate of the page
    it shows on. With ``params.empty_fields`` the signature's own field is appended
    first, then the empty ones, all in this update."""
    new_field = None
    rotation = 0
    if params.box is not None and params.page is not None:
        new_field = _field_spec(writer, field_name, params.page, params.box)
        rotation = page_geometry(writer.root["/Pages"], params.page - 1).rotate
    elif params.field_name is not None:
        rotation = _field_rotation(writer, params.field_name)  # the document's own field
    if params.empty_fields:
        if new_field is not None:
            fields.append_signature_field(writer, new_field)
            new_field = None
        for empty in params.empty_fields:
            fields.append_signature_field(
                writer, _field_spec(writer, empty.name, empty.page, empty.box)
            )
    return new_field, rotation


def _free_field_name(writer: IncrementalPdfFileWriter, params: SignatureParameters) -> str:
    """``SignatureN`` with the smallest N not used by any field of the document nor by
    the empty fields the update creates (so that an earlier field, filled or of another
    type, is never chosen)."""
    taken = set(field_names(writer.prev.root.get("/AcroForm"))) | {
        empty.name for empty in params.empty_fields
    }
    return next(f"Signature{n}" for n in range(1, len(taken) + 2) if f"Signature{n}" not in taken)


def _field_rotation(writer: IncrementalPdfFileWriter, name: str) -> int:
    """The /Rotate of the page that shows the widget of the document's field ``name``
    (fully qualified), so that its appearance reads upright too; 0 when not found."""
    place = signature_field_places(writer.prev, writer.root["/Pages"]).get(name)
    if place is None:
        return 0
    return page_geometries(writer.root["/Pages"])[place[0]].rotate


def _field_spec(
    writer: IncrementalPdfFileWriter, name: str, page: int, box: Box
) -> fields.SigFieldSpec:
    """A signature field ``name`` on ``page`` (1-based) at ``box`` as the reader sees
    the page; the widget's /Rect is in user space (:mod:`pdf_structure.geometry`)."""
    rect = to_user_space(box, page_geometry(writer.root["/Pages"], page - 1))
    return fields.SigFieldSpec(
        sig_field_name=name,
        on_page=page - 1,
        # pyHanko annotates the box as ints; it writes any number into /Rect
        box=(round(rect[0], 4), round(rect[1], 4), round(rect[2], 4), round(rect[3], 4)),  # type: ignore[arg-type]
    )
