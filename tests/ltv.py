"""Long-term validation as a verifier would run it at a future date: pyHanko's AdES LTA
validation (ETSI EN 319 102-1 §5.6.3) at ``at``, offline, revocation data required for
every certificate, with only the trust anchors and what the document embeds; the newest
document timestamp's TSA certificate is taken as not revoked at ``at`` (what that
verifier would ask its CA then)."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
from collections.abc import Sequence

from asn1crypto import x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESPassed
from pyhanko.sign.validation import ades
from pyhanko.sign.validation.policy_decl import (
    LocalKnowledge,
)
from pyhanko_certvalidator.ltv.types import ValidationTimingInfo
from pyhanko_certvalidator.policy_decl import (
    NonRevokedStatusAssertion,
)

from gateway.signing.levels import offline_lta_spec


def lta_passes_at(pdf: bytes, trust_anchors: Sequence[bytes], at: dt.datetime) -> list[bool]:
    """For each signature of ``pdf`` (oldest first), whether LTA validation at ``at``
    passes."""
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    stamps = reader.embedded_timestamp_signatures
    assertions = [NonRevokedStatusAssertion(stamps[-1].signer_cert.sha256, at=at)] if stamps else []
    anchors = [x509.Certificate.load(der) for der in trust_anchors]
    spec = offline_lta_spec(anchors, LocalKnowledge(nonrevoked_assertions=assertions))
    timing = ValidationTimingInfo(
        validation_time=at, best_signature_time=at, point_in_time_validation=False
    )
    signatures = sorted(reader.embedded_regular_signatures, key=lambda s: s.signed_revision)
    return [_passes(signature, spec, timing) for signature in signatures]


def _passes(signature, spec, timing) -> bool:
    try:
        result = asyncio.run(ades.ades_lta_validation(signature, spec, timing_info=timing))
    except Exception:  # noqa: BLE001 - a validation that cannot complete does not pass
        return False
    return result.ades_subindic is AdESPassed.OK
