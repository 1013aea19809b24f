"""``audit``: the hash-chained audit log, its checkpoints, and what it says."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from sqlalchemy import select

from gateway.audit.checkpoints import SESSION_INFO_KEY, verify_checkpoints, write_checkpoint
from gateway.audit.log import verify_chain
from gateway.config import load_settings
from gateway.context import open_database
from gateway.db.models import AuditEntry
from gateway.secrets_at_rest import CHECKPOINT_PUBLIC_KEY_FILE
from signing_gateway.cli.common import (
    DataDir,
)

app = typer.Typer(no_args_is_help=True, help="The hash-chained audit log.")
audit_app = app


@audit_app.command("verify")
def audit_verify(
    data_dir: DataDir = Path("var"),
    public_key: Annotated[
        Path | None,
        typer.Option(
            help="checkpoint public key (PEM) kept apart from this host; "
            "default: the installation's secrets/audit-checkpoint.pub"
        ),
    ] = None,
) -> None:
    """Recompute the audit hash chain and check every signed checkpoint; exit 1 at the
    first broken entry or checkpoint."""

    settings = load_settings(data_dir)
    db = open_database(settings)
    key_file = public_key or settings.secrets_dir / CHECKPOINT_PUBLIC_KEY_FILE
    key = load_pem_public_key(key_file.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        typer.echo(f"{key_file} is not an Ed25519 public key", err=True)
        raise typer.Exit(2)
    with db.transaction() as session:
        chain = verify_chain(session)
        checkpoints = verify_checkpoints(session, key, every=settings.audit_checkpoint_every)
    db.dispose()
    broken = False
    if chain.intact:
        typer.echo(f"audit chain intact: {chain.entries} entries")
    else:
        typer.echo(f"audit chain BROKEN at entry {chain.first_broken_id}")
        broken = True
    if checkpoints.intact:
        last = checkpoints.last_entry_id
        typer.echo(
            f"checkpoints: {checkpoints.checkpoints} signed and matching"
            + (f", the last at entry {last}" if last is not None else "")
        )
    else:
        explanation = {
            "bad_signature": "its signature does not verify with this key",
            "entry_changed": "the entry it signed was changed: the log was rewritten",
            "entry_missing": "the entry it signed is gone: the log was cut short",
            "checkpoint_missing": "the checkpoint due at this entry is gone",
        }[checkpoints.problem or "bad_signature"]
        typer.echo(
            f"checkpoint at entry {checkpoints.problem_entry_id} BROKEN "
            f"({checkpoints.problem}): {explanation}"
        )
        broken = True
    if broken:
        raise typer.Exit(1)


@audit_app.command("checkpoint")
def audit_checkpoint(data_dir: DataDir = Path("var")) -> None:
    """Sign the audit chain's head now (for a timer; checkpoints are also written every
    ``audit_checkpoint_every`` entries)."""

    settings = load_settings(data_dir)
    db = open_database(settings)
    with db.transaction() as session:
        checkpoint = write_checkpoint(
            session, session.info[SESSION_INFO_KEY], now=dt.datetime.now(dt.UTC)
        )
        entry_id = checkpoint.entry_id if checkpoint is not None else None
    db.dispose()
    if entry_id is None:
        typer.echo("nothing new to checkpoint")
    else:
        typer.echo(f"checkpoint signed at entry {entry_id}")


@audit_app.command("show")
def audit_show(
    request: Annotated[str | None, typer.Option(help="only this signing request's entries")] = None,
    action: Annotated[
        str | None, typer.Option(help="only actions starting so, e.g. organisation.")
    ] = None,
    last: Annotated[
        int, typer.Option(min=1, max=100_000, help="at most this many, the newest")
    ] = 50,
    data_dir: DataDir = Path("var"),
) -> None:
    """Print audit entries, oldest first, one JSON object a line (id, at, actor, action,
    request_id, client_address, detail): who did what, e.g. a handover's permission."""

    db = open_database(load_settings(data_dir))
    try:
        with db.transaction() as session:
            query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(last)
            if request is not None:
                query = query.where(AuditEntry.request_id == request)
            if action is not None:
                query = query.where(AuditEntry.action.startswith(action, autoescape=True))
            entries = list(session.scalars(query))
            lines = [
                json.dumps(
                    {
                        "id": e.id,
                        "at": e.at.isoformat(timespec="seconds"),
                        "actor": e.actor,
                        "action": e.action,
                        "request_id": e.request_id,
                        "client_address": e.client_address,
                        "detail": json.loads(e.detail),
                    },
                    ensure_ascii=False,
                )
                for e in reversed(entries)
            ]
    finally:
        db.dispose()
    for line in lines:
        typer.echo(line)
