"""The signer's certificate cannot sign now (docs/design.md invariant 6)."""

from __future__ import annotations

from gateway.errors.base import CertificateRefused

__all__ = [
    "CertificateHolderMismatch",
    "CertificateNotValid",
    "CertificateRevoked",
]


class CertificateNotValid(CertificateRefused):
    """Checked right before signing (invariant 6): nothing is signed."""

    code = "certificate_not_valid"
    status = 409
    title = "The signer's certificate is expired or not yet valid"


class CertificateHolderMismatch(CertificateRefused):
    """A credential is being registered for a user (or an organisation) whose name is
    not the one its certificate names: that person's next signature would carry another
    person's name. Registered only when the administrator confirms the name."""

    code = "certificate_holder_mismatch"
    status = 409
    title = "The certificate names someone else"


class CertificateRevoked(CertificateRefused):
    """The credential was revoked: nothing is signed with it any more."""

    code = "certificate_revoked"
    status = 409
    title = "The signer's certificate is revoked"
