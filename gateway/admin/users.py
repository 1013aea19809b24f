"""Administration of user accounts after ``users add``: the list, disabling and enabling
an account, a new one-time password, and a changed role, organisation or display name.
The ``users`` commands and the administration API (``/admin/v1/users``) call these; every
change is audited with its ``actor`` (``admin:cli`` or ``user:<admin>``) and nothing
is audited when nothing changed."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from gateway.admin.enrolment import ROLES
from gateway.admin.organisations import organisation_named
from gateway.audit import log as audit
from gateway.db.database import Database
from gateway.db.models import Credential, Device, MobileSession, Organisation, User
from gateway.errors import NotFound, ParameterInvalid
from gateway.passwords import hash_password

__all__ = [
    "PasswordReset",
    "UserChange",
    "UserSummary",
    "disable_user",
    "enable_user",
    "list_users",
    "reset_password",
    "update_user",
    "user_named",
    "user_summary",
]


@dataclass(frozen=True, slots=True)
class UserSummary:
    """One account as an administrator sees it. ``organisation``: its short name;
    ``devices``: live (unrevoked) devices and passkeys; ``credentials``: live credentials."""

    username: str
    display_name: str
    role: str
    organisation: str | None
    disabled: bool
    disabled_at: dt.datetime | None
    password_must_change: bool
    devices: int
    credentials: int
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class UserChange:
    """The account after a change, and whether anything changed (False: it was already
    so; nothing was audited)."""

    user: UserSummary
    changed: bool


@dataclass(frozen=True, slots=True)
class PasswordReset:
    """The account after a password reset and its new one-time password (shown once)."""

    user: UserSummary
    password: str


def user_named(session: Session, username: str, *, lock: bool = False) -> User:
    """The user ``username``; NotFound otherwise."""
    query = select(User).where(User.username == username)
    user = session.scalar(query.with_for_update() if lock else query)
    if user is None:
        raise NotFound(f"no user {username!r}")
    return user


def user_summary(session: Session, user: User) -> UserSummary:
    """``user`` with its organisation's short name and its live devices and credentials."""
    devices = session.scalar(
        select(func.count(Device.id)).where(Device.user_id == user.id, Device.revoked_at.is_(None))
    )
    credentials = session.scalar(
        select(func.count(Credential.id)).where(
            Credential.user_id == user.id, Credential.revoked_at.is_(None)
        )
    )
    unit = session.get(Organisation, user.organisation_id) if user.organisation_id else None
    return UserSummary(
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        organisation=unit.name if unit is not None else None,
        disabled=user.disabled_at is not None,
        disabled_at=user.disabled_at,
        password_must_change=user.password_must_change,
        devices=devices or 0,
        credentials=credentials or 0,
        created_at=user.created_at,
    )


def list_users(db: Database) -> list[UserSummary]:
    """Every account, by username."""
    with db.transaction() as session:
        users = session.scalars(select(User).order_by(User.username)).all()
        return [user_summary(session, user) for user in users]


