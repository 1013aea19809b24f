"""Token PINs kept by the bridge, encrypted at rest (Fernet: AES-128-CBC + HMAC-SHA256).

The file is JSON ``{token_serial: fernet_token}``; the key is the installation's
secret key (urlsafe base64, 32 bytes). PINs are never logged and never returned by any
API; only :class:`hsm_bridge.pkcs11.tokens.TokenPool` reads them, to call C_Login.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from hsm_bridge.errors import PinIncorrect, PinRequired

__all__ = ["PinStore"]


class PinStore:
    """Encrypted PINs by token serial, stored in the JSON file ``path``."""

    def __init__(self, path: Path, key: bytes) -> None:
        self._path = path
        self._fernet = Fernet(key)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._data: dict[str, str] = {}

    def _load(self) -> dict[str, str]:
        """The file's content, re-read only when its size or modification time changed
        (another process, e.g. ``tokens set-pin``, may have replaced it)."""
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            return {}
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if stamp != self._stamp:
            self._data = dict(json.loads(self._path.read_text("utf-8")))
            self._stamp = stamp
        return dict(self._data)

    def put(self, token_serial: str, pin: str) -> None:
        """Store (or replace) the user PIN of ``token_serial``; the file is replaced
        atomically (write to a temporary file, then rename) and made owner-only."""
        with self._lock:
            data = self._load()
            data[token_serial] = self._fernet.encrypt(pin.encode()).decode("ascii")
            tmp = self._path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True), "utf-8")
            os.chmod(tmp, 0o600)
            os.replace(tmp, self._path)

    def has(self, token_serial: str) -> bool:
        """Whether a PIN is stored for ``token_serial`` (PIN policy ``stored``)."""
        with self._lock:
            return token_serial in self._load()

    def remove(self, token_serial: str) -> None:
        """Forget the stored PIN of ``token_serial`` (switching it to PIN policy
        ``signer``)."""
        with self._lock:
            data = self._load()
            if data.pop(token_serial, None) is None:
                return
            tmp = self._path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True), "utf-8")
            os.chmod(tmp, 0o600)
            os.replace(tmp, self._path)

    def get(self, token_serial: str) -> str:
        """Return the PIN of ``token_serial``.

        Raises :class:`PinRequired` when no PIN is stored (PIN policy ``signer``: the
        signer gives it with each approval) and :class:`PinIncorrect` when it cannot be
        decrypted (wrong installation key): the bridge never calls C_Login with a guess.
        """
        with self._lock:
            token = self._load().get(token_serial)
        if token is None:
            raise PinRequired("no PIN is stored for this token: the signer must give it")
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except InvalidToken as exc:
            raise PinIncorrect("the stored PIN cannot be decrypted") from exc
