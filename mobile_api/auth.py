"""Mobile sessions: password login (Argon2id) within the login throttle
(:mod:`mobile_api.throttle`), and short-lived revocable bearer tokens of which only the
SHA-256 is stored."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.audit import log as audit
from gateway.config import Settings
from gateway.context import GatewayContext, context_of
from gateway.db.models import MobileSession, User
from gateway.errors import CredentialsInvalid, Unauthenticated
from gateway.passwords import verify_password
from mobile_api.throttle import LoginThrottle

__all__ = ["IssuedSession", "current_user", "login", "revoke"]


@dataclass(frozen=True, slots=True)
class IssuedSession:
    """A new bearer token (shown once) and its lifetime in seconds."""

    access_token: str
    expires_in: int


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

    Raises LoginRateLimited (429, with ``retry_after``) and CredentialsInvalid (the same
    for an unknown user and a wrong password)."""
    throttle.check(client_address, username)
    now = context.clock()
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
        else:
            issued = _open_session(session, user, context.settings, now=now, address=client_address)
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
    return IssuedSession(access_token=token, expires_in=ttl)


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("send Authorization: Bearer <access token>")
    return token.strip()


def current_user(request: Request, context: Annotated[GatewayContext, Depends(context_of)]) -> User:
    """FastAPI dependency: the user of a live (unexpired, unrevoked) session."""
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
