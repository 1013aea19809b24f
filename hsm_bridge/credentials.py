"""How a credential is named (token serial + CKA_ID) and which mechanisms sign with it."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["CredentialRef", "SignatureMechanism"]


class SignatureMechanism(enum.StrEnum):
    """Signature mechanisms the bridge offers over a precomputed SHA-256 digest.

    ``RSA_PKCS_SHA256``: CKM_RSA_PKCS over the DER DigestInfo (RFC 8017 §9.2) of the
    digest; result is the raw RSASSA-PKCS1-v1_5 signature (modulus length bytes).
    ``RSA_PSS_SHA256``: CKM_RSA_PKCS_PSS over the digest with SHA-256, MGF1-SHA-256 and
    a 32-byte salt (RFC 8017 §8.1, RSASSA-PSS; RFC 4055 parameters); result is modulus
    length bytes.
    ``ECDSA_SHA256``: CKM_ECDSA over the 32-byte digest (P-256 or P-384 keys); the raw
    r||s answer is DER-encoded as an ECDSA-Sig-Value (RFC 5480 / X9.62) before it is
    returned.
    """

    RSA_PKCS_SHA256 = "rsa_pkcs_sha256"
    RSA_PSS_SHA256 = "rsa_pss_sha256"
    ECDSA_SHA256 = "ecdsa_sha256"

    @property
    def key_type(self) -> str:
        """``rsa`` or ``ec``: the key type this mechanism needs."""
        return "ec" if self is SignatureMechanism.ECDSA_SHA256 else "rsa"

    @property
    def pss_salt_length(self) -> int | None:
        """The RSASSA-PSS salt length in bytes, or None for other mechanisms."""
        return 32 if self is SignatureMechanism.RSA_PSS_SHA256 else None


@dataclass(frozen=True, slots=True)
class CredentialRef:
    """Where a credential lives: the token's serial number and the CKA_ID shared by the
    private key and its certificate. Slot numbers are never used (they move).

    ``token_serial``: the token's serialNumber from CK_TOKEN_INFO, stripped of padding.
    ``key_id``: the CKA_ID bytes.
    """

    token_serial: str
    key_id: bytes

    def __str__(self) -> str:
        return f"{self.token_serial}/{self.key_id.hex()}"
