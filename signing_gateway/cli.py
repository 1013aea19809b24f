"""The ``signing-gateway`` command line (Typer)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import httpx
import typer

from gateway.config import load_settings
from gateway.logs import configure_logging
from hsm_bridge import BridgeError

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

DataDir = Annotated[Path, typer.Option("--data-dir", help="installation folder")]


@app.command()
def init(
    data_dir: DataDir = Path("var"),
    demo: Annotated[bool, typer.Option(help="also create a demo PKI, tokens and users")] = False,
) -> None:
    """Create (or complete) an installation: settings, keys, SoftHSM2 config, database."""
    from gateway.installation import init_installation

    settings = load_settings(data_dir)
    result = init_installation(settings, demo=demo, now=dt.datetime.now(dt.UTC))
    typer.echo(f"installation ready in {settings.data_dir}")
    if result is not None:
        typer.echo(f"demo credentials: {result}")


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
    from signing_gateway.demo import default_demo_document, run_signing_flow, wait_until_up

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
        verdict = result.pyhanko_ok and (
            result.pdfsig is None or result.pdfsig[-1] == "Signature is Valid."
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
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()


@tokens_app.command("list")
def tokens_list(
    data_dir: DataDir = Path("var"),
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Tokens present in the PKCS#11 module, with flags and signature mechanisms."""
    from gateway.context import build_context

    context = build_context(load_settings(data_dir))
    tokens = context.bridge.inventory()
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(t) for t in tokens], indent=2))
        return
    typer.echo(f"{'LABEL':<16} {'SERIAL':<18} {'MANUFACTURER':<14} {'MODEL':<10} FLAGS")
    for t in tokens:
        typer.echo(
            f"{t.label:<16} {t.serial:<18} {t.manufacturer:<14} {t.model:<10} {','.join(t.flags)}"
        )


@credentials_app.command("list")
def credentials_list(
    data_dir: DataDir = Path("var"),
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Keys and certificates on every token whose PIN the bridge holds."""
    from gateway.context import build_context

    context = build_context(load_settings(data_dir))
    entries = []
    for token in context.bridge.inventory():
        try:
            entries.extend(context.bridge.credentials(token.serial))
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


@audit_app.command("verify")
def audit_verify(data_dir: DataDir = Path("var")) -> None:
    """Recompute the audit hash chain; exit 1 at the first broken entry."""
    from gateway.audit import verify_chain
    from gateway.db import Database

    settings = load_settings(data_dir)
    db = Database(settings.effective_database_url)
    with db.transaction() as session:
        report = verify_chain(session)
    if report.intact:
        typer.echo(f"audit chain intact: {report.entries} entries")
        return
    typer.echo(f"audit chain BROKEN at entry {report.first_broken_id}")
    raise typer.Exit(1)


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    os.umask(0o077)  # database, documents and keys are readable by the service user only
    app()


if __name__ == "__main__":
    main()
