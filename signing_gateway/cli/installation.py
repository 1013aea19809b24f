"""Creating, serving and demonstrating an installation: ``init``, ``serve``, ``demo``."""

from __future__ import annotations

import datetime as dt
import json
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import httpx
import typer
import uvicorn

from gateway.admin.installation import init_installation
from gateway.admin.operators import issue_operator_token
from gateway.config import Settings, load_settings
from gateway.logs import configure_logging
from gateway.observability import TracingUnavailable
from signing_gateway.app import create_app
from signing_gateway.cli.common import (
    DataDir,
)
from signing_gateway.cli.devices import issue_enrolment_code
from signing_gateway.demo.driver import (
    DemoResult,
    TabletOptions,
    default_demo_document,
    run_signing_flow,
    wait_until_up,
)
from signing_gateway.demo.installation import init_demo
from signing_gateway.demo.pki import CONFIG_FILE as PKI_CONFIG_FILE
from signing_gateway.demo.pki import DemoPki
from signing_gateway.demo.pki_service import start_pki_service
from signing_gateway.demo.tablet import chromium_path

app = typer.Typer()


@app.command()
def init(
    data_dir: DataDir = Path("var"),
    demo: Annotated[bool, typer.Option(help="also create a demo PKI, tokens and users")] = False,
) -> None:
    """Create (or complete) an installation: settings, keys, SoftHSM2 config, database."""

    settings = load_settings(data_dir)
    if demo:
        credentials = init_demo(settings, now=dt.datetime.now(dt.UTC))
        typer.echo(f"installation ready in {settings.data_dir}")
        typer.echo(f"demo credentials: {credentials}")
        return
    init_installation(settings)
    typer.echo(f"installation ready in {settings.data_dir}")
    typer.echo(
        "next: put your CA's root certificates (PEM) in"
        f" {settings.effective_trust_anchors_file}, make a token (`tokens init`), a key and"
        " its request for the CA (`credentials generate`), then a user and a document"
        " system: docs/first-installation.md"
    )


@app.command()
def serve(
    data_dir: DataDir = Path("var"),
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """Run the gateway with uvicorn."""

    settings = load_settings(data_dir)
    configure_logging(settings.log_level, settings.log_format)
    try:
        app = create_app(settings)
    except TracingUnavailable as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    _serve_demo_pki(settings)
    uvicorn.run(app, host=host, port=port, log_config=None)


def _serve_demo_pki(settings: Settings) -> None:
    """A demo installation's PKI services (OCSP, CRL, TSA), in this process."""
    folder = settings.data_dir.resolve() / "pki"
    if not settings.demo_pki_serve or not (folder / PKI_CONFIG_FILE).exists():
        return
    pki = DemoPki(folder)
    try:
        start_pki_service(pki)
    except OSError as exc:
        typer.echo(
            f"the demo PKI's services could not start at {pki.service_url} ({exc.strerror}):"
            " until they answer, the bridge refuses signatures (revocation_unavailable)",
            err=True,
        )


@app.command("operator-token")
def operator_token(data_dir: DataDir = Path("var")) -> None:
    """Issue the operator's token for /operator/health and /metrics (shown once; the
    previous one stops working). Give it to the monitoring system, e.g. Prometheus'
    ``authorization: {credentials_file: ...}``."""
    settings = load_settings(data_dir)
    if not settings.secrets_dir.is_dir():
        typer.echo("no installation here: run signing-gateway init first", err=True)
        raise typer.Exit(1)
    typer.echo(issue_operator_token(settings.secrets_dir))


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

    _check_port_free(port)
    init(data_dir=data_dir, demo=True)
    settings = load_settings(data_dir)
    _check_pki_port_free(settings)
    if document is not None:
        source, data = str(document), document.read_bytes()
    else:
        source, data = default_demo_document(Path(__file__).resolve().parents[1])
    base_url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "signing_gateway.cli", "serve"]
        + ["--data-dir", str(settings.data_dir), "--port", str(port)],
    )
    try:
        wait_until_up(base_url)
        typer.echo(f"server up at {base_url} (API docs: {base_url}/docs); signing {source}")
        target = output or settings.data_dir / "out" / "demo-signed.pdf"
        app_url = f"http://localhost:{port}"
        result = run_signing_flow(
            base_url,
            settings.data_dir / "demo-credentials.json",
            data,
            target,
            say=typer.echo,
            tablet=_tablet_options(settings, app_url),
        )
        if not _report(result):
            raise typer.Exit(1)
        _how_to_sign_in(settings, app_url)
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


