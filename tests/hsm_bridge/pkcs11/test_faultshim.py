"""Self-test of the PKCS#11 fault-injection shim (tests/shim.py, tests/pkcs11_shim/), driven
with python-pkcs11 directly, not through the gateway: the shim's SoftHSM2 lives next to a
plain SoftHSM2 in one process with separate tokens, and each directive produces the error
python-pkcs11 maps it to."""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pkcs11
import pytest
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11e

from tests.shim import (
    CKR_DEVICE_ERROR,
    CKR_DEVICE_REMOVED,
    CKR_PIN_LOCKED,
    FaultShim,
    ShimUnavailable,
    find_softhsm_module,
)

SO_PIN = "5678"
USER_PIN = "1234"
SHIM_LABEL = "faulty"
PLAIN_LABEL = "plain"
KEY_LABEL = "signing-key"
MECH = Mechanism.SHA256_RSA_PKCS


@dataclass
class Module:
    lib: Any  # pkcs11._pkcs11.lib
    label: str

    def token(self) -> pkcs11.Token:
        return self.lib.get_token(token_label=self.label)

    def labels(self) -> set[str]:
        return {token.label for token in self.lib.get_tokens() if token.label}


def _make_key(module: Module) -> None:
    with module.token().open(rw=True, user_pin=USER_PIN) as session:
        session.generate_keypair(KeyType.RSA, 2048, store=True, label=KEY_LABEL)


def _key(session: pkcs11.Session) -> pkcs11.PrivateKey:
    return session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=KEY_LABEL)


def _close(session: pkcs11.Session) -> None:
    """Close a session that a test may have invalidated (removal) on purpose."""
    with contextlib.suppress(p11e.PKCS11Error):
        session.close()


@contextlib.contextmanager
def _unraisable() -> Iterator[list[Any]]:
    """Collect exceptions raised in ``__del__`` meanwhile (pytest would turn them into
    errors). python-pkcs11 leaves a search "active" when C_FindObjectsInit fails, and its
    ``__del__`` then calls C_FindObjectsFinal and raises that call's error too."""
    seen: list[Any] = []
    previous = sys.unraisablehook
    sys.unraisablehook = seen.append
    try:
        yield seen
    finally:
        gc.collect()
        sys.unraisablehook = previous


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> FaultShim:
    try:
        fault_shim = FaultShim(tmp_path_factory.mktemp("faultshim"))
    except ShimUnavailable as exc:
        pytest.fail(str(exc))
    fault_shim.init_token(SHIM_LABEL, SO_PIN, USER_PIN)
    return fault_shim


@pytest.fixture(scope="module")
def shim_module(shim: FaultShim) -> Iterator[Module]:
    with shim.environment():  # read by the shim once, at load
        lib = pkcs11.lib(str(shim.module_path))
    module = Module(lib, SHIM_LABEL)
    _make_key(module)
    yield module  # stays loaded until the process ends (see plain_module)


@pytest.fixture(scope="module")
def plain_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Module]:
    """The system SoftHSM2 module with a token directory of its own (SOFTHSM2_CONF at
    load). If an earlier test already loaded the system module (bound to its own
    configuration for the life of the process), a private copy stands in for it."""
    system = find_softhsm_module()
    tool = shutil.which("softhsm2-util")
    if system is None or tool is None:
        pytest.fail("SoftHSM2 is not installed: run scripts/system-deps.sh --test")
    work = tmp_path_factory.mktemp("plain-softhsm")
    token_dir = work / "tokens"
    token_dir.mkdir()
    conf = work / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {token_dir}\nobjectstore.backend = file\nlog.level = ERROR\n",
        "utf-8",
    )
    subprocess.run(
        [tool, "--init-token", "--free", "--label", PLAIN_LABEL]
        + ["--so-pin", SO_PIN, "--pin", USER_PIN],
        env=dict(os.environ, SOFTHSM2_CONF=str(conf)),
        check=True,
        capture_output=True,
        timeout=60,
    )
    path = str(system)
    private_copy = path in getattr(pkcs11, "_loaded", {})
    if private_copy:
        path = str(work / "libsofthsm2-plain.so")
        shutil.copyfile(system.resolve(), path)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOFTHSM2_CONF", str(conf))  # SoftHSM2 reads it in C_Initialize
        lib = pkcs11.lib(path)
    module = Module(lib, PLAIN_LABEL)
    _make_key(module)
    yield module
    if not private_copy:
        pkcs11.unload(path)  # later tests load the system module with their own config
    # A private copy stays loaded until the process ends: unloading it while objects
    # made from it still exist makes their destructors fail at interpreter exit.


@pytest.fixture
def shim_session(shim: FaultShim, shim_module: Module) -> Iterator[pkcs11.Session]:
    shim.clear()
    session = shim_module.token().open(user_pin=USER_PIN)
    yield session
    shim.clear()
    _close(session)


