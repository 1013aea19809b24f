"""``organisations``: organisations, their seal and the clerk who keeps its token."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import select

from gateway.admin.organisations import add_organisation, hand_over, set_seal
from gateway.config import load_settings
from gateway.context import open_database
from gateway.db.models import Credential, Organisation, User
from mobile_api.push import PushNotifier
from signing_gateway.app import push_provider
from signing_gateway.cli.common import (
    DataDir,
    admin_db,
    host_registry,
    read_or_exit,
)

app = typer.Typer(
    no_args_is_help=True, help="Organisations: their seal and the clerk who keeps it."
)
organisations_app = app


@organisations_app.command("add")
def organisations_add(
    name: Annotated[str, typer.Argument(help="short name, e.g. stc-hanam")],
    display_name: Annotated[str, typer.Option(help='full name, e.g. "Sở Tài chính tỉnh Hà Nam"')],
    data_dir: DataDir = Path("var"),
) -> None:
    """Add an organisation (audited). Then: its seal image (`organisations seal`), its
    clerks (`users add --role clerk --organisation NAME`) and its key
    (`credentials register CLERK --organisation NAME`)."""

    with admin_db(load_settings(data_dir)) as db:
        add_organisation(db, name, display_name, now=dt.datetime.now(dt.UTC))
    typer.echo(f"organisation {name} added")


@organisations_app.command("seal")
def organisations_seal(
    name: Annotated[str, typer.Argument(help="the organisation's short name")],
    image: Annotated[Path, typer.Argument(help="PNG of the seal, transparent background")],
    diameter_mm: Annotated[float, typer.Option(help="the seal's real diameter, millimetres")],
    data_dir: DataDir = Path("var"),
) -> None:
    """Keep IMAGE (the seal filling the image edge to edge, red on a transparent
    background) as NAME's seal, drawn DIAMETER_MM across on its official documents from
    now on. Audited."""

    data = read_or_exit(image)
    with admin_db(load_settings(data_dir)) as db:
        digest = set_seal(db, name, data, diameter_mm, now=dt.datetime.now(dt.UTC))
    typer.echo(f"seal of {name} kept ({diameter_mm:g} mm, SHA-256 {digest})")


@organisations_app.command("handover")
def organisations_handover(
    name: Annotated[str, typer.Argument(help="the organisation's short name")],
    to: Annotated[str, typer.Option(help="the clerk who keeps the token from now on")],
    permission: Annotated[
        str, typer.Option(help="the written permission: its number, date and signer")
    ],
    data_dir: DataDir = Path("var"),
) -> None:
    """Hand NAME's token to another of its clerks (staff rotation). Its pending seals
    go to the new clerk; the old one can no longer sign with it. Audited with the
    permission."""

    settings = load_settings(data_dir)
    with admin_db(settings) as db:
        done = hand_over(
            db,
            name,
            to,
            permission,
            now=dt.datetime.now(dt.UTC),
            registry=host_registry(settings) if settings.in_process_bridge else None,
        )
        # the new keeper's devices learn of the seals that now wait for them
        notifier = PushNotifier(
            db,
            push_provider(settings),
            settings.push_title,
            nonce_ttl_seconds=settings.approval_nonce_ttl_seconds,
        )
        for request_id in done.readdressed:
            notifier.deliver(done.keeper_id, request_id)
        notifier.close()
    typer.echo(
        f"the token of {name} is kept by {to} (before: {', '.join(done.previous) or 'nobody'});"
        f" {len(done.readdressed)} pending request(s) now wait for {to}, who was notified"
    )
    if not settings.in_process_bridge:
        for ref in done.credentials:
            typer.echo(
                "on the bridge host:\n"
                f"  signing-gateway bridge bind {to} --token {ref.token_serial}"
                f" --key-id {ref.key_id.hex()}"
            )
            for old in done.previous:
                typer.echo(
                    f"  signing-gateway bridge unbind {old} --token {ref.token_serial}"
                    f" --key-id {ref.key_id.hex()}"
                )


@organisations_app.command("list")
def organisations_list(data_dir: DataDir = Path("var")) -> None:
    """Organisations, whether their seal is uploaded, and who keeps their key."""

    db = open_database(load_settings(data_dir))
    try:
        with db.transaction() as session:
            for unit in session.scalars(select(Organisation).order_by(Organisation.name)):
                keepers = session.execute(
                    select(User.username, Credential.id)
                    .join(Credential, Credential.user_id == User.id)
                    .where(Credential.organisation_id == unit.id, Credential.revoked_at.is_(None))
                ).all()
                seal = f"{unit.seal_diameter_mm:g} mm" if unit.seal_image else "no seal image"
                kept = ", ".join(f"{u} ({c})" for u, c in keepers) or "no credential"
                typer.echo(f"{unit.name}\t{unit.display_name}\t{seal}\tkept by: {kept}")
    finally:
        db.dispose()
