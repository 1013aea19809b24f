"""Reading an installation's data folder into a tar stream while the gateway serves:
SQLite files through SQLite's online backup API, every other file read consistently.

- A SQLite file (the gateway's database, the bridge's signer records and spent
  activations) is copied with ``sqlite3.Connection.backup`` into a temporary file: a
  transaction-consistent snapshot whatever the writers do; its ``-wal``/``-shm`` side
  files are not copied.
- Documents are written once under a new name and renamed into place
  (:class:`~gateway.requests.document_store.DocumentStore`), so an open file never
  changes; they are read after the database's snapshot, so every document the snapshot
  names is there (documents newer than it come along too, unreferenced).
- SoftHSM2 rewrites its object files in place under a POSIX record lock: a small file is
  read whole while holding a shared lock on it (``lockf``), which waits for a writer.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import sqlite3
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

__all__ = ["MemberRecord", "TarWriter", "is_sqlite", "sqlite_snapshot"]

_SQLITE_MAGIC = b"SQLite format 3\x00"
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
# files up to this size are read whole under a shared lock; larger ones are streamed
# from an open descriptor (documents: never rewritten in place)
_WHOLE_READ_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class MemberRecord:
    """One file in a backup: ``path`` relative to the data folder (POSIX), its
    ``sha256`` (hex) and ``size`` (bytes) as stored, how it was read (``kind``: ``file``
    or ``sqlite``) and its permission bits."""

    path: str
    sha256: str
    size: int
    kind: str
    mode: int

    def as_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "size": self.size,
            "kind": self.kind,
            "mode": self.mode,
        }


def is_sqlite(path: Path) -> bool:
    """Whether ``path`` starts with the SQLite 3 file header."""
    try:
        with path.open("rb") as handle:
            return handle.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError:
        return False


def sqlite_snapshot(source: Path, target: Path) -> None:
    """Copy the SQLite database ``source`` into the new file ``target`` with SQLite's
    online backup API (one read transaction: a consistent state even while other
    processes write)."""
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True, timeout=60)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


class _Hashing(io.RawIOBase):
    """Reads ``inner``, hashing what passes."""

    def __init__(self, inner: BinaryIO) -> None:
        self._inner = inner
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._inner.read(size)
        self.digest.update(data)
        return data


@dataclass
class TarWriter:
    """Adds members under ``data/`` to the stream tar ``tar`` and keeps their records."""

    tar: tarfile.TarFile
    records: list[MemberRecord] = field(default_factory=list)
    directories: list[str] = field(default_factory=list)

    def add_directory(self, relative: str, mode: int) -> None:
        """A directory entry (so empty folders come back)."""
        info = tarfile.TarInfo(f"data/{relative}")
        info.type = tarfile.DIRTYPE
        info.mode = mode & 0o777
        self.tar.addfile(info)
        self.directories.append(relative)

    def add_file(self, relative: str, path: Path, *, kind: str = "file") -> bool:
        """Add the regular file ``path`` as ``relative``; False when it vanished
        meanwhile (a request discarded while its files were listed)."""
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            return False
        with handle:
            status = os.fstat(handle.fileno())
            if status.st_size <= _WHOLE_READ_BYTES:
                data = _read_locked(handle)
                self._add(relative, io.BytesIO(data), len(data), status.st_mode, kind)
            else:
                self._add(relative, handle, status.st_size, status.st_mode, kind)
        return True

    def add_bytes(self, name: str, data: bytes) -> None:
        """A member outside ``data/`` (the manifest), not recorded."""
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o600
        self.tar.addfile(info, io.BytesIO(data))

    def _add(self, relative: str, source: BinaryIO, size: int, mode: int, kind: str) -> None:
        info = tarfile.TarInfo(f"data/{relative}")
        info.size = size
        info.mode = stat.S_IMODE(mode)
        hashing = _Hashing(source)
        self.tar.addfile(info, hashing)
        record = MemberRecord(relative, hashing.digest.hexdigest(), size, kind, info.mode)
        self.records.append(record)


def _read_locked(handle: BinaryIO) -> bytes:
    """The whole content of ``handle`` read under a shared POSIX record lock (waits for
    a SoftHSM2 writer holding its exclusive lock); without the lock where the file
    system refuses locks."""
    locked = True
    try:
        fcntl.lockf(handle.fileno(), fcntl.LOCK_SH)
    except OSError:
        locked = False
    try:
        return handle.read()
    finally:
        if locked:
            fcntl.lockf(handle.fileno(), fcntl.LOCK_UN)


def walk(root: Path, skip: Callable[[Path], bool]) -> list[tuple[Path, list[Path]]]:
    """The folders under ``root`` (itself excluded), each with its files, sorted,
    leaving out what ``skip`` says; symbolic links are neither followed nor listed."""
    found: list[tuple[Path, list[Path]]] = []
    for folder, dirnames, filenames in os.walk(root):
        here = Path(folder)
        dirnames[:] = sorted(d for d in dirnames if not skip(here / d))
        files = sorted(here / f for f in filenames if not skip(here / f))
        found.append((here, [f for f in files if f.is_file() and not f.is_symlink()]))
    return found
