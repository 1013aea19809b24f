"""``clients``: integration clients (document systems): add one with a scoped API key,
list them, rotate the key or the callback secret, revoke one. Secrets are printed once."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer

from gateway.admin.clients import (
    SCOPES,
    ClientSummary,
    IssuedClient,
    add_client,
    list_clients,
    revoke_client,
    rotate_callback_secret,
    rotate_key,
)
from gateway.config import load_settings
from gateway.secrets_at_rest import InstallationKeys, SecretBox
from signing_gateway.cli.common import DataDir, admin_db

app = typer.Typer(no_args_is_help=True, help="Integration clients (document systems).")
clients_app = app


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _show_secrets(issued: IssuedClient) -> None:
    if issued.api_key is not None:
        typer.echo(f"API key (shown once; send as Authorization: Bearer): {issued.api_key}")
    if issued.callback_secret is not None:
        typer.echo(
            "callback secret (shown once; verifies the callbacks' HMAC-SHA256 signatures):"
            f" {issued.callback_secret}"
        )


def _box(data_dir: Path) -> SecretBox:
    return SecretBox(InstallationKeys.load(load_settings(data_dir).secrets_dir).fernet_key)


@clients_app.command("add")
def clients_add(
    name: Annotated[str, typer.Argument(help="the document system's name")],
    scope: Annotated[
        list[str] | None,
        typer.Option(help=f"repeatable: {', '.join(SCOPES)} (default: all)"),
    ] = None,
    callback_secret: Annotated[
        bool, typer.Option(help="sign its status callbacks with a callback secret")
    ] = True,
    data_dir: DataDir = Path("var"),
) -> None:
    """Add an integration client; prints its id, API key and callback secret (each
    shown once). Audited."""

    with admin_db(load_settings(data_dir)) as db:
        issued = add_client(
            db,
            _box(data_dir),
            name,
            actor="admin:cli",
            now=_now(),
            scopes=scope or None,
            callback_secret=callback_secret,
        )
    typer.echo(
        f"integration client {issued.client.id} ({issued.client.name}) added,"
        f" scopes: {' '.join(issued.client.scopes)}"
    )
    _show_secrets(issued)


def _state(client: ClientSummary) -> str:
    if client.revoked_at is not None:
        return f"revoked {client.revoked_at.isoformat(timespec='seconds')}"
    return "active"


@clients_app.command("list")
def clients_list(
    data_dir: DataDir = Path("var"),
    as_json: Annotated[bool, typer.Option("--json", help="JSON for scripts")] = False,
) -> None:
    """Every integration client (never its secrets): id, name, scopes, state, when its
    key was last rotated."""

    with admin_db(load_settings(data_dir)) as db:
        listed = list_clients(db)
    if as_json:
        rows = [
            {
                "id": c.id,
                "name": c.name,
                "scopes": list(c.scopes),
                "created_at": c.created_at.isoformat(),
                "key_rotated_at": c.key_rotated_at.isoformat() if c.key_rotated_at else None,
                "revoked_at": c.revoked_at.isoformat() if c.revoked_at else None,
                "has_callback_secret": c.has_callback_secret,
            }
            for c in listed
        ]
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not listed:
        typer.echo("no integration client yet: add one with `signing-gateway clients add NAME`")
    for c in listed:
        rotated = c.key_rotated_at.isoformat(timespec="seconds") if c.key_rotated_at else "never"
        typer.echo(f"{c.id}  {c.name}  [{' '.join(c.scopes)}]  {_state(c)}; key rotated: {rotated}")


@clients_app.command("rotate-key")
def clients_rotate_key(
    client_id: Annotated[str, typer.Argument(help="the client's id (clients list)")],
    data_dir: DataDir = Path("var"),
) -> None:
    """A new API key for the client (shown once); the old one stops working at once.
    Audited."""

    with admin_db(load_settings(data_dir)) as db:
        issued = rotate_key(db, client_id, actor="admin:cli", now=_now())
    typer.echo(f"integration client {client_id}: new API key; the old one no longer works")
    _show_secrets(issued)


@clients_app.command("rotate-callback-secret")
def clients_rotate_callback_secret(
    client_id: Annotated[str, typer.Argument(help="the client's id (clients list)")],
    data_dir: DataDir = Path("var"),
) -> None:
    """A new callback secret (shown once): callbacks are signed with it from now on.
    Audited."""

    with admin_db(load_settings(data_dir)) as db:
        issued = rotate_callback_secret(
            db, _box(data_dir), client_id, actor="admin:cli", now=_now()
        )
    typer.echo(f"integration client {client_id}: new callback secret")
    _show_secrets(issued)


@clients_app.command("revoke")
def clients_revoke(
    client_id: Annotated[str, typer.Argument(help="the client's id (clients list)")],
    data_dir: DataDir = Path("var"),
) -> None:
    """Revoke the client: its API key is refused at once. Audited once."""

    with admin_db(load_settings(data_dir)) as db:
        done = revoke_client(db, client_id, actor="admin:cli", now=_now())
    revoked_at = done.client.revoked_at
    when = revoked_at.isoformat(timespec="seconds") if revoked_at else "?"
    if not done.changed:
        typer.echo(f"integration client {client_id} was revoked already on {when}: nothing changed")
        return
    typer.echo(f"integration client {client_id} revoked; its API key no longer works")
