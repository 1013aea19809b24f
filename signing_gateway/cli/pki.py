"""``pki``: the demo installation's certification authority (certomancer): revoke a demo
user's certificate there, as a real CA would when staff leave or a token is lost."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import select

from gateway.audit import log as audit
from gateway.config import load_settings
from gateway.db.models import Credential, User
from signing_gateway.cli.common import DataDir, admin_db
from signing_gateway.demo.pki import CONFIG_FILE, DemoPki, certificate_serial

app = typer.Typer(no_args_is_help=True, help="The demo installation's certification authority.")

# RFC 5280 §5.3.1 reason names, as written in CRLs, and certomancer's for them.
REASONS = {
    "unspecified": "unspecified",
    "keyCompromise": "key_compromise",
    "cACompromise": "ca_compromise",
    "affiliationChanged": "affiliation_changed",
    "superseded": "superseded",
    "cessationOfOperation": "cessation_of_operation",
    "certificateHold": "certificate_hold",
    "privilegeWithdrawn": "privilege_withdrawn",
}


@app.command("revoke")
def pki_revoke(
    username: Annotated[str, typer.Argument(help="the demo user whose certificate is revoked")],
    reason: Annotated[
        str, typer.Option(help="RFC 5280 reason: " + ", ".join(REASONS))
    ] = "unspecified",
    data_dir: DataDir = Path("var"),
) -> None:
    """Revoke USERNAME's certificates at the demo CA: its OCSP responder answers
    "revoked" at once, the next CRL lists them, and the bridge refuses their next
    signature. Audited. Demo installations only (a real CA revokes at its own desk)."""
    settings = load_settings(data_dir)
    folder = settings.data_dir / "pki"
    if not (folder / CONFIG_FILE).exists():
        typer.echo("this installation has no demo PKI (init --demo makes one)", err=True)
        raise typer.Exit(1)
    if reason not in REASONS:
        typer.echo(f"the reason is one of: {', '.join(REASONS)}", err=True)
        raise typer.Exit(2)
    pki = DemoPki(folder)
    now = dt.datetime.now(dt.UTC)
    with admin_db(settings) as db, db.transaction() as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            typer.echo(f"no user {username}", err=True)
            raise typer.Exit(1)
        serials = sorted(
            {
                certificate_serial(c.certificate_der)
                for c in session.scalars(select(Credential).where(Credential.user_id == user.id))
            }
        )
        revoked = [serial for serial in serials if _revoke(pki, serial, REASONS[reason], now)]
        if not revoked:
            typer.echo(f"the demo CA issued no certificate of {username}", err=True)
            raise typer.Exit(1)
        audit.record(
            session,
            actor="admin:cli",
            action="certificate.revoked_at_ca",
            now=now,
            detail={"user": username, "serials": revoked, "reason": reason},
        )
    listed = ", ".join(str(s) for s in revoked)
    typer.echo(f"revoked at the demo CA ({reason}): certificate serial {listed} of {username}")


def _revoke(pki: DemoPki, serial: int, reason: str, now: dt.datetime) -> bool:
    try:
        pki.revoke(serial, reason, now)
    except KeyError:
        return False
    return True
