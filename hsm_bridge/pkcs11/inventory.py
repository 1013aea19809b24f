"""Inventory of tokens and credentials: what a clerk administering tokens needs to see.

A credential is a private key and the certificate with the same CKA_ID on one token,
identified by (token serial, CKA_ID, certificate SHA-256). Keys and certificates that
share a CKA_ID or a label with another object of their class (what a renewal after staff
rotation can leave behind) are reported as ambiguous and never guessed between.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, load_der_public_key
from cryptography.x509.oid import NameOID
from pkcs11 import Attribute, KeyType, ObjectClass, TokenFlag
from pkcs11.util.ec import encode_ec_public_key

from hsm_bridge.pkcs11.tokens import token_serial_text

__all__ = ["CredentialEntry", "TokenEntry", "describe_token", "list_credentials"]

_FLAG_NAMES = {
    TokenFlag.LOGIN_REQUIRED: "login_required",
    TokenFlag.USER_PIN_COUNT_LOW: "pin_count_low",
    TokenFlag.USER_PIN_FINAL_TRY: "pin_final_try",
    TokenFlag.USER_PIN_LOCKED: "pin_locked",
    TokenFlag.USER_PIN_TO_BE_CHANGED: "pin_to_be_changed",
    TokenFlag.WRITE_PROTECTED: "write_protected",
}

# Names for the subject attributes RFC 4514 leaves as dotted OIDs: Vietnamese personal
# certificates carry the holder's title (id-at-title, 2.5.4.12).
_ATTRIBUTE_NAMES = {NameOID.TITLE: "title"}


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """A token (CK_TOKEN_INFO) and the signature mechanisms its slot offers
    (C_GetMechanismList), by their PKCS#11 names. ``module``: the PKCS#11 module's path;
    ``present``: False for a token that is needed (or was seen) but is not plugged in."""

    label: str
    serial: str
    manufacturer: str
    model: str
    flags: list[str]
    mechanisms: list[str]
    module: str = ""
    present: bool = True


@dataclass(frozen=True, slots=True)
class CredentialEntry:
    """A key found on a token. ``status`` is ``ok``, ``no_certificate``,
    ``ambiguous`` or ``key_mismatch`` (the certificate certifies another key). ``chain``:
    subjects (RFC 4514) of the CA certificates stored on the token above the key's
    certificate, issuer first."""

    token_serial: str
    key_id: str  # CKA_ID, hex
    label: str
    key_type: str
    key_bits: int
    certificate_sha256: str | None
    subject: str | None
    not_after: str | None
    status: str
    problems: list[str] = field(default_factory=list)
    chain: list[str] = field(default_factory=list)  # issuers found on the token, upwards


_SIGNING_MECHANISMS = {
    "RSA_PKCS",
    "SHA256_RSA_PKCS",
    "SHA384_RSA_PKCS",
    "RSA_PKCS_PSS",
    "SHA256_RSA_PKCS_PSS",
    "ECDSA",
    "ECDSA_SHA256",
    "ECDSA_SHA384",
}


def describe_token(token: Any, *, module: str = "") -> TokenEntry:
    """The inventory entry of a python-pkcs11 ``Token`` of the module at ``module``."""
    flags = [name for flag, name in _FLAG_NAMES.items() if token.flags & flag]
    try:
        mechanisms = sorted(
            m.name for m in token.slot.get_mechanisms() if m.name in _SIGNING_MECHANISMS
        )
    except Exception:  # noqa: BLE001 - a module that cannot list mechanisms still lists keys
        mechanisms = []
    return TokenEntry(
        label=str(token.label).strip(),
        serial=token_serial_text(token),
        manufacturer=str(token.manufacturer_id).strip(),
        model=str(token.model).strip(),
        flags=flags,
        mechanisms=mechanisms,
        module=module,
    )


def _public_numbers(public: Any) -> tuple[Any, ...] | None:
    if isinstance(public, rsa.RSAPublicKey):
        rsa_numbers = public.public_numbers()
        return ("rsa", rsa_numbers.n, rsa_numbers.e)
    if isinstance(public, ec.EllipticCurvePublicKey):
        ec_numbers = public.public_numbers()
        return ("ec", ec_numbers.x, ec_numbers.y)
    return None


def _key_numbers(key: Any) -> tuple[Any, ...] | None:
    """Public numbers of a private key object, read from its public attributes
    (CKA_MODULUS / CKA_PUBLIC_EXPONENT for RSA); EC private keys do not carry the
    point, so the matching public key object is used (None when absent)."""
    if key.key_type == KeyType.RSA:
        return (
            "rsa",
            int.from_bytes(key[Attribute.MODULUS], "big"),
            int.from_bytes(key[Attribute.PUBLIC_EXPONENT], "big"),
        )
    return None


def list_credentials(session: Any) -> list[CredentialEntry]:
    """Every private key on the session's token with its certificate and status. On a
    session that is not logged in (no stored PIN), the public keys are listed instead."""
    serial = token_serial_text(session.token)
    keys = list(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
    certs = list(session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE}))
    publics = list(session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY}))
    if not keys:
        # Not logged in (PIN policy signer: no stored PIN): private keys are hidden, so
        # their public halves stand in; they carry the same CKA_ID and label.
        keys = publics
    key_ids = Counter(bytes(k[Attribute.ID]) for k in keys)
    key_labels = Counter(str(k.label) for k in keys)
    cert_ids = Counter(bytes(c[Attribute.ID]) for c in certs)
    entries = []
    for key in keys:
        key_id = bytes(key[Attribute.ID])
        problems = []
        if key_ids[key_id] > 1:
            problems.append("several private keys share this CKA_ID")
        if key_labels[str(key.label)] > 1:
            problems.append("several private keys share this label")
        if cert_ids[key_id] > 1:
            problems.append("several certificates share this CKA_ID")
        matching = [c for c in certs if bytes(c[Attribute.ID]) == key_id]
        certificate = (
            x509.load_der_x509_certificate(bytes(matching[0][Attribute.VALUE]))
            if len(matching) == 1
            else None
        )
        status = "ambiguous" if problems else "ok"
        if certificate is None and not problems:
            status = "no_certificate"
        if certificate is not None and not _certifies(certificate, key, publics):
            status = "key_mismatch"
            problems.append("the certificate certifies another key")
        entries.append(_entry(serial, key, certificate, status, problems, certs))
    return entries


def _certifies(certificate: x509.Certificate, key: Any, publics: list[Any]) -> bool:
    """Whether ``certificate`` certifies the private key object ``key`` (an EC key is
    compared through the public key object of its CKA_ID; unknown counts as yes)."""
    expected = _key_numbers(key)
    if expected is None:
        key_id = bytes(key[Attribute.ID])
        pub = [p for p in publics if bytes(p[Attribute.ID]) == key_id]
        if len(pub) == 1:
            expected = _public_numbers(load_der_public_key(encode_ec_public_key(pub[0])))
    return expected is None or expected == _public_numbers(certificate.public_key())


def _entry(
    serial: str,
    key: Any,
    certificate: x509.Certificate | None,
    status: str,
    problems: list[str],
    certs: list[Any],
) -> CredentialEntry:
    public = certificate.public_key() if certificate is not None else None
    bits = 0
    if isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        bits = public.key_size
    return CredentialEntry(
        token_serial=serial,
        key_id=bytes(key[Attribute.ID]).hex(),
        label=str(key.label),
        key_type="rsa" if key.key_type == KeyType.RSA else "ec",
        key_bits=bits,
        certificate_sha256=(
            hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()
            if certificate
            else None
        ),
        subject=certificate.subject.rfc4514_string(_ATTRIBUTE_NAMES) if certificate else None,
        not_after=certificate.not_valid_after_utc.isoformat() if certificate else None,
        status=status,
        problems=problems,
        chain=_chain_on_token(certificate, certs) if certificate else [],
    )


def _chain_on_token(certificate: x509.Certificate, objects: list[Any]) -> list[str]:
    """Follow issuer names through the certificates stored on the token (at most 5
    levels; a self-signed certificate ends the chain)."""
    by_subject: dict[bytes, x509.Certificate] = {}
    for obj in objects:
        try:
            cert = x509.load_der_x509_certificate(bytes(obj[Attribute.VALUE]))
        except ValueError:
            continue
        by_subject.setdefault(cert.subject.public_bytes(), cert)
    chain: list[str] = []
    current = certificate
    for _ in range(5):
        if current.issuer == current.subject:
            break
        issuer = by_subject.get(current.issuer.public_bytes())
        if issuer is None:
            break
        chain.append(issuer.subject.rfc4514_string(_ATTRIBUTE_NAMES))
        current = issuer
    return chain
