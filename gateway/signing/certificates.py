"""Checks on the signer's certificates right before signing (docs/design.md invariant 6)."""

from __future__ import annotations

import datetime as dt

from asn1crypto import x509 as asn1_x509

from gateway.errors import CertificateNotValid, CertificateRevoked

__all__ = ["check_usable"]


def check_usable(
    certificates_der: list[bytes], *, revoked_at: dt.datetime | None, now: dt.datetime
) -> None:
    """Raise unless every certificate of the path (DER, signer first) is within its
    validity period at ``now`` (RFC 5280 §4.1.2.5) and the credential was not revoked at
    or before ``now``.

    Raises CertificateRevoked or CertificateNotValid. Revocation comes from the
    gateway's own record (an administrator revokes a credential when staff rotate);
    OCSP/CRL checking against the issuing CA is not done yet."""
    if revoked_at is not None and revoked_at <= now:
        raise CertificateRevoked("the signer's certificate was revoked")
    for der in certificates_der:
        validity = asn1_x509.Certificate.load(der)["tbs_certificate"]["validity"]
        not_before, not_after = validity["not_before"].native, validity["not_after"].native
        if now < not_before:
            raise CertificateNotValid("a certificate of the signer's chain is not yet valid")
        if now > not_after:
            raise CertificateNotValid("a certificate of the signer's chain has expired")
