"""``users``: signers and administrators, their signature images."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from gateway.admin.enrolment import add_user
from gateway.admin.signature_images import set_signature_image
from gateway.config import load_settings
from signing_gateway.cli.common import (
    DataDir,
    admin_db,
    read_or_exit,
)

app = typer.Typer(no_args_is_help=True, help="Signers and administrators.")
users_app = app


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Argument()],
    display_name: Annotated[str, typer.Option(help="full name, as on the certificate")],
    role: Annotated[str, typer.Option(help="leader, clerk or admin")] = "leader",
    organisation: Annotated[
        str | None, typer.Option(help="the organisation (short name) the user works for")
    ] = None,
    data_dir: DataDir = Path("var"),
) -> None:
    """Add a user; prints its initial password, shown once (the user enrols TOTP on the tablet)."""

    with admin_db(load_settings(data_dir)) as db:
        user = add_user(
            db,
            username,
            display_name,
            role,
            now=dt.datetime.now(dt.UTC),
            organisation=organisation,
        )
    typer.echo(f"user {user.username} added; initial password (shown once): {user.password}")


@users_app.command("signature-image")
def users_signature_image(
    username: Annotated[str, typer.Argument(help="the signer")],
    image: Annotated[Path, typer.Argument(help="PNG with a transparent background")],
    data_dir: DataDir = Path("var"),
) -> None:
    """Keep IMAGE (the signer's handwritten signature, e.g. blue ink on a transparent
    background) to draw in USERNAME's visible signatures from now on. Audited."""

    data = read_or_exit(image)
    with admin_db(load_settings(data_dir)) as db:
        digest = set_signature_image(db, username, data, now=dt.datetime.now(dt.UTC))
    typer.echo(f"signature image of {username} kept (SHA-256 {digest})")
