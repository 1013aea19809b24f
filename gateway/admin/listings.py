"""What an administrator looks up: registered credentials with who holds them,
organisations with their seal and keeper, a user's devices and passkeys as the gateway
knows them. Read-only; used by the CLI and the administration API."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from gateway.admin.users import user_named
from gateway.db.database import Database
from gateway.db.models import Credential, Device, Organisation, User

__all__ = [
    "CredentialSummary",
    "DeviceSummary",
    "OrganisationSummary",
    "credential_summary",
    "list_credentials",
    "list_organisations",
    "list_user_devices",
]


@dataclass(frozen=True, slots=True)
class CredentialSummary:
    """A registered credential and its holder: ``username``/``display_name`` is the
    user who signs with it (an organisation's keeper for a seal, whose short name is
    ``organisation``); ``key_id``: CKA_ID, hex; ``subject``: the certificate's common
    name (or its whole subject, RFC 4514, when it has none); ``not_after``: its expiry."""

    id: str
    username: str
    display_name: str
    organisation: str | None
    token_serial: str
    key_id: str
    mechanism: str
    pin_policy: str
    subject: str
    not_after: dt.datetime
    revoked_at: dt.datetime | None
    created_at: dt.datetime


def _subject_and_expiry(der: bytes) -> tuple[str, dt.datetime]:
    certificate = x509.load_der_x509_certificate(der)
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    subject = str(names[0].value) if names else certificate.subject.rfc4514_string()
    return subject, certificate.not_valid_after_utc


def credential_summary(
    credential: Credential, user: User, organisation: Organisation | None
) -> CredentialSummary:
    """``credential`` as listed, with its holder ``user`` and its ``organisation``."""
    subject, not_after = _subject_and_expiry(credential.certificate_der)
    return CredentialSummary(
        id=credential.id,
        username=user.username,
        display_name=user.display_name,
        organisation=organisation.name if organisation is not None else None,
        token_serial=credential.token_serial,
        key_id=credential.key_id,
        mechanism=credential.mechanism,
        pin_policy=credential.pin_policy,
        subject=subject,
        not_after=not_after,
        revoked_at=credential.revoked_at,
        created_at=credential.created_at,
    )


def list_credentials(db: Database, *, username: str | None = None) -> list[CredentialSummary]:
    """Every registered credential (revoked ones too), by holder then age; only
    ``username``'s when given (NotFound for an unknown user)."""
    with db.transaction() as session:
        query = (
            select(Credential, User, Organisation)
            .join(User, User.id == Credential.user_id)
            .outerjoin(Organisation, Organisation.id == Credential.organisation_id)
            .order_by(User.username, Credential.created_at)
        )
        if username is not None:
            query = query.where(User.id == user_named(session, username).id)
        rows = session.execute(query).all()
        return [credential_summary(c, u, o) for c, u, o in rows]


@dataclass(frozen=True, slots=True)
class OrganisationSummary:
    """An organisation: its short ``name``, full name, whether its seal image is kept,
    and the username of the clerk who keeps its live credential (None: nobody)."""

    name: str
    display_name: str
    has_seal_image: bool
    keeper: str | None


def list_organisations(db: Database) -> list[OrganisationSummary]:
    """Every organisation, by short name."""
    with db.transaction() as session:
        listed = []
        for unit in session.scalars(select(Organisation).order_by(Organisation.name)):
            keeper = session.scalar(
                select(User.username)
                .join(Credential, Credential.user_id == User.id)
                .where(Credential.organisation_id == unit.id, Credential.revoked_at.is_(None))
                .order_by(Credential.created_at.desc())
                .limit(1)
            )
            listed.append(
                OrganisationSummary(
                    unit.name, unit.display_name, unit.seal_image is not None, keeper
                )
            )
        return listed


@dataclass(frozen=True, slots=True)
class DeviceSummary:
    """A device (``kind`` ``device_key``: a native app's key; ``passkey``: WebAuthn) of
    a user, as the gateway registered it at enrolment; the bridge's records decide
    whether it may approve (``devices list`` asks the bridge)."""

    id: str
    kind: str
    platform: str
    name: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


def list_user_devices(db: Database, username: str) -> list[DeviceSummary]:
    """``username``'s devices and passkeys, oldest first, revoked ones included.
    Raises NotFound."""
    with db.transaction() as session:
        user = user_named(session, username)
        devices = session.scalars(
            select(Device).where(Device.user_id == user.id).order_by(Device.created_at)
        ).all()
        return [
            DeviceSummary(d.id, d.kind, d.platform, d.name, d.created_at, d.revoked_at)
            for d in devices
        ]
