"""Which PAdES baseline level a signed PDF's signatures reach, judged offline: only the
trust anchors given and what the document itself embeds (its CMS, its DSS, its document
timestamps) count, nothing is fetched.

- B-B: the signature is intact, valid, and its signer chains to a trust anchor;
- B-T: and a signature timestamp from a trusted TSA covers it;
- B-LT: and the document security store (DSS) holds the revocation data of the signer's
  and the TSA's chains: the signature and its timestamp validate with revocation
  checking required, from the DSS alone;
- B-LTA: and a later document timestamp from a trusted TSA covers it (and the DSS).

Each signature is judged as of its signature timestamp's time, so that an archived
document whose certificates have since expired is still judged by what it embeds.
:func:`long_term_indication` adds pyHanko's AdES long-term validation (ETSI EN 319 102-1
§5.6.3, ``ades_lta_validation``) for the validation reports.

The gateway judges its own output with this right after the bridge signs: a signature
below the level asked for is never reported ``signed`` (``pades_level_not_reached``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import logging
from collections.abc import Sequence

from asn1crypto import x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESFailure, AdESPassed
from pyhanko.sign.validation import ades
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.errors import NoDSSFoundError
from pyhanko.sign.validation.pdf_embedded import (
    EmbeddedPdfSignature,
    async_validate_pdf_signature,
    async_validate_pdf_timestamp,
)
from pyhanko.sign.validation.policy_decl import (
    LocalKnowledge,
    PdfSignatureValidationSpec,
    RevinfoOnlineFetchingRule,
    RevocationInfoGatheringSpec,
    SignatureValidationSpec,
)
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.policy_decl import (
    CertRevTrustPolicy,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)
from pyhanko_certvalidator.registry import SimpleTrustManager

from hsm_bridge.pades import PadesLevel

__all__ = [
    "long_term_indication",
    "newest_signature_level",
    "offline_lta_spec",
    "reached_level",
    "signature_levels",
]

log = logging.getLogger(__name__)


def newest_signature_level(pdf: bytes, trust_anchors: Sequence[bytes]) -> str | None:
    """The level (``B-B`` … ``B-LTA``) the newest signature of ``pdf`` reaches with
    ``trust_anchors`` (DER root certificates), or None when it reaches none (no
    signature, broken, untrusted); the earlier signatures are not judged."""
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    signatures = reader.embedded_regular_signatures
    if not signatures:
        return None
    newest = max(signatures, key=lambda s: s.signed_revision)
    anchors = [x509.Certificate.load(der) for der in trust_anchors]
    return asyncio.run(reached_level(reader, newest, anchors))


def signature_levels(pdf: bytes, trust_anchors: Sequence[bytes]) -> list[tuple[str, str | None]]:
    """(field name, level or None) of each signature of ``pdf`` (document timestamps
    aside), oldest first."""
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    signatures = sorted(reader.embedded_regular_signatures, key=lambda s: s.signed_revision)
    anchors = [x509.Certificate.load(der) for der in trust_anchors]
    return [
        (sig.field_name, asyncio.run(reached_level(reader, sig, anchors))) for sig in signatures
    ]


async def reached_level(
    reader: PdfFileReader, signature: EmbeddedPdfSignature, anchors: list[x509.Certificate]
) -> str | None:
    """The level ``signature`` (of the document ``reader`` reads) reaches with
    ``anchors``, or None."""
    # judged when it was made: at its signature timestamp's time (now without one, or
    # when that timestamp is not from a trusted TSA: anyone can add one to a signature)
    moment = _timestamp_time(signature)
    timestamped = await _validates(signature, _context(anchors, "soft-fail", moment))
    if moment is not None and timestamped is not True:
        moment = None
        timestamped = await _validates(signature, _context(anchors, "soft-fail", None))
    if timestamped is None:
        return None
    if not timestamped:
        return PadesLevel.B_B
    try:
        dss = DocumentSecurityStore.read_dss(reader)
    except NoDSSFoundError:
        return PadesLevel.B_T
    long_term = dss.as_validation_context(
        {
            "trust_roots": anchors,
            "allow_fetching": False,
            "revocation_mode": "require",
            "moment": moment,
        }
    )
    if not await _validates(signature, long_term):
        return PadesLevel.B_T
    later = [
        ts
        for ts in reader.embedded_timestamp_signatures
        if ts.signed_revision > signature.signed_revision
    ]
    for stamp in later:
        if await _timestamp_validates(stamp, dss, anchors):
            return PadesLevel.B_LTA
    return PadesLevel.B_LT


def _timestamp_time(signature: EmbeddedPdfSignature) -> dt.datetime | None:
    """The time of ``signature``'s signature timestamp (RFC 3161 genTime), or None."""
    attributes = signature.signer_info["unsigned_attrs"]
    for attribute in attributes if attributes.native is not None else ():
        if attribute["type"].native == "signature_time_stamp_token":
            signed = attribute["values"][0]["content"]
            moment = signed["encap_content_info"]["content"].parsed["gen_time"].native
            return moment if isinstance(moment, dt.datetime) else None
    return None


