"""The backup file's encryption: a passphrase-derived key and AES-256-GCM over fixed-size
chunks, written and read as a stream (memory bounded by two chunks).

File layout::

    magic        8 bytes   b"SGWBKUP1"
    length       4 bytes   big-endian length of the header
    header       JSON      {"format", "cipher", "kdf": {"name", "salt", "n", "r", "p"},
                            "chunk_bytes", "nonce_prefix"} (salt and prefix base64)
    header MAC   32 bytes  HMAC-SHA256 of magic + length + header with the MAC key
    chunks       each: AES-256-GCM ciphertext of chunk_bytes plaintext bytes and its
                 16-byte tag; the last chunk holds 0..chunk_bytes bytes

The key is scrypt (RFC 7914) of the passphrase with the header's random salt and cost,
64 bytes: the first 32 the AES-256-GCM key (NIST SP 800-38D), the last 32 the header's
HMAC key, so a wrong passphrase is told from a damaged file before any chunk is read.
Chunk ``i``'s nonce is the random 4-byte prefix followed by ``i`` (8 bytes big-endian);
its associated data is SHA-256(magic + length + header) + ``i`` + a final-chunk flag
byte, so a reordered, removed, duplicated, truncated or extended chunk fails to open.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import struct
from typing import Any, BinaryIO, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from signing_gateway.backup.errors import BackupDamaged, BackupError, WrongPassphrase

__all__ = ["CHUNK_BYTES", "FORMAT", "MAGIC", "DecryptingReader", "EncryptingWriter", "Sink"]

MAGIC = b"SGWBKUP1"
FORMAT = 1
CHUNK_BYTES = 1024 * 1024
TAG_BYTES = 16
# scrypt cost: N = 2**17, r = 8 (128 MiB, about half a second), p = 1
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1
_MAX_HEADER = 4096


class Sink(Protocol):
    """Where the encrypted bytes go (a file open for writing)."""

    def write(self, data: bytes, /) -> int: ...


def _derive(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> tuple[bytes, bytes]:
    """The AES key and the header MAC key (32 bytes each) for ``passphrase``."""
    key = Scrypt(salt=salt, length=64, n=n, r=r, p=p).derive(passphrase)
    return key[:32], key[32:]


def _associated(header_digest: bytes, counter: int, final: bool) -> bytes:
    return header_digest + struct.pack(">QB", counter, 1 if final else 0)


class EncryptingWriter:
    """A write-only binary stream that encrypts what is written into ``out``.

    ``write`` buffers and seals every full chunk once more data follows it;
    :meth:`finish` seals the last chunk (0..chunk_bytes bytes) with the final flag. The
    caller closes ``out``."""

    def __init__(self, out: Sink, passphrase: bytes, *, chunk_bytes: int = CHUNK_BYTES):
        salt, prefix = os.urandom(16), os.urandom(4)
        enc_key, mac_key = _derive(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
        header = json.dumps(
            {
                "format": FORMAT,
                "cipher": "AES-256-GCM",
                "kdf": {
                    "name": "scrypt",
                    "salt": base64.b64encode(salt).decode(),
                    "n": SCRYPT_N,
                    "r": SCRYPT_R,
                    "p": SCRYPT_P,
                },
                "chunk_bytes": chunk_bytes,
                "nonce_prefix": base64.b64encode(prefix).decode(),
            },
            sort_keys=True,
        ).encode()
        head = MAGIC + struct.pack(">I", len(header)) + header
        out.write(head + hmac.new(mac_key, head, hashlib.sha256).digest())
        self._out = out
        self._aead = AESGCM(enc_key)
        self._prefix = prefix
        self._digest = hashlib.sha256(head).digest()
        self._chunk = chunk_bytes
        self._buffer = bytearray()
        self._counter = 0
        self._finished = False

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Buffer ``data``; seal and write the chunks it completes. Returns len(data)."""
        if self._finished:
            raise ValueError("write after finish")
        self._buffer += data
        while len(self._buffer) > self._chunk:
            self._seal(bytes(self._buffer[: self._chunk]), final=False)
            del self._buffer[: self._chunk]
        return len(data)

    def flush(self) -> None:
        """Nothing to do: only whole chunks are written."""

    def finish(self) -> None:
        """Seal and write the last chunk. Writing afterwards raises ValueError."""
        if not self._finished:
            self._seal(bytes(self._buffer), final=True)
            self._buffer.clear()
            self._finished = True

    def _seal(self, plain: bytes, *, final: bool) -> None:
        nonce = self._prefix + struct.pack(">Q", self._counter)
        aad = _associated(self._digest, self._counter, final)
        self._out.write(self._aead.encrypt(nonce, plain, aad))
        self._counter += 1


