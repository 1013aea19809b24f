"""``devices``: signers' phones and tablets, as the bridge on this host holds them."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer

from gateway.approvals import devices
from gateway.config import Settings, load_settings
from gateway.context import open_database
from hsm_bridge import BridgeError
from hsm_bridge.sam.signers import EnrolmentCode
from signing_gateway.cli.common import (
    DataDir,
    host_registry,
    open_bridge,
    show_enrolment_code,
    user_or_exit,
)

app = typer.Typer(no_args_is_help=True, help="Signers' phones and tablets.")
devices_app = app


@devices_app.command("enrolment-code")
def devices_enrolment_code(
    username: Annotated[str, typer.Argument(help="the signer whose device enrols")],
    data_dir: DataDir = Path("var"),
    png: Annotated[
        Path | None, typer.Option(help="also write the QR code to this PNG file")
    ] = None,
) -> None:
    """Create a one-time code with which one new device of USERNAME enrols (shown as a
    QR code in the terminal; the app scans it). The bridge of this installation issues
    it; with a bridge on a secure host, run `signing-gateway bridge enrolment-code`
    there. Audited."""

    settings = load_settings(data_dir)
    if not settings.in_process_bridge:
        typer.echo(
            "the bridge is on a secure host: run `signing-gateway bridge enrolment-code "
            f"{username}` there",
            err=True,
        )
        raise typer.Exit(1)
    issued = issue_enrolment_code(settings, username, actor="admin:cli")
    show_enrolment_code(devices.enrolment_code_view(issued, settings.public_url), png)


def issue_enrolment_code(settings: Settings, username: str, *, actor: str) -> EnrolmentCode:
    """A one-time enrolment code for USERNAME from this installation's in-process bridge,
    recorded (and audited) in the gateway's database as issued by ``actor``. Exits with
    a message when there is no such user."""
    db = open_database(settings)
    now = dt.datetime.now(dt.UTC)
    try:
        with db.transaction() as session:
            user = user_or_exit(session, username)
            issued: EnrolmentCode = host_registry(settings).issue_enrolment_code(
                username,
                now=now,
                ttl_seconds=settings.enrolment_code_ttl_seconds,
            )
            devices.record_enrolment_code(session, user, issued, actor=actor, now=now)
    finally:
        db.dispose()
    return issued


@devices_app.command("list")
def devices_list(
    username: Annotated[str, typer.Argument(help="whose devices")],
    data_dir: DataDir = Path("var"),
    as_json: Annotated[bool, typer.Option("--json", help="JSON for scripts")] = False,
) -> None:
    """A signer's devices as the bridge holds them (the bridge is the source of truth),
    revoked ones included, with the names the gateway knows them by."""

    settings = load_settings(data_dir)
    db = open_database(settings)
    try:
        with db.transaction() as session:
            user = user_or_exit(session, username)
        listings = devices.list_devices(db, open_bridge(settings), user)
    except BridgeError as exc:
        typer.echo(f"the bridge could not be asked ({exc.code}): {exc.message}", err=True)
        raise typer.Exit(1) from exc
    finally:
        db.dispose()
    rows = [
        {
            "id": d.record.device_id,
            "name": d.local.name if d.local else "(not enrolled through this gateway)",
            "platform": d.local.platform if d.local else "",
            "kind": d.record.kind,
            "enrolled_with": d.record.enrolled_with,
            "enrolled": dt.datetime.fromtimestamp(d.record.created_at, dt.UTC).isoformat(
                timespec="seconds"
            ),
            "state": "revoked"
            if d.revoked
            else ("stale" if d.local is not None and d.local.stale else "active"),
        }
        for d in listings
    ]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        typer.echo(f"{username} has no enrolled devices or passkeys")
    for row in rows:
        typer.echo(
            f"{row['id']}  {row['state']:<8} {row['platform']:<8} {row['enrolled_with']:<14}"
            f" {row['name']}"
        )


@devices_app.command("revoke")
def devices_revoke(
    device_id: Annotated[str, typer.Argument(help="the device id (devices list)")],
    data_dir: DataDir = Path("var"),
) -> None:
    """Revoke a device at once (a lost tablet), in the records of the bridge on this
    host: its approvals are refused and it gets no more push messages. With a bridge on
    a secure host, run `signing-gateway bridge devices revoke` there. Audited."""

    settings = load_settings(data_dir)
    if not settings.in_process_bridge:
        typer.echo(
            f"the bridge is on a secure host: run `signing-gateway bridge devices revoke"
            f" {device_id}` there",
            err=True,
        )
        raise typer.Exit(1)
    db = open_database(settings)
    try:
        known = devices.revoke_by_administrator(
            db, host_registry(settings), device_id, actor="admin:cli", now=dt.datetime.now(dt.UTC)
        )
    finally:
        db.dispose()
    if not known:
        typer.echo(f"no device {device_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"device {device_id} revoked")