async def _timestamp_validates(
    stamp: EmbeddedPdfSignature, dss: DocumentSecurityStore, anchors: list[x509.Certificate]
) -> bool:
    """Whether the document timestamp ``stamp`` is intact, valid and from a TSA that
    chains to ``anchors`` (at its own time)."""
    context = dss.as_validation_context(
        {"trust_roots": anchors, "allow_fetching": False, "revocation_mode": "soft-fail"}
    )
    try:
        status = await async_validate_pdf_timestamp(stamp, context, skip_diff=True)
    except Exception as exc:  # noqa: BLE001 - as below
        log.info("%s does not validate: %s", stamp.field_name, exc)
        return False
    return bool(status.intact and status.valid and status.trusted)


def _context(
    anchors: list[x509.Certificate], revocation_mode: str, moment: dt.datetime | None
) -> ValidationContext:
    return ValidationContext(
        trust_roots=anchors,
        allow_fetching=False,
        revocation_mode=revocation_mode,
        moment=moment,
    )


async def _validates(signature: EmbeddedPdfSignature, context: ValidationContext) -> bool | None:
    """None when ``signature`` is not intact, valid and trusted in ``context`` (its
    timestamp, if any, validated in the same context); else whether a trusted signature
    timestamp covers it."""
    try:
        status = await async_validate_pdf_signature(
            signature, context, ts_validation_context=context, skip_diff=True
        )
    except Exception as exc:  # noqa: BLE001 - pyHanko's many errors all mean "does not validate"
        log.info("%s does not validate: %s", signature.field_name, exc)
        return None
    if not (status.intact and status.valid and status.trusted):
        log.info("%s: %s", signature.field_name, status.summary())
        return None
    timestamp = status.timestamp_validity
    return timestamp is not None and bool(
        timestamp.intact and timestamp.valid and timestamp.trusted
    )


def offline_lta_spec(
    anchors: list[x509.Certificate], knowledge: LocalKnowledge | None = None
) -> PdfSignatureValidationSpec:
    """pyHanko's validation settings for an offline AdES LTA validation: ``anchors``
    trusted, revocation data required for every certificate, nothing fetched, and what
    the verifier knows besides the document (``knowledge``)."""
    rule = RevocationCheckingRule.CRL_OR_OCSP_REQUIRED
    policy = CertValidationPolicySpec(
        trust_manager=SimpleTrustManager.build(trust_roots=anchors),
        revinfo_policy=CertRevTrustPolicy(
            RevocationCheckingPolicy(ee_certificate_rule=rule, intermediate_ca_cert_rule=rule)
        ),
    )
    return PdfSignatureValidationSpec(
        SignatureValidationSpec(
            cert_validation_policy=policy,
            revinfo_gathering_policy=RevocationInfoGatheringSpec(
                online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY
            ),
            local_knowledge=knowledge or LocalKnowledge(),
        )
    )


async def long_term_indication(
    signature: EmbeddedPdfSignature, anchors: list[x509.Certificate]
) -> str:
    """pyHanko's AdES long-term validation of ``signature``, offline, revocation data
    required for every certificate: ``PASSED``, or ``INDETERMINATE``/``FAILED`` and the
    sub-indication (ETSI EN 319 102-1 §5.1.3, e.g. ``INDETERMINATE: NO_POE``)."""
    try:
        result = await ades.ades_lta_validation(signature, offline_lta_spec(anchors))
    except Exception as exc:  # noqa: BLE001 - as above
        log.info("%s fails long-term validation: %s", signature.field_name, exc)
        return "FAILED: " + type(exc).__name__
    indication = result.ades_subindic
    if indication is AdESPassed.OK:
        return "PASSED"
    kind = "FAILED" if isinstance(indication, AdESFailure) else "INDETERMINATE"
    return f"{kind}: {getattr(indication, 'name', indication)}"
