"""A token's state as the pool keeps it, and the batches of work its workers take.

:class:`TokenLimits` and :class:`TokenHealth` are public (configuration, health);
``TokenRecord`` is the pool's bookkeeping per token (sessions, the running jobs, whether a call
is stuck); ``Job``/:class:`PendingBatch` are one batch of work for a token's worker and
the caller's handle on it (see :class:`~hsm_bridge.pkcs11.tokens.TokenPool`)."""

from __future__ import annotations

import enum
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pkcs11.exceptions as p11e

from hsm_bridge.errors import (
    BatchAbandoned,
    BridgeError,
    TokenBusy,
    TokenTimeout,
    from_pkcs11_error,
)
from hsm_bridge.pkcs11 import metrics

__all__ = [
    "RECONNECT",
    "REMOVED",
    "STALE",
    "as_bridge_error",
    "FEED_IDLE_SECONDS",
    "Job",
    "PendingBatch",
    "TokenHealth",
    "TokenLimits",
    "TokenRecord",
    "TokenState",
    "note_error",
    "note_success",
    "raise_and_count",
    "state_of",
    "token_serial_text",
]

log = logging.getLogger(__name__)


def token_serial_text(token: Any) -> str:
    """The token's serialNumber (CK_TOKEN_INFO) as text, without padding."""
    serial = token.serial
    if isinstance(serial, bytes):
        serial = serial.decode("ascii", "replace")
    return str(serial).strip()


class TokenState(enum.StrEnum):
    """A token's state as health reports it.

    ``ok``: answering. ``removed``: absent from the slot list, or the module said
    CKR_DEVICE_REMOVED / CKR_TOKEN_NOT_PRESENT. ``unhealthy``: an operation outlived its
    timeout and has not returned. ``failing``: the last operation ended in a device error.
    ``pin_locked``: the token reports its user PIN locked.
    """

    OK = "ok"
    REMOVED = "removed"
    UNHEALTHY = "unhealthy"
    FAILING = "failing"
    PIN_LOCKED = "pin_locked"


@dataclass(frozen=True, slots=True)
class TokenLimits:
    """Per-token limits: ``max_sessions`` concurrent operations (1 for a USB token);
    ``timeout_seconds``: how long an operation may wait for a free session
    (``token_busy`` after that), and then how long it may take (``token_timeout``, and the
    token is unhealthy until the call returns)."""

    max_sessions: int = 1
    timeout_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        if self.timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")


@dataclass(frozen=True, slots=True)
class TokenHealth:
    """What health reports for one token: ``state`` (a :class:`TokenState` value),
    ``busy`` operations running now out of ``max_sessions``, and ``last_error`` (a
    bridge error code) with the POSIX time it happened."""

    module: str
    serial: str
    label: str
    state: str
    busy: int
    max_sessions: int
    last_error: str | None = None
    last_error_at: float | None = None

    @classmethod
    def of(cls, module: str, record: TokenRecord) -> TokenHealth:
        """The report for ``record``, a token of PKCS#11 module ``module`` (a path)."""
        return cls(
            module=module,
            serial=record.serial,
            label=record.label,
            state=state_of(record).value,
            busy=record.busy,
            max_sessions=record.limits.max_sessions,
            last_error=record.last_error,
            last_error_at=record.last_error_at,
        )


_END = object()  # closes a job's feed

# A worker gives up on a batch whose caller has added nothing for this long (seconds) and
# has not closed it: a safety net against a caller that never closes, not a deadline.
FEED_IDLE_SECONDS = 120.0


