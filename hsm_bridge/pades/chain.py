"""The certificate chain a signature embeds, assembled by the bridge from certificates it
holds itself: those stored on the token beside the key (real tokens carry their issuing
CA's) and the bridge administrator's CA file. Nothing the web tier sends goes into it."""

from __future__ import annotations

import functools
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding

__all__ = ["MAX_CHAIN", "issuer_chain", "load_ca_file"]

# deeper than any real PKI (root, policy CA, issuing CA)
MAX_CHAIN = 6


def load_ca_file(path: Path | None) -> tuple[bytes, ...]:
    """DER bytes of every certificate in the PEM bundle ``path``; () when it is None or
    absent."""
    if path is None or not path.exists():
        return ()
    certificates = x509.load_pem_x509_certificates(path.read_bytes())
    return tuple(c.public_bytes(Encoding.DER) for c in certificates)


@functools.lru_cache(maxsize=64)
def issuer_chain(certificate_der: bytes, candidates: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """The issuers of ``certificate_der`` among ``candidates`` (DER), upwards: each one
    names the previous one's issuer and verifies its signature
    (``verify_directly_issued_by``); a self-signed certificate ends the chain, and so
    does a missing issuer (the validator then finds the rest, or reports it). A pure
    function of its arguments, so its answers are kept for the next signatures."""
    pool: dict[bytes, list[x509.Certificate]] = {}
    for der in candidates:
        try:
            candidate = x509.load_der_x509_certificate(der)
        except ValueError:
            continue
        pool.setdefault(candidate.subject.public_bytes(), []).append(candidate)
    chain: list[bytes] = []
    current = x509.load_der_x509_certificate(certificate_der)
    for _ in range(MAX_CHAIN):
        if current.issuer == current.subject:
            break
        issuer = next(
            (c for c in pool.get(current.issuer.public_bytes(), []) if _issued(current, c)), None
        )
        if issuer is None:
            break
        chain.append(issuer.public_bytes(Encoding.DER))
        current = issuer
    return tuple(chain)


def _issued(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
