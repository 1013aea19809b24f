"""The jobs a document worker runs (:mod:`gateway.requests.sandbox`), and the worker's
loop. Each job is a plain function of picklable values; a job that fails answers with a
:class:`~gateway.errors.GatewayError` (its own, or the job's refusal for anything
unexpected: a document the parser or renderer chokes on is the document's fault, said
in words a clerk can pass on).

Workers hold no key and no secret: they get a document and the values to draw or build
with, and nothing else.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import logging
import resource
import signal
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from gateway.errors import (
    DocumentTooComplex,
    DocumentUnreadable,
    DocumentUnsignable,
    GatewayError,
    SignerBlockNotFound,
)
from gateway.requests.intake import DocumentReport, inspect_pdf
from gateway.requests.placement import TextLine, text_lines
from gateway.requests.preview import SignatureStep
from gateway.requests.rendering import render_page_png
from gateway.signing.levels import newest_signature_level
from gateway.signing.reports import ValidationReport, validation_report
from hsm_bridge.pades import (
    PadesLevel,
    SignatureParameters,
    SignerIdentity,
    build_signed_pdf,
    placeholder_signature,
)
from pdf_structure.limits import DocumentLimits

__all__ = ["TASKS", "serve"]

log = logging.getLogger(__name__)


def inspect(data: bytes, max_bytes: int, limits: DocumentLimits) -> DocumentReport:
    """Intake (:func:`gateway.requests.intake.inspect_pdf`)."""
    return inspect_pdf(data, max_bytes=max_bytes, limits=limits)


def page_lines(document: bytes, page_index: int) -> list[TextLine]:
    """The text lines PDFium finds on page ``page_index`` (0-based), top to bottom."""
    return text_lines(document, page_index)


def render_page(document: bytes, page_number: int, width: int, max_width: int) -> bytes:
    """PNG of page ``page_number`` (1-based), ``width`` pixels wide."""
    return render_page_png(document, page_number, width, max_width=max_width)


def build_preview(
    document: bytes,
    params: SignatureParameters,
    identity: SignerIdentity,
    image: bytes | None,
    signing_time: dt.datetime,
) -> bytes:
    """``document`` with the signature the bridge will build, a stand-in signature value
    in its /Contents (:func:`hsm_bridge.pades.placeholder_signature`). Built at PAdES
    B-B: a timestamp and validation data add nothing that shows, and the updates that
    add them (the DSS, a document timestamp) are ones pyHanko writes to any document
    it could sign."""
    return build_signed_pdf(
        document,
        dataclasses.replace(params, pades_level=PadesLevel.B_B),
        identity,
        image=image,
        signing_time=signing_time,
        sign_digest=placeholder_signature(identity),
    )


def check_signable(
    document: bytes, steps: Sequence[SignatureStep], signing_time: dt.datetime
) -> None:
    """Build each step's signature in turn, each on the previous one's output, as the
    bridge will (an official document: the leader's, then the seal into the field the
    first made). Raises DocumentUnsignable with pyHanko's reason when one cannot be
    built: the document is refused at submission, before anyone approves it."""
    current = document
    for number, (params, identity, image) in enumerate(steps, start=1):
        try:
            current = build_preview(current, params, identity, image, signing_time)
        except GatewayError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever pyHanko cannot write
            what = "the signature" if len(steps) == 1 else f"signature {number} of {len(steps)}"
            raise DocumentUnsignable(f"{what} cannot be added: {_reason(exc)}") from exc


def report(document: bytes, trust_anchors: list[bytes], now: dt.datetime) -> ValidationReport:
    """The validation report of ``document`` (:mod:`gateway.signing.reports`)."""
    return validation_report(document, trust_anchors, now=now)


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:300]
    return text or "the PDF library refused this document's structure"


# name → (job, the refusal for anything unexpected it raises)
TASKS: dict[str, tuple[Callable[..., Any], Callable[[BaseException], GatewayError]]] = {
    "inspect": (
        inspect,
        lambda exc: DocumentUnreadable(f"the PDF cannot be read: {_reason(exc)}"),
    ),
    "page_lines": (
        page_lines,
        lambda exc: SignerBlockNotFound(f"the last page's text cannot be read: {_reason(exc)}"),
    ),
    "render_page": (
        render_page,
        lambda exc: DocumentUnreadable(f"the page cannot be drawn: {_reason(exc)}"),
    ),
    "build_preview": (
        build_preview,
        lambda exc: DocumentUnsignable(f"the signature cannot be drawn: {_reason(exc)}"),
    ),
    "check_signable": (
        check_signable,
        lambda exc: DocumentUnsignable(f"the signature cannot be added: {_reason(exc)}"),
    ),
    "signature_level": (
        newest_signature_level,
        lambda exc: DocumentUnreadable(f"the signed PDF cannot be read: {_reason(exc)}"),
    ),
    "validation_report": (
        report,
        lambda exc: DocumentUnreadable(f"the PDF cannot be read: {_reason(exc)}"),
    ),
}


def serve(connection: Connection, memory_bytes: int) -> None:
    """A worker's loop: cap the address space at ``memory_bytes``, say ``"ready"``, then
    answer jobs ``(name, args)`` with ``("ok", value)`` or ``("error", code, detail, extra)`` until
    the parent closes the pipe."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the service stops its workers itself
    gc.freeze()  # the libraries just imported live as long as the worker: never collected
    connection.send("ready")
    while True:
        try:
            name, args = connection.recv()
        except (EOFError, OSError):
            return
        connection.send(_answer(name, args))


def _answer(name: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
    job, refusal = TASKS[name]
    try:
        return ("ok", job(*args))
    except GatewayError as exc:
        return ("error", exc.code, exc.detail, exc.extra)
    except MemoryError:
        error: GatewayError = DocumentTooComplex(
            "reading the document needed more memory than a document worker may use"
        )
    except Exception as exc:  # noqa: BLE001 - the job's refusal, in words
        log.info("document job %s refused: %s", name, type(exc).__name__)
        error = refusal(exc)
    return ("error", error.code, error.detail, error.extra)