def test_two_softhsm_instances_in_one_process_keep_their_own_tokens(
    shim_module: Module, plain_module: Module
) -> None:
    assert SHIM_LABEL in shim_module.labels()
    assert PLAIN_LABEL not in shim_module.labels()
    assert PLAIN_LABEL in plain_module.labels()
    assert SHIM_LABEL not in plain_module.labels()
    for module in (shim_module, plain_module):
        session = module.token().open(user_pin=USER_PIN)
        try:
            assert len(_key(session).sign(b"digest", mechanism=MECH)) == 256
        finally:
            session.close()


def test_unknown_directive_is_refused(shim: FaultShim) -> None:
    with pytest.raises(ValueError, match="bogus"):
        shim.set(bogus=1)


@pytest.mark.parametrize(
    ("rv", "error"),
    [(CKR_DEVICE_ERROR, p11e.DeviceError), (CKR_DEVICE_REMOVED, p11e.DeviceRemoved)],
)
def test_sign_fault(
    shim: FaultShim, shim_session: pkcs11.Session, rv: int, error: type[Exception]
) -> None:
    key = _key(shim_session)
    shim.reset_calls()
    shim.set(sign=rv)
    with pytest.raises(error):
        key.sign(b"digest", mechanism=MECH)
    assert shim.calls() == ["sign"]
    shim.clear()
    # The real operation was finished, so the same session signs again at once.
    assert len(key.sign(b"digest", mechanism=MECH)) == 256
    assert shim.calls() == ["sign", "sign"]


def test_sign_delay_stalls_only_the_shim(
    shim: FaultShim, shim_session: pkcs11.Session, plain_module: Module
) -> None:
    plain_session = plain_module.token().open(user_pin=USER_PIN)
    try:
        slow_key, fast_key = _key(shim_session), _key(plain_session)
        spans: dict[str, tuple[float, float]] = {}

        def slow() -> None:
            start = time.monotonic()
            slow_key.sign(b"slow", mechanism=MECH)
            spans["slow"] = (start, time.monotonic())

        shim.set(sign_delay_ms=300)
        thread = threading.Thread(target=slow)
        thread.start()
        time.sleep(0.05)
        start = time.monotonic()
        fast_key.sign(b"fast", mechanism=MECH)
        spans["fast"] = (start, time.monotonic())
        thread.join(timeout=10)
    finally:
        plain_session.close()
    slow_start, slow_end = spans["slow"]
    fast_start, fast_end = spans["fast"]
    assert slow_end - slow_start >= 0.3
    assert slow_start < fast_start and fast_end < slow_end  # signed meanwhile
    assert fast_end - fast_start < 0.25


def test_login_fault_and_call_log(shim: FaultShim, shim_module: Module) -> None:
    shim.reset_calls()
    shim.set(login=CKR_PIN_LOCKED)
    with pytest.raises(p11e.PinLocked):
        shim_module.token().open(user_pin=USER_PIN)
    shim.clear()
    with pytest.raises(p11e.PinIncorrect):
        shim_module.token().open(user_pin="0000")
    assert shim.calls() == ["login 1", "login 1"]  # CKU_USER, each tried exactly once
    shim_module.token().open(user_pin=USER_PIN).close()


def test_removed_token(shim: FaultShim, shim_module: Module, shim_session: pkcs11.Session) -> None:
    key = _key(shim_session)
    token = shim_module.token()
    shim.set(removed=True)
    assert shim_module.lib.get_slots(token_present=True) == []
    assert SHIM_LABEL not in shim_module.labels()
    with pytest.raises(p11e.DeviceRemoved):
        key.sign(b"digest", mechanism=MECH)
    with pytest.raises(p11e.DeviceRemoved):
        key[Attribute.LABEL]
    with pytest.raises(p11e.DeviceRemoved):
        shim_session.generate_random(64)
    with _unraisable() as leaked, pytest.raises(p11e.DeviceRemoved):
        _key(shim_session)
    assert all(isinstance(each.exc_value, p11e.DeviceRemoved) for each in leaked)
    with pytest.raises(p11e.TokenNotPresent):
        token.open()

    shim.clear()  # re-inserted: old handles are void, the login is gone
    assert SHIM_LABEL in shim_module.labels()
    with pytest.raises(p11e.SessionHandleInvalid):
        key.sign(b"digest", mechanism=MECH)
    session = shim_module.token().open(user_pin=USER_PIN)
    try:
        assert len(_key(session).sign(b"digest", mechanism=MECH)) == 256
    finally:
        session.close()


def test_environment_is_restored(shim: FaultShim) -> None:
    before = {name: os.environ.get(name) for name in shim.env()}
    with shim.environment():
        assert Path(os.environ["FAULTSHIM_TARGET"]) == shim.softhsm_copy
    assert {name: os.environ.get(name) for name in shim.env()} == before
