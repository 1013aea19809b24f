"""Administration of signers: adding a user, and registering a credential found on a
token (token serial + CKA_ID) for a user. Used by the ``users add`` and ``credentials
register`` commands; every change is audited."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import unicodedata
import uuid
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.admin.organisations import organisation_named
from gateway.audit import log as audit
from gateway.db.database import Database
from gateway.db.models import Credential, Organisation, SigningRequest, User
from gateway.errors import (
    CertificateHolderMismatch,
    CertificateRevoked,
    NotFound,
    ParameterInvalid,
    SignerUnknown,
)
from gateway.passwords import hash_password
from gateway.requests.lifecycle import RequestStatus, transition
from hsm_bridge import BridgeClient, CredentialRef
from hsm_bridge.credentials import SignatureMechanism
from hsm_bridge.errors import CredentialNotFound
from hsm_bridge.sam.signers import SignerRegistry

__all__ = ["ROLES", "NewUser", "add_user", "register_credential"]

ROLES = ("leader", "clerk", "admin")


@dataclass(frozen=True, slots=True)
class NewUser:
    """A user just added and the one-time password to hand over (shown once)."""

    id: str
    username: str
    password: str


def add_user(
    db: Database,
    username: str,
    display_name: str,
    role: str,
    *,
    now: dt.datetime,
    organisation: str | None = None,
    actor: str = "admin:cli",
    client_address: str | None = None,
) -> NewUser:
    """Create a user with a random password (argon2-hashed; returned once), a member of
    ``organisation`` (short name) when given. The user enrols an authenticator (TOTP)
    from the tablet after the first login. Audited as done by ``actor``.

    Raises :class:`ParameterInvalid` for an unknown role or a username already taken,
    OrganisationUnknown."""
    if role not in ROLES:
        raise ParameterInvalid(f"role must be one of {', '.join(ROLES)}")
    if not username or len(username) > 64 or not username.isprintable():
        raise ParameterInvalid("username must be 1 to 64 printable characters")
    if not display_name.strip() or len(display_name) > 200 or not display_name.isprintable():
        raise ParameterInvalid("the display name must be 1 to 200 printable characters")
    password = secrets.token_urlsafe(12)
    with db.transaction() as session:
        if session.scalar(select(User).where(User.username == username)) is not None:
            raise ParameterInvalid(f"the username {username!r} is taken")
        unit = organisation_named(session, organisation) if organisation else None
        user = User(
            id=str(uuid.uuid4()),
            username=username,
            display_name=display_name,
            role=role,
            organisation_id=unit.id if unit is not None else None,
            password_hash=hash_password(password),
            password_must_change=True,
            created_at=now,
        )
        session.add(user)
        audit.record(
            session,
            actor=actor,
            action="user.added",
            now=now,
            client_address=client_address,
            detail={"user": username, "role": role, "organisation": organisation},
        )
    return NewUser(user.id, username, password)


def register_credential(
    db: Database,
    bridge: BridgeClient,
    username: str,
    token_serial: str,
    key_id: bytes,
    *,
    mechanism: SignatureMechanism | None = None,
    pin_policy: str = "stored",
    chain_pem: str = "",
    now: dt.datetime,
    registry: SignerRegistry | None = None,
    organisation: str | None = None,
    confirm_holder: str | None = None,
    actor: str = "admin:cli",
    client_address: str | None = None,
) -> Credential:
    """Register the key with CKA_ID ``key_id`` on token ``token_serial`` as ``username``'s
    credential. The certificate is read from the token; the inventory must show the key
    as ``ok`` (certificate present, unambiguous, certifying this very key). The mechanism
    defaults to RSA PKCS#1 v1.5 for RSA keys and ECDSA for EC keys. With ``registry``
    (the signer registry of the bridge on this host), the bridge is told that the user
    may sign with this key; a remote bridge's administrator does that on its host.
    With ``organisation`` (short name) the key is that organisation's seal, kept by
    ``username``, who must be one of its clerks: nobody else may sign with it.

    The certificate must name its holder as its subject's common name: the user's
    display name, or for a seal the organisation's (see :func:`same_holder_name`).
    Otherwise it is registered only when ``confirm_holder`` repeats the name the
    certificate gives (audited), else :class:`CertificateHolderMismatch`. Audited as
    done by ``actor`` from ``client_address``.

    Raises :class:`SignerUnknown`, :class:`CertificateHolderMismatch`,
    :class:`ParameterInvalid` (ambiguous or mismatched key, mechanism that does not fit
    the key, unknown PIN policy) and bridge errors (``token_not_present``,
    ``credential_not_found``)."""
    if pin_policy not in ("stored", "signer"):
        raise ParameterInvalid("pin_policy must be stored or signer")
    ref = CredentialRef(token_serial, key_id)
    der, mechanism = _checked_key(bridge, ref, mechanism)
    with db.transaction() as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            raise SignerUnknown(f"no user {username!r}")
        unit = organisation_named(session, organisation) if organisation else None
        if unit is not None:
            _check_keeper(session, unit, user, organisation or "")
        _check_other_use(session, ref, unit)
        holder = unit.display_name if unit is not None else user.display_name
        confirmed = _check_holder(der, holder, confirm_holder)
        credential = Credential(
            id=f"cred-{username}-{key_id.hex()[:8]}-{secrets.token_hex(2)}",
            user_id=user.id,
            organisation_id=unit.id if unit is not None else None,
            token_serial=token_serial,
            key_id=key_id.hex(),
            mechanism=mechanism.value,
            pin_policy=pin_policy,
            certificate_der=der,
            certificate_sha256=hashlib.sha256(der).hexdigest(),
            chain_pem=chain_pem,
            created_at=now,
        )
        session.add(credential)
        audit.record(
            session,
            actor=actor,
            action="credential.registered",
            now=now,
            client_address=client_address,
            detail={
                "user": username,
                "credential": credential.id,
                "token_serial": token_serial,
                "certificate_sha256": credential.certificate_sha256,
                "pin_policy": pin_policy,
                "organisation": organisation,
                **({"holder_confirmed": confirmed} if confirmed else {}),
            },
        )
        if registry is not None:
            registry.bind_credential(username, ref)
    return credential


def _check_holder(der: bytes, expected: str, confirmed: str | None) -> str | None:
    """None when the certificate (DER) names ``expected``; the certificate's name when
    the administrator repeated it in ``confirmed``; else CertificateHolderMismatch."""
    subject = x509.load_der_x509_certificate(der).subject
    names = [str(a.value) for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if names and all(same_holder_name(name, expected) for name in names):
        return None
    shown = names[0] if names else subject.rfc4514_string()
    if confirmed is not None and same_holder_name(confirmed, shown):
        return shown
    raise CertificateHolderMismatch(
        f"the certificate is {shown!r}'s, not {expected!r}'s: check that this is the right"
        f" token and key; to register it anyway, confirm the name: --confirm-holder {shown!r}"
    )


def same_holder_name(first: str, second: str) -> bool:
    """Whether two written names are one name: the same without case or repeated
    spaces (Unicode NFC); where one of them is written without diacritics (as some CAs
    issue names: "NGUYEN VAN AN"), the same once the other's diacritics are dropped (đ
    is d). Two names written with diacritics must match exactly: "Trần Văn Hưng" is not
    "Trần Văn Hùng"."""
    a, b = _folded(first), _folded(second)
    if a == b:
        return True
    if a.isascii() or b.isascii():
        return _plain(a) == _plain(b)
    return False


def _folded(name: str) -> str:
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


def _plain(name: str) -> str:
    """``name`` without diacritics (đ is d)."""
    decomposed = unicodedata.normalize("NFD", name.replace("đ", "d"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _checked_key(
    bridge: BridgeClient, ref: CredentialRef, mechanism: SignatureMechanism | None
) -> tuple[bytes, SignatureMechanism]:
    """The key's certificate (DER) as the bridge's inventory shows it, and the mechanism
    to sign with (the default for the key type when ``mechanism`` is None)."""
    try:
        entry = bridge.credential_status(ref)
    except CredentialNotFound as exc:
        raise ParameterInvalid("no private key with this CKA_ID on the token") from exc
    if entry.status != "ok":
        raise ParameterInvalid(
            f"the key is {entry.status}: {'; '.join(entry.problems) or 'no certificate'}"
        )
    der = bridge.certificate(ref)
    public = x509.load_der_x509_certificate(der).public_key()
    if not isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise ParameterInvalid("only RSA and EC keys are supported")
    key_type = "rsa" if isinstance(public, rsa.RSAPublicKey) else "ec"
    if mechanism is None:
        mechanism = (
            SignatureMechanism.RSA_PKCS_SHA256
            if key_type == "rsa"
            else SignatureMechanism.ECDSA_SHA256
        )
    if mechanism.key_type != key_type:
        raise ParameterInvalid(f"{mechanism} does not fit this {key_type.upper()} key")
    return der, mechanism


def _check_keeper(session: Session, unit: Organisation, user: User, organisation: str) -> None:
    """An organisation's key is kept by one of its clerks, one keeper at a time."""
    if user.role != "clerk" or user.organisation_id != unit.id:
        raise ParameterInvalid(
            f"an organisation's key is kept by one of its clerks; {user.username!r} is not"
            f" a clerk of {organisation!r}"
        )
    kept_by = set(
        session.scalars(
            select(User.username)
            .join(Credential, Credential.user_id == User.id)
            .where(Credential.organisation_id == unit.id, Credential.revoked_at.is_(None))
        )
    )
    if kept_by - {user.username}:
        # changing hands needs the written permission
        raise ParameterInvalid(
            f"the token of {organisation!r} is kept by {', '.join(sorted(kept_by))}:"
            " hand it over first (organisations handover), or revoke that credential"
        )


