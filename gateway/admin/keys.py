"""Keys on real tokens for a signer: a key pair generated inside the token with a
PKCS#10 request for the CA (``credentials generate``), and the certificate the CA
returns stored beside the key and registered as the signer's credential with its chain
(``credentials import-certificate``). Both audited."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.admin.enrolment import register_credential
from gateway.audit import log as audit
from gateway.db.database import Database
from gateway.db.models import Credential, Organisation, User
from gateway.errors import ParameterInvalid, SignerUnknown
from hsm_bridge import BridgeClient
from hsm_bridge.pkcs11.provisioning import KeySpec
from hsm_bridge.pkcs11.token_keys import KeyRequest, TokenKeys
from hsm_bridge.sam.signers import SignerRegistry

__all__ = [
    "ImportedCredential",
    "default_subject",
    "import_certificate",
    "load_certificate",
    "parse_subject",
    "request_key",
]


# Attribute names beyond RFC 4514's own: the title (id-at-title, 2.5.4.12).
_NAMES = {"T": NameOID.TITLE, "TITLE": NameOID.TITLE, "title": NameOID.TITLE}


def parse_subject(text: str) -> x509.Name:
    """The distinguished name written as RFC 4514 text (``CN=...,O=...,C=VN``; ``T=``
    for the holder's title, as Vietnamese certificates carry it). Raises
    :class:`ParameterInvalid` when it does not parse or names no CN."""
    try:
        name = x509.Name.from_rfc4514_string(text, _NAMES)
    except ValueError as exc:
        raise ParameterInvalid(
            f"--subject {text!r} is not a distinguished name: write it as CN=...,O=...,C=VN"
        ) from exc
    if not name.get_attributes_for_oid(NameOID.COMMON_NAME):
        raise ParameterInvalid("the subject must name the holder as CN=...")
    return name


def default_subject(display_name: str, organisation: str | None) -> x509.Name:
    """CN=<display name>, O=<organisation> (when there is one), C=VN."""
    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, "VN")]
    if organisation:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, display_name))
    return x509.Name(attributes)


def request_key(
    db: Database,
    tokens: TokenKeys,
    username: str,
    token_serial: str,
    spec: KeySpec,
    *,
    subject: str | None,
    actor: str,
    now: dt.datetime,
    pin: str | None = None,
) -> KeyRequest:
    """Generate a ``spec`` key pair for ``username`` inside token ``token_serial`` and
    its PKCS#10 request naming ``subject`` (RFC 4514 text; by default the user's display
    name, organisation and C=VN). ``pin``: the token's user PIN when it is not stored.
    Audited (``credential.key_generated``: actor, user, token, CKA_ID, algorithm).

    Raises :class:`SignerUnknown`, :class:`ParameterInvalid` (subject) and the bridge's
    errors (``token_not_present``, ``pin_incorrect``, ``mechanism_unsupported``,
    ``token_full``...)."""
    with db.transaction() as session:
        user = _user(session, username)
        if subject is not None:
            name = parse_subject(subject)
        else:
            unit = session.get(Organisation, user.organisation_id) if user.organisation_id else None
            name = default_subject(user.display_name, unit.display_name if unit else None)
    request = tokens.generate_request(token_serial, spec, name, username, pin=pin)
    with db.transaction() as session:
        audit.record(
            session,
            actor=actor,
            action="credential.key_generated",
            now=now,
            detail={
                "user": username,
                "token_serial": token_serial,
                "key_id": request.key_id.hex(),
                "algorithm": spec.value,
                "subject": name.rfc4514_string(),
            },
        )
    return request


def _user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise SignerUnknown(f"no user {username!r}")
    return user


def load_certificate(data: bytes) -> x509.Certificate:
    """An X.509 certificate from PEM or DER bytes; :class:`ParameterInvalid` otherwise."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise ParameterInvalid("the certificate file is not a PEM or DER certificate") from exc


def _check_chain(certificate: x509.Certificate, chain_pem: str) -> None:
    """The chain, when given, holds the certificate's issuer (its signature verifies)."""
    if not chain_pem:
        return
    for candidate in x509.load_pem_x509_certificates(chain_pem.encode()):
        try:
            certificate.verify_directly_issued_by(candidate)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return
    raise ParameterInvalid(
        f"the chain does not hold the certificate's issuer ({certificate.issuer.rfc4514_string()})"
    )


@dataclass(frozen=True, slots=True)
class ImportedCredential:
    """The credential registered for the imported certificate; ``stored`` is False when
    the token held that certificate already."""

    credential: Credential
    key_id: bytes
    stored: bool


def import_certificate(
    db: Database,
    tokens: TokenKeys,
    bridge: BridgeClient,
    username: str,
    token_serial: str,
    certificate: x509.Certificate,
    *,
    chain_pem: str,
    actor: str,
    now: dt.datetime,
    pin: str | None = None,
    pin_policy: str = "stored",
    confirm_holder: str | None = None,
    registry: SignerRegistry | None = None,
) -> ImportedCredential:
    """Store ``certificate`` on token ``token_serial`` beside the key pair whose public
    key it certifies (SubjectPublicKeyInfo compared), then register that key as
    ``username``'s credential with ``chain_pem`` through
    :func:`~gateway.admin.enrolment.register_credential` (its holder-name check and
    ``confirm_holder``). Idempotent on the token: a refused registration can be run
    again. Audited (``credential.certificate_imported``, then ``credential.registered``).

    Raises :class:`SignerUnknown`, :class:`ParameterInvalid` (a chain without the
    issuer), ``certificate_holder_mismatch``, and the bridge's errors
    (``no_matching_key``, ``token_not_present``, ``pin_incorrect``, ``token_full``...)."""
    with db.transaction() as session:
        _user(session, username)
    _check_chain(certificate, chain_pem)
    imported = tokens.import_certificate(token_serial, certificate, pin=pin)
    with db.transaction() as session:
        audit.record(
            session,
            actor=actor,
            action="credential.certificate_imported",
            now=now,
            detail={
                "user": username,
                "token_serial": token_serial,
                "key_id": imported.key_id.hex(),
                "certificate_serial": format(certificate.serial_number, "x"),
                "stored": imported.stored,
                "certificate_sha256": hashlib.sha256(
                    certificate.public_bytes(Encoding.DER)
                ).hexdigest(),
            },
        )
    credential = register_credential(
        db,
        bridge,
        username,
        token_serial,
        imported.key_id,
        pin_policy=pin_policy,
        chain_pem=chain_pem,
        now=now,
        registry=registry,
        confirm_holder=confirm_holder,
        actor=actor,
    )
    return ImportedCredential(credential, imported.key_id, imported.stored)
