"""PKCS#11 modules, tokens and pools of logged-in sessions.

One :class:`TokenPool` per module path and process. It loads the module lazily in the
process that uses it (after any fork: the PID is checked, so uvicorn/gunicorn workers
each call C_Initialize themselves), finds tokens by serial number (never by slot
number), and runs every operation on a worker thread with a timeout, so that a slow or
stuck token never blocks its caller for longer than ``timeout_seconds`` and never
stalls the other tokens.

Per token (PKCS#11 v2.40 §5.6, §11.6):

- ``max_sessions`` worker threads (1 for a USB token, more for an HSM), each with one
  session and one operation at a time; callers queue batches for them
  (:meth:`TokenPool.open_batch`) and a free worker takes the next batch at once, starting
  on its first item while the caller still adds the rest; a batch that waited longer
  than ``timeout_seconds`` for a worker is withdrawn with ``token_busy``;
- one C_Login per token and process: the first session logs in with the stored PIN,
  further sessions share that login state; CKR_USER_ALREADY_LOGGED_IN is success;
- pooled sessions are never logged out (C_Logout would end the login of every session of
  the token, busy ones included): they are only closed;
- a device or session error (CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT,
  CKR_SESSION_HANDLE_INVALID, CKR_DEVICE_ERROR...) throws away every session of the
  token, so the next operation reconnects (the token may have been re-inserted);
- a token whose operation outlived its timeout is *unhealthy*: new operations are refused
  at once (retryable) until the stuck call returns;
- a signer-supplied PIN (PIN policy ``signer``) is used on a session of its own, with the
  token otherwise idle and logged out, and the session is logged out and closed after the
  one operation: the PIN is never kept.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

import pkcs11.exceptions as p11e
from pkcs11 import TokenFlag

from hsm_bridge.errors import (
    BridgeError,
    PinIncorrect,
    PinLocked,
    PinRequired,
    TokenError,
    TokenNotPresent,
    TokenUnhealthy,
    from_pkcs11_error,
)
from hsm_bridge.pkcs11 import metrics
from hsm_bridge.pkcs11.module import LoadedModule, load_module
from hsm_bridge.pkcs11.token_state import (
    FEED_IDLE_SECONDS,
    RECONNECT,
    REMOVED,
    STALE,
    Job,
    PendingBatch,
    TokenHealth,
    TokenLimits,
    TokenRecord,
    TokenState,
    as_bridge_error,
    note_error,
    note_success,
    raise_and_count,
    token_serial_text,
)

__all__ = [
    "PendingBatch",
    "TokenHealth",
    "TokenLimits",
    "TokenPool",
    "TokenState",
    "token_serial_text",
]

log = logging.getLogger(__name__)

T = TypeVar("T")


class TokenPool:
    """Session pools by token serial for one PKCS#11 module (``module_path``, the shared
    library's path).

    ``pin_for``: gives the stored user PIN of a token serial, or raises
    :class:`~hsm_bridge.errors.PinRequired` (never logged). ``limits``: the default
    :class:`TokenLimits`; ``token_limits`` overrides them per token serial.
    """

    def __init__(
        self,
        module_path: str,
        pin_for: Callable[[str], str],
        *,
        limits: TokenLimits | None = None,
        token_limits: dict[str, TokenLimits] | None = None,
    ) -> None:
        self.module_path = module_path
        self._pin_for = pin_for
        self._limits = limits or TokenLimits()
        self._token_limits = dict(token_limits or {})
        self._pid = -1
        self._guard = threading.Lock()
        self._tokens: dict[str, TokenRecord] = {}
        self._lib: Any = None
        self._module: LoadedModule | None = None
        self._pin_salt = secrets.token_bytes(32)
        self._serial: AbstractContextManager[Any] = nullcontext()
        self._caches: dict[int, dict[bytes, Any]] = {}
        self._public: set[int] = set()  # ids of sessions opened without a login

    # ---- module ---------------------------------------------------------------------

    def _library(self) -> Any:
        with self._guard:
            if self._pid != os.getpid() or self._lib is None:
                # C_Initialize in this process; sessions and threads of a parent are void.
                self._tokens = {}
                try:
                    module = load_module(self.module_path)
                except (p11e.PKCS11Error, RuntimeError, OSError) as exc:
                    raise from_pkcs11_error(exc) from exc
                self._lib = module.lib
                self._module = module
                # A module that cannot lock gets one call at a time (PKCS#11 §5.4).
                self._serial = nullcontext() if module.thread_safe else threading.RLock()
                self._pid = os.getpid()
            return self._lib

    def _token(self, serial: str) -> TokenRecord:
        self._library()  # after a fork, the parent's token states are dropped first
        with self._guard:
            state = self._tokens.get(serial)
            if state is None:
                state = TokenRecord(serial, self._token_limits.get(serial, self._limits))
                self._tokens[serial] = state
            return state

    def tokens(self) -> list[Any]:
        """The present, initialised tokens of the module (C_GetSlotList(TRUE) +
        C_GetTokenInfo) as python-pkcs11 ``Token`` objects; SoftHSM2's spare
        uninitialised slot is left out. Updates the removed/present state of tokens seen
        before."""
        lib = self._library()
        present = []
        try:
            with self._serial:
                slots = lib.get_slots(token_present=True)
        except p11e.PKCS11Error as exc:
            raise from_pkcs11_error(exc) from exc
        for slot in slots:
            try:
                with self._serial:
                    token = slot.get_token()
            except p11e.PKCS11Error as exc:
                # One broken or vanishing token must not hide the others.
                log.warning("slot %s of %s: %s", slot.slot_id, self.module_path, type(exc).__name__)
                continue
            if token.flags & TokenFlag.TOKEN_INITIALIZED:
                present.append(token)
        self._note_presence(present)
        return present

    def _note_presence(self, present: list[Any]) -> None:
        """Update the states of the tokens seen (label, PIN lock) and of those gone."""
        seen = set()
        for token in present:
            serial = token_serial_text(token)
            seen.add(serial)
            state = self._token(serial)
            state.label = str(token.label).strip()
            # the token's flag, or C_Login's answer since the last success
            state.pin_locked = (
                bool(token.flags & TokenFlag.USER_PIN_LOCKED) or state.pin_lock_reported
            )
            if state.removed:
                state.removed = False
                log.info("token %s is present again", serial)
        with self._guard:
            known = list(self._tokens.values())
        for state in known:
            if state.serial not in seen and not state.removed:
                state.removed = True
                log.warning("token %s was removed", state.serial)
                self._discard_sessions(state)

    def holds(self, serial: str) -> bool:
        """Whether a present token of this module has serial number ``serial``."""
        return any(token_serial_text(t) == serial for t in self.tokens())

    def health(self) -> list[TokenHealth]:
        """Present tokens and tokens seen before and now absent, with their state."""
        try:
            self.tokens()
        except BridgeError as exc:
            log.warning("module %s does not answer: %s", self.module_path, exc.code)
        with self._guard:
            known = sorted(self._tokens.values(), key=lambda t: t.serial)
        return [TokenHealth.of(self.module_path, t) for t in known]

    # ---- sessions -------------------------------------------------------------------

    def _find(self, serial: str) -> Any:
        lib = self._library()
        return lib.get_token(token_serial=serial.encode("ascii"))

    def _login(self, session: Any, pin: str) -> None:
        assert self._module is not None
        with self._serial:
            self._module.login(session.handle, pin)

    def _open(self, state: TokenRecord, pin: str) -> Any:
        """A new session of the token, logged in with ``pin`` (C_OpenSession, then
        C_Login on it; CKR_USER_ALREADY_LOGGED_IN is success: the login state is shared
        by every session of this process). A session whose login failed is closed, never
        leaked."""
        with self._serial:
            session = self._find(state.serial).open(rw=True)
        try:
            self._login(session, pin)
        except p11e.UserAlreadyLoggedIn:
            pass
        except BaseException:
            self._close(state, session)
            raise
        return session

    def _checkout(self, state: TokenRecord) -> tuple[Any, int, bool]:
        """A logged-in session of the token for one operation, its generation, and
        whether it came from the idle pool (True) or was opened now (False).

        Pooled sessions are never logged out (C_Logout would end the login of every
        session of the token); the login ends when the last session closes, and each new
        session logs in again if needed."""
        with state.lock:
            if state.idle:
                return state.idle.pop(), state.generation, True
            generation = state.generation
        try:
            pin = self._pin_for(state.serial)
        except PinRequired:
            # PIN policy signer: a public session reads certificates; signing opens a
            # session of its own with the signer's PIN.
            with self._serial:
                session = self._find(state.serial).open(rw=True)
            self._public.add(id(session))  # never pooled: a PIN may be stored later
            return session, generation, False
        fingerprint = hmac.new(self._pin_salt, pin.encode(), hashlib.sha256).digest()
        if state.rejected_pin is not None and hmac.compare_digest(state.rejected_pin, fingerprint):
            # Never try a PIN the token already rejected: retries lock real tokens.
            raise PinIncorrect("the token rejected the stored PIN; store the right one")
        try:
            return self._open(state, pin), generation, False
        except p11e.PinIncorrect:
            state.rejected_pin = fingerprint
            raise

    def session_cache(self, session: Any) -> dict[bytes, Any]:
        """A dict that lives as long as the pooled ``session`` (for key handles found on
        it); dropped when the session is closed."""
        return self._caches.setdefault(id(session), {})

    def _checkin(self, state: TokenRecord, session: Any, generation: int) -> None:
        if id(session) in self._public:
            self._close(state, session)
            return
        with state.lock:
            if generation == state.generation:
                state.idle.append(session)
                return
        self._close(state, session)

    def _close(self, state: TokenRecord, session: Any) -> None:
        """C_CloseSession only (the session was opened without python-pkcs11's login,
        so no C_Logout is made)."""
        self._caches.pop(id(session), None)
        self._public.discard(id(session))
        try:
            with self._serial:
                session.close()
        except p11e.PKCS11Error:
            log.debug("closing a void session of token %s failed", state.serial)

    def _discard_sessions(self, state: TokenRecord) -> None:
        """Void every session of the token (the next operation reconnects). Idle ones
        are closed now; those in use when they come back."""
        with state.lock:
            state.generation += 1
            idle, state.idle = state.idle, []
        for session in idle:
            self._close(state, session)

    # ---- operations -----------------------------------------------------------------

    def run(
        self, serial: str, operation: str, work: Callable[[Any], T], *, pin: str | None = None
    ) -> T:
        """Run ``work(session)`` on a logged-in session of token ``serial`` within the
        token's timeout and return its result.

        ``operation`` names it in metrics (``sign``, ``certificate``...). ``pin`` is a
        signer-supplied user PIN (PIN policy ``signer``): used for this one operation on
        a fresh session, then logged out; never stored.
        Raises :class:`~hsm_bridge.errors.BridgeError` subclasses: ``token_busy``,
        ``token_timeout``, ``token_unhealthy``, ``token_not_present``, ``pin_incorrect``
        (never retried), ``pin_locked``...
        """
        outcome = self.run_many(serial, operation, [work], pin=pin)[0]
        if isinstance(outcome, BridgeError):
            raise outcome
        return outcome

    def run_many(
        self,
        serial: str,
        operation: str,
        works: Sequence[Callable[[Any], T]],
        *,
        pin: str | None = None,
    ) -> list[T | BridgeError]:
        """Run each of ``works`` in turn on one session of token ``serial`` (one hand-off
        to a worker thread for the whole list); each item has the token's timeout.
        Returns one result or :class:`BridgeError` per item, in order; an item that
        fails does not stop the others (except a timeout, which fails the rest)."""
        return self.submit_many(serial, operation, works, pin=pin).outcomes()

    def submit_many(
        self,
        serial: str,
        operation: str,
        works: Sequence[Callable[[Any], T]],
        *,
        pin: str | None = None,
    ) -> PendingBatch:
        """Like :meth:`run_many`, but return as soon as the work is queued for the
        token's workers; :meth:`PendingBatch.outcomes` waits for it."""
        batch = self.open_batch(serial, operation, pin=pin)
        for work in works:
            batch.add(work)
        batch.close()
        return batch

    def open_batch(self, serial: str, operation: str, *, pin: str | None = None) -> PendingBatch:
        """An empty batch queued for token ``serial``'s workers: a worker starts on it
        when a session is free and signs each item as soon as it is added (while the
        caller prepares the next ones). :meth:`PendingBatch.outcomes` closes it and
        waits; it answers ``token_busy`` when no session freed up within the timeout.
        Raises ``token_unhealthy`` at once while an earlier call on the token is stuck.
        With a signer ``pin``, add every item before the worker starts: the batch runs
        alone on the token."""
        state = self._token(serial)
        if state.stuck:
            raise_and_count(
                state, operation, TokenUnhealthy("the token stopped answering; try again later")
            )
        timeout = state.limits.timeout_seconds
        job = Job(start_deadline=time.monotonic() + timeout)
        # the worker's log lines carry the caller's context (its request id)
        context = contextvars.copy_context()
        state.workers().submit(context.run, self._work, state, job, operation, pin)
        return PendingBatch(state, job, operation, timeout)

    def _work(self, state: TokenRecord, job: Job, operation: str, pin: str | None) -> None:
        if not state.enter(job, exclusive=pin is not None):
            return  # withdrawn: the caller answers token_busy
        try:
            works = job.works(idle_timeout=max(state.limits.timeout_seconds, FEED_IDLE_SECONDS))
            if pin is None:
                self._work_pooled(state, operation, works, job)
            else:
                self._work_with_signer_pin(state, operation, works, pin, job)
        finally:
            state.leave(job)

    def _work_pooled(
        self,
        state: TokenRecord,
        operation: str,
        works: Iterable[Callable[[Any], Any]],
        results: Job,
    ) -> None:
        session: Any = None
        generation = 0
        pooled = False  # the session came from the idle pool: it may be stale
        for index, work in enumerate(works):
            if results.timed_out:
                break  # the caller has answered the rest already: leave the token alone
            started = time.perf_counter()
            attempts = 0
            while True:
                attempts += 1
                try:
                    with self._serial:
                        if session is None:
                            session, generation, pooled = self._checkout(state)
                        outcome = work(session)
                except BaseException as exc:  # noqa: BLE001 - every failure is an outcome
                    stale = isinstance(exc, STALE) and pooled and attempts == 1
                    if isinstance(exc, RECONNECT) and session is not None:
                        self._close(state, session)
                        session = None
                    if stale:
                        # A session kept from before a re-insertion: reconnect once.
                        # (Never after a PIN error: those are not in STALE.)
                        self._discard_sessions(state)
                        log.info("token %s: stale session, reconnecting", state.serial)
                        continue
                    error = self._failure(state, exc)
                    results.put((index, error))
                    metrics.observe(state.serial, operation, error.code, started)
                    break
                note_success(state)
                results.put((index, outcome))
                metrics.observe(state.serial, operation, "ok", started)
                pooled = True
                break
        if session is not None:
            self._checkin(state, session, generation)

    def _work_with_signer_pin(
        self,
        state: TokenRecord,
        operation: str,
        works: Iterable[Callable[[Any], Any]],
        pin: str,
        results: Job,
    ) -> None:
        # The token is otherwise idle (all its slots are ours): close what the pool
        # holds, which ends the stored-PIN login, so that this C_Login really checks the
        # signer's PIN.
        self._discard_sessions(state)
        started = time.perf_counter()
        session: Any = None
        try:
            with self._serial:
                session = self._find(state.serial).open(rw=True)
            try:
                self._login(session, pin)
            except p11e.UserAlreadyLoggedIn as exc:
                # Something else in this process keeps the token logged in: refuse
                # rather than sign without checking the PIN.
                raise TokenError("the token is still logged in; the PIN was not checked") from exc
        except BaseException as exc:  # noqa: BLE001
            if session is not None:
                self._close(state, session)
            error = self._failure(state, exc)
            for index, _ in enumerate(works):
                results.put((index, error))
            metrics.observe(state.serial, operation, error.code, started)
            return
        try:
            for index, work in enumerate(works):
                if results.timed_out:
                    break  # the caller has answered the rest already
                started = time.perf_counter()
                try:
                    with self._serial:
                        outcome = work(session)
                except BaseException as exc:  # noqa: BLE001
                    error = self._failure(state, exc)
                    results.put((index, error))
                    metrics.observe(state.serial, operation, error.code, started)
                    continue
                note_success(state)
                results.put((index, outcome))
                metrics.observe(state.serial, operation, "ok", started)
        finally:
            assert self._module is not None
            try:
                with self._serial:
                    self._module.logout(session.handle)  # the PIN's login ends here
            except p11e.PKCS11Error:
                log.debug("logging out the signer-PIN session of %s failed", state.serial)
            self._close(state, session)

    def _failure(self, state: TokenRecord, exc: BaseException) -> BridgeError:
        error = as_bridge_error(exc, state.serial)
        if isinstance(exc, REMOVED) or isinstance(error, TokenNotPresent):
            state.removed = True
        if isinstance(exc, RECONNECT) or isinstance(error, TokenNotPresent):
            self._discard_sessions(state)
            state.failing = not state.removed
        if isinstance(error, PinLocked):
            state.pin_locked = state.pin_lock_reported = True
        note_error(state, error.code)
        return error
