"""``bridge``: the bridge as a service on the secure host with the tokens, and its
administration there."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import update

from gateway.approvals import devices
from gateway.bridges import add_ca_certificates, bridge_config
from gateway.config import load_settings
from gateway.context import open_database
from gateway.db.models import User
from gateway.logs import configure_logging
from gateway.secrets_at_rest import InstallationKeys
from hsm_bridge import Bridge
from hsm_bridge.clock import utcnow
from hsm_bridge.transport.link_tls import create_link_credentials, link_files
from hsm_bridge.transport.service import serve as serve_bridge
from signing_gateway.cli.common import (
    DataDir,
    bridge_admin_audit,
    credential_ref,
    host_registry,
    read_or_exit,
    show_enrolment_code,
    user_exists,
)

app = typer.Typer(
    no_args_is_help=True, help="The bridge as a service on the secure host with the tokens."
)
bridge_app = app
bridge_devices_app = typer.Typer(
    no_args_is_help=True, help="On the bridge host: signers' devices in this bridge's records."
)
app.add_typer(bridge_devices_app, name="devices")


@bridge_app.command("bind")
def bridge_bind(
    username: Annotated[str, typer.Argument(help="the signer")],
    token: Annotated[str, typer.Option(help="token serial number")],
    key_id: Annotated[str, typer.Option(help="CKA_ID of the key, hex")],
    data_dir: DataDir = Path("var"),
) -> None:
    """On the bridge host: let USERNAME's approvals activate the key KEY_ID of TOKEN
    (the bridge refuses every other signer's approval for it). Audited."""
    settings = load_settings(data_dir)
    ref = credential_ref(token, key_id)
    if user_exists(settings, username) is False:
        typer.echo(f"no user {username} in this installation: nothing bound", err=True)
        raise typer.Exit(1)
    host_registry(settings).bind_credential(username, ref)
    bridge_admin_audit(
        settings, "bridge.credential_bound", {"user": username, "credential": str(ref)}
    )
    typer.echo(f"{username} may sign with {ref} on this bridge")


@bridge_app.command("unbind")
def bridge_unbind(
    username: Annotated[str, typer.Argument(help="the signer")],
    token: Annotated[str, typer.Option(help="token serial number")],
    key_id: Annotated[str, typer.Option(help="CKA_ID of the key, hex")],
    data_dir: DataDir = Path("var"),
) -> None:
    """On the bridge host: stop USERNAME from signing with that key. Audited."""
    settings = load_settings(data_dir)
    ref = credential_ref(token, key_id)
    found = host_registry(settings).unbind_credential(username, ref)
    bridge_admin_audit(
        settings,
        "bridge.credential_unbound",
        {"user": username, "credential": str(ref), "was_bound": found},
    )
    typer.echo(
        f"{username} may no longer sign with {ref}"
        if found
        else f"{username} was not bound to {ref}"
    )


@bridge_app.command("enrolment-code")
def bridge_enrolment_code(
    username: Annotated[str, typer.Argument(help="the signer whose device enrols")],
    data_dir: DataDir = Path("var"),
    png: Annotated[
        Path | None, typer.Option(help="also write the QR code to this PNG file")
    ] = None,
) -> None:
    """On the bridge host: a one-time device enrolment code for USERNAME (the bridge
    will know the device's key; hand the QR code to the signer). Audited."""

    settings = load_settings(data_dir)
    issued = host_registry(settings).issue_enrolment_code(
        username,
        now=utcnow(),
        ttl_seconds=settings.enrolment_code_ttl_seconds,
    )
    bridge_admin_audit(
        settings,
        "enrolment_code.created",
        {"user": username, "code_id": issued.code_id, "by": "bridge"},
    )
    show_enrolment_code(devices.enrolment_code_view(issued, settings.public_url), png)


@bridge_app.command("totp-reset")
def bridge_totp_reset(
    username: Annotated[str, typer.Argument(help="the signer who lost the authenticator")],
    data_dir: DataDir = Path("var"),
    png: Annotated[
        Path | None, typer.Option(help="also write the enrolment code's QR code to this PNG")
    ] = None,
) -> None:
    """On the bridge host: forget USERNAME's TOTP secret and issue a one-time enrolment
    code with which the signer enrols a new authenticator (hand it to them). Audited."""

    settings = load_settings(data_dir)
    registry = host_registry(settings)
    found = registry.reset_totp(username)
    issued = registry.issue_enrolment_code(
        username,
        now=utcnow(),
        ttl_seconds=settings.enrolment_code_ttl_seconds,
    )
    db = open_database(settings)
    try:
        with db.transaction() as session:  # this host's users (the embedded default)
            session.execute(
                update(User).where(User.username == username).values(totp_enrolled_at=None)
            )
    finally:
        db.dispose()
    bridge_admin_audit(
        settings,
        "bridge.totp_reset",
        {"user": username, "had_one": found, "code_id": issued.code_id},
    )
    typer.echo(
        f"TOTP secret of {username} forgotten" if found else f"{username} had no TOTP secret"
    )
    typer.echo("the new authenticator is enrolled with this one-time code:")
    show_enrolment_code(devices.enrolment_code_view(issued, settings.public_url), png)


@bridge_devices_app.command("list")
def bridge_devices_list(
    username: Annotated[str, typer.Argument(help="whose devices")],
    data_dir: DataDir = Path("var"),
) -> None:
    """On the bridge host: USERNAME's devices in this bridge's records, revoked ones
    included (id, state, who issued the code each was enrolled with)."""
    records = host_registry(load_settings(data_dir)).devices(username)
    if not records:
        typer.echo(f"{username} has no device at this bridge")
    for record in records:
        state = "revoked" if record.revoked_at is not None else "active"
        enrolled = dt.datetime.fromtimestamp(record.created_at, dt.UTC).isoformat(
            timespec="seconds"
        )
        typer.echo(
            f"{record.device_id}  {state:<8} {record.kind:<10} {record.enrolled_with:<14}"
            f" {enrolled}"
        )


@bridge_devices_app.command("revoke")
def bridge_devices_revoke(
    device_id: Annotated[str, typer.Argument(help="the device id (bridge devices list)")],
    data_dir: DataDir = Path("var"),
) -> None:
    """On the bridge host: revoke a device at once in this bridge's records (a lost
    tablet); the gateway's copy follows when it next lists the signer's devices.
    Audited."""
    settings = load_settings(data_dir)
    known = host_registry(settings).revoke_device(device_id, now=utcnow())
    bridge_admin_audit(settings, "bridge.device_revoked", {"device": device_id, "known": known})
    if not known:
        typer.echo(f"no device {device_id} at this bridge", err=True)
        raise typer.Exit(1)
    typer.echo(f"device {device_id} revoked at this bridge")


@bridge_app.command("add-ca")
def bridge_add_ca(
    chain: Annotated[Path, typer.Argument(help="PEM file of CA certificates")],
    data_dir: DataDir = Path("var"),
) -> None:
    """On the bridge host: add CA certificates (issuing and root CAs) that the bridge
    embeds in signatures when a token does not hold its certificate's chain."""

    settings = load_settings(data_dir)
    added = add_ca_certificates(settings, read_or_exit(chain).decode())
    typer.echo(f"{added} new CA certificate(s) for this bridge's chains")


@bridge_app.command("init-tls")
def bridge_init_tls(
    host: Annotated[
        list[str], typer.Option("--host", help="name or IP the gateway uses to reach the bridge")
    ],
    data_dir: DataDir = Path("var"),
) -> None:
    """Create the mutual-TLS files of one gateway-bridge link in <data-dir>/bridge-tls:
    a private CA whose key is thrown away, the bridge's server certificate and the
    gateway's client certificate."""

    settings = load_settings(data_dir)
    files = create_link_credentials(settings.bridge_tls_dir, host, now=dt.datetime.now(dt.UTC))
    typer.echo(f"link files in {settings.bridge_tls_dir}")
    typer.echo(
        f"  keep on the bridge host: {files.bridge_certificate.name}, "
        f"{files.bridge_key.name}, {files.ca.name}"
    )
    typer.echo(
        f"  copy to the gateway:     {files.gateway_certificate.name}, "
        f"{files.gateway_key.name}, {files.ca.name}"
    )


@bridge_app.command("serve")
def bridge_serve(
    data_dir: DataDir = Path("var"),
    host: Annotated[str | None, typer.Option(help="default: bridge_listen_host")] = None,
    port: Annotated[int | None, typer.Option(help="default: bridge_listen_port")] = None,
) -> None:
    """Serve this host's tokens to the gateway over HTTPS with mutual TLS."""

    settings = load_settings(data_dir)
    configure_logging(settings.log_level, settings.log_format)
    files = link_files(settings.bridge_tls_dir)
    if not files.bridge_key.exists():
        typer.echo("no TLS files: run `signing-gateway bridge init-tls` first", err=True)
        raise typer.Exit(1)
    keys = InstallationKeys.load(settings.secrets_dir)
    bridge = Bridge(bridge_config(settings, keys, serving=True))
    typer.echo(f"bridge profile: {bridge.profile}")
    serve_bridge(
        bridge,
        host=host or settings.bridge_listen_host,
        port=port or settings.bridge_listen_port,
        certificate=files.bridge_certificate,
        key=files.bridge_key,
        client_ca=files.ca,
    )
