"""What the command groups share: the ``--data-dir`` option, the installation's database
and bridge for one command, refusals printed as ``code: detail``."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import segno
import typer
from cryptography import x509
from sqlalchemy import select

from gateway.approvals import devices
from gateway.audit import log as audit
from gateway.bridges import build_bridge, local_registry
from gateway.config import Settings
from gateway.context import open_database
from gateway.db.models import User
from gateway.errors import GatewayError
from gateway.secrets_at_rest import InstallationKeys
from hsm_bridge import BridgeClient
from hsm_bridge.credentials import CredentialRef

DataDir = Annotated[
    Path,
    typer.Option("--data-dir", envvar="GATEWAY_DATA_DIR", help="installation folder"),
]


def show_enrolment_code(code: Any, png: Path | None) -> None:

    if png is not None:
        png.write_bytes(devices.qr_png(code.uri))
    segno.make(code.uri, error="m").terminal(compact=True)
    typer.echo(f"enrolment code: {code.code}")
    typer.echo(f"valid until {code.expires_at.isoformat(timespec='seconds')}, once")


@contextlib.contextmanager
def admin_db(settings: Settings) -> Iterator[Any]:
    """The installation's database for one administration command; a refusal
    (GatewayError) is printed as ``code: detail`` and exits 1; the connections are
    released either way."""

    db = open_database(settings)
    try:
        yield db
    except GatewayError as exc:
        typer.echo(f"{exc.code}: {exc.detail}", err=True)
        raise typer.Exit(1) from exc
    finally:
        db.dispose()


def read_or_exit(path: Path) -> bytes:
    """The bytes of ``path``; a clear message and exit 1 when it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as exc:
        typer.echo(f"cannot read {path}: {exc.strerror}", err=True)
        raise typer.Exit(1) from exc


def user_or_exit(session: Any, username: str) -> Any:
    """The user named ``username``; prints a message and exits 1 when there is none."""

    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        typer.echo(f"no user {username}", err=True)
        raise typer.Exit(1)
    return user


def chain_pem(path: Path | None) -> str:
    """The PEM text of a CA chain file, checked to hold X.509 certificates.
    Raises ValueError with a readable message otherwise."""
    if path is None:
        return ""

    try:
        text = path.read_text("ascii")
        certificates = x509.load_pem_x509_certificates(text.encode())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"--chain {path}: not a readable PEM certificate file") from exc
    if not certificates:
        raise ValueError(f"--chain {path}: no certificate in it")
    return text


def open_bridge(settings: Settings) -> BridgeClient:

    return build_bridge(settings, InstallationKeys.load(settings.secrets_dir))


def host_registry(settings: Settings) -> Any:

    return local_registry(settings, InstallationKeys.load(settings.secrets_dir))


def bridge_admin_audit(settings: Settings, action: str, detail: dict[str, Any]) -> None:
    """An audit entry for an administrator's change to the bridge's signer records, in
    this host's installation (the gateway's log in the embedded default; the bridge
    host's own log on a secure host)."""

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


def user_exists(settings: Settings, username: str) -> bool | None:
    """Whether this installation's database has ``username``; None when it has no users
    at all (a secure host's bridge installation, whose signers live at the gateway)."""

    db = open_database(settings)
    try:
        with db.transaction() as session:
            if session.scalar(select(User.id).limit(1)) is None:
                return None
            return session.scalar(select(User.id).where(User.username == username)) is not None
    finally:
        db.dispose()


def credential_ref(token: str, key_id: str) -> Any:

    try:
        return CredentialRef(token, bytes.fromhex(key_id))
    except ValueError:
        typer.echo(f"--key-id {key_id!r} is not hex", err=True)
        raise typer.Exit(2) from None