class Job:
    """One batch of work for a token's worker, fed item by item: the worker starts on
    the first item while the caller is still adding the rest. Results arrive in order;
    ``finished`` is set when the job is closed and every result is in (or the worker
    gave up on a caller that stopped feeding it). ``started``/``cancelled``/``done``/
    ``timed_out`` are guarded by the token's lock: the worker starts the job only if the
    caller has not withdrawn it (``start_deadline``, monotonic seconds), and the caller
    withdraws only a job that has not started."""

    def __init__(self, start_deadline: float) -> None:
        self.start_deadline = start_deadline
        self.expected: int | None = None  # known when closed
        self.added = 0
        self.items: list[Any] = []
        self.finished = threading.Event()
        self.began = threading.Event()
        self.started = False
        self.cancelled = False
        self.done = False
        self.timed_out = False
        self.abandoned = False
        self.progress_at = time.monotonic()  # last sign of life from the worker
        self._feed: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()

    def add(self, work: Callable[[Any], Any]) -> None:
        """Queue one more item (caller's thread, before :meth:`close`)."""
        self.added += 1
        self._feed.put(work)

    def close(self) -> None:
        """No more items: the job finishes once the worker has answered them all."""
        with self._lock:
            self.expected = self.added
            if self.abandoned or len(self.items) >= self.expected:
                self.finished.set()
        self._feed.put(_END)

    def works(self, idle_timeout: float) -> Iterator[Callable[[Any], Any]]:
        """The items, as the caller adds them (worker's thread). A caller that adds
        nothing and does not close for ``idle_timeout`` seconds is given up on."""
        while True:
            try:
                item = self._feed.get(timeout=idle_timeout)
            except queue.Empty:
                with self._lock:
                    self.abandoned = True
                    self.finished.set()
                log.error("a caller stopped feeding its batch; the rest is not signed")
                return
            if item is _END:
                return
            self.progress_at = time.monotonic()  # waiting for the caller is not the token's
            yield item

    def put(self, item: tuple[int, Any]) -> None:
        """Record the next result (``(index, outcome)``, in order)."""
        with self._lock:
            self.items.append(item[1])
            self.progress_at = time.monotonic()
            if self.expected is not None and len(self.items) >= self.expected:
                self.finished.set()

    def snapshot(self) -> list[Any]:
        """The results so far."""
        with self._lock:
            return list(self.items)


class PendingBatch:
    """Work for one token's worker (:meth:`TokenPool.open_batch`): :meth:`add` items,
    then :meth:`outcomes` (which closes the batch) waits for their results."""

    def __init__(self, state: TokenRecord, job: Job, operation: str, timeout: float) -> None:
        self._state = state
        self._job = job
        self._operation = operation
        self._timeout = timeout

    def add(self, work: Callable[[Any], Any]) -> None:
        """Queue ``work(session)``; the worker may start on it at once."""
        if self._job.expected is not None:
            raise RuntimeError("the batch is closed")
        self._job.add(work)

    def close(self) -> None:
        """No more items (idempotent)."""
        if self._job.expected is None:
            self._job.close()

    def outcomes(self) -> list[Any]:
        """Wait for every result.

        A job that no worker has started within the token's timeout (every session busy)
        is withdrawn and fails with ``token_busy``, never touching the token. Once it
        runs, when the worker makes no progress for the token's timeout, the token is
        marked unhealthy and the rest fail with ``token_timeout``. The caller wakes up at
        the end or once per timeout, never once per item."""
        self.close()
        job, state = self._job, self._state
        assert job.expected is not None
        if not job.began.wait(max(0.0, job.start_deadline - time.monotonic())):
            with state.lock:
                if not job.started:
                    job.cancelled = True
                    state.gate.notify_all()
            if job.cancelled:
                busy = TokenBusy("the token is busy")
                metrics.count(state.serial, self._operation, busy.code)
                note_error(state, busy.code)
                return [busy] * job.expected
        # The token's timeout runs from the worker's last sign of life (it started the
        # job, took an item, or answered one), not from when this caller began to wait.
        while not job.finished.wait(max(0.001, job.progress_at + self._timeout - time.monotonic())):
            if time.monotonic() < job.progress_at + self._timeout:
                continue  # the worker moved on meanwhile
            with state.lock:
                if not job.done:
                    job.timed_out = True
                    state.stuck += 1
            items = job.snapshot()
            if job.timed_out:
                note_error(state, "token_timeout")
                log.error("token %s did not answer in time; marked unhealthy", state.serial)
                timed_out = TokenTimeout(f"the token did not answer within {self._timeout:g} s")
                metrics.count(state.serial, self._operation, timed_out.code)
                return items + [timed_out] * (job.expected - len(items))
            break
        items = job.snapshot()
        expected = job.expected or 0
        if len(items) < expected:  # the worker gave up on a feed that stalled
            missing = expected - len(items)
            items += [BatchAbandoned("the batch was abandoned; not signed")] * missing
        return items


