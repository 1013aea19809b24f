"""SoftHSM2, the embedded default token: a private configuration and token directory
inside the installation (never the system-wide one), and token initialisation with the
distribution's ``softhsm2-util``."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

__all__ = [
    "SOFTHSM_MODULE_CANDIDATES",
    "find_softhsm_module",
    "init_token",
    "token_labels",
    "token_serials",
    "write_config",
]

SOFTHSM_MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)


def find_softhsm_module() -> str | None:
    """Path of the SoftHSM2 PKCS#11 module, or None when SoftHSM2 is not installed."""
    for candidate in SOFTHSM_MODULE_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    return None


def write_config(conf_path: Path, token_dir: Path) -> None:
    """Write a softhsm2.conf at ``conf_path`` that keeps tokens in ``token_dir`` (file
    object store). Existing files are left alone (idempotent)."""
    token_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(token_dir, 0o700)
    if conf_path.exists():
        return
    conf_path.write_text(
        f"directories.tokendir = {token_dir}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n"
        # Like hardware: a forked worker must initialise PKCS#11 again.
        "library.reset_on_fork = true\n",
        "utf-8",
    )


def init_token(conf_path: Path, label: str, so_pin: str, user_pin: str) -> str:
    """Initialise a new SoftHSM2 token labelled ``label`` in the first free slot
    (``softhsm2-util --init-token --free``) and return its serial number. PINs go
    through the child's arguments only (SoftHSM2's tool has no other way); they are
    never logged.

    Raises RuntimeError when softhsm2-util is missing or fails."""
    before = {serial for _, serial in token_serials(conf_path)}
    result = _softhsm2_util(
        conf_path,
        "--init-token",
        "--free",
        "--label",
        label,
        "--so-pin",
        so_pin,
        "--pin",
        user_pin,
    )
    if result.returncode != 0:
        raise RuntimeError(f"softhsm2-util could not initialise token {label!r}")
    new = [s for name, s in token_serials(conf_path) if name == label and s not in before]
    if len(new) != 1:
        raise RuntimeError(f"the new token {label!r} does not show in softhsm2-util's slots")
    return new[0]


def token_labels(conf_path: Path) -> set[str]:
    """Labels of the initialised tokens in the installation (``--show-slots``), read
    without loading the module into this process."""
    return {label for label, _ in token_serials(conf_path)}


def token_serials(conf_path: Path) -> list[tuple[str, str]]:
    """(label, serial number) of each initialised token in the installation
    (``softhsm2-util --show-slots``). Raises RuntimeError when softhsm2-util is
    missing."""
    tokens: list[tuple[str, str]] = []
    serial = ""
    for line in _softhsm2_util(conf_path, "--show-slots").stdout.splitlines():
        key, _, value = line.strip().partition(":")
        if key == "Serial number":
            serial = value.strip()
        elif key == "Label" and value.strip() and serial:
            tokens.append((value.strip(), serial))
            serial = ""
    return tokens


def _softhsm2_util(conf_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("softhsm2-util")
    if tool is None:
        raise RuntimeError("softhsm2-util not found: install the softhsm2 package")
    env = dict(os.environ, SOFTHSM2_CONF=str(conf_path))
    return subprocess.run(
        [tool, *args], env=env, capture_output=True, text=True, check=False, timeout=60
    )
