"""Document work in worker processes, each under a memory limit, each job under a time
limit.

Everything that reads a submitted document with a parser or a renderer (intake with
pyHanko, text extraction and page previews with PDFium, the stand-in signature built at
submission and for the signature preview) runs in one of ``workers`` child processes
started with ``spawn``. A worker's address space is capped (``RLIMIT_AS``,
``memory_bytes``), so a decompression bomb that slips past intake's limits ends that
worker, not the service and the signings in flight; a job that outlives ``seconds`` has
its worker killed. Either way the caller gets :class:`~gateway.errors.DocumentTooComplex`
and a fresh worker takes the dead one's place. PDFium, which is not thread-safe, is
entered by one job at a time per process, and each worker runs one job at a time.

The jobs themselves are in :mod:`gateway.requests.sandbox_tasks`; they answer with a
value or a :class:`~gateway.errors.GatewayError`, rebuilt here by its code.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import queue
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from gateway.errors import DocumentTooComplex, DocumentWorkersBusy, error_class
from gateway.requests import sandbox_tasks
from gateway.requests.intake import DocumentReport
from gateway.requests.placement import TextLine
from gateway.requests.preview import SignatureStep
from gateway.signing.reports import ValidationReport
from pdf_structure.limits import DocumentLimits

T = TypeVar("T")

__all__ = ["DocumentSandbox", "SandboxLimits"]

log = logging.getLogger(__name__)

MiB = 1024 * 1024
# how long a new worker may take to import its libraries
_START_SECONDS = 120.0


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """``workers``: processes (each one job at a time). ``memory_bytes``: a worker's
    address-space limit. ``seconds``: how long one job may take (wall clock).
    ``wait_seconds``: how long a caller waits for a free worker before
    :class:`~gateway.errors.DocumentWorkersBusy`."""

    workers: int = 2
    memory_bytes: int = 1536 * MiB
    seconds: float = 30.0
    wait_seconds: float = 60.0


class _WorkerLost(Exception):
    """The worker died or was killed during a job; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Worker:
    """One child process and the parent's end of its pipe."""

    def __init__(self, memory_bytes: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.connection, child = context.Pipe()
        self.process = context.Process(
            target=sandbox_tasks.serve,
            args=(child, memory_bytes),
            name="document-worker",
            daemon=True,
        )
        self.process.start()
        child.close()
        # the worker answers once its imports are done: a job's time limit is the job's
        if not self.connection.poll(_START_SECONDS) or self.connection.recv() != "ready":
            self.kill()
            raise RuntimeError("a document worker did not start")

    def call(self, task: str, args: tuple[Any, ...], seconds: float) -> Any:
        """Run ``task`` with ``args``; its answer. Raises the task's GatewayError, or
        :class:`_WorkerLost` when the worker dies or outlives ``seconds``."""
        try:
            self.connection.send((task, args))
            if not self.connection.poll(seconds):
                self.kill()
                raise _WorkerLost("time")
            kind, *answer = self.connection.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError, OSError) as exc:
            self.kill()
            crashed = self.process.exitcode in (-signal.SIGSEGV, -signal.SIGBUS, -signal.SIGILL)
            raise _WorkerLost("crash" if crashed else "memory") from exc
        if kind == "ok":
            return answer[0]
        code, detail, extra = answer
        raise error_class(code)(detail, **extra)

    def kill(self) -> None:
        """End the process (at once) and close the pipe."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        _close(self.connection)


class DocumentSandbox:
    """A pool of document workers (see the module's description). Workers start on
    first use (or :meth:`start`); :meth:`close` ends them."""

    def __init__(self, limits: SandboxLimits | None = None) -> None:
        self.limits = limits or SandboxLimits()
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._started = 0
        self._guard = threading.Lock()
        self._closed = False
        # workers lost so far, by reason (time, memory, crash): for operators and tests
        self.losses: Counter[str] = Counter()

    def start(self) -> None:
        """Start every worker now (a service does this at start-up, so that the first
        submission does not wait for a worker's imports)."""
        with self._guard:
            while self._started < self.limits.workers:
                self._idle.put(_Worker(self.limits.memory_bytes))
                self._started += 1

    # ---- the jobs, typed ---------------------------------------------------------------

    def inspect(self, data: bytes, max_bytes: int, limits: DocumentLimits) -> DocumentReport:
        """Intake (:func:`gateway.requests.intake.inspect_pdf`) in a worker."""
        return _as(DocumentReport, self.run("inspect", data, max_bytes, limits))

    def page_lines(self, document: bytes, page_index: int) -> list[TextLine]:
        """The text lines of page ``page_index`` (0-based), top to bottom (PDFium)."""
        return _as(list, self.run("page_lines", document, page_index))

    def render_page(self, document: bytes, page: int, width: int, max_width: int) -> bytes:
        """PNG bytes of page ``page`` (1-based), ``width`` pixels wide (PDFium)."""
        return _as(bytes, self.run("render_page", document, page, width, max_width))

    def build_preview(
        self,
        document: bytes,
        step: SignatureStep,
        signing_time: dt.datetime,
    ) -> bytes:
        """``document`` with the signature of ``step`` built as the bridge will, a
        stand-in signature value in it (PDF bytes)."""
        params, identity, image = step
        return _as(
            bytes, self.run("build_preview", document, params, identity, image, signing_time)
        )

    def check_signable(
        self, document: bytes, steps: list[SignatureStep], signing_time: dt.datetime
    ) -> None:
        """Build every step's signature in turn; DocumentUnsignable when one fails."""
        self.run("check_signable", document, steps, signing_time)

    def validation_report(
        self, document: bytes, trust_anchors: list[bytes], now: dt.datetime
    ) -> ValidationReport:
        """The validation report of ``document`` (:mod:`gateway.signing.reports`) with
        ``trust_anchors`` (DER roots) at ``now``."""
        return _as(ValidationReport, self.run("validation_report", document, trust_anchors, now))

    def signature_level(self, signed: bytes, trust_anchors: list[bytes]) -> str | None:
        """The PAdES level the newest signature of ``signed`` reaches
        (:func:`gateway.signing.levels.newest_signature_level`)."""
        level = self.run("signature_level", signed, trust_anchors)
        return level if isinstance(level, str) else None

    def run(self, task: str, *args: Any) -> Any:
        """Run the job ``task`` (a name in :data:`sandbox_tasks.TASKS`) with ``args``
        (picklable) in a worker; its answer. Raises the job's GatewayError,
        DocumentTooComplex when the job outlived the time limit or its worker died (the
        memory limit), DocumentWorkersBusy when no worker came free in time."""
        if task not in sandbox_tasks.TASKS:
            raise ValueError(f"no document task {task!r}")
        worker = self._acquire()
        try:
            result = worker.call(task, args, self.limits.seconds)
        except _WorkerLost as lost:
            self.losses[lost.reason] += 1
            self._replace()
            log.warning("document worker lost during %s (%s limit)", task, lost.reason)
            raise DocumentTooComplex(_lost_detail(lost.reason, self.limits)) from None
        except BaseException:
            self._idle.put(worker)
            raise
        self._idle.put(worker)
        return result

    def _acquire(self) -> _Worker:
        if self._closed:
            raise RuntimeError("the document sandbox is closed")
        with self._guard:
            if self._idle.empty() and self._started < self.limits.workers:
                self._started += 1
                return _Worker(self.limits.memory_bytes)
        try:
            return self._idle.get(timeout=self.limits.wait_seconds)
        except queue.Empty:
            raise DocumentWorkersBusy(
                f"no document worker came free within {self.limits.wait_seconds:.0f} s"
            ) from None

    def _replace(self) -> None:
        """A new worker for one that was lost (started in the background)."""

        def start() -> None:
            try:
                self._idle.put(_Worker(self.limits.memory_bytes))
            except Exception:  # noqa: BLE001 - the pool shrinks; the next call retries
                log.exception("a document worker could not be started")
                with self._guard:
                    self._started -= 1

        threading.Thread(target=start, name="document-worker-start", daemon=True).start()

    def close(self) -> None:
        """End every idle worker (busy ones end with the process)."""
        self._closed = True
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                break
            worker.kill()


def _as(kind: type[T], value: Any) -> T:
    """``value``, checked to be a ``kind`` (what a worker sent back is only unpickled)."""
    if not isinstance(value, kind):
        raise TypeError(f"a document worker answered {type(value).__name__}, not {kind.__name__}")
    return value


def _lost_detail(reason: str, limits: SandboxLimits) -> str:
    if reason == "time":
        return f"reading the document took longer than {limits.seconds:g} s"
    if reason == "crash":
        return "the PDF reader stopped on this document (a damaged or hostile file)"
    return f"reading the document needed more than {limits.memory_bytes // MiB} MiB of memory"


def _close(connection: Connection) -> None:
    try:
        connection.close()
    except OSError:
        pass
