"""Backing an installation up and restoring it: ``backup``, ``restore``. The passphrase
comes from a file (``--passphrase-file``), the environment (GATEWAY_BACKUP_PASSPHRASE)
or a prompt; never from an argument, which other users of the host can read."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat
import sys
from pathlib import Path
from typing import Annotated

import typer

from gateway.config import load_settings
from signing_gateway.backup import (
    BackupError,
    audit_restore,
    create_backup,
    restore_backup,
)
from signing_gateway.cli.common import DataDir

app = typer.Typer()

PASSPHRASE_ENV = "GATEWAY_BACKUP_PASSPHRASE"  # noqa: S105 (a variable's name)
MIN_PASSPHRASE = 12

PassphraseFile = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        help=f"file holding the passphrase (else ${PASSPHRASE_ENV}, else a prompt)",
    ),
]


@app.command()
def backup(
    to: Annotated[Path, typer.Option("--to", help="the backup file to write")],
    passphrase_file: PassphraseFile = None,
    data_dir: DataDir = Path("var"),
) -> None:
    """Write an encrypted backup of the installation (database, documents, the bridge's
    signer records, tokens, keys, settings) while it serves; see docs/backup.md."""
    passphrase = _passphrase(passphrase_file, confirm=True)
    if len(passphrase) < MIN_PASSPHRASE:
        typer.echo(f"the passphrase needs at least {MIN_PASSPHRASE} characters", err=True)
        raise typer.Exit(2)
    settings = load_settings(data_dir)
    try:
        report = create_backup(
            settings, to, passphrase, now=dt.datetime.now(dt.UTC), actor="admin:cli"
        )
    except BackupError as exc:
        typer.echo(f"{exc.code}: {exc.detail}", err=True)
        raise typer.Exit(1) from exc
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(
        f"backup written to {report.path}: {report.files} files, {report.bytes} bytes"
        f" before encryption; SHA-256 {report.sha256}"
    )


@app.command()
def restore(
    from_: Annotated[Path, typer.Option("--from", help="the backup file to read")],
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="the new installation folder (absent or empty)")
    ],
    passphrase_file: PassphraseFile = None,
) -> None:
    """Restore a backup into a new folder: nothing is written there unless the whole
    file opens with the passphrase and matches its manifest."""
    passphrase = _passphrase(passphrase_file, confirm=False)
    try:
        report = restore_backup(from_, data_dir, passphrase)
    except BackupError as exc:
        typer.echo(f"{exc.code}: {exc.detail}", err=True)
        raise typer.Exit(1) from exc
    except OSError as exc:
        typer.echo(f"cannot read {from_}: {exc.strerror}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(
        f"restored {report.files} files into {report.data_dir} (backup of"
        f" {report.original_data_dir}, made {report.created_at})"
    )
    if report.rewritten:
        typer.echo(f"paths rewritten to the new folder in: {', '.join(report.rewritten)}")
    if not report.database_included:
        typer.echo(
            f"the {report.dialect} database is not in the backup: restore its pg_dump"
            " and set GATEWAY_DATABASE_URL before serving (docs/backup.md)"
        )
        return
    with from_.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    settings = load_settings(report.data_dir)
    audit_restore(settings, report, digest, now=dt.datetime.now(dt.UTC), actor="admin:cli")


def _passphrase(path: Path | None, *, confirm: bool) -> bytes:
    """The passphrase (UTF-8) from ``path`` (without its final line break), the
    environment, or a prompt on a terminal; exits 2 when there is none."""
    if path is not None:
        try:
            data = path.read_bytes()
            mode = path.stat().st_mode
        except OSError as exc:
            typer.echo(f"cannot read {path}: {exc.strerror}", err=True)
            raise typer.Exit(2) from exc
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            typer.echo(f"warning: {path} is readable by others: chmod 600 it", err=True)
        return data.removesuffix(b"\n").removesuffix(b"\r")
    if os.environ.get(PASSPHRASE_ENV):
        return os.environ[PASSPHRASE_ENV].encode()
    if not sys.stdin.isatty():
        typer.echo(f"no passphrase: pass --passphrase-file or set {PASSPHRASE_ENV}", err=True)
        raise typer.Exit(2)
    text: str = typer.prompt("passphrase", hide_input=True, confirmation_prompt=confirm)
    return text.encode()
