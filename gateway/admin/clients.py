"""Integration clients (document systems): adding one with a scoped API key, listing
them, rotating the key or the callback secret, revoking one. The ``clients`` commands
and the administration API (``/admin/v1/integration-clients``) call these; every change
is audited with its ``actor``.

The API key (``sgw_`` and 43 URL-safe characters) is stored only as its SHA-256 (hex);
the callback secret (``whsec_`` …, the HMAC-SHA256 key of status callbacks) is sealed
with the installation's Fernet key. Both are returned once, when made."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.audit import log as audit
from gateway.db.database import Database
from gateway.db.models import DEFAULT_CLIENT_SCOPES, IntegrationClient
from gateway.errors import NotFound, ParameterInvalid
from gateway.secrets_at_rest import SecretBox

__all__ = [
    "SCOPES",
    "ClientSummary",
    "IssuedClient",
    "add_client",
    "api_key_hash",
    "client_scopes",
    "list_clients",
    "new_api_key",
    "new_callback_secret",
    "revoke_client",
    "rotate_callback_secret",
    "rotate_key",
]

SCOPES = ("requests:submit", "requests:read", "validations")


@dataclass(frozen=True, slots=True)
class ClientSummary:
    """An integration client without its secrets."""

    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: dt.datetime
    key_rotated_at: dt.datetime | None
    revoked_at: dt.datetime | None
    has_callback_secret: bool


@dataclass(frozen=True, slots=True)
class IssuedClient:
    """A client after a change, with what was made for it (each shown once, else
    None); ``changed`` False: nothing was done (a revoked client revoked again)."""

    client: ClientSummary
    api_key: str | None = None
    callback_secret: str | None = None
    changed: bool = True


def new_api_key() -> str:
    """A new random API key (256 bits)."""
    return "sgw_" + secrets.token_urlsafe(32)


def new_callback_secret() -> str:
    """A new random callback secret (256 bits)."""
    return "whsec_" + secrets.token_urlsafe(32)


def api_key_hash(api_key: str) -> str:
    """The SHA-256 (hex) under which ``api_key`` is stored and looked up."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def client_scopes(client: IntegrationClient) -> tuple[str, ...]:
    """The scopes the client's key was given."""
    return tuple((client.scopes or "").split())


def _summary(client: IntegrationClient) -> ClientSummary:
    return ClientSummary(
        id=client.id,
        name=client.name,
        scopes=client_scopes(client),
        created_at=client.created_at,
        key_rotated_at=client.key_rotated_at,
        revoked_at=client.revoked_at,
        has_callback_secret=client.callback_secret is not None,
    )


def _checked_scopes(scopes: Sequence[str] | None) -> str:
    if scopes is None:
        return DEFAULT_CLIENT_SCOPES
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ParameterInvalid(f"scopes must be some of {', '.join(SCOPES)}")
    return " ".join(s for s in SCOPES if s in scopes)


def add_client(
    db: Database,
    box: SecretBox,
    name: str,
    *,
    actor: str,
    now: dt.datetime,
    scopes: Sequence[str] | None = None,
    callback_secret: bool = True,
    client_address: str | None = None,
) -> IssuedClient:
    """A new integration client ``name`` whose key has ``scopes`` (some of
    :data:`SCOPES`; all of them by default), with a callback secret unless
    ``callback_secret`` is False. Its API key and callback secret are returned once.
    Audited (``client.added``). Raises ParameterInvalid (empty or overlong name, a
    name another client has or had, unknown scope)."""
    name = name.strip()
    if not name or len(name) > 200 or not name.isprintable():
        raise ParameterInvalid("the client's name must be 1 to 200 printable characters")
    stored_scopes = _checked_scopes(scopes)
    api_key = new_api_key()
    secret = new_callback_secret() if callback_secret else None
    with db.transaction() as session:
        if session.scalar(select(IntegrationClient.id).where(IntegrationClient.name == name)):
            # the audit log names a client by its name (client:NAME)
            raise ParameterInvalid(f"an integration client is already named {name!r}")
        client = IntegrationClient(
            id=str(uuid.uuid4()),
            name=name,
            api_key_sha256=api_key_hash(api_key),
            callback_secret=box.seal(secret) if secret is not None else None,
            scopes=stored_scopes,
            created_at=now,
        )
        session.add(client)
        audit.record(
            session,
            actor=actor,
            action="client.added",
            now=now,
            client_address=client_address,
            detail={"client": client.id, "name": name, "scopes": stored_scopes.split()},
        )
        return IssuedClient(_summary(client), api_key, secret)


def list_clients(db: Database) -> list[ClientSummary]:
    """Every integration client, oldest first, revoked ones included."""
    with db.transaction() as session:
        clients = session.scalars(
            select(IntegrationClient).order_by(IntegrationClient.created_at)
        ).all()
        return [_summary(c) for c in clients]


def _client(session: Session, client_id: str, *, live: bool) -> IntegrationClient:
    client = session.get(IntegrationClient, client_id, with_for_update=True)
    if client is None:
        raise NotFound(f"no integration client {client_id}")
    if live and client.revoked_at is not None:
        raise ParameterInvalid(f"the integration client {client.name!r} is revoked")
    return client


def rotate_key(
    db: Database,
    client_id: str,
    *,
    actor: str,
    now: dt.datetime,
    client_address: str | None = None,
) -> IssuedClient:
    """A new API key for the client (returned once); the old one stops working at once.
    Audited (``client.key_rotated``). Raises NotFound, ParameterInvalid (revoked)."""
    api_key = new_api_key()
    with db.transaction() as session:
        client = _client(session, client_id, live=True)
        client.api_key_sha256 = api_key_hash(api_key)
        client.key_rotated_at = now
        audit.record(
            session,
            actor=actor,
            action="client.key_rotated",
            now=now,
            client_address=client_address,
            detail={"client": client.id, "name": client.name},
        )
        return IssuedClient(_summary(client), api_key=api_key)


def rotate_callback_secret(
    db: Database,
    box: SecretBox,
    client_id: str,
    *,
    actor: str,
    now: dt.datetime,
    client_address: str | None = None,
) -> IssuedClient:
    """A new callback secret (returned once): callbacks are signed with it from now on,
    those still owed included. Audited (``client.callback_secret_rotated``). Raises
    NotFound, ParameterInvalid (revoked)."""
    secret = new_callback_secret()
    with db.transaction() as session:
        client = _client(session, client_id, live=True)
        client.callback_secret = box.seal(secret)
        audit.record(
            session,
            actor=actor,
            action="client.callback_secret_rotated",
            now=now,
            client_address=client_address,
            detail={"client": client.id, "name": client.name},
        )
        return IssuedClient(_summary(client), callback_secret=secret)


def revoke_client(
    db: Database,
    client_id: str,
    *,
    actor: str,
    now: dt.datetime,
    client_address: str | None = None,
) -> IssuedClient:
    """Revoke the client: its key is refused at once (``unauthenticated``), as an
    unknown key is. Audited once (``client.revoked``); revoking again changes nothing
    (``changed`` False). Raises NotFound."""
    with db.transaction() as session:
        client = _client(session, client_id, live=False)
        if client.revoked_at is not None:
            return IssuedClient(_summary(client), changed=False)
        client.revoked_at = now
        audit.record(
            session,
            actor=actor,
            action="client.revoked",
            now=now,
            client_address=client_address,
            detail={"client": client.id, "name": client.name},
        )
        return IssuedClient(_summary(client))