class DecryptingReader:
    """A read-only binary stream of the plaintext of the backup file ``source``.

    The header is checked when built: :class:`WrongPassphrase` when its MAC does not
    match (a wrong passphrase, or an altered header), :class:`BackupDamaged` when it is
    not a backup file. ``read`` opens chunk after chunk and raises
    :class:`BackupDamaged` when one fails (altered, reordered, truncated, extended).
    Plaintext before the failing chunk has been returned: callers write it nowhere
    final until :meth:`drain` has returned."""

    def __init__(self, source: BinaryIO, passphrase: bytes) -> None:
        magic = source.read(len(MAGIC))
        if magic != MAGIC:
            raise BackupDamaged("not a signing-gateway backup file (its first bytes differ)")
        (length,) = struct.unpack(">I", _read_exact(source, 4))
        if length > _MAX_HEADER:
            raise BackupDamaged("the backup file's header is too long")
        header = _read_exact(source, length)
        head = magic + struct.pack(">I", length) + header
        fields = _parse_header(header)
        salt = base64.b64decode(fields["kdf"]["salt"])
        kdf = fields["kdf"]
        enc_key, mac_key = _derive(passphrase, salt, kdf["n"], kdf["r"], kdf["p"])
        expected = hmac.new(mac_key, head, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _read_exact(source, 32)):
            raise WrongPassphrase(
                "wrong passphrase (or the backup file's header was altered): nothing restored"
            )
        self._source = source
        self._aead = AESGCM(enc_key)
        self._prefix = base64.b64decode(fields["nonce_prefix"])
        self._digest = hashlib.sha256(head).digest()
        self._sealed = fields["chunk_bytes"] + TAG_BYTES
        self._ahead: bytes | None = None
        self._plain = bytearray()
        self._counter = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` plaintext bytes (all the rest when negative); b"" at the end."""
        while (size < 0 or len(self._plain) < size) and not self._done:
            self._plain += self._open_next()
        if size < 0:
            size = len(self._plain)
        out = bytes(self._plain[:size])
        del self._plain[:size]
        return out

    def drain(self) -> None:
        """Open every chunk left, so that the whole file is known to be intact."""
        while not self._done:
            self._open_next()

    def _open_next(self) -> bytes:
        current = (
            self._ahead if self._ahead is not None else _read_exact(self._source, self._sealed)
        )
        following = _read_exact(self._source, self._sealed) if len(current) == self._sealed else b""
        final = not following
        if len(current) < TAG_BYTES:
            raise BackupDamaged("the backup file is truncated: its end is missing")
        nonce = self._prefix + struct.pack(">Q", self._counter)
        try:
            plain = self._aead.decrypt(
                nonce, current, _associated(self._digest, self._counter, final)
            )
        except InvalidTag as exc:
            raise BackupDamaged(
                f"the backup file was altered, cut short or extended (its chunk"
                f" {self._counter} does not open): nothing restored"
            ) from exc
        self._counter += 1
        self._ahead = following
        self._done = final
        return plain


def _read_exact(source: BinaryIO, size: int) -> bytes:
    """``size`` bytes of ``source``, fewer only at its end."""
    parts, left = [], size
    while left > 0:
        part = source.read(left)
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def _parse_header(header: bytes) -> dict[str, Any]:
    """The header's fields, checked against what this version reads and against costs
    that would exhaust memory. Raises BackupDamaged or BackupError."""
    try:
        fields = json.loads(header)
        kdf = fields["kdf"]
        checks = (
            kdf["name"] == "scrypt",
            fields["cipher"] == "AES-256-GCM",
            isinstance(kdf["n"], int) and 2**10 <= kdf["n"] <= 2**20,
            isinstance(kdf["r"], int) and 1 <= kdf["r"] <= 16,
            # scrypt takes 128 * n * r bytes: at most 256 MiB, twice what we write
            isinstance(kdf["n"], int)
            and isinstance(kdf["r"], int)
            and kdf["n"] * kdf["r"] <= 2**21,
            isinstance(kdf["p"], int) and 1 <= kdf["p"] <= 4,
            isinstance(fields["chunk_bytes"], int) and 4096 <= fields["chunk_bytes"] <= 2**24,
            len(base64.b64decode(fields["nonce_prefix"])) == 4,
            len(base64.b64decode(kdf["salt"])) >= 16,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupDamaged("the backup file's header is unreadable") from exc
    if fields.get("format") != FORMAT:
        raise BackupError(
            "backup_format_unknown",
            f"backup format {fields.get('format')!r}: this version reads format {FORMAT}",
        )
    if not all(checks):
        raise BackupDamaged("the backup file's header names parameters this version refuses")
    return dict(fields)
