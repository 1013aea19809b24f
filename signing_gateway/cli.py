"""The ``signing-gateway`` command line (Typer)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from gateway.config import Settings, load_settings
from gateway.logs import configure_logging
from hsm_bridge import BridgeClient, BridgeError

__all__ = ["main"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Remote signing gateway: PAdES signatures with keys on PKCS#11 tokens.",
)
tokens_app = typer.Typer(no_args_is_help=True, help="Tokens the bridge sees.")
audit_app = typer.Typer(no_args_is_help=True, help="The hash-chained audit log.")
credentials_app = typer.Typer(no_args_is_help=True, help="Keys and certificates on tokens.")
app.add_typer(tokens_app, name="tokens")
app.add_typer(credentials_app, name="credentials")
app.add_typer(audit_app, name="audit")
users_app = typer.Typer(no_args_is_help=True, help="Signers and administrators.")
app.add_typer(users_app, name="users")
devices_app = typer.Typer(no_args_is_help=True, help="Signers' phones and tablets.")
app.add_typer(devices_app, name="devices")
organisations_app = typer.Typer(
    no_args_is_help=True, help="Organisations: their seal and the clerk who keeps it."
)
app.add_typer(organisations_app, name="organisations")
bridge_app = typer.Typer(
    no_args_is_help=True, help="The bridge as a service on the secure host with the tokens."
)
app.add_typer(bridge_app, name="bridge")
bridge_devices_app = typer.Typer(
    no_args_is_help=True, help="On the bridge host: signers' devices in this bridge's records."
)
bridge_app.add_typer(bridge_devices_app, name="devices")

DataDir = Annotated[
    Path,
    typer.Option("--data-dir", envvar="GATEWAY_DATA_DIR", help="installation folder"),
]


@app.command()
def init(
    data_dir: DataDir = Path("var"),
    demo: Annotated[bool, typer.Option(help="also create a demo PKI, tokens and users")] = False,
) -> None:
    """Create (or complete) an installation: settings, keys, SoftHSM2 config, database."""
    from gateway.admin.installation import init_installation
    from signing_gateway.demo.installation import init_demo

    settings = load_settings(data_dir)
    if demo:
        credentials = init_demo(settings, now=dt.datetime.now(dt.UTC))
        typer.echo(f"installation ready in {settings.data_dir}")
        typer.echo(f"demo credentials: {credentials}")
        return
    init_installation(settings)
    typer.echo(f"installation ready in {settings.data_dir}")


@app.command()
def serve(
    data_dir: DataDir = Path("var"),
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """Run the gateway with uvicorn."""
    import uvicorn

    from signing_gateway.app import create_app

    settings = load_settings(data_dir)
    configure_logging(settings.log_level)
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None)


@app.command()
def demo(
    data_dir: DataDir = Path("var"),
    port: Annotated[int, typer.Option()] = 8000,
    document: Annotated[Path | None, typer.Option(help="PDF to sign")] = None,
    output: Annotated[Path | None, typer.Option(help="where to write the signed PDF")] = None,
    keep_running: Annotated[bool, typer.Option(help="keep the server up afterwards")] = True,
) -> None:
    """Create a demo installation, start the server, sign one real PDF through the HTTP
    APIs as a document system and a tablet would, validate it, keep serving."""
    from signing_gateway.demo.driver import default_demo_document, run_signing_flow, wait_until_up

    init(data_dir=data_dir, demo=True)
    settings = load_settings(data_dir)
    if document is not None:
        source, data = str(document), document.read_bytes()
    else:
        source, data = default_demo_document(Path(__file__).resolve().parents[1])
    base_url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "signing_gateway.cli",
            "serve",
            "--data-dir",
            str(settings.data_dir),
            "--port",
            str(port),
        ],
    )
    try:
        wait_until_up(base_url)
        typer.echo(f"server up at {base_url} (API docs: {base_url}/docs); signing {source}")
        target = output or settings.data_dir / "out" / "demo-signed.pdf"
        result = run_signing_flow(
            base_url,
            settings.data_dir / "demo-credentials.json",
            data,
            target,
            say=typer.echo,
        )
        typer.echo(f"5. signed PDF written to {result.signed_path.resolve()}")
        for line in result.pyhanko_summary:
            typer.echo(f"   pyHanko: {line}")
        typer.echo(f"   pdfsig: {result.pdfsig if result.pdfsig is not None else 'not installed'}")
        typer.echo(f"6. the signed page, rendered: {result.page_png.resolve()}")
        typer.echo(f"   {result.look}")
        verdict = (
            result.pyhanko_ok
            and result.look_ok
            and (
                result.pdfsig is None
                or (
                    len(result.pdfsig) >= 2
                    and all(v == "Signature is Valid." for v in result.pdfsig[-2:])
                )
            )
        )
        typer.echo("VERDICT: " + ("VALID" if verdict else "NOT VALID"))
        if not verdict:
            raise typer.Exit(1)
        if keep_running:
            typer.echo(f"the server keeps running at {base_url}; press Ctrl-C to stop it")
            server.wait()
    except KeyboardInterrupt:
        typer.echo("stopping")
    except httpx.HTTPStatusError as exc:
        typer.echo(
            f"the gateway refused a demo step: {exc.response.status_code} {exc.response.text}",
            err=True,
        )
        raise typer.Exit(1) from exc
    except RuntimeError as exc:
        typer.echo(f"the demo could not go on: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()


def _needed_serials(settings: Settings) -> set[str]:
    """Token serials the gateway's credentials refer to (empty without a database)."""
    from sqlalchemy import select

    from gateway.context import open_database
    from gateway.db.models import Credential

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
    from hsm_bridge.pkcs11.inventory import TokenEntry

    settings = load_settings(data_dir)
    bridge = _bridge(settings)
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
    from gateway.bridges import bridge_config
    from gateway.secrets_at_rest import InstallationKeys
    from hsm_bridge import Bridge
    from hsm_bridge.pkcs11.pins import PinStore

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
    from gateway.bridges import bridge_config
    from gateway.secrets_at_rest import InstallationKeys
    from hsm_bridge.pkcs11.pins import PinStore

    settings = load_settings(data_dir)
    config = bridge_config(settings, InstallationKeys.load(settings.secrets_dir))
    PinStore(config.pin_file, config.pin_key).remove(serial)
    _record_pin_policy(settings, serial, "signer", "token.pin_forgotten")
    typer.echo(f"no PIN is stored for token {serial} any more")


