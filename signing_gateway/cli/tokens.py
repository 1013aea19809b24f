"""``tokens``: the tokens the bridge sees and their stored PINs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import select

from gateway.audit import log as audit
from gateway.bridges import bridge_config
from gateway.config import Settings, load_settings
from gateway.context import open_database
from gateway.db.models import Credential
from gateway.secrets_at_rest import InstallationKeys
from hsm_bridge import Bridge, BridgeError
from hsm_bridge.pkcs11.inventory import TokenEntry
from hsm_bridge.pkcs11.pins import PinStore
from hsm_bridge.pkcs11.softhsm import find_softhsm_module, init_token, token_labels
from signing_gateway.cli.common import (
    DataDir,
    open_bridge,
)
from signing_gateway.cli.keys import read_pin

app = typer.Typer(no_args_is_help=True, help="Tokens the bridge sees.")
tokens_app = app


def _needed_serials(settings: Settings) -> set[str]:
    """Token serials the gateway's credentials refer to (empty without a database)."""

    db = open_database(settings)
    try:
        with db.transaction() as session:
            return set(session.scalars(select(Credential.token_serial)))
    except Exception:  # noqa: BLE001 - a bridge-only host has no gateway database
        return set()
    finally:
        db.dispose()


@tokens_app.command("list")
def tokens_list(
    data_dir: DataDir = Path("var"),
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Tokens of every PKCS#11 module (and remote bridge): flags, mechanisms, state.
    Tokens that credentials need but that are not plugged in are listed as removed."""

    settings = load_settings(data_dir)
    bridge = open_bridge(settings)
    tokens = bridge.inventory()
    states = {h.serial: h.state for h in bridge.health()}
    present = {t.serial for t in tokens}
    for serial in sorted(_needed_serials(settings) - present):
        tokens.append(TokenEntry("?", serial, "?", "?", [], [], "", present=False))
        states[serial] = "removed"
    rows = [{**dataclasses.asdict(t), "state": states.get(t.serial, "ok")} for t in tokens]
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    typer.echo(
        f"{'LABEL':<16} {'SERIAL':<18} {'MANUFACTURER':<18} {'MODEL':<12} {'STATE':<10} "
        "FLAGS / MECHANISMS"
    )
    for r in rows:
        typer.echo(
            f"{r['label']:<16} {r['serial']:<18} {r['manufacturer']:<18} {r['model']:<12} "
            f"{r['state']:<10} {','.join(r['flags'])} / {','.join(r['mechanisms'])}"
        )


@tokens_app.command("set-pin")
def tokens_set_pin(
    serial: Annotated[str, typer.Argument(help="token serial number")],
    data_dir: DataDir = Path("var"),
) -> None:
    """Store a token's user PIN, encrypted (PIN policy ``stored``), and check it with one
    login. The PIN is read from the terminal without echo."""

    settings = load_settings(data_dir)
    keys = InstallationKeys.load(settings.secrets_dir)
    config = bridge_config(settings, keys)
    pin = typer.prompt("user PIN", hide_input=True, confirmation_prompt=True)
    store = PinStore(config.pin_file, config.pin_key)
    previous = store.get(serial) if store.has(serial) else None
    store.put(serial, pin)
    try:
        count = len(Bridge(config).credentials(serial))
    except BridgeError as exc:
        if previous is None:
            store.remove(serial)
        else:
            store.put(serial, previous)
        kept = "the previous PIN is kept" if previous is not None else "no PIN is stored"
        typer.echo(f"token {serial}: {exc.code}: {exc.message}; {kept}", err=True)
        raise typer.Exit(1) from exc
    _record_pin_policy(settings, serial, "stored", "token.pin_stored")
    typer.echo(f"PIN stored for token {serial} ({count} keys visible)")
    typer.echo("a running `bridge serve` or `serve` uses it from its next login")


@tokens_app.command("forget-pin")
def tokens_forget_pin(
    serial: Annotated[str, typer.Argument(help="token serial number")],
    data_dir: DataDir = Path("var"),
) -> None:
    """Forget a token's stored PIN (PIN policy ``signer``: the signer types it with each
    approval)."""

    settings = load_settings(data_dir)
    config = bridge_config(settings, InstallationKeys.load(settings.secrets_dir))
    PinStore(config.pin_file, config.pin_key).remove(serial)
    _record_pin_policy(settings, serial, "signer", "token.pin_forgotten")
    typer.echo(f"no PIN is stored for token {serial} any more")


def _record_pin_policy(settings: Settings, serial: str, policy: str, action: str) -> None:
    """Audit a PIN change and give this installation's credentials on that token the
    matching PIN policy (none on a bridge-only host: set it on the gateway with
    ``credentials pin-policy``)."""

    db = open_database(settings)
    try:
        with db.transaction() as session:
            changed = []
            for credential in session.scalars(
                select(Credential).where(Credential.token_serial == serial)
            ):
                credential.pin_policy = policy
                changed.append(credential.id)
            audit.record(
                session,
                actor="admin:cli",
                action=action,
                now=dt.datetime.now(dt.UTC),
                detail={"token_serial": serial, "credentials": changed, "pin_policy": policy},
            )
        if changed:
            typer.echo(f"PIN policy {policy} for credentials {', '.join(changed)}")
    finally:
        db.dispose()


@tokens_app.command("init")
def tokens_init(
    label: Annotated[str, typer.Option(help="the new token's label (e.g. the holder)")],
    so_pin_file: Annotated[
        Path | None, typer.Option(help="file holding the security officer's PIN")
    ] = None,
    pin_file: Annotated[Path | None, typer.Option(help="file holding the user PIN")] = None,
    store_pin: Annotated[
        bool,
        typer.Option(
            help="let the bridge keep the user PIN (PIN policy stored); else the"
            " signer types it with each approval"
        ),
    ] = True,
    data_dir: DataDir = Path("var"),
) -> None:
    """Initialise a new SoftHSM2 token of the embedded default and print its serial.
    PINs are read from files or typed at a hidden prompt (4 to 255 characters).
    Hardware tokens are initialised with their vendor's tool. Audited."""
    settings = load_settings(data_dir)
    keys = InstallationKeys.load(settings.secrets_dir)
    config = bridge_config(settings, keys)
    softhsm = find_softhsm_module()
    if softhsm is None or softhsm not in {m.path for m in config.modules}:
        typer.echo(
            "tokens init makes SoftHSM2 tokens, and this installation's modules are not"
            " SoftHSM2: initialise a hardware token with its vendor's tool",
            err=True,
        )
        raise typer.Exit(1)
    conf = settings.effective_softhsm2_conf
    if not label or len(label) > 32 or label in token_labels(conf):
        reason = "exists already" if label in token_labels(conf) else "must be 1 to 32 characters"
        typer.echo(f"token_label_taken: the label {label!r} {reason}", err=True)
        raise typer.Exit(1)
    so_pin = read_pin(so_pin_file, "security officer (SO) PIN", confirm=True)
    pin = read_pin(pin_file, "user PIN", confirm=True)
    if not all(4 <= len(p) <= 255 for p in (so_pin, pin)):
        typer.echo("a PIN has 4 to 255 characters", err=True)
        raise typer.Exit(2)
    try:
        serial = init_token(conf, label, so_pin, pin)
    except RuntimeError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    if store_pin:
        PinStore(config.pin_file, config.pin_key).put(serial, pin)
    _audit_token_init(settings, label, serial, store_pin)
    typer.echo(f"token {label!r} initialised: serial {serial}")
    typer.echo("a running `serve` sees the new token after a restart (SoftHSM2)")


def _audit_token_init(settings: Settings, label: str, serial: str, stored: bool) -> None:
    db = open_database(settings)
    try:
        with db.transaction() as session:
            audit.record(
                session,
                actor="admin:cli",
                action="token.initialised",
                now=dt.datetime.now(dt.UTC),
                detail={"label": label, "token_serial": serial, "pin_stored": stored},
            )
    finally:
        db.dispose()