def _end_sessions(session: Session, user: User, now: dt.datetime) -> None:
    """Revoke every live session of ``user``."""
    session.execute(
        update(MobileSession)
        .where(MobileSession.user_id == user.id, MobileSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def disable_user(
    db: Database,
    username: str,
    *,
    actor: str,
    now: dt.datetime,
    client_address: str | None = None,
) -> UserChange:
    """Disable ``username``: they cannot sign in (``user_disabled``) and their sessions
    end now. Audited once (``user.disabled``); disabling a disabled account changes
    nothing. Raises NotFound."""
    return _set_disabled(db, username, True, actor, now, client_address)


def enable_user(
    db: Database,
    username: str,
    *,
    actor: str,
    now: dt.datetime,
    client_address: str | None = None,
) -> UserChange:
    """Let a disabled ``username`` sign in again. Audited once (``user.enabled``);
    enabling an enabled account changes nothing. Raises NotFound."""
    return _set_disabled(db, username, False, actor, now, client_address)


def _set_disabled(
    db: Database,
    username: str,
    disabled: bool,
    actor: str,
    now: dt.datetime,
    client_address: str | None,
) -> UserChange:
    """Disable or enable ``username`` (sessions end when disabled), audited only when
    that changes something."""
    with db.transaction() as session:
        user = user_named(session, username, lock=True)
        changed = (user.disabled_at is None) == disabled
        if changed:
            user.disabled_at = now if disabled else None
            if disabled:
                _end_sessions(session, user, now)
            audit.record(
                session,
                actor=actor,
                action="user.disabled" if disabled else "user.enabled",
                now=now,
                client_address=client_address,
                detail={"user": username},
            )
        return UserChange(user_summary(session, user), changed)


def reset_password(
    db: Database,
    username: str,
    *,
    actor: str,
    now: dt.datetime,
    client_address: str | None = None,
) -> PasswordReset:
    """Give ``username`` a new random one-time password (returned once, argon2-hashed):
    it must be replaced at the next sign-in, and every session of the user ends now
    (a forgotten password, a suspected leak). Audited (``user.password_reset``, without
    the password). Raises NotFound."""
    password = secrets.token_urlsafe(12)
    with db.transaction() as session:
        user = user_named(session, username, lock=True)
        user.password_hash = hash_password(password)
        user.password_must_change = True
        _end_sessions(session, user, now)
        audit.record(
            session,
            actor=actor,
            action="user.password_reset",
            now=now,
            client_address=client_address,
            detail={"user": username},
        )
        return PasswordReset(user_summary(session, user), password)


def update_user(
    db: Database,
    username: str,
    *,
    actor: str,
    now: dt.datetime,
    display_name: str | None = None,
    role: str | None = None,
    organisation: str | None = None,
    set_organisation: bool = False,
    client_address: str | None = None,
) -> UserChange:
    """Change ``username``'s display name, role (leader, clerk or admin) or, with
    ``set_organisation``, organisation (a short name, or None for none); None leaves
    the display name and role as they are. Audited
    once with what changed (``user.changed``: each field's old and new value); the same
    values change nothing. Raises NotFound, ParameterInvalid (unknown role, bad name, a
    keeper of an organisation's key who would stop being its clerk),
    OrganisationUnknown."""
    if role is not None and role not in ROLES:
        raise ParameterInvalid(f"role must be one of {', '.join(ROLES)}")
    if display_name is not None and (
        not display_name.strip() or len(display_name) > 200 or not display_name.isprintable()
    ):
        raise ParameterInvalid("the display name must be 1 to 200 printable characters")
    with db.transaction() as session:
        user = user_named(session, username, lock=True)
        changes: dict[str, list[str | None]] = {}
        if display_name is not None and display_name != user.display_name:
            changes["display_name"] = [user.display_name, display_name]
            user.display_name = display_name
        if role is not None and role != user.role:
            changes["role"] = [user.role, role]
            user.role = role
        if set_organisation:
            _change_organisation(session, user, organisation, changes)
        if changes:
            _check_keeps_seal(session, user)
            audit.record(
                session,
                actor=actor,
                action="user.changed",
                now=now,
                client_address=client_address,
                detail={"user": username, "changes": changes},
            )
        return UserChange(user_summary(session, user), bool(changes))


def _change_organisation(
    session: Session, user: User, organisation: str | None, changes: dict[str, list[str | None]]
) -> None:
    unit = organisation_named(session, organisation) if organisation else None
    new_id = unit.id if unit is not None else None
    if new_id == user.organisation_id:
        return
    old = session.get(Organisation, user.organisation_id) if user.organisation_id else None
    changes["organisation"] = [old.name if old else None, organisation or None]
    user.organisation_id = new_id


def _check_keeps_seal(session: Session, user: User) -> None:
    """A keeper of an organisation's live credential stays one of its clerks: hand the
    token over first."""
    kept = session.scalars(
        select(Credential.organisation_id).where(
            Credential.user_id == user.id,
            Credential.organisation_id.is_not(None),
            Credential.revoked_at.is_(None),
        )
    ).all()
    if any(unit != user.organisation_id or user.role != "clerk" for unit in kept):
        raise ParameterInvalid(
            f"{user.username} keeps an organisation's token: hand it over first"
            " (organisations handover), or revoke that credential"
        )
