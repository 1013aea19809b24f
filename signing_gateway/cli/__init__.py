"""The ``signing-gateway`` command line (Typer): command groups of short commands that
call the gateway's and the bridge's use cases; this module assembles them."""

from __future__ import annotations

import os

import typer

from signing_gateway.cli import (
    archive,
    audit,
    bridge,
    clients,
    credentials,
    devices,
    installation,
    organisations,
    pki,
    tokens,
    users,
)

__all__ = ["app", "main"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Remote signing gateway: PAdES signatures with keys on PKCS#11 tokens.",
)
app.registered_commands.extend(installation.app.registered_commands)
app.add_typer(tokens.app, name="tokens")
app.add_typer(credentials.app, name="credentials")
app.add_typer(audit.app, name="audit")
app.add_typer(users.app, name="users")
app.add_typer(devices.app, name="devices")
app.add_typer(organisations.app, name="organisations")
app.add_typer(bridge.app, name="bridge")
app.add_typer(pki.app, name="pki")
app.add_typer(archive.app, name="archive")
app.add_typer(clients.app, name="clients")


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    os.umask(0o077)  # database, documents and keys are readable by the service user only
    try:
        app()
    except FileNotFoundError as exc:
        typer.echo(
            f"no installation here ({exc.filename}): run `signing-gateway init "
            "--data-dir DIR` first, or pass --data-dir (or GATEWAY_DATA_DIR)",
            err=True,
        )
        raise SystemExit(1) from exc
