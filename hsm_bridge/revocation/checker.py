"""Is the signer's certificate revoked? Asked of its CA right before each signature.

For the certificate and every CA certificate up to one of the bridge's trust anchors
(the anchor itself excepted), pyhanko-certvalidator builds the path and requires
revocation information: the OCSP responder named in the certificate's AIA first, the
CRL of its distribution points when OCSP gives no answer; each answer's signature, its
responder's authority and its freshness at the bridge's clock are verified. Answers are
kept until their nextUpdate (:class:`~hsm_bridge.revocation.cache.RevocationCache`), so
a batch asks the CA once. Every outcome but a verified "good" for the whole path is a
refusal: revoked (:class:`~hsm_bridge.errors.CertificateRevoked`), no usable answer in
time (:class:`~hsm_bridge.errors.RevocationUnavailable`), or a path to no trust anchor
(:class:`~hsm_bridge.errors.CertificateNotUsable`). The answers used come back as
evidence, for the DSS of a PAdES B-LT signature (ETSI EN 319 142-1 §5.4).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import crl, ocsp, x509
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator import errors as cv_errors
from pyhanko_certvalidator.fetchers.requests_fetchers import RequestsFetcherBackend

from hsm_bridge.errors import CertificateNotUsable, CertificateRevoked, RevocationUnavailable
from hsm_bridge.revocation.cache import RevocationCache

__all__ = ["RevocationChecker", "RevocationEvidence"]

log = logging.getLogger(__name__)

CLOCK_SKEW = dt.timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class RevocationEvidence:
    """The CA's answers that showed the path not revoked: DER OCSP responses and CRLs."""

    ocsps: tuple[bytes, ...] = ()
    crls: tuple[bytes, ...] = ()