def _record_pin_policy(settings: Settings, serial: str, policy: str, action: str) -> None:
    """Audit a PIN change and give this installation's credentials on that token the
    matching PIN policy (none on a bridge-only host: set it on the gateway with
    ``credentials pin-policy``)."""
    from sqlalchemy import select

    from gateway.audit import log as audit
    from gateway.context import open_database
    from gateway.db.models import Credential

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


@credentials_app.command("list")
def credentials_list(
    data_dir: DataDir = Path("var"),
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Keys and certificates on every token whose PIN the bridge holds."""
    bridge = _bridge(load_settings(data_dir))
    entries = []
    for token in bridge.inventory():
        try:
            entries.extend(bridge.credentials(token.serial))
        except BridgeError as exc:
            typer.echo(f"token {token.label} ({token.serial}): {exc.code}", err=True)
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
    from gateway.audit import log as audit
    from gateway.context import open_database
    from gateway.db.models import Credential

    if policy not in ("stored", "signer"):
        typer.echo("policy must be stored or signer", err=True)
        raise typer.Exit(2)
    settings = load_settings(data_dir)
    db = open_database(settings)
    try:
        with db.transaction() as session:
            credential = session.get(Credential, credential_id)
            if credential is None:
                typer.echo(f"no credential {credential_id}", err=True)
                raise typer.Exit(1)
            credential.pin_policy = policy
            audit.record(
                session,
                actor="admin:cli",
                action="credential.pin_policy",
                now=dt.datetime.now(dt.UTC),
                detail={"credential": credential_id, "pin_policy": policy},
            )
    finally:
        db.dispose()
    typer.echo(f"credential {credential_id}: PIN policy {policy}")


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
    from gateway.admin.enrolment import add_user

    with _admin_db(load_settings(data_dir)) as db:
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
    from gateway.admin.signature_images import set_signature_image

    data = _read_or_exit(image)
    with _admin_db(load_settings(data_dir)) as db:
        digest = set_signature_image(db, username, data, now=dt.datetime.now(dt.UTC))
    typer.echo(f"signature image of {username} kept (SHA-256 {digest})")


@organisations_app.command("add")
def organisations_add(
    name: Annotated[str, typer.Argument(help="short name, e.g. stc-hanam")],
    display_name: Annotated[str, typer.Option(help='full name, e.g. "Sở Tài chính tỉnh Hà Nam"')],
    data_dir: DataDir = Path("var"),
) -> None:
    """Add an organisation (audited). Then: its seal image (`organisations seal`), its
    clerks (`users add --role clerk --organisation NAME`) and its key
    (`credentials register CLERK --organisation NAME`)."""
    from gateway.admin.organisations import add_organisation

    with _admin_db(load_settings(data_dir)) as db:
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
    from gateway.admin.organisations import set_seal

    data = _read_or_exit(image)
    with _admin_db(load_settings(data_dir)) as db:
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
    from gateway.admin.organisations import hand_over
    from mobile_api.push import PushNotifier
    from signing_gateway.app import push_provider

    settings = load_settings(data_dir)
    with _admin_db(settings) as db:
        done = hand_over(
            db,
            name,
            to,
            permission,
            now=dt.datetime.now(dt.UTC),
            registry=_local_registry(settings) if settings.in_process_bridge else None,
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
    from sqlalchemy import select

    from gateway.context import open_database
    from gateway.db.models import Credential, Organisation, User

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
    data_dir: DataDir = Path("var"),
) -> None:
    """Register a key found on a token (see `credentials list`) as the user's credential;
    the newest registered credential of a user is the one used for new requests. With
    --organisation it is the organisation's credential instead, which only USERNAME,
    one of its clerks, signs with."""
    from gateway.admin.enrolment import register_credential
    from gateway.context import open_database
    from gateway.errors import GatewayError
    from hsm_bridge.credentials import SignatureMechanism

    settings = load_settings(data_dir)
    ref = _credential_ref(token, key_id)
    if mechanism is not None and mechanism not in {m.value for m in SignatureMechanism}:
        choices = ", ".join(m.value for m in SignatureMechanism)
        typer.echo(f"parameter_invalid: --mechanism must be one of {choices}", err=True)
        raise typer.Exit(1)
    db = open_database(settings)
    try:
        credential = register_credential(
            db,
            _bridge(settings),
            username,
            token,
            ref.key_id,
            mechanism=SignatureMechanism(mechanism) if mechanism else None,
            pin_policy=pin_policy,
            chain_pem=_chain_pem(chain),
            now=dt.datetime.now(dt.UTC),
            registry=_local_registry(settings) if settings.in_process_bridge else None,
            organisation=organisation,
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
        from gateway.bridges import add_ca_certificates

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
    from sqlalchemy import select

    from gateway.audit import log as audit
    from gateway.context import open_database
    from gateway.db.models import Credential, SigningRequest, User
    from gateway.requests.lifecycle import RequestStatus, transition
    from hsm_bridge.credentials import CredentialRef

    settings = load_settings(data_dir)
    db = open_database(settings)
    now = dt.datetime.now(dt.UTC)
    try:
        with db.transaction() as session:
            credential = session.get(Credential, credential_id)
            if credential is None:
                typer.echo(f"no credential {credential_id}", err=True)
                raise typer.Exit(1)
            credential.revoked_at = credential.revoked_at or now
            pending = session.scalars(
                select(SigningRequest).where(
                    SigningRequest.credential_id == credential_id,
                    SigningRequest.status == RequestStatus.PENDING_APPROVAL,
                )
            ).all()
            for request in pending:
                transition(
                    session,
                    request,
                    RequestStatus.FAILED,
                    actor="admin:cli",
                    now=now,
                    failure_code="certificate_revoked",
                )
            same_key = session.scalar(
                select(Credential.id).where(
                    Credential.user_id == credential.user_id,
                    Credential.token_serial == credential.token_serial,
                    Credential.key_id == credential.key_id,
                    Credential.revoked_at.is_(None),
                    Credential.id != credential_id,
                )
            )
            if settings.in_process_bridge and same_key is None:
                owner = session.get(User, credential.user_id)
                _local_registry(settings).unbind_credential(
                    owner.username if owner else "",
                    CredentialRef(credential.token_serial, bytes.fromhex(credential.key_id)),
                )
            audit.record(
                session,
                actor="admin:cli",
                action="credential.revoked",
                now=now,
                detail={"credential": credential_id, "failed": [r.id for r in pending]},
            )
            failed = len(pending)
    finally:
        db.dispose()
    typer.echo(f"credential {credential_id} revoked; {failed} pending request(s) failed")


@devices_app.command("activation-code")
def devices_activation_code(
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
    from gateway.approvals import devices
    from gateway.context import open_database

    settings = load_settings(data_dir)
    if not settings.in_process_bridge:
        typer.echo(
            "the bridge is on a secure host: run `signing-gateway bridge enrolment-code "
            f"{username}` there",
            err=True,
        )
        raise typer.Exit(1)
    db = open_database(settings)
    now = dt.datetime.now(dt.UTC)
    try:
        with db.transaction() as session:
            user = _user_or_exit(session, username)
            issued = _local_registry(settings).issue_enrolment_code(
                username,
                now=now.timestamp(),
                ttl_seconds=settings.device_activation_code_ttl_seconds,
            )
            devices.record_activation_code(session, user, issued, actor="admin:cli", now=now)
    finally:
        db.dispose()
    _show_activation_code(devices.activation_code_of(issued, settings.public_url), png)


def _show_activation_code(code: Any, png: Path | None) -> None:
    import segno

    from gateway.approvals import devices

    if png is not None:
        png.write_bytes(devices.qr_png(code.uri))
    segno.make(code.uri, error="m").terminal(compact=True)
    typer.echo(f"activation code: {code.code}")
    typer.echo(f"valid until {code.expires_at.isoformat(timespec='seconds')}, once")


@devices_app.command("list")
def devices_list(
    username: Annotated[str, typer.Argument(help="whose devices")],
    data_dir: DataDir = Path("var"),
    as_json: Annotated[bool, typer.Option("--json", help="JSON for scripts")] = False,
) -> None:
    """A signer's devices as the bridge holds them (the bridge is the source of truth),
    revoked ones included, with the names the gateway knows them by."""

    from gateway.approvals import devices
    from gateway.context import open_database

    settings = load_settings(data_dir)
    db = open_database(settings)
    try:
        with db.transaction() as session:
            user = _user_or_exit(session, username)
        listings = devices.list_devices(db, _bridge(settings), user)
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
        typer.echo(f"{username} has no device")
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
    from gateway.approvals import devices
    from gateway.context import open_database

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
            db, _local_registry(settings), device_id, actor="admin:cli", now=dt.datetime.now(dt.UTC)
        )
    finally:
        db.dispose()
    if not known:
        typer.echo(f"no device {device_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"device {device_id} revoked")


@contextlib.contextmanager
def _admin_db(settings: Settings) -> Iterator[Any]:
    """The installation's database for one administration command; a refusal
    (GatewayError) is printed as ``code: detail`` and exits 1; the connections are
    released either way."""
    from gateway.context import open_database
    from gateway.errors import GatewayError

    db = open_database(settings)
    try:
        yield db
    except GatewayError as exc:
        typer.echo(f"{exc.code}: {exc.detail}", err=True)
        raise typer.Exit(1) from exc
    finally:
        db.dispose()


def _read_or_exit(path: Path) -> bytes:
    """The bytes of ``path``; a clear message and exit 1 when it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as exc:
        typer.echo(f"cannot read {path}: {exc.strerror}", err=True)
        raise typer.Exit(1) from exc


def _user_or_exit(session: Any, username: str) -> Any:
    """The user named ``username``; prints a message and exits 1 when there is none."""
    from sqlalchemy import select

    from gateway.db.models import User

    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        typer.echo(f"no user {username}", err=True)
        raise typer.Exit(1)
    return user


def _chain_pem(path: Path | None) -> str:
    """The PEM text of a CA chain file, checked to hold X.509 certificates.
    Raises ValueError with a readable message otherwise."""
    if path is None:
        return ""
    from cryptography import x509

    try:
        text = path.read_text("ascii")
        certificates = x509.load_pem_x509_certificates(text.encode())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"--chain {path}: not a readable PEM certificate file") from exc
    if not certificates:
        raise ValueError(f"--chain {path}: no certificate in it")
    return text


