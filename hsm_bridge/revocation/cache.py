"""Revocation answers kept for a short while, and never past their nextUpdate.

An OCSP response (RFC 6960 §4.2.1) or a CRL (RFC 5280 §5.1.2.5) says when the next one
will be issued, and is the CA's word until then. But a CA's responder learns of a
revocation at once, and a signer whose certificate was revoked must not sign a minute
later: so an answer is reused only for ``max_age`` after it was fetched (by default 30
seconds: the signatures of one batch ask once), and never past its nextUpdate. One
without a nextUpdate is never kept: it is used once, for the check that fetched it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import crl, ocsp

__all__ = ["RevocationCache"]

# A responder's clock may run a little ahead of the bridge's.
CLOCK_SKEW = dt.timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class _Entry:
    der: bytes
    this_update: dt.datetime
    until: dt.datetime


class RevocationCache:
    """Thread-safe store of DER OCSP responses and CRLs, each served while
    ``this_update - 5 min <= now < min(next_update, fetched + max_age)``."""

    def __init__(self, max_age: dt.timedelta = dt.timedelta(seconds=30)) -> None:
        self.max_age = max_age
        self._ocsps: dict[str, _Entry] = {}
        self._crls: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def add_ocsp(self, response: ocsp.OCSPResponse, *, fetched: dt.datetime) -> None:
        """Keep a successful OCSP response (its first single response's times) fetched
        at ``fetched``."""
        try:
            single = response["response_bytes"]["response"].parsed["tbs_response_data"][
                "responses"
            ][0]
            this_update = single["this_update"].native
            next_update = single["next_update"].native
        except (KeyError, IndexError, TypeError, ValueError):
            return
        self._keep(self._ocsps, response.dump(), this_update, next_update, fetched)

    def add_crl(self, certificate_list: crl.CertificateList, *, fetched: dt.datetime) -> None:
        """Keep a CRL fetched at ``fetched``."""
        tbs = certificate_list["tbs_cert_list"]
        next_update = tbs["next_update"].native
        this_update = tbs["this_update"].native
        self._keep(self._crls, certificate_list.dump(), this_update, next_update, fetched)

    def good_until(self, answers: Sequence[bytes]) -> dt.datetime | None:
        """Until when every one of ``answers`` (DER OCSP responses and CRLs) is kept:
        the earliest; None when one of them is not kept (or there are none)."""
        with self._lock:
            entries = [
                self._ocsps.get(hashlib.sha256(der).hexdigest())
                or self._crls.get(hashlib.sha256(der).hexdigest())
                for der in answers
            ]
        if not entries or any(e is None for e in entries):
            return None
        return min(e.until for e in entries if e is not None)

    def fresh(self, now: dt.datetime) -> tuple[list[bytes], list[bytes]]:
        """The OCSP responses and the CRLs (DER) that are current at ``now``; forgets
        the ones that are not any more."""
        with self._lock:
            return self._current(self._ocsps, now), self._current(self._crls, now)

    def _keep(
        self,
        store: dict[str, _Entry],
        der: bytes,
        this_update: dt.datetime | None,
        next_update: dt.datetime | None,
        fetched: dt.datetime,
    ) -> None:
        if this_update is None or next_update is None:
            return
        key = hashlib.sha256(der).hexdigest()
        with self._lock:
            if key not in store:  # an answer given back is not fresher for it
                store[key] = _Entry(der, this_update, min(next_update, fetched + self.max_age))

    @staticmethod
    def _current(store: dict[str, _Entry], now: dt.datetime) -> list[bytes]:
        for key in [k for k, e in store.items() if not now < e.until]:
            del store[key]
        return [e.der for e in store.values() if e.this_update - CLOCK_SKEW <= now]
