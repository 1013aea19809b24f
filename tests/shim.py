"""Build and drive the PKCS#11 fault-injection shim (``tests/pkcs11_shim/faultshim.c``).

The shim is a PKCS#11 module that forwards to a *private copy* of SoftHSM2 (a separate
file, hence a separate instance in ``dlopen``) with its own ``softhsm2.conf`` and token
directory, so it can live in the same process as a plain SoftHSM2 module. Faults are
switched on and off by rewriting a small control file that the shim re-reads on every
wrapped call::

    shim = FaultShim(tmp_path / "shim")
    shim.init_token("faulty", so_pin="5678", user_pin="1234")
    with shim.environment():          # the shim reads FAULTSHIM_* when it is loaded
        lib = pkcs11.lib(str(shim.module_path))
    shim.set(sign=CKR_DEVICE_ERROR)   # C_Sign now fails with CKR_DEVICE_ERROR
    shim.clear()

Directives (see ``faultshim.c``): ``sign=CKR``, ``sign_delay_ms=N``, ``login=CKR``,
``removed=1``. Every C_Login and every signing attempt is appended to
:attr:`FaultShim.calls_file`, read back with :meth:`FaultShim.calls`.

Caveats: the FAULTSHIM_* variables are read once, when the shim is first loaded
(``C_GetFunctionList``), so one :class:`FaultShim` (one compiled copy) serves one module
instance per process; a removal is acted upon (real sessions closed) on the first wrapped
call that sees ``removed=1``; and SoftHSM2 scans its token directory at ``C_Initialize``,
so initialise tokens before loading the module.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "CKR_DEVICE_ERROR",
    "CKR_DEVICE_REMOVED",
    "CKR_PIN_INCORRECT",
    "CKR_PIN_LOCKED",
    "CKR_TOKEN_NOT_PRESENT",
    "SHIM_SOURCE",
    "SOFTHSM_MODULE_CANDIDATES",
    "FaultShim",
    "ShimUnavailable",
    "build_shim",
    "find_softhsm_module",
]

SHIM_SOURCE = Path(__file__).resolve().parent / "pkcs11_shim" / "faultshim.c"
SHIM_LIBRARY_NAME = "faultshim.so"
CFLAGS = ("-shared", "-fPIC", "-O2", "-Wall", "-Werror")
LIBS = ("-ldl", "-lpthread")

CKR_PIN_INCORRECT = 0xA0
CKR_PIN_LOCKED = 0xA4
CKR_DEVICE_ERROR = 0x30
CKR_DEVICE_REMOVED = 0x32
CKR_TOKEN_NOT_PRESENT = 0xE0

SOFTHSM_MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)

_DIRECTIVES = frozenset({"sign", "sign_delay_ms", "login", "removed"})
_CKR_DIRECTIVES = frozenset({"sign", "login"})


class ShimUnavailable(RuntimeError):
    """The shim cannot be built or used here (no C compiler, no SoftHSM2, ...)."""


def find_softhsm_module() -> Path | None:
    """Path of the system's SoftHSM2 PKCS#11 module, or None when it is not installed."""
    override = os.environ.get("FAULTSHIM_SOFTHSM2_MODULE")
    candidates = (override,) if override else SOFTHSM_MODULE_CANDIDATES
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return Path(candidate)
    return None