def _check_other_use(session: Session, ref: CredentialRef, unit: Organisation | None) -> None:
    """An organisation's key serves that organisation only, through its keeper: never
    also a personal credential, nor another organisation's."""
    other_use = session.scalar(
        select(Credential).where(
            Credential.token_serial == ref.token_serial,
            Credential.key_id == ref.key_id.hex(),
            Credential.revoked_at.is_(None),
            (
                Credential.organisation_id.is_distinct_from(unit.id)
                if unit is not None
                else Credential.organisation_id.is_not(None)
            ),
        )
    )
    if other_use is not None:
        raise ParameterInvalid(
            "this key is another credential's ("
            + ("an organisation's seal" if other_use.organisation_id else "a person's")
            + "): an organisation's key is never also a personal one"
        )


@dataclass(frozen=True, slots=True)
class Revocation:
    """What revoking a credential did: the requests that failed with it, and whether it
    had been revoked already (then nothing changed and nothing was audited); when it
    was revoked (now, or earlier when ``already_revoked``)."""

    credential_id: str
    failed: tuple[str, ...]
    already_revoked: bool
    revoked_at: dt.datetime | None = None


def revoke_credential(
    db: Database,
    credential_id: str,
    *,
    actor: str,
    now: dt.datetime,
    registry: SignerRegistry | None = None,
    client_address: str | None = None,
) -> Revocation:
    """Stop using credential ``credential_id`` at once (staff rotation, a lost token, a
    revoked certificate): its pending requests fail now with ``certificate_revoked`` in
    the same transaction (their document systems are called back; a workflow ends), and
    with ``registry`` (the bridge on this host) the signer is unbound from the key unless
    another live credential of theirs uses it. Audited once: revoking again changes
    nothing. Raises NotFound."""
    with db.transaction() as session:
        credential = session.get(Credential, credential_id, with_for_update=True)
        if credential is None:
            raise NotFound(f"no credential {credential_id}")
        if credential.revoked_at is not None:
            return Revocation(
                credential_id, (), already_revoked=True, revoked_at=credential.revoked_at
            )
        credential.revoked_at = now
        pending = session.scalars(
            select(SigningRequest).where(
                SigningRequest.credential_id == credential_id,
                SigningRequest.status == RequestStatus.PENDING_APPROVAL,
            )
        ).all()
        for request in pending:
            transition(
                session,
                request,
                RequestStatus.FAILED,
                actor=actor,
                now=now,
                failure_code=CertificateRevoked.code,
            )
        if registry is not None and not _key_still_used(session, credential):
            owner = session.get(User, credential.user_id)
            registry.unbind_credential(
                owner.username if owner else "",
                CredentialRef(credential.token_serial, bytes.fromhex(credential.key_id)),
            )
        failed = tuple(r.id for r in pending)
        audit.record(
            session,
            actor=actor,
            action="credential.revoked",
            now=now,
            client_address=client_address,
            detail={"credential": credential_id, "failed": list(failed)},
        )
    return Revocation(credential_id, failed, already_revoked=False, revoked_at=now)


def _key_still_used(session: Session, credential: Credential) -> bool:
    """Whether another live credential of the same user uses the same key."""
    return (
        session.scalar(
            select(Credential.id).where(
                Credential.user_id == credential.user_id,
                Credential.token_serial == credential.token_serial,
                Credential.key_id == credential.key_id,
                Credential.revoked_at.is_(None),
                Credential.id != credential.id,
            )
        )
        is not None
    )