def _bridge(settings: Settings) -> BridgeClient:
    from gateway.bridges import build_bridge
    from gateway.secrets_at_rest import InstallationKeys

    return build_bridge(settings, InstallationKeys.load(settings.secrets_dir))


def _local_registry(settings: Settings) -> Any:
    from gateway.bridges import local_registry
    from gateway.secrets_at_rest import InstallationKeys

    return local_registry(settings, InstallationKeys.load(settings.secrets_dir))


def _bridge_admin_audit(settings: Settings, action: str, detail: dict[str, Any]) -> None:
    """An audit entry for an administrator's change to the bridge's signer records, in
    this host's installation (the gateway's log in the embedded default; the bridge
    host's own log on a secure host)."""
    from gateway.audit import log as audit
    from gateway.context import open_database

    db = open_database(settings)
    try:
        with db.transaction() as session:
            audit.record(
                session,
                actor="admin:cli",
                action=action,
                now=dt.datetime.now(dt.UTC),
                detail=detail,
            )
    finally:
        db.dispose()


def _user_exists(settings: Settings, username: str) -> bool | None:
    """Whether this installation's database has ``username``; None when it has no users
    at all (a secure host's bridge installation, whose signers live at the gateway)."""
    from sqlalchemy import select

    from gateway.context import open_database
    from gateway.db.models import User

    db = open_database(settings)
    try:
        with db.transaction() as session:
            if session.scalar(select(User.id).limit(1)) is None:
                return None
            return session.scalar(select(User.id).where(User.username == username)) is not None
    finally:
        db.dispose()