def build_shim(out_dir: Path) -> Path:
    """Compile ``faultshim.c`` into ``out_dir/faultshim.so`` and return its path.

    Nothing is compiled when the library is newer than the source. The library is
    written under a temporary name and renamed into place, so a concurrent build or a
    process that has the old copy loaded never sees a half-written file.

    Raises ShimUnavailable when no C compiler is found or compilation fails.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / SHIM_LIBRARY_NAME
    if target.exists() and target.stat().st_mtime_ns >= SHIM_SOURCE.stat().st_mtime_ns:
        return target
    compiler = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise ShimUnavailable(
            "no C compiler found (gcc/cc not on PATH, CC unset): cannot build the "
            "PKCS#11 fault-injection shim"
        )
    partial = out_dir / f".{SHIM_LIBRARY_NAME}.{os.getpid()}.tmp"
    result = subprocess.run(
        [compiler, *CFLAGS, "-o", str(partial), str(SHIM_SOURCE), *LIBS],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise ShimUnavailable(f"compiling {SHIM_SOURCE.name} failed:\n{result.stderr}")
    os.replace(partial, target)
    return target


def _render(name: str, value: int | bool | str) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{name} must not be negative")
        return hex(value) if name in _CKR_DIRECTIVES else str(value)
    text = str(value).strip()
    if not text or "\n" in text or "=" in text:
        raise ValueError(f"bad value for {name}: {value!r}")
    int(text, 0)  # the shim parses numbers only; fail here rather than silently there
    return text


class FaultShim:
    """One fault-injecting PKCS#11 module: the compiled shim, a private copy of SoftHSM2
    it forwards to, a private SoftHSM2 configuration and token directory, the control
    file and the calls log, all under ``work_dir``."""

    def __init__(
        self, work_dir: Path, softhsm_module: Path | None = None, os_locking: bool = False
    ) -> None:
        """Build the shim into ``work_dir`` and lay out its private SoftHSM2.

        ``os_locking=True`` makes the shim initialise SoftHSM2 with CKF_OS_LOCKING_OK
        when the caller passes no C_Initialize arguments (python-pkcs11 passes none, and
        SoftHSM2 then turns off all its internal locking, so concurrent sessions in
        several threads crash it). The default keeps plain SoftHSM2's behaviour.

        Raises ShimUnavailable when SoftHSM2 is not installed or the shim cannot be
        compiled."""
        real = softhsm_module or find_softhsm_module()
        if real is None:
            raise ShimUnavailable("SoftHSM2 is not installed (no libsofthsm2.so found)")
        self.work_dir = work_dir
        self.os_locking = os_locking
        work_dir.mkdir(parents=True, exist_ok=True)
        self.module_path: Path = build_shim(work_dir)
        # A different file, so dlopen() gives this copy its own statics (its own
        # SoftHSM2 singleton), independent of any plain SoftHSM2 in the process.
        self.softhsm_copy: Path = work_dir / "libsofthsm2-private.so"
        shutil.copyfile(real.resolve(), self.softhsm_copy)
        self.token_dir: Path = work_dir / "tokens"
        self.token_dir.mkdir(mode=0o700, exist_ok=True)
        self.softhsm2_conf: Path = work_dir / "softhsm2.conf"
        self.softhsm2_conf.write_text(
            f"directories.tokendir = {self.token_dir}\n"
            "objectstore.backend = file\n"
            "log.level = ERROR\n"
            "slots.removable = false\n",
            "utf-8",
        )
        self.control_file: Path = work_dir / "control"
        self.calls_file: Path = work_dir / "calls.log"
        self.clear()

    def env(self) -> dict[str, str]:
        """The FAULTSHIM_* variables the shim needs; they must be in the process
        environment when the module is loaded (its first ``C_GetFunctionList``)."""
        return {
            "FAULTSHIM_TARGET": str(self.softhsm_copy),
            "FAULTSHIM_CONTROL": str(self.control_file),
            "FAULTSHIM_SOFTHSM2_CONF": str(self.softhsm2_conf),
            "FAULTSHIM_OS_LOCKING": "1" if self.os_locking else "0",
        }

    @contextmanager
    def environment(self) -> Iterator[dict[str, str]]:
        """Put :meth:`env` into ``os.environ`` for the duration of the block (load the
        module inside it), then restore the previous values."""
        variables = self.env()
        saved = {name: os.environ.get(name) for name in variables}
        os.environ.update(variables)
        try:
            yield variables
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def set(self, **directives: int | bool | str) -> None:
        """Replace the active faults with ``directives`` (anything not named is off).

        ``sign`` / ``login`` take a CK_RV (e.g. ``0x30``), ``sign_delay_ms`` a number of
        milliseconds, ``removed`` a bool. The control file is replaced atomically, so the
        shim never reads half of it."""
        unknown = set(directives) - _DIRECTIVES
        if unknown:
            raise ValueError(f"unknown shim directive(s): {', '.join(sorted(unknown))}")
        lines = [f"calls_file={self.calls_file}"]
        lines += [f"{name}={_render(name, value)}" for name, value in directives.items()]
        partial = self.control_file.with_name(f".{self.control_file.name}.tmp")
        partial.write_text("\n".join(lines) + "\n", "utf-8")
        os.replace(partial, self.control_file)

    def clear(self) -> None:
        """Switch every fault off (calls are still logged)."""
        self.set()

    def calls(self) -> list[str]:
        """The wrapped calls so far, oldest first: ``"sign"`` per signing attempt (size
        queries excluded) and ``"login <user_type>"`` per C_Login."""
        try:
            return self.calls_file.read_text("utf-8").splitlines()
        except FileNotFoundError:
            return []

    def reset_calls(self) -> None:
        """Forget the calls logged so far."""
        self.calls_file.unlink(missing_ok=True)

    def init_token(self, label: str, so_pin: str, user_pin: str) -> int:
        """Initialise a token labelled ``label`` in the shim's private token directory
        (``softhsm2-util --init-token --free``) and return its slot number. Do this
        before the module is loaded: SoftHSM2 scans its token directory at
        C_Initialize."""
        tool = shutil.which("softhsm2-util")
        if tool is None:
            raise ShimUnavailable("softhsm2-util not found: install the softhsm2 package")
        result = subprocess.run(
            [tool, "--init-token", "--free", "--label", label]
            + ["--so-pin", so_pin, "--pin", user_pin],
            env=dict(os.environ, SOFTHSM2_CONF=str(self.softhsm2_conf)),
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if result.returncode != 0:
            raise RuntimeError(f"softhsm2-util could not initialise token {label!r}")
        match = re.search(r"reassigned to slot (\d+)", result.stdout)
        return int(match.group(1)) if match else -1
