"""``users``: signers and administrators: adding, listing, disabling, enabling, a new
one-time password, role, organisation and name, their signature images."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer

from gateway.admin.enrolment import add_user
from gateway.admin.signature_images import set_signature_image
from gateway.admin.users import (
    disable_user,
    enable_user,
    list_users,
    reset_password,
    update_user,
)
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


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@users_app.command("list")
def users_list(
    data_dir: DataDir = Path("var"),
    as_json: Annotated[bool, typer.Option("--json", help="JSON for scripts")] = False,
) -> None:
    """Every account: role, organisation, whether disabled or waiting for its own
    password, and its live devices and credentials."""

    with admin_db(load_settings(data_dir)) as db:
        listed = list_users(db)
    if as_json:
        rows = [
            {
                **dataclasses.asdict(u),
                "disabled_at": u.disabled_at.isoformat() if u.disabled_at else None,
                "created_at": u.created_at.isoformat(),
            }
            for u in listed
        ]
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    typer.echo(f"{'USERNAME':<16} {'ROLE':<7} {'ORGANISATION':<14} {'STATE':<22} DEV CRED NAME")
    for u in listed:
        state = "disabled" if u.disabled else "active"
        if u.password_must_change:
            state += ", one-time password"
        typer.echo(
            f"{u.username:<16} {u.role:<7} {u.organisation or '-':<14} {state:<22}"
            f" {u.devices:>3} {u.credentials:>4} {u.display_name}"
        )


@users_app.command("disable")
def users_disable(
    username: Annotated[str, typer.Argument()],
    data_dir: DataDir = Path("var"),
) -> None:
    """Disable USERNAME: no sign-in, and their sessions end now. Audited."""

    with admin_db(load_settings(data_dir)) as db:
        done = disable_user(db, username, actor="admin:cli", now=_now())
    if not done.changed:
        typer.echo(f"user {username} was disabled already: nothing changed")
        return
    typer.echo(f"user {username} disabled; their sessions ended")


@users_app.command("enable")
def users_enable(
    username: Annotated[str, typer.Argument()],
    data_dir: DataDir = Path("var"),
) -> None:
    """Let a disabled USERNAME sign in again. Audited."""

    with admin_db(load_settings(data_dir)) as db:
        done = enable_user(db, username, actor="admin:cli", now=_now())
    if not done.changed:
        typer.echo(f"user {username} is not disabled: nothing changed")
        return
    typer.echo(f"user {username} enabled")


@users_app.command("reset-password")
def users_reset_password(
    username: Annotated[str, typer.Argument()],
    data_dir: DataDir = Path("var"),
) -> None:
    """Give USERNAME a new one-time password (shown once), to be replaced at the next
    sign-in; their sessions end now. Audited."""

    with admin_db(load_settings(data_dir)) as db:
        reset = reset_password(db, username, actor="admin:cli", now=_now())
    typer.echo(
        f"password of {username} reset; their sessions ended\n"
        f"one-time password (shown once; to be changed at the next sign-in): {reset.password}"
    )


@users_app.command("set")
def users_set(
    username: Annotated[str, typer.Argument()],
    display_name: Annotated[str | None, typer.Option(help="the full name")] = None,
    role: Annotated[str | None, typer.Option(help="leader, clerk or admin")] = None,
    organisation: Annotated[
        str | None, typer.Option(help="the organisation (short name); - for none")
    ] = None,
    data_dir: DataDir = Path("var"),
) -> None:
    """Change USERNAME's display name, role or organisation. Audited."""

    with admin_db(load_settings(data_dir)) as db:
        done = update_user(
            db,
            username,
            actor="admin:cli",
            now=_now(),
            display_name=display_name,
            role=role,
            organisation=None if organisation == "-" else organisation,
            set_organisation=organisation is not None,
        )
    if not done.changed:
        typer.echo(f"user {username}: nothing changed")
        return
    u = done.user
    typer.echo(
        f"user {username}: {u.display_name}, {u.role}, organisation {u.organisation or 'none'}"
    )