class RevocationChecker:
    """Checks certificates against ``trust_anchors`` (DER root certificates) and their
    CAs' revocation services, each request bounded by ``timeout_seconds``."""

    def __init__(
        self,
        trust_anchors: Sequence[bytes],
        *,
        timeout_seconds: float = 5.0,
        cache: RevocationCache | None = None,
    ) -> None:
        self.trust_anchors = tuple(x509.Certificate.load(der) for der in trust_anchors)
        self.timeout_seconds = timeout_seconds
        self.cache = cache or RevocationCache()
        # a good verdict, kept while every answer it rests on is kept (the same answers
        # give the same verdict): path (SHA-256 of the DERs) -> (evidence, kept until)
        self._verdicts: dict[str, tuple[RevocationEvidence, dt.datetime]] = {}
        self._verdicts_lock = threading.Lock()

    def check(
        self, certificate: bytes, chain: Sequence[bytes], now: dt.datetime
    ) -> RevocationEvidence:
        """Whether ``certificate`` (DER), with the CA certificates ``chain`` (DER, any
        order), is trusted and unrevoked at ``now`` (aware). The answers used; raises
        CertificateRevoked, RevocationUnavailable or CertificateNotUsable."""
        if not self.trust_anchors:
            raise CertificateNotUsable("the bridge trusts no certification authority yet")
        path_key = hashlib.sha256(b"".join([certificate, *sorted(chain)])).hexdigest()
        with self._verdicts_lock:
            kept = self._verdicts.get(path_key)
        if kept is not None and now < kept[1] and now >= kept[1] - self.cache.max_age:
            return kept[0]
        evidence = self._check(certificate, chain, now)
        until = self.cache.good_until(evidence.ocsps + evidence.crls)
        if until is not None:
            with self._verdicts_lock:
                self._verdicts[path_key] = (evidence, until)
        return evidence

    def _check(
        self, certificate: bytes, chain: Sequence[bytes], now: dt.datetime
    ) -> RevocationEvidence:
        leaf = x509.Certificate.load(certificate)
        others = [x509.Certificate.load(der) for der in chain]
        ocsps, crls = _about(self.cache.fresh(now), [leaf, *others])
        try:
            # what the bridge already holds first: nothing is fetched while it suffices
            return asyncio.run(self._validate(leaf, others, now, ocsps, crls, fetch=False))
        except RevocationUnavailable:
            pass
        return asyncio.run(self._validate(leaf, others, now, ocsps, crls, fetch=True))

    async def _validate(
        self,
        leaf: x509.Certificate,
        others: list[x509.Certificate],
        now: dt.datetime,
        ocsps: list[bytes],
        crls: list[bytes],
        *,
        fetch: bool,
    ) -> RevocationEvidence:
        backend = RequestsFetcherBackend(per_request_timeout=self.timeout_seconds)
        context = ValidationContext(
            trust_roots=list(self.trust_anchors),
            other_certs=others,
            moment=now,
            allow_fetching=fetch,
            fetcher_backend=backend if fetch else None,
            ocsps=ocsps,
            crls=crls,
            revocation_mode="require",
            # the bridge's and the CA's clocks may differ a little: an answer issued
            # seconds "after" the bridge's now is not refused for that
            time_tolerance=CLOCK_SKEW,
        )
        validator = CertificateValidator(leaf, others, validation_context=context)
        try:
            await validator.async_validate_usage(set())
        except cv_errors.RevokedError as exc:
            log.warning("certificate %s is revoked: %s", _name(leaf), exc.failure_msg)
            raise CertificateRevoked(_revoked_message(exc)) from exc
        except (cv_errors.ExpiredError, cv_errors.NotYetValidError) as exc:
            raise CertificateNotUsable(exc.failure_msg) from exc
        except cv_errors.PathBuildingError as exc:
            raise CertificateNotUsable(
                "the certificate's chain leads to no certification authority the bridge trusts"
            ) from exc
        except (cv_errors.PathValidationError, cv_errors.ValidationError) as exc:
            if fetch:
                log.warning("revocation of %s unavailable: %s", _name(leaf), exc)
            raise RevocationUnavailable(
                "the certification authority's OCSP responder and CRL gave no usable answer"
                f" ({_short(exc)}); nothing was signed"
            ) from exc
        finally:
            await backend.close()
        if fetch:
            self._keep(context, now)
        return self._evidence(context)

    def _keep(self, context: ValidationContext, now: dt.datetime) -> None:
        """Keep what was fetched (the context's answers, the ones given to it included:
        the cache keeps the time it first got those)."""
        for response in context.revinfo_manager.ocsps:
            self.cache.add_ocsp(response, fetched=now)
        for certificate_list in context.revinfo_manager.crls:
            self.cache.add_crl(certificate_list, fetched=now)

    @staticmethod
    def _evidence(context: ValidationContext) -> RevocationEvidence:
        manager = context.revinfo_manager
        return RevocationEvidence(
            tuple(dict.fromkeys(r.dump() for r in manager.ocsps)),
            tuple(dict.fromkeys(c.dump() for c in manager.crls)),
        )


def _about(
    cached: tuple[list[bytes], list[bytes]], path: list[x509.Certificate]
) -> tuple[list[bytes], list[bytes]]:
    """Of the cached answers, those about ``path``'s certificates: OCSP responses for
    their serial numbers, CRLs of their issuers. The answers used become the DSS of a
    B-LT signature, which must not tell who else signed lately."""
    serials = {c.serial_number for c in path}
    issuers = {c.issuer.dump() for c in path}
    ocsps = [der for der in cached[0] if _ocsp_serials(der) & serials]
    crls = [
        der
        for der in cached[1]
        if crl.CertificateList.load(der)["tbs_cert_list"]["issuer"].dump() in issuers
    ]
    return ocsps, crls


def _ocsp_serials(der: bytes) -> set[int]:
    response = ocsp.OCSPResponse.load(der)["response_bytes"]["response"].parsed
    return {
        int(single["cert_id"]["serial_number"].native)
        for single in response["tbs_response_data"]["responses"]
    }


def _name(certificate: x509.Certificate) -> str:
    return str(certificate.subject.human_friendly)


def _revoked_message(exc: cv_errors.RevokedError) -> str:
    when = exc.revocation_dt.strftime("%Y-%m-%d %H:%M UTC") if exc.revocation_dt else "?"
    reason = exc.reason.human_friendly if exc.reason is not None else "unspecified"
    return f"the certification authority revoked the certificate on {when} ({reason})"


def _short(exc: Exception) -> str:
    text = getattr(exc, "failure_msg", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())[:200]
