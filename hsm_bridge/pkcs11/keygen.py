"""Keys for a certification authority on any PKCS#11 token: checking that the token can
make and use the key, generating the key pair inside it under a fresh CKA_ID, finding
the key pair a returned certificate certifies, and storing that certificate beside it.

Only standard mechanisms and attributes (PKCS#11 v2.40): CKM_RSA_PKCS_KEY_PAIR_GEN or
CKM_EC_KEY_PAIR_GEN to generate, CKM_RSA_PKCS or CKM_ECDSA to sign (what the bridge
signs documents with), CKA_ID to tie a certificate to its key.
"""

from __future__ import annotations

import secrets
from typing import Any

import pkcs11.exceptions as p11e
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
)
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_ec_public_key

from hsm_bridge.errors import CredentialNotFound, MechanismUnsupported, NoMatchingKey
from hsm_bridge.pkcs11.provisioning import KeySpec, store_certificate
from hsm_bridge.pkcs11.signing import find_private_key

__all__ = [
    "REQUEST_SPECS",
    "check_mechanisms",
    "find_key_for",
    "new_key_id",
    "spki_der",
    "store_issued_certificate",
]

# The key types a certificate request can be made for, and the mechanisms each needs.
REQUEST_SPECS: dict[KeySpec, tuple[Mechanism, Mechanism]] = {
    KeySpec.RSA_2048: (Mechanism.RSA_PKCS_KEY_PAIR_GEN, Mechanism.RSA_PKCS),
    KeySpec.EC_P256: (Mechanism.EC_KEY_PAIR_GEN, Mechanism.ECDSA),
}

KEY_ID_BYTES = 16


def check_mechanisms(token: Any, spec: KeySpec) -> None:
    """Check that python-pkcs11 ``token``'s slot offers what ``spec`` needs
    (C_GetMechanismList; for RSA also C_GetMechanismInfo's key sizes, in bits).

    Raises :class:`MechanismUnsupported` naming what is missing."""
    needed = REQUEST_SPECS.get(spec)
    if needed is None:
        choices = ", ".join(s.value for s in REQUEST_SPECS)
        raise MechanismUnsupported(f"{spec} keys are not offered: choose {choices}")
    offered = set(token.slot.get_mechanisms())
    missing = [m.name for m in needed if m not in offered]
    if missing:
        raise MechanismUnsupported(
            f"the token does not offer {', '.join('CKM_' + m for m in missing)},"
            f" needed for {spec} keys: choose another algorithm or token"
        )
    if spec is KeySpec.RSA_2048:
        info = token.slot.get_mechanism_info(Mechanism.RSA_PKCS_KEY_PAIR_GEN)
        if not info.min_key_length <= 2048 <= info.max_key_length:
            raise MechanismUnsupported(
                f"the token makes RSA keys of {info.min_key_length} to"
                f" {info.max_key_length} bits, not 2048"
            )


def new_key_id(session: Any) -> bytes:
    """A random CKA_ID (16 bytes) that no object on the session's token has yet."""
    while True:
        key_id = secrets.token_bytes(KEY_ID_BYTES)
        if not list(session.get_objects({Attribute.ID: key_id})):
            return key_id


def spki_der(public_key: Any) -> bytes:
    """The DER SubjectPublicKeyInfo (RFC 5280 §4.1.2.7) of a ``cryptography`` public
    key, the form in which a certificate and a token's key are compared."""
    der: bytes = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return der


def _token_spki(key: Any) -> bytes | None:
    """The SubjectPublicKeyInfo of a public key object (RSA or EC), or of an RSA private
    key object from its public attributes (CKA_MODULUS, CKA_PUBLIC_EXPONENT); None when
    the object does not say (an EC private key carries no point)."""
    try:
        if key.key_type == KeyType.RSA:
            numbers = RSAPublicNumbers(
                int.from_bytes(key[Attribute.PUBLIC_EXPONENT], "big"),
                int.from_bytes(key[Attribute.MODULUS], "big"),
            )
            return spki_der(numbers.public_key())
        if key.key_type == KeyType.EC and key.object_class == ObjectClass.PUBLIC_KEY:
            return spki_der(load_der_public_key(encode_ec_public_key(key)))
    except (p11e.AttributeTypeInvalid, p11e.AttributeSensitive, KeyError, ValueError):
        return None
    return None


def find_key_for(session: Any, certificate: x509.Certificate) -> bytes:
    """The CKA_ID of the one key pair on the session's token whose public key is the
    one ``certificate`` certifies (SubjectPublicKeyInfo compared byte for byte), its
    private key present (the session must be logged in).

    Raises :class:`NoMatchingKey` when there is none, :class:`CredentialNotFound` when
    several CKA_IDs match or the private key is absent or ambiguous."""
    wanted = spki_der(certificate.public_key())
    found: set[bytes] = set()
    for cls in (ObjectClass.PUBLIC_KEY, ObjectClass.PRIVATE_KEY):
        for key in session.get_objects({Attribute.CLASS: cls}):
            if _token_spki(key) == wanted:
                found.add(bytes(key[Attribute.ID]))
    if not found:
        raise NoMatchingKey(
            "no key pair on this token has the certificate's public key: the certificate"
            " was issued for another request or another token"
        )
    if len(found) > 1:
        raise CredentialNotFound(
            f"{len(found)} keys on the token have the certificate's public key: ambiguous"
        )
    key_id = found.pop()
    find_private_key(session, key_id)  # present and unambiguous, or CredentialNotFound
    return key_id


def store_issued_certificate(
    session: Any, certificate: x509.Certificate, key_id: bytes, label: str
) -> bool:
    """Store ``certificate`` beside its key (CKO_CERTIFICATE, same CKA_ID, CKA_LABEL
    ``label``); False when that very certificate is there already (nothing written).

    Raises :class:`CredentialNotFound` when another certificate holds the CKA_ID (a
    renewal is a new key and a new request), and the token's errors
    (``token_full``...)."""
    der = certificate.public_bytes(Encoding.DER)
    existing = [
        bytes(c[Attribute.VALUE])
        for c in session.get_objects(
            {Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.ID: key_id}
        )
    ]
    if existing == [der]:
        return False
    if existing:
        raise CredentialNotFound(
            "this key already has another certificate on the token: a renewal is a new key"
            " (credentials generate) and a new request"
        )
    store_certificate(session, certificate, key_id, label)
    return True
