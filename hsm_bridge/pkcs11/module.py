"""Loading a PKCS#11 module so that several threads may call it at once.

python-pkcs11 calls C_Initialize with NULL arguments, which tells the module that the
application will not call it from several threads at once (PKCS#11 v2.40 §5.4); SoftHSM2
then takes no locks, and concurrent sessions fail with CKR_GENERAL_ERROR or crash. Here
the module is initialised with CK_C_INITIALIZE_ARGS{flags = CKF_OS_LOCKING_OK} through
ctypes before python-pkcs11 uses it. A module that answers CKR_CANT_LOCK is initialised
with NULL arguments instead and reported as not thread-safe, so the caller serialises
every call into it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

import pkcs11
import pkcs11.exceptions as p11e
from pkcs11 import _pkcs11

__all__ = ["LoadedModule", "load_module"]

log = logging.getLogger(__name__)

CKR_OK = 0x0
CKR_CANT_LOCK = 0xA
CKR_CRYPTOKI_ALREADY_INITIALIZED = 0x191
CKF_OS_LOCKING_OK = 0x2


class _InitArgs(ctypes.Structure):
    """CK_C_INITIALIZE_ARGS (PKCS#11 v2.40 §3.6)."""

    _fields_ = [
        ("CreateMutex", ctypes.c_void_p),
        ("DestroyMutex", ctypes.c_void_p),
        ("LockMutex", ctypes.c_void_p),
        ("UnlockMutex", ctypes.c_void_p),
        ("flags", ctypes.c_ulong),
        ("pReserved", ctypes.c_void_p),
    ]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte)]


_InitFn = ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.POINTER(_InitArgs))
_FinalizeFn = ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.c_void_p)
_LoginFn = ctypes.CFUNCTYPE(
    ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_ulong
)
_LogoutFn = ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.c_ulong)


class _FunctionListHead(ctypes.Structure):
    """The first members of CK_FUNCTION_LIST (PKCS#11 v2.40 §3.6), up to C_Logout."""

    _fields_ = [
        ("version", _Version),
        ("C_Initialize", _InitFn),
        ("C_Finalize", _FinalizeFn),
        *[(f"_unused{i}", ctypes.c_void_p) for i in range(2, 18)],
        ("C_Login", _LoginFn),
        ("C_Logout", _LogoutFn),
    ]


def _function_list(path: str) -> _FunctionListHead:
    library = ctypes.CDLL(path)  # the same handle python-pkcs11's dlopen gets
    head = ctypes.POINTER(_FunctionListHead)()
    rv = library.C_GetFunctionList(ctypes.byref(head))
    if rv != CKR_OK:
        raise OSError(f"C_GetFunctionList of {path} returned {rv:#x}")
    return head.contents


class _ThreadedLib(_pkcs11.lib):
    """python-pkcs11's module object with our own C_Initialize."""

    locking = True

    def initialize(self) -> None:
        """C_Initialize with CKF_OS_LOCKING_OK (or NULL after CKR_CANT_LOCK)."""
        head = _function_list(_PENDING_PATH.path)
        args = _InitArgs(None, None, None, None, CKF_OS_LOCKING_OK, None)
        rv = head.C_Initialize(ctypes.byref(args))
        if rv == CKR_CANT_LOCK:
            type(self).locking = False
            rv = head.C_Initialize(None)
        if rv not in (CKR_OK, CKR_CRYPTOKI_ALREADY_INITIALIZED):
            raise OSError(f"C_Initialize of {_PENDING_PATH.path} returned {rv:#x}")


class _Pending(threading.local):
    path = ""


_PENDING_PATH = _Pending()
_LOCK = threading.Lock()
_LOADED: dict[str, LoadedModule] = {}


CKU_USER = 1

# C_Login / C_Logout answers, as python-pkcs11's exception classes.
_ERRORS: dict[int, type[p11e.PKCS11Error]] = {
    0x30: p11e.DeviceError,
    0x32: p11e.DeviceRemoved,
    0xA0: p11e.PinIncorrect,
    0xA1: p11e.PinInvalid,
    0xA2: p11e.PinLenRange,
    0xA4: p11e.PinLocked,
    0xB3: p11e.SessionHandleInvalid,
    0xE0: p11e.TokenNotPresent,
    0x100: p11e.UserAlreadyLoggedIn,
    0x101: p11e.UserNotLoggedIn,
}


def _raise_for(rv: int) -> None:
    if rv == CKR_OK:
        return
    cls = _ERRORS.get(rv)
    raise cls() if cls is not None else p11e.PKCS11Error(f"CKR {rv:#x}")


@dataclass(eq=False)
class LoadedModule:
    """A PKCS#11 module initialised in process ``pid``: the python-pkcs11 ``lib`` and
    whether it may be called from several threads at once (``thread_safe``).

    :meth:`login` and :meth:`logout` call C_Login / C_Logout on a session handle
    directly: python-pkcs11 only logs in while opening a session, and leaks that session
    when the PIN is wrong."""

    path: str
    lib: Any
    thread_safe: bool
    pid: int
    _functions: _FunctionListHead | None = None

    def _head(self) -> _FunctionListHead:
        if self._functions is None:
            self._functions = _function_list(self.path)
        return self._functions

    def login(self, handle: int, pin: str) -> None:
        """C_Login(CKU_USER) on session ``handle``. Raises python-pkcs11's exception
        for the answer (PinIncorrect, PinLocked, UserAlreadyLoggedIn...)."""
        data = pin.encode("utf-8")
        _raise_for(self._head().C_Login(handle, CKU_USER, data, len(data)))

    def logout(self, handle: int) -> None:
        """C_Logout on session ``handle`` (ends the login of every session of the
        token in this process)."""
        _raise_for(self._head().C_Logout(handle))


def load_module(path: str) -> LoadedModule:
    """The module at ``path`` (shared library), initialised once per process for
    multi-threaded use; after a fork the child initialises it again (C_Finalize, then
    C_Initialize), as PKCS#11 v2.40 §6.7.1 asks. Raises OSError when it cannot be
    loaded or initialised."""
    with _LOCK:
        loaded = _LOADED.get(path)
        if loaded is not None and loaded.pid == os.getpid():
            return loaded
        if loaded is not None:
            head = _function_list(path)
            head.C_Finalize(None)  # the parent's state is void in the child
            _PENDING_PATH.path = path
            loaded.lib.initialize()
            loaded.pid = os.getpid()
            return loaded
        _PENDING_PATH.path = path
        cls = type(f"Lib_{len(_LOADED)}", (_ThreadedLib,), {"locking": True})
        lib = cls(path)
        thread_safe = bool(getattr(cls, "locking", False))
        loaded = LoadedModule(path=path, lib=lib, thread_safe=thread_safe, pid=os.getpid())
        if not loaded.thread_safe:
            log.warning("PKCS#11 module %s cannot lock: calls into it are serialised", path)
        _LOADED[path] = loaded
        # Any other python-pkcs11 user in this process gets the same module object.
        pkcs11._loaded[path] = lib
        return loaded
