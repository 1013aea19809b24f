"""``credentials generate`` and ``credentials import-certificate``: a signer's key made
inside a token with a PKCS#10 request for the CA, and the CA's certificate stored
beside it and registered with its chain. Any PKCS#11 token of the configured modules
(SoftHSM2 by default); PINs come from a file or a hidden prompt, never an argument."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from gateway.admin.keys import import_certificate, load_certificate, request_key
from gateway.bridges import add_ca_certificates, bridge_config
from gateway.config import Settings, load_settings
from gateway.context import open_database
from gateway.errors import GatewayError
from gateway.secrets_at_rest import InstallationKeys
from hsm_bridge import BridgeError
from hsm_bridge.pkcs11.keygen import REQUEST_SPECS
from hsm_bridge.pkcs11.pins import PinStore
from hsm_bridge.pkcs11.provisioning import KeySpec
from hsm_bridge.pkcs11.token_keys import TokenKeys
from signing_gateway.cli.common import DataDir, chain_pem, host_registry, open_bridge, read_or_exit

__all__ = ["app", "read_pin"]

app = typer.Typer()

ACTOR = "admin:cli"
PinFile = Annotated[
    Path | None,
    typer.Option(
        "--pin-file",
        help="file holding the token's user PIN (default: the PIN the bridge stores, else"
        " a hidden prompt)",
    ),
]


def read_pin(path: Path | None, what: str, *, confirm: bool = False) -> str:
    """A PIN from the first line of ``path``, or typed at a hidden prompt; exits 2 when
    it is empty."""
    if path is not None:
        lines = read_or_exit(path).decode("utf-8").splitlines()
        pin = lines[0] if lines else ""
    else:
        pin = typer.prompt(what, hide_input=True, confirmation_prompt=confirm)
    if not pin:
        typer.echo(f"the {what} is empty", err=True)
        raise typer.Exit(2)
    return pin


def _token_keys(settings: Settings) -> tuple[TokenKeys, PinStore]:
    """The key administration over this host's PKCS#11 modules, and its PIN store."""
    config = bridge_config(settings, InstallationKeys.load(settings.secrets_dir))
    store = PinStore(config.pin_file, config.pin_key)
    return TokenKeys([m.path for m in config.modules], store.get), store


def _pin_for(store: PinStore, serial: str, pin_file: Path | None) -> str | None:
    """The PIN to use once: from ``pin_file``, None when the bridge stores one, else
    prompted."""
    if pin_file is None and store.has(serial):
        return None
    return read_pin(pin_file, f"user PIN of token {serial}")


def _refused(exc: GatewayError | BridgeError | ValueError) -> typer.Exit:
    """Print a refusal as ``code: message``; the exit to raise."""
    if isinstance(exc, GatewayError):
        typer.echo(f"{exc.code}: {exc.detail}", err=True)
    elif isinstance(exc, BridgeError):
        typer.echo(f"{exc.code}: {exc.message}", err=True)
    else:
        typer.echo(f"parameter_invalid: {exc}", err=True)
    return typer.Exit(1)


@app.command("generate")
def credentials_generate(
    username: Annotated[str, typer.Argument(help="the signer the key is for")],
    token: Annotated[str, typer.Option(help="token serial number (see `tokens list`)")],
    out: Annotated[Path, typer.Option(help="where to write the PKCS#10 request (PEM)")],
    algorithm: Annotated[
        str, typer.Option(help=" or ".join(s.value for s in REQUEST_SPECS))
    ] = KeySpec.RSA_2048.value,
    subject: Annotated[
        str | None,
        typer.Option(help='e.g. "CN=Nguyễn Văn An,O=Sở Tài chính,C=VN" (default: the user\'s)'),
    ] = None,
    pin_file: PinFile = None,
    data_dir: DataDir = Path("var"),
) -> None:
    """Generate a key pair inside the token (never extractable) and write a
    certificate request for the CA, signed on the token. Audited."""
    if algorithm not in {s.value for s in REQUEST_SPECS}:
        typer.echo(f"--algorithm must be one of {', '.join(REQUEST_SPECS)}", err=True)
        raise typer.Exit(2)
    if out.exists():
        typer.echo(f"{out} exists: choose another --out", err=True)
        raise typer.Exit(2)
    settings = load_settings(data_dir)
    tokens, store = _token_keys(settings)
    pin = _pin_for(store, token, pin_file)
    db = open_database(settings)
    try:
        request = request_key(
            db,
            tokens,
            username,
            token,
            KeySpec(algorithm),
            subject=subject,
            actor=ACTOR,
            now=dt.datetime.now(dt.UTC),
            pin=pin,
        )
    except (GatewayError, BridgeError) as exc:
        raise _refused(exc) from exc
    finally:
        db.dispose()
    out.write_text(request.pem(), "ascii")
    typer.echo(f"key {request.key_id.hex()} ({algorithm}) generated on token {token}")
    typer.echo(f"certificate request written to {out}: send it to the CA, then run")
    typer.echo(
        f"  signing-gateway credentials import-certificate {username} --token {token}"
        " --certificate CERT.pem --chain CA-CHAIN.pem"
    )


@app.command("import-certificate")
def credentials_import_certificate(
    username: Annotated[str, typer.Argument(help="the signer")],
    token: Annotated[str, typer.Option(help="token serial number")],
    certificate: Annotated[Path, typer.Option(help="the CA's certificate, PEM or DER")],
    chain: Annotated[Path | None, typer.Option(help="PEM file with the issuing CA chain")] = None,
    confirm_holder: Annotated[
        str | None,
        typer.Option(help="the name the certificate gives, when it is not the user's"),
    ] = None,
    pin_file: PinFile = None,
    data_dir: DataDir = Path("var"),
) -> None:
    """Store the CA's certificate on the token beside the key it certifies (refused if
    no key there fits) and register it as the user's credential with its chain.
    Audited."""
    settings = load_settings(data_dir)
    tokens, store = _token_keys(settings)
    pin_policy = "stored" if store.has(token) else "signer"
    pin = _pin_for(store, token, pin_file)
    db = open_database(settings)
    try:
        chain_text = chain_pem(chain)
        done = import_certificate(
            db,
            tokens,
            open_bridge(settings),
            username,
            token,
            load_certificate(read_or_exit(certificate)),
            chain_pem=chain_text,
            actor=ACTOR,
            now=dt.datetime.now(dt.UTC),
            pin=pin,
            pin_policy=pin_policy,
            confirm_holder=confirm_holder,
            registry=host_registry(settings) if settings.in_process_bridge else None,
        )
    except (GatewayError, BridgeError, ValueError) as exc:
        raise _refused(exc) from exc
    finally:
        db.dispose()
    where = "stored on" if done.stored else "already on"
    typer.echo(f"certificate {where} token {token} beside key {done.key_id.hex()}")
    typer.echo(
        f"credential {done.credential.id} registered for {username} (PIN policy {pin_policy})"
    )
    if settings.in_process_bridge and chain_text:
        added = add_ca_certificates(settings, chain_text)
        typer.echo(f"{added} new CA certificate(s) for the bridge's chains")
