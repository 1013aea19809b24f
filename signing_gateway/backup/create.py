"""``signing-gateway backup``: one encrypted file holding an installation's data folder,
made while the gateway serves.

Order: the SQLite database's snapshot first, then the folder's other files (documents,
the bridge's signer records, SoftHSM2 tokens, secrets, settings), so that every
document and key the database names is in the backup. On PostgreSQL the database is not
in the file: it is dumped with ``pg_dump`` first (docs/backup.md). The file is written
as ``FILE.partial`` and renamed when complete. The audit entry ``backup.created`` (with
the file's SHA-256) is written after the snapshot, so the backup does not hold it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tarfile
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.engine import make_url

from gateway.audit import log as audit
from gateway.config import Settings
from gateway.context import open_database
from signing_gateway.backup.errors import BackupError
from signing_gateway.backup.layout import MANIFEST_NAME, outside_paths
from signing_gateway.backup.snapshot import (
    SQLITE_SIDE_FILES,
    TarWriter,
    is_sqlite,
    sqlite_snapshot,
    walk,
)
from signing_gateway.backup.stream import FORMAT, EncryptingWriter

__all__ = ["BackupReport", "create_backup"]


@dataclass(frozen=True)
class BackupReport:
    """What ``create_backup`` wrote: the file, its SHA-256 (hex), how many files and
    bytes of the data folder it holds, the database's dialect and whether it is in the
    file, and warnings for the operator (what is not in it)."""

    path: Path
    sha256: str
    files: int
    bytes: int
    dialect: str
    database_included: bool
    warnings: tuple[str, ...]


class _HashingFile:
    """Writes to ``inner`` and hashes what passes (the backup file's SHA-256)."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.inner.write(data)


def create_backup(
    settings: Settings, target: Path, passphrase: bytes, *, now: dt.datetime, actor: str
) -> BackupReport:
    """Write the encrypted backup of the installation ``settings`` names to ``target``
    (replaced atomically when it exists) and audit it as ``actor``. ``now`` is the
    manifest's creation time and the audit entry's. Raises BackupError
    (``backup_no_installation``, ``backup_folder_missing``,
    ``backup_database_outside``) and OSError."""
    data_dir = settings.data_dir.resolve()
    if not settings.secrets_dir.is_dir():
        raise BackupError("backup_no_installation", f"no installation in {data_dir}")
    target = target.resolve()
    if not target.parent.is_dir():
        raise BackupError("backup_folder_missing", f"{target.parent} does not exist")
    partial = target.with_name(target.name + ".partial")
    url = make_url(settings.effective_database_url)
    dialect = url.get_backend_name()
    database = Path(url.database or "").resolve() if dialect == "sqlite" else None
    if database is not None and not database.is_relative_to(data_dir):
        raise BackupError(
            "backup_database_outside",
            f"the SQLite database {database} is outside the data folder: move it in",
        )
    try:
        with (
            tempfile.TemporaryDirectory(dir=target.parent, prefix=".sgw-backup-") as scratch,
            partial.open("wb") as out,
        ):
            hashing = _HashingFile(out)
            writer = EncryptingWriter(hashing, passphrase)
            # the typeshed wants a seekable file: a "w|" stream only writes
            stream = tarfile.open(  # type: ignore[call-overload]
                fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT
            )
            with stream as tar:
                members = TarWriter(tar)
                skip = {target, partial, Path(scratch)}
                _add_folder(members, data_dir, database, Path(scratch), skip)
                manifest = _manifest(settings, members, dialect, database, now)
                members.add_bytes(MANIFEST_NAME, manifest)
            writer.finish()
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, target)
        _fsync_folder(target.parent)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    report = BackupReport(
        path=target,
        sha256=hashing.digest.hexdigest(),
        files=len(members.records),
        bytes=sum(r.size for r in members.records),
        dialect=dialect,
        database_included=database is not None,
        warnings=tuple(_warnings(settings, dialect)),
    )
    _audit(settings, report, now=now, actor=actor)
    return report


def _add_folder(
    members: TarWriter, data_dir: Path, database: Path | None, scratch: Path, skip: set[Path]
) -> None:
    """The database's snapshot, then every folder and file under ``data_dir``."""
    sides = set()
    if database is not None:
        copy = scratch / "database"
        sqlite_snapshot(database, copy)
        members.add_file(database.relative_to(data_dir).as_posix(), copy, kind="sqlite")
        sides = {database.with_name(database.name + s) for s in SQLITE_SIDE_FILES}
        skip = skip | {database}

    def skipped(path: Path) -> bool:
        return path in skip or path in sides or path.is_symlink()

    for folder, files in walk(data_dir, skipped):
        if folder != data_dir:
            members.add_directory(folder.relative_to(data_dir).as_posix(), folder.stat().st_mode)
        for path in files:
            relative = path.relative_to(data_dir).as_posix()
            if path.name.endswith(SQLITE_SIDE_FILES) and is_sqlite(_main_of(path)):
                continue
            if is_sqlite(path):
                copy = scratch / f"sqlite-{len(members.records)}"
                sqlite_snapshot(path, copy)
                members.add_file(relative, copy, kind="sqlite")
                copy.unlink()
            else:
                members.add_file(relative, path)


def _main_of(side: Path) -> Path:
    """The database file a ``-wal``/``-shm``/``-journal`` file belongs to."""
    for suffix in SQLITE_SIDE_FILES:
        if side.name.endswith(suffix):
            return side.with_name(side.name[: -len(suffix)])
    return side


def _manifest(
    settings: Settings,
    members: TarWriter,
    dialect: str,
    database: Path | None,
    now: dt.datetime,
) -> bytes:
    """The manifest: format, creation time, versions, the database, and every file."""
    data_dir = settings.data_dir.resolve()
    return json.dumps(
        {
            "format": FORMAT,
            "created_at": now.astimezone(dt.UTC).isoformat(timespec="seconds"),
            "gateway_version": _version(),
            "data_dir": str(data_dir),
            "database": {
                "dialect": dialect,
                "included": database is not None,
                "path": database.relative_to(data_dir).as_posix() if database else None,
            },
            "directories": members.directories,
            "files": [r.as_json() for r in members.records],
        },
        indent=1,
        sort_keys=True,
    ).encode()


def _version() -> str:
    try:
        return metadata.version("signing-gateway")
    except metadata.PackageNotFoundError:
        return "unknown"


def _warnings(settings: Settings, dialect: str) -> list[str]:
    """What this backup does not hold, for the operator."""
    found = [
        f"{what} is outside the data folder and not in the backup: {path}"
        for what, path in outside_paths(settings)
    ]
    if dialect != "sqlite":
        found.insert(
            0,
            f"the {dialect} database is not in the backup: dump it with pg_dump before"
            " each backup (docs/backup.md)",
        )
    return found


def _audit(settings: Settings, report: BackupReport, *, now: dt.datetime, actor: str) -> None:
    """``backup.created`` in the installation's audit log (after the snapshot)."""
    db = open_database(settings)
    try:
        with db.transaction() as session:
            audit.record(
                session,
                actor=actor,
                action="backup.created",
                now=now,
                detail={
                    "file": report.path.name,
                    "sha256": report.sha256,
                    "files": report.files,
                    "database_included": report.database_included,
                },
            )
    finally:
        db.dispose()


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
