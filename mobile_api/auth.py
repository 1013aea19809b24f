"""Mobile sessions: password login (Argon2id), short-lived revocable bearer tokens of
which only the SHA-256 is stored, and a per-user lock after repeated failed logins."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Annotated

import limits
import limits.storage
import limits.strategies
from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.audit import log as audit
from gateway.config import Settings
from gateway.context import GatewayContext, context_of
from gateway.db.models import MobileSession, User
from gateway.errors import CredentialsInvalid, LoginLocked, LoginRateLimited, Unauthenticated
from gateway.passwords import verify_password

__all__ = ["IssuedSession", "LoginLimiter", "current_user", "login", "revoke"]


@dataclass(frozen=True, slots=True)
class IssuedSession:
    """A new bearer token (shown once) and its lifetime in seconds."""

    access_token: str
    expires_in: int


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class LoginLimiter:
    """Logins per client address in a moving window (the ``limits`` library): in memory
    for the embedded default, in Redis (``rate_limit_storage_url``) when several replicas
    must share the counts. Complements the per-user lock after failed logins: this one
    slows a guesser who tries many usernames from one address."""

    def __init__(self, rate: str, storage_url: str) -> None:
        self._item = limits.parse(rate)
        self._limiter = limits.strategies.MovingWindowRateLimiter(
            limits.storage.storage_from_string(storage_url)
        )

    def hit(self, client_address: str | None) -> None:
        """Count one login attempt; raises LoginRateLimited (429) past the rate, with
        ``retry_after`` in seconds."""
        key = client_address or "unknown"
        if not self._limiter.hit(self._item, "login", key):
            stats = self._limiter.get_window_stats(self._item, "login", key)
            wait = max(1, int(stats.reset_time - time.time()) + 1)
            raise LoginRateLimited(
                f"too many logins from this address; try again in {wait} s", retry_after=wait
            )


def login(
    context: GatewayContext, username: str, password: str, *, client_address: str | None
) -> IssuedSession:
    """Check ``username``/``password`` and open a session.

    Raises CredentialsInvalid (same answer for an unknown user and a wrong password) or
    LoginLocked after ``login_max_failures`` failures in a row."""
    settings = context.settings
    now = context.clock()
    with context.db.transaction() as session:
        user = session.scalar(select(User).where(User.username == username))
        locked = bool(
            user is not None and user.login_locked_until and now < user.login_locked_until
        )
        if locked:
            issued = None
        # the password is checked for unknown names too (a dummy hash): same time, same answer
        elif not verify_password(user.password_hash if user else None, password) or user is None:
            if user is not None:
                _count_failure(session, user, settings, now=now, client_address=client_address)
            issued = None
        else:
            issued = _open_session(session, user, settings, now=now, client_address=client_address)
    if locked:
        raise LoginLocked("too many failed logins; try again later")
    if issued is None:
        raise CredentialsInvalid("wrong username or password")
    return issued


def _count_failure(
    session: Session,
    user: User,
    settings: Settings,
    *,
    now: dt.datetime,
    client_address: str | None,
) -> None:
    """One more failed login for ``user``; locked for ``login_lockout_seconds`` after
    ``login_max_failures`` in a row."""
    user.login_failures += 1
    audit.record(
        session,
        actor=f"user:{user.username}",
        action="login.failed",
        now=now,
        client_address=client_address,
    )
    if user.login_failures >= settings.login_max_failures:
        user.login_failures = 0
        user.login_locked_until = now + dt.timedelta(seconds=settings.login_lockout_seconds)
        audit.record(
            session, actor="system", action="login.locked", now=now, detail={"user": user.username}
        )


def _open_session(
    session: Session,
    user: User,
    settings: Settings,
    *,
    now: dt.datetime,
    client_address: str | None,
) -> IssuedSession:
    """A new bearer token for ``user`` (only its SHA-256 is stored)."""
    user.login_failures = 0
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
        client_address=client_address,
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
