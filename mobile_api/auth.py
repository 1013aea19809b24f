"""Mobile sessions: password login (Argon2id) within the login throttle
(:mod:`mobile_api.throttle`), and short-lived revocable bearer tokens of which only the
SHA-256 is stored."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.audit import log as audit
from gateway.config import Settings
from gateway.context import GatewayContext, context_of
from gateway.db.models import MobileSession, User
from gateway.errors import (
    CredentialsInvalid,
    PasswordChangeRequired,
    PasswordTooWeak,
    Unauthenticated,
    UserDisabled,
)
from gateway.passwords import hash_password, verify_password
from mobile_api.throttle import LoginThrottle

__all__ = [
    "SESSION",
    "IssuedSession",
    "change_password",
    "current_user",
    "login",
    "password_problem",
    "revoke",
    "session_user",
]


# the OpenAPI security scheme (and Swagger UI's Authorize button) of every route that
# needs a session; it checks nothing itself (auto_error=False): session_user does
SESSION = HTTPBearer(
    auto_error=False,
    scheme_name="session",
    description="A session of the tablet app or the administration: "
    "`Authorization: Bearer <access_token>` from `POST /mobile/v1/sessions`.",
)
SessionCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(SESSION)]


@dataclass(frozen=True, slots=True)
class IssuedSession:
    """A new bearer token (shown once), its lifetime in seconds, and whether the user
    must first choose their own password (a one-time password was used)."""

    access_token: str
    expires_in: int
    password_change_required: bool = False


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def login(
    context: GatewayContext,
    throttle: LoginThrottle,
    username: str,
    password: str,
    *,
    client_address: str | None,
) -> IssuedSession:
    """Check ``username``/``password`` and open a session, within ``throttle``
    (:mod:`mobile_api.throttle`). The password is checked for unknown names too (against
    a dummy hash): the same time, the same answer.

    Raises LoginRateLimited (429, with ``retry_after``), CredentialsInvalid (the same
    for an unknown user and a wrong password) and, once the password is right,
    UserDisabled for an account an administrator disabled (audited, no session)."""
    throttle.check(client_address, username)
    now = context.clock()
    disabled = False
    with context.db.transaction() as session:
        user = session.scalar(select(User).where(User.username == username))
        known = user.password_hash if user is not None else None
        if not verify_password(known, password) or user is None:
            if user is not None:
                audit.record(
                    session,
                    actor=f"user:{user.username}",
                    action="login.failed",
                    now=now,
                    client_address=client_address,
                )
            issued = None
        elif user.disabled_at is not None:
            audit.record(
                session,
                actor=f"user:{user.username}",
                action="login.refused_disabled",
                now=now,
                client_address=client_address,
            )
            issued, disabled = None, True
        else:
            issued = _open_session(session, user, context.settings, now=now, address=client_address)
    if disabled:
        throttle.succeeded(client_address, username)
        raise UserDisabled("this account is disabled: ask your administrator")
    if issued is None:
        throttle.failed(client_address, username)
        raise CredentialsInvalid("wrong username or password")
    throttle.succeeded(client_address, username)
    return issued


def _open_session(
    session: Session, user: User, settings: Settings, *, now: dt.datetime, address: str | None
) -> IssuedSession:
    """A new bearer token for ``user`` (only its SHA-256 is stored)."""
    token = secrets.token_urlsafe(32)
    ttl = settings.mobile_session_ttl_seconds
    session.add(
        MobileSession(
            id=str(uuid.uuid4()),
            user_id=user.id,
            token_sha256=_token_hash(token),
            created_at=now,
            expires_at=now + dt.timedelta(seconds=ttl),
        )
    )
    audit.record(
        session,
        actor=f"user:{user.username}",
        action="session.created",
        now=now,
        client_address=address,
    )
    return IssuedSession(
        access_token=token, expires_in=ttl, password_change_required=user.password_must_change
    )


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("send Authorization: Bearer <access token>")
    return token.strip()


def current_user(
    request: Request,
    context: Annotated[GatewayContext, Depends(context_of)],
    shown: SessionCredentials,
) -> User:
    """FastAPI dependency: the user of a live (unexpired, unrevoked) session, who has
    chosen their own password (PasswordChangeRequired otherwise)."""
    user = session_user(request, context, shown)
    if user.password_must_change:
        raise PasswordChangeRequired("choose your own password first (POST /mobile/v1/password)")
    return user


def session_user(
    request: Request,
    context: Annotated[GatewayContext, Depends(context_of)],
    shown: SessionCredentials,
) -> User:
    """FastAPI dependency: the user of a live (unexpired, unrevoked) session
    (Unauthenticated otherwise; UserDisabled when the account was disabled since).
    ``shown``: the bearer credentials as the ``session``
    security scheme saw them, only to declare the scheme; the token is read here."""
    token_hash = _token_hash(_bearer(request))
    now = context.clock()
    with context.db.transaction() as session:
        mobile = session.scalar(
            select(MobileSession).where(MobileSession.token_sha256 == token_hash)
        )
        if mobile is None or mobile.revoked_at is not None or now >= mobile.expires_at:
            raise Unauthenticated("the session is unknown, expired or revoked")
        user = session.get(User, mobile.user_id)
    assert user is not None
    if user.disabled_at is not None:
        raise UserDisabled("this account is disabled: ask your administrator")
    return user


def revoke(context: GatewayContext, request: Request) -> None:
    """Revoke the session whose bearer token ``request`` carries (log out)."""
    token_hash = _token_hash(_bearer(request))
    now = context.clock()
    with context.db.transaction() as session:
        mobile = session.scalar(
            select(MobileSession).where(MobileSession.token_sha256 == token_hash)
        )
        if mobile is None or mobile.revoked_at is not None:
            raise Unauthenticated("the session is unknown or already revoked")
        mobile.revoked_at = now
        user = session.get(User, mobile.user_id)
        audit.record(
            session,
            actor=f"user:{user.username if user else '?'}",
            action="session.revoked",
            now=now,
        )


def change_password(
    context: GatewayContext,
    throttle: LoginThrottle,
    user: User,
    current: str,
    new: str,
    *,
    client_address: str | None,
    request: Request,
) -> None:
    """Replace ``user``'s password with ``new`` after checking ``current``; the duty to
    change a one-time password ends, and every other session of the user ends (a
    stolen token does not outlive the change). Wrong current passwords count like
    failed logins (``throttle``). Audited. Raises LoginRateLimited, CredentialsInvalid
    (``current`` is wrong) and PasswordTooWeak. ``request``: the call, whose session
    stays."""
    address = client_address
    throttle.check(address, user.username)
    problem = password_problem(user.username, current, new)
    now = context.clock()
    with context.db.transaction() as session:
        stored = session.get(User, user.id, with_for_update=True)
        assert stored is not None
        right = verify_password(stored.password_hash, current)
        if right and problem is None:
            stored.password_hash = hash_password(new)
            stored.password_must_change = False
            _end_other_sessions(session, stored, _token_hash(_bearer(request)), now=now)
            audit.record(
                session,
                actor=f"user:{stored.username}",
                action="password.changed",
                now=now,
                client_address=address,
            )
    if not right:
        throttle.failed(address, user.username)
        raise CredentialsInvalid("the current password is wrong")
    if problem is not None:
        raise PasswordTooWeak(problem)
    throttle.succeeded(address, user.username)


def _end_other_sessions(session: Session, user: User, kept: str, *, now: dt.datetime) -> None:
    """Revoke ``user``'s live sessions but the one whose token hash is ``kept``."""
    for other in session.scalars(
        select(MobileSession).where(
            MobileSession.user_id == user.id,
            MobileSession.revoked_at.is_(None),
            MobileSession.token_sha256 != kept,
        )
    ):
        other.revoked_at = now


USERNAME_CHECK_MIN = 4


def password_problem(username: str, current: str, new: str) -> str | None:
    """What is wrong with ``new`` as a password, in words, or None: at least 10
    characters with 5 different ones, not containing the username (one of at least
    :data:`USERNAME_CHECK_MIN` characters: a shorter one, such as ``an``, is a syllable
    of countless words and names), not ``current``."""
    if len(new) < 10 or len(new) > 200:
        return "use 10 to 200 characters"
    if any(unicodedata.category(c) in ("Cc", "Cs", "Cf") for c in new):
        return "use letters, digits, spaces and punctuation only"
    if len(set(new)) < 5:
        return "use at least 5 different characters"
    if len(username) >= USERNAME_CHECK_MIN and username.casefold() in new.casefold():
        return "do not put your username in the password"
    if new == current:
        return "choose a password other than the current one"
    return None
