"""``archive``: keep signed documents verifiable for years (:mod:`gateway.signing.archive`):
renew the documents whose last timestamp nears its end, and check them all."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from gateway.config import load_settings
from gateway.requests.document_store import DocumentStore
from gateway.signing.archive import Archive, ArchiveEntry
from signing_gateway.cli.common import DataDir, admin_db

app = typer.Typer(no_args_is_help=True, help="The archive of signed documents.")

AsJson = Annotated[bool, typer.Option("--json", help="one JSON object per document")]
RequestIds = Annotated[
    list[str] | None, typer.Argument(help="only these signed requests (default: all)")
]


@app.command("verify")
def archive_verify(
    request_ids: RequestIds = None, as_json: AsJson = False, data_dir: DataDir = Path("var")
) -> None:
    """Judge every archived document (offline, the trust anchors): the PAdES level of
    each signature, the last timestamp and when its TSA's certificate ends, and what
    needs attention. Exit 1 when something does."""
    settings = load_settings(data_dir)
    with admin_db(settings) as db:
        archive = Archive(settings, db, DocumentStore(settings.documents_dir))
        entries = _run(lambda: archive.verify(request_ids or []))
    _show(entries, as_json)
    if any(entry.attention for entry in entries):
        raise typer.Exit(1)


@app.command("renew")
def archive_renew(
    request_ids: RequestIds = None, as_json: AsJson = False, data_dir: DataDir = Path("var")
) -> None:
    """Add a document timestamp (and the validation data of the last one) to every
    archived document whose last timestamp's TSA certificate ends within
    ``archive_renew_before_days``, or whose digest is weak. Run it from a timer (monthly);
    it renews nothing that is not due."""
    settings = load_settings(data_dir)
    with admin_db(settings) as db:
        archive = Archive(settings, db, DocumentStore(settings.documents_dir))
        renewed = _run(lambda: archive.renew(request_ids or []))
    _show(renewed, as_json)
    if not as_json:
        typer.echo(f"{len(renewed)} document(s) renewed")


def _run(work: Callable[[], list[ArchiveEntry]]) -> list[ArchiveEntry]:
    """``work``, a ValueError (nothing to renew with, an unknown id) printed as words."""
    try:
        return work()
    except ValueError as exc:
        typer.echo(f"parameter_invalid: {exc}", err=True)
        raise typer.Exit(1) from exc


def _show(entries: list[ArchiveEntry], as_json: bool) -> None:
    for entry in entries:
        last = entry.last
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "request_id": entry.request_id,
                        "title": entry.title,
                        "levels": entry.levels,
                        "last_timestamp": last.time.isoformat() if last else None,
                        "tsa": last.authority if last else None,
                        "tsa_certificate_ends": (
                            last.authority_not_after.isoformat() if last else None
                        ),
                        "due": entry.due,
                        "attention": entry.attention,
                    },
                    ensure_ascii=False,
                )
            )
            continue
        levels = ", ".join(level or "none" for level in entry.levels) or "no signature"
        stamp = (
            f"last timestamp {last.time:%Y-%m-%d} by {last.authority}"
            f" (its certificate ends {last.authority_not_after:%Y-%m-%d})"
            if last
            else "no timestamp"
        )
        verdict = "; ".join(entry.attention) or "ok"
        typer.echo(f"{entry.request_id}  {entry.title or ''}  [{levels}]  {stamp}  {verdict}")
