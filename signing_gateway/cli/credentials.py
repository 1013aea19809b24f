"""``credentials``: keys and certificates on tokens, registered as a signer's or an
organisation's, revoked, their PIN policy."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer

from gateway.admin.enrolment import register_credential, revoke_credential
from gateway.admin.listings import list_credentials
from gateway.admin.tokens import keys_on_tokens, set_pin_policy
from gateway.bridges import add_ca_certificates
from gateway.config import load_settings
from gateway.context import open_database
from gateway.errors import GatewayError
from hsm_bridge import BridgeError
from hsm_bridge.credentials import SignatureMechanism
from signing_gateway.cli.common import (
    DataDir,
    admin_db,
    chain_pem,
    credential_ref,
    host_registry,
    open_bridge,
)

app = typer.Typer(no_args_is_help=True, help="Keys and certificates on tokens.")
credentials_app = app


@credentials_app.command("list")
def credentials_list(
    data_dir: DataDir = Path("var"),
    as_json: Annotated[bool, typer.Option("--json")] = False,
    tokens: Annotated[
        bool, typer.Option("--tokens", help="the keys on the tokens instead, registered or not")
    ] = False,
) -> None:
    """Registered credentials with who signs with each (the id `credentials revoke`
    takes); with --tokens, the keys and certificates on every token whose PIN the
    bridge holds."""
    if tokens:
        _token_keys(data_dir, as_json)
        return
    with admin_db(load_settings(data_dir)) as db:
        listed = list_credentials(db)
    if as_json:
        rows = [
            {
                **dataclasses.asdict(c),
                "not_after": c.not_after.isoformat(),
                "revoked_at": c.revoked_at.isoformat() if c.revoked_at else None,
                "created_at": c.created_at.isoformat(),
            }
            for c in listed
        ]
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not listed:
        typer.echo("no credential registered yet (see `credentials list --tokens`)")
    for c in listed:
        state = f"revoked {c.revoked_at.date()}" if c.revoked_at else "active"
        holder = f"{c.username} ({c.display_name})"
        seal = f", seal of {c.organisation}" if c.organisation else ""
        typer.echo(
            f"{c.id}  {state:<18} {holder}{seal}\n"
            f"    token {c.token_serial} key {c.key_id} {c.mechanism} PIN {c.pin_policy};"
            f" certificate {c.subject!r} until {c.not_after.date()}"
        )


def _token_keys(data_dir: Path, as_json: bool) -> None:
    """Print the keys and certificates on every token whose PIN the bridge holds."""
    bridge = open_bridge(load_settings(data_dir))
    tokens = bridge.inventory()
    entries, errors = keys_on_tokens(bridge, tokens)
    for token in tokens:
        if token.serial in errors:
            typer.echo(f"token {token.label} ({token.serial}): {errors[token.serial]}", err=True)
    if as_json:
        typer.echo(
            json.dumps([dataclasses.asdict(e) for e in entries], indent=2, ensure_ascii=False)
        )
        return
    typer.echo(f"{'TOKEN':<18} {'CKA_ID':<18} {'KEY':<9} {'STATUS':<14} SUBJECT")
    for e in entries:
        typer.echo(
            f"{e.token_serial:<18} {e.key_id:<18} {e.key_type + str(e.key_bits):<9} "
            f"{e.status:<14} {e.subject or '-'}"
        )


@credentials_app.command("pin-policy")
def credentials_pin_policy(
    credential_id: Annotated[str, typer.Argument(help="the gateway's credential id")],
    policy: Annotated[str, typer.Argument(help="stored or signer")],
    data_dir: DataDir = Path("var"),
) -> None:
    """Set whether the bridge keeps the credential's token PIN (``stored``) or the signer
    types it with each approval (``signer``). Audited."""

    with admin_db(load_settings(data_dir)) as db:
        changed = set_pin_policy(
            db, credential_id, policy, actor="admin:cli", now=dt.datetime.now(dt.UTC)
        )
    if not changed:
        typer.echo(f"credential {credential_id} already has PIN policy {policy}: nothing changed")
        return
    typer.echo(f"credential {credential_id}: PIN policy {policy}")


@credentials_app.command("register")
def credentials_register(
    username: Annotated[str, typer.Argument(help="the signer")],
    token: Annotated[str, typer.Option(help="token serial number")],
    key_id: Annotated[str, typer.Option(help="CKA_ID of the key, hex")],
    mechanism: Annotated[
        str | None, typer.Option(help="rsa_pkcs_sha256, rsa_pss_sha256 or ecdsa_sha256")
    ] = None,
    pin_policy: Annotated[str, typer.Option(help="stored or signer")] = "stored",
    chain: Annotated[Path | None, typer.Option(help="PEM file with the issuing CA chain")] = None,
    organisation: Annotated[
        str | None,
        typer.Option(help="the key is this organisation's seal, kept by USERNAME (a clerk)"),
    ] = None,
    confirm_holder: Annotated[
        str | None,
        typer.Option(
            help="the name the certificate gives, when it is not the user's (or the"
            " organisation's) display name: registers it anyway, audited"
        ),
    ] = None,
    data_dir: DataDir = Path("var"),
) -> None:
    """Register a key found on a token (see `credentials list --tokens`) as the user's credential;
    the newest registered credential of a user is the one used for new requests. With
    --organisation it is the organisation's credential instead, which only USERNAME,
    one of its clerks, signs with. The certificate must name the user (or the
    organisation); another name is refused unless confirmed with --confirm-holder."""

    settings = load_settings(data_dir)
    ref = credential_ref(token, key_id)
    if mechanism is not None and mechanism not in {m.value for m in SignatureMechanism}:
        choices = ", ".join(m.value for m in SignatureMechanism)
        typer.echo(f"parameter_invalid: --mechanism must be one of {choices}", err=True)
        raise typer.Exit(1)
    db = open_database(settings)
    try:
        credential = register_credential(
            db,
            open_bridge(settings),
            username,
            token,
            ref.key_id,
            mechanism=SignatureMechanism(mechanism) if mechanism else None,
            pin_policy=pin_policy,
            chain_pem=chain_pem(chain),
            now=dt.datetime.now(dt.UTC),
            registry=host_registry(settings) if settings.in_process_bridge else None,
            organisation=organisation,
            confirm_holder=confirm_holder,
        )
    except (GatewayError, BridgeError, ValueError) as exc:
        code = getattr(exc, "code", "parameter_invalid")
        detail = getattr(exc, "detail", None) or getattr(exc, "message", None) or str(exc)
        typer.echo(f"{code}: {detail}", err=True)
        raise typer.Exit(1) from exc
    finally:
        db.dispose()
    typer.echo(
        f"credential {credential.id} registered for {username} "
        f"(certificate SHA-256 {credential.certificate_sha256})"
    )
    if settings.in_process_bridge and credential.chain_pem:
        added = add_ca_certificates(settings, credential.chain_pem)
        typer.echo(f"{added} new CA certificate(s) for the bridge's chains")
    if not settings.in_process_bridge:
        typer.echo(
            f"on the bridge host, let the bridge sign for {username} with it:\n"
            f"  signing-gateway bridge bind {username} --token {token} --key-id {key_id}"
            + (f"\n  signing-gateway bridge add-ca {chain}" if chain is not None else "")
        )


@credentials_app.command("revoke")
def credentials_revoke(
    credential_id: Annotated[str, typer.Argument(help="the gateway's credential id")],
    data_dir: DataDir = Path("var"),
) -> None:
    """Stop using a credential at once (staff rotation, lost token, revoked certificate);
    its pending requests fail now with ``certificate_revoked`` (their document systems
    are called back; a workflow ends). Audited."""

    settings = load_settings(data_dir)
    registry = host_registry(settings) if settings.in_process_bridge else None
    with admin_db(settings) as db:
        done = revoke_credential(
            db, credential_id, actor="admin:cli", now=dt.datetime.now(dt.UTC), registry=registry
        )
    if done.already_revoked:
        when = done.revoked_at.isoformat(timespec="seconds") if done.revoked_at else "?"
        typer.echo(f"credential {credential_id} already revoked on {when}: nothing changed")
        return
    failed = len(done.failed)
    typer.echo(f"credential {credential_id} revoked; {failed} pending request(s) failed")