def _tablet_options(settings: Settings, app_url: str) -> TabletOptions | None:
    """Drive the tablet app in headless Chromium when it is installed; else say so (the
    demo then approves over the tablet's HTTP API)."""
    if chromium_path() is None:
        typer.echo(
            "Chromium is not installed (apt-get install chromium): the demo approves over"
            " the tablet's HTTP API instead of in the app"
        )
        return None
    return TabletOptions(
        app_url=app_url,
        enrolment_code=lambda username: (
            issue_enrolment_code(settings, username, actor="admin:demo").text
        ),
    )


def _how_to_sign_in(settings: Settings, app_url: str) -> None:
    """Where the tablet app is and how to sign in to it as the demo leader."""
    creds = json.loads((settings.data_dir / "demo-credentials.json").read_text("utf-8"))
    leader = next(s for s in creds["signers"] if s["role"] == "leader")
    typer.echo(
        f"\nThe tablet app: {app_url}/app/ (open it in Chromium or Chrome; a passkey needs"
        " this localhost address or HTTPS)\n"
        f"  sign in as the leader: {leader['username']} / {leader['password']}\n"
        "  to enrol a passkey, type the current TOTP code of the leader's totp_secret, or a"
        " one-time code from:\n"
        f"  .venv/bin/signing-gateway devices enrolment-code {leader['username']}"
        f" --data-dir {settings.data_dir}\n"
        f"  other demo users, passwords and TOTP secrets: {settings.data_dir}/demo-credentials.json"
    )


def _check_port_free(port: int) -> None:
    """Exit with a clear message when something already listens on ``port``."""
    if not _port_free(port):
        typer.echo(
            f"port {port} is already in use (another demo still running?): stop it, or"
            f" choose another port: make demo PORT={port + 1}",
            err=True,
        )
        raise typer.Exit(1)


def _check_pki_port_free(settings: Settings) -> None:
    """Exit with a clear message when the demo PKI's port is taken (its certificates
    name that port, so it cannot move)."""
    folder = settings.data_dir.resolve() / "pki"
    port = urlsplit(DemoPki(folder).service_url).port or 80
    if not _port_free(port):
        typer.echo(
            f"the demo PKI's port {port} is already in use (another demo still running?):"
            " stop it first; this installation's certificates name that port",
            err=True,
        )
        raise typer.Exit(1)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _report(result: DemoResult) -> bool:
    """Print what the demo produced and how the validators judged it; the verdict."""
    typer.echo(f"5. signed PDF written to {result.signed_path.resolve()}")
    for line in result.pyhanko_summary:
        typer.echo(f"   pyHanko: {line}")
    typer.echo(f"   pdfsig: {result.pdfsig if result.pdfsig is not None else 'not installed'}")
    levels = ", ".join(
        f"{name} {level or 'none'} (LTA validation {indication})"
        for name, level, indication in result.levels
    )
    typer.echo(f"   PAdES (offline, only the demo root trusted): {levels}")
    typer.echo(f"6. the signed page, rendered: {result.page_png.resolve()}")
    typer.echo(f"   {result.look}")
    pdfsig_ok = result.pdfsig is None or (
        len(result.pdfsig) >= 2 and all(v == "Signature is Valid." for v in result.pdfsig[-2:])
    )
    verdict = result.pyhanko_ok and result.look_ok and pdfsig_ok and result.long_term_ok
    typer.echo("VERDICT: " + ("VALID" if verdict else "NOT VALID"))
    return verdict