@dataclass(eq=False)
class TokenRecord:
    serial: str
    limits: TokenLimits
    label: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Workers pass this gate before they touch the token: pooled jobs while no
    # signer-PIN job runs or waits; a signer-PIN job alone, once the token is idle.
    gate: threading.Condition = field(init=False)
    idle: list[Any] = field(default_factory=list)
    generation: int = 0
    busy: int = 0  # jobs past the gate
    exclusive_waiting: int = 0
    exclusive_running: bool = False
    stuck: int = 0
    removed: bool = False
    failing: bool = False
    pin_locked: bool = False
    pin_lock_reported: bool = False  # C_Login said CKR_PIN_LOCKED since the last success
    rejected_pin: bytes | None = None  # keyed hash of a stored PIN C_Login refused
    last_error: str | None = None
    last_error_at: float | None = None
    executor: ThreadPoolExecutor | None = None

    def __post_init__(self) -> None:
        self.gate = threading.Condition(self.lock)

    def workers(self) -> ThreadPoolExecutor:
        """The token's own worker threads, as many as it has sessions: jobs queue here
        and a free worker takes the next one at once, so the token never waits for a
        caller's thread to wake up. A stuck token holds only its own workers."""
        with self.lock:
            if self.executor is None:
                self.executor = ThreadPoolExecutor(
                    max_workers=self.limits.max_sessions,
                    thread_name_prefix=f"pkcs11-{self.serial[:12]}",
                )
            return self.executor

    def enter(self, job: Job, exclusive: bool) -> bool:
        """Pass the gate for ``job`` (a worker, before touching the token); False when
        the caller withdrew the job or its start deadline passed first. Exclusive
        (signer-PIN) jobs wait for the token to be idle and go before pooled jobs that
        arrive meanwhile. Caller must not hold :attr:`lock`."""
        with self.gate:
            if exclusive:
                self.exclusive_waiting += 1
            try:
                while True:
                    if job.cancelled:
                        return False
                    if exclusive:
                        free = not self.exclusive_running and self.busy == 0
                    else:
                        free = not self.exclusive_running and self.exclusive_waiting == 0
                    if free:
                        break
                    remaining = job.start_deadline - time.monotonic()
                    if remaining <= 0:
                        job.cancelled = True
                        return False
                    self.gate.wait(remaining)
            finally:
                if exclusive:
                    self.exclusive_waiting -= 1
                    self.gate.notify_all()
            job.started = True
            job.progress_at = time.monotonic()
            self.busy += 1
            self.exclusive_running = exclusive
        job.began.set()
        return True

    def leave(self, job: Job) -> None:
        """After a job that passed the gate: free its place and wake the waiting."""
        with self.gate:
            self.busy -= 1
            self.exclusive_running = False
            job.done = True
            if job.timed_out:
                self.stuck -= 1  # the stuck call returned: the token answers again
                log.warning("token %s answered again", self.serial)
            self.gate.notify_all()


def state_of(state: TokenRecord) -> TokenState:
    if state.removed:
        return TokenState.REMOVED
    if state.stuck:
        return TokenState.UNHEALTHY
    if state.pin_locked:
        return TokenState.PIN_LOCKED
    if state.failing:
        return TokenState.FAILING
    return TokenState.OK


def note_error(state: TokenRecord, code: str) -> None:
    state.last_error = code
    state.last_error_at = time.time()


def note_success(state: TokenRecord) -> None:
    state.removed = False
    state.failing = False
    state.pin_locked = state.pin_lock_reported = False


def raise_and_count(state: TokenRecord, operation: str, error: BridgeError) -> None:
    """Count ``error`` against the token in metrics, remember it, and raise it."""
    metrics.count(state.serial, operation, error.code)
    note_error(state, error.code)
    raise error


# Errors after which every session of the token is void: reconnect on the next call.
RECONNECT = (
    p11e.SessionHandleInvalid,
    p11e.SessionClosed,
    p11e.DeviceRemoved,
    p11e.DeviceError,
    p11e.TokenNotPresent,
    p11e.UserNotLoggedIn,
)
# Errors of a session that outlived its token's login or presence: safe to retry once on
# a new session (nothing was signed, no PIN was refused).
STALE = (p11e.SessionHandleInvalid, p11e.SessionClosed, p11e.UserNotLoggedIn)
REMOVED = (p11e.DeviceRemoved, p11e.TokenNotPresent, p11e.NoSuchToken)


def as_bridge_error(exc: BaseException, serial: str) -> BridgeError:
    """The bridge error for a failure on token ``serial``: python-pkcs11's exceptions by
    their CKR code, anything unexpected as a plain (logged) BridgeError."""
    if isinstance(exc, BridgeError):
        return exc
    if isinstance(exc, p11e.PKCS11Error):
        return from_pkcs11_error(exc)
    log.exception("unexpected failure on token %s", serial)
    return BridgeError(f"unexpected failure: {type(exc).__name__}")
