"""Signing a precomputed digest with a private key on a token (C_SignInit + C_Sign)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pkcs11.exceptions as p11e
from pkcs11 import MGF, Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_ecdsa_signature

from hsm_bridge.credentials import SignatureMechanism
from hsm_bridge.errors import CredentialNotFound, MechanismUnsupported

__all__ = ["always_authenticate", "find_certificate", "find_private_key", "sign_digest"]

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


def always_authenticate(key: Any) -> bool:
    """Whether the key demands a context-specific login for each signature
    (CKA_ALWAYS_AUTHENTICATE, PKCS#11 v2.40 §4.9); False when the token does not say."""
    try:
        return bool(key[Attribute.ALWAYS_AUTHENTICATE])
    except (p11e.AttributeTypeInvalid, p11e.AttributeSensitive, KeyError):
        return False


@dataclass(frozen=True, slots=True)
class _KnownKey:
    key: Any
    key_type: KeyType
    always_authenticate: bool
    found_at: float


# How long a key handle found by C_FindObjects is reused on one session before the token
# is searched again (which also re-checks that its CKA_ID is still unambiguous).
KEY_CACHE_SECONDS = 60.0


def _private_key(session: Any, key_id: bytes, cache: dict[bytes, Any] | None) -> _KnownKey:
    known = cache.get(key_id) if cache is not None else None
    if known is None or time.monotonic() - known.found_at > KEY_CACHE_SECONDS:
        key = find_private_key(session, key_id)
        known = _KnownKey(key, key.key_type, always_authenticate(key), time.monotonic())
        if cache is not None:
            cache[key_id] = known
    return known


def sign_digest(
    session: Any,
    key_id: bytes,
    digest: bytes,
    mechanism: SignatureMechanism,
    *,
    context_pin: Callable[[], str] | None = None,
    cache: dict[bytes, Any] | None = None,
) -> bytes:
    """Sign the 32-byte SHA-256 ``digest`` with the private key ``key_id``
    (C_SignInit + C_Sign).

    RSA PKCS#1 v1.5: CKM_RSA_PKCS over DigestInfo (RFC 8017 §9.2); RSA-PSS:
    CKM_RSA_PKCS_PSS with SHA-256/MGF1-SHA-256/32-byte salt (RFC 8017 §8.1); both return
    the modulus-length signature. EC (P-256, P-384): CKM_ECDSA over the digest; the raw
    r||s is returned DER-encoded (ECDSA-Sig-Value, RFC 3279 §2.2.3).
    When the key has CKA_ALWAYS_AUTHENTICATE, ``context_pin()`` gives the PIN for the
    context-specific C_Login made between C_SignInit and C_Sign.
    ``cache``: a dict kept per session (see :meth:`TokenPool.session_cache`) in which the
    key handle is remembered for :data:`KEY_CACHE_SECONDS`; a handle the token no longer
    knows is searched again once.
    Raises :class:`MechanismUnsupported` if the key type does not fit ``mechanism``.
    """
    if len(digest) != 32:
        raise ValueError("digest must be 32 bytes (SHA-256)")
    if mechanism is SignatureMechanism.RSA_PKCS_SHA256:
        data, p11_mechanism, param = _SHA256_DIGEST_INFO + digest, Mechanism.RSA_PKCS, None
    elif mechanism is SignatureMechanism.RSA_PSS_SHA256:
        data, p11_mechanism = digest, Mechanism.RSA_PKCS_PSS
        param = (Mechanism.SHA256, MGF.SHA256, mechanism.pss_salt_length)
    elif mechanism is SignatureMechanism.ECDSA_SHA256:
        data, p11_mechanism, param = digest, Mechanism.ECDSA, None
    else:
        raise MechanismUnsupported(f"unknown mechanism {mechanism}")
    for attempt in (1, 2):
        known = _private_key(session, key_id, cache)
        if mechanism.key_type == "rsa" and known.key_type != KeyType.RSA:
            raise MechanismUnsupported(f"{mechanism} needs an RSA key")
        if mechanism.key_type == "ec" and known.key_type != KeyType.EC:
            raise MechanismUnsupported(f"{mechanism} needs an EC key")
        pin = context_pin() if context_pin is not None and known.always_authenticate else None
        try:
            signature = bytes(
                known.key.sign(data, mechanism=p11_mechanism, mechanism_param=param, pin=pin)
            )
        except (p11e.ObjectHandleInvalid, p11e.KeyHandleInvalid):
            if cache is None or attempt == 2:
                raise
            cache.pop(key_id, None)  # the key was replaced or the token re-inserted
            continue
        break
    if mechanism is SignatureMechanism.ECDSA_SHA256:
        return encode_ecdsa_signature(signature)
    return signature
