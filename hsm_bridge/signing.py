"""Signing a precomputed digest with a private key on a token (C_SignInit + C_Sign)."""

from __future__ import annotations

from typing import Any

from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_ecdsa_signature

from hsm_bridge.credentials import SignatureMechanism
from hsm_bridge.errors import CredentialNotFound, MechanismUnsupported

__all__ = ["find_certificate", "find_private_key", "sign_digest"]

# DER prefix of DigestInfo{sha256, NULL} (RFC 8017 §9.2 note 1); the 32-byte digest follows.
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def find_private_key(session: Any, key_id: bytes) -> Any:
    """The single private key with CKA_ID ``key_id``; :class:`CredentialNotFound` if
    there is none or more than one."""
    return _one_attr(session, "private key", ObjectClass.PRIVATE_KEY, key_id)


def _one_attr(session: Any, what: str, cls: ObjectClass, key_id: bytes) -> Any:
    objects = list(session.get_objects({Attribute.CLASS: cls, Attribute.ID: key_id}))
    if not objects:
        raise CredentialNotFound(f"no {what} with this CKA_ID on the token")
    if len(objects) > 1:
        raise CredentialNotFound(f"{len(objects)} {what}s share this CKA_ID: ambiguous")
    return objects[0]


def find_certificate(session: Any, key_id: bytes) -> bytes:
    """DER bytes (CKA_VALUE) of the single X.509 certificate with CKA_ID ``key_id``."""
    cert = _one_attr(session, "certificate", ObjectClass.CERTIFICATE, key_id)
    return bytes(cert[Attribute.VALUE])


def sign_digest(session: Any, key_id: bytes, digest: bytes, mechanism: SignatureMechanism) -> bytes:
    """Sign the 32-byte SHA-256 ``digest`` with the private key ``key_id``.

    RSA: CKM_RSA_PKCS over DigestInfo (RFC 8017 §8.2, EMSA-PKCS1-v1_5); returns the
    modulus-length signature. EC: CKM_ECDSA over the digest; the raw r||s is returned
    DER-encoded (ECDSA-Sig-Value, RFC 3279 §2.2.3).
    Raises :class:`MechanismUnsupported` if the key type does not fit ``mechanism``.
    """
    if len(digest) != 32:
        raise ValueError("digest must be 32 bytes (SHA-256)")
    key = find_private_key(session, key_id)
    key_type = key.key_type
    if mechanism is SignatureMechanism.RSA_PKCS_SHA256:
        if key_type != KeyType.RSA:
            raise MechanismUnsupported("RSA PKCS#1 v1.5 needs an RSA key")
        return bytes(key.sign(_SHA256_DIGEST_INFO + digest, mechanism=Mechanism.RSA_PKCS))
    if mechanism is SignatureMechanism.ECDSA_SHA256:
        if key_type != KeyType.EC:
            raise MechanismUnsupported("ECDSA needs an EC key")
        return encode_ecdsa_signature(bytes(key.sign(digest, mechanism=Mechanism.ECDSA)))
    raise MechanismUnsupported(f"unknown mechanism {mechanism}")