def _credential_ref(token: str, key_id: str) -> Any:
    from hsm_bridge.credentials import CredentialRef

    try:
        return CredentialRef(token, bytes.fromhex(key_id))
    except ValueError:
        typer.echo(f"--key-id {key_id!r} is not hex", err=True)
        raise typer.Exit(2) from None


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
    ref = _credential_ref(token, key_id)
    if _user_exists(settings, username) is False:
        typer.echo(f"no user {username} in this installation: nothing bound", err=True)
        raise typer.Exit(1)
    _local_registry(settings).bind_credential(username, ref)
    _bridge_admin_audit(
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
    ref = _credential_ref(token, key_id)
    found = _local_registry(settings).unbind_credential(username, ref)
    _bridge_admin_audit(
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
    from gateway.approvals import devices

    settings = load_settings(data_dir)
    issued = _local_registry(settings).issue_enrolment_code(
        username,
        now=dt.datetime.now(dt.UTC).timestamp(),
        ttl_seconds=settings.device_activation_code_ttl_seconds,
    )
    _bridge_admin_audit(
        settings,
        "device.activation_code_created",
        {"user": username, "code_id": issued.code_id, "by": "bridge"},
    )
    _show_activation_code(devices.activation_code_of(issued, settings.public_url), png)


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
    from sqlalchemy import update

    from gateway.approvals import devices
    from gateway.context import open_database
    from gateway.db.models import User

    settings = load_settings(data_dir)
    registry = _local_registry(settings)
    found = registry.reset_totp(username)
    issued = registry.issue_enrolment_code(
        username,
        now=dt.datetime.now(dt.UTC).timestamp(),
        ttl_seconds=settings.device_activation_code_ttl_seconds,
    )
    db = open_database(settings)
    try:
        with db.transaction() as session:  # this host's users (the embedded default)
            session.execute(
                update(User).where(User.username == username).values(totp_enrolled_at=None)
            )
    finally:
        db.dispose()
    _bridge_admin_audit(
        settings,
        "bridge.totp_reset",
        {"user": username, "had_one": found, "code_id": issued.code_id},
    )
    typer.echo(
        f"TOTP secret of {username} forgotten" if found else f"{username} had no TOTP secret"
    )
    typer.echo("the new authenticator is enrolled with this one-time code:")
    _show_activation_code(devices.activation_code_of(issued, settings.public_url), png)


@bridge_devices_app.command("list")
def bridge_devices_list(
    username: Annotated[str, typer.Argument(help="whose devices")],
    data_dir: DataDir = Path("var"),
) -> None:
    """On the bridge host: USERNAME's devices in this bridge's records, revoked ones
    included (id, state, who issued the code each was enrolled with)."""
    records = _local_registry(load_settings(data_dir)).devices(username)
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
    known = _local_registry(settings).revoke_device(
        device_id, now=dt.datetime.now(dt.UTC).timestamp()
    )
    _bridge_admin_audit(settings, "bridge.device_revoked", {"device": device_id, "known": known})
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
    from gateway.bridges import add_ca_certificates

    settings = load_settings(data_dir)
    added = add_ca_certificates(settings, _read_or_exit(chain).decode())
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
    from hsm_bridge.transport.link_tls import create_link_credentials

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
    from gateway.bridges import bridge_config
    from gateway.secrets_at_rest import InstallationKeys
    from hsm_bridge import Bridge
    from hsm_bridge.transport.link_tls import link_files
    from hsm_bridge.transport.service import serve as serve_bridge

    settings = load_settings(data_dir)
    configure_logging(settings.log_level)
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
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from gateway.audit.checkpoints import verify_checkpoints
    from gateway.audit.log import verify_chain
    from gateway.context import open_database
    from gateway.secrets_at_rest import CHECKPOINT_PUBLIC_KEY_FILE

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
    from gateway.audit.checkpoints import SESSION_INFO_KEY, write_checkpoint
    from gateway.context import open_database

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
    import json

    from sqlalchemy import select

    from gateway.context import open_database
    from gateway.db.models import AuditEntry

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


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    os.umask(0o077)  # database, documents and keys are readable by the service user only
    try:
        app()
    except FileNotFoundError as exc:
        typer.echo(
            f"no installation here ({exc.filename}): run `signing-gateway init "
            "--data-dir DIR` first, or pass --data-dir (or GATEWAY_DATA_DIR)",
            err=True,
        )
        raise SystemExit(1) from exc


if __name__ == "__main__":
    main()
