"""PKCS#11 modules, tokens and logged-in sessions.

One :class:`TokenPool` per module path and process. It loads the module lazily in the
process that uses it (after any fork: the PID is checked), finds tokens by serial
number (never by slot number), keeps one logged-in session per token, and serialises
operations on a token with a per-token lock (one operation per session at a time,
PKCS#11 v2.40 §5.6). A session that fails with a device error is dropped so that the
next call reconnects.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pkcs11
import pkcs11.exceptions as p11e
from pkcs11 import TokenFlag

from hsm_bridge.errors import BridgeError, from_pkcs11_error

__all__ = ["TokenPool", "token_serial_text"]

log = logging.getLogger(__name__)

_RECONNECT = (
    p11e.SessionHandleInvalid,
    p11e.SessionClosed,
    p11e.DeviceRemoved,
    p11e.DeviceError,
    p11e.TokenNotPresent,
    p11e.UserNotLoggedIn,
)


def token_serial_text(token: Any) -> str:
    """The token's serialNumber (CK_TOKEN_INFO) as text, without padding."""
    serial = token.serial
    if isinstance(serial, bytes):
        serial = serial.decode("ascii", "replace")
    return str(serial).strip()


class TokenPool:
    """Logged-in sessions by token serial for one PKCS#11 module (``module_path``, the
    shared library's path).

    ``pin_for``: a callable giving the user PIN of a token serial (never logged).
    """

    def __init__(self, module_path: str, pin_for: Callable[[str], str]) -> None:
        self._module_path = module_path
        self._pin_for = pin_for
        self._pid = -1
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._sessions: dict[str, Any] = {}
        self._lib: Any = None

    def _library(self) -> Any:
        with self._guard:
            if self._pid != os.getpid() or self._lib is None:
                # C_Initialize in this process; sessions of a parent process are void.
                self._sessions.clear()
                try:
                    self._lib = pkcs11.lib(self._module_path)
                    if self._pid not in (-1, os.getpid()):
                        self._lib.reinitialize()
                except (p11e.PKCS11Error, RuntimeError, OSError) as exc:
                    raise from_pkcs11_error(exc) from exc
                self._pid = os.getpid()
            return self._lib

    def _lock_for(self, serial: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(serial, threading.Lock())

    def tokens(self) -> list[Any]:
        """The present, initialised tokens of the module (C_GetSlotList(TRUE) +
        C_GetTokenInfo); SoftHSM2's spare uninitialised slot is left out."""
        lib = self._library()
        try:
            return [t for t in lib.get_tokens() if t.flags & TokenFlag.TOKEN_INITIALIZED]
        except p11e.PKCS11Error as exc:
            raise from_pkcs11_error(exc) from exc

    def _open(self, serial: str) -> Any:
        lib = self._library()
        try:
            token = lib.get_token(token_serial=serial.encode("ascii"))
        except p11e.PKCS11Error as exc:
            raise from_pkcs11_error(exc) from exc
        pin = self._pin_for(serial)
        try:
            return token.open(user_pin=pin, rw=True)
        except p11e.UserAlreadyLoggedIn:
            return token.open(rw=True)
        except p11e.PKCS11Error as exc:
            raise from_pkcs11_error(exc) from exc

    def _drop(self, serial: str) -> None:
        session = self._sessions.pop(serial, None)
        if session is not None:
            try:
                session.close()
            except p11e.PKCS11Error:
                log.debug("closing a broken session of token %s failed", serial)

    @contextmanager
    def session(self, serial: str) -> Iterator[Any]:
        """Yield a logged-in read/write session on the token ``serial`` while holding
        that token's lock. A PKCS#11 error inside the block is translated into a
        :class:`BridgeError`; device and session errors also drop the cached session,
        so the next call reconnects (the token may have been re-inserted)."""
        with self._lock_for(serial):
            session = self._sessions.get(serial)
            if session is None:
                session = self._open(serial)
                self._sessions[serial] = session
            try:
                yield session
            except _RECONNECT as exc:
                self._drop(serial)
                raise from_pkcs11_error(exc) from exc
            except p11e.PKCS11Error as exc:
                raise from_pkcs11_error(exc) from exc
            except BridgeError:
                raise
