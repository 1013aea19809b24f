"""Revocation of the signer's certificate, checked by the bridge right before each
signature and failing closed: OCSP first, the CRL as fallback, answers verified and kept
until their nextUpdate (RFC 6960, RFC 5280; pyhanko-certvalidator does the path and
revocation processing)."""

from hsm_bridge.revocation.cache import RevocationCache
from hsm_bridge.revocation.checker import RevocationChecker, RevocationEvidence

__all__ = ["RevocationCache", "RevocationChecker", "RevocationEvidence"]
