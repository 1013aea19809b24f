"""``signing-gateway restore``: a backup file back into a new data folder.

Everything is written into a temporary folder next to the target and renamed into
place only once the whole file has been decrypted and authenticated and every file
matches the manifest: a wrong passphrase, a damaged file or a refused member leaves no
target folder. Absolute paths of the old data folder in the settings, SoftHSM2's
configuration and the demo's credentials are rewritten to the new one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from gateway.audit import log as audit
from gateway.config import Settings
from gateway.context import open_database
from signing_gateway.backup.errors import BackupDamaged, BackupError, RestoreTargetNotEmpty
from signing_gateway.backup.layout import MANIFEST_NAME, rewrite_paths
from signing_gateway.backup.stream import FORMAT, DecryptingReader

__all__ = ["RestoreReport", "audit_restore", "restore_backup"]

_MAX_MANIFEST = 64 * 1024 * 1024
_COPY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class RestoreReport:
    """What ``restore_backup`` wrote: the folder, the backup's creation time (ISO 8601)
    and original folder, the database's dialect and whether the file held it, how many
    files, and the files whose paths were rewritten."""

    data_dir: Path
    created_at: str
    original_data_dir: str
    dialect: str
    database_included: bool
    files: int
    rewritten: tuple[str, ...]


def restore_backup(source: Path, target: Path, passphrase: bytes) -> RestoreReport:
    """Restore the backup file ``source`` into the new folder ``target`` (absent or
    empty; its parent must exist). Raises RestoreTargetNotEmpty, WrongPassphrase,
    BackupDamaged, BackupError (``restore_parent_missing``, ``backup_format_unknown``)
    and OSError (``source`` unreadable); ``target`` is then not created."""
    target = target.absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise RestoreTargetNotEmpty(f"{target} exists and is not empty: choose a new folder")
    if not target.parent.is_dir():
        raise BackupError("restore_parent_missing", f"{target.parent} does not exist")
    with source.open("rb") as handle:
        reader = DecryptingReader(handle, passphrase)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.restoring-"))
        try:
            hashes, manifest = _extract(reader, staging / "data")
            reader.drain()
            _check(manifest, hashes)
            (staging / "data").chmod(0o700)
            rewritten = rewrite_paths(staging / "data", manifest["data_dir"], str(target))
            (staging / "data").rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return RestoreReport(
        data_dir=target,
        created_at=manifest["created_at"],
        original_data_dir=manifest["data_dir"],
        dialect=manifest["database"]["dialect"],
        database_included=bool(manifest["database"]["included"]),
        files=len(hashes),
        rewritten=tuple(rewritten),
    )


def _extract(reader: DecryptingReader, root: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """Write the members under ``data/`` into ``root``; their SHA-256 by relative path,
    and the manifest. BackupDamaged for a member that is not a plain file or folder
    under ``data/``, or that comes twice."""
    root.mkdir(mode=0o700)
    hashes: dict[str, str] = {}
    manifest: dict[str, Any] | None = None
    try:
        with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
            for member in tar:
                if member.name == MANIFEST_NAME and member.isreg() and manifest is None:
                    manifest = _read_manifest(tar.extractfile(member), member.size)
                    continue
                relative = _relative(member.name)
                if member.isdir():
                    (root / relative).mkdir(mode=0o700 | (member.mode & 0o777), parents=True)
                elif member.isreg():
                    hashes[relative] = _write(tar.extractfile(member), root / relative, member)
                else:
                    raise BackupDamaged(f"the backup holds {member.name!r}, not a file")
    except (tarfile.TarError, FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
        raise BackupDamaged(f"the backup's content is not readable ({exc})") from exc
    if manifest is None:
        raise BackupDamaged("the backup holds no manifest")
    return hashes, manifest


def _relative(name: str) -> str:
    """The path under ``data/`` of a member, refused when it would leave it."""
    parts = PurePosixPath(name).parts
    if len(parts) < 2 or parts[0] != "data" or any(p in ("", ".", "..") for p in parts[1:]):
        raise BackupDamaged(f"the backup holds {name!r}, outside its data folder")
    return "/".join(parts[1:])


def _write(source: IO[bytes] | None, path: Path, member: tarfile.TarInfo) -> str:
    """Copy ``source`` into the new file ``path`` with the member's permission bits
    (owner-readable at least); its SHA-256 (hex)."""
    if source is None:
        raise BackupDamaged(f"{member.name!r} has no content")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with path.open("xb") as out:
        while chunk := source.read(_COPY_BYTES):
            digest.update(chunk)
            out.write(chunk)
    path.chmod((member.mode & 0o777) | 0o600)
    return digest.hexdigest()


def _read_manifest(source: IO[bytes] | None, size: int) -> dict[str, Any]:
    if source is None or size > _MAX_MANIFEST:
        raise BackupDamaged("the backup's manifest is unreadable")
    try:
        manifest = json.loads(source.read())
    except ValueError as exc:
        raise BackupDamaged("the backup's manifest is not JSON") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError("backup_format_unknown", f"this version reads backups of format {FORMAT}")
    return manifest


def _check(manifest: dict[str, Any], hashes: dict[str, str]) -> None:
    """Every file the manifest lists is there with its SHA-256, and nothing else."""
    try:
        listed = {entry["path"]: entry["sha256"] for entry in manifest["files"]}
        manifest["created_at"], manifest["data_dir"], manifest["database"]["dialect"]
    except (KeyError, TypeError) as exc:
        raise BackupDamaged("the backup's manifest lacks a field") from exc
    if listed != hashes:
        wrong = sorted(set(listed.items()) ^ set(hashes.items()))
        raise BackupDamaged(f"the backup's files differ from its manifest: {wrong[:3]}")


def audit_restore(
    settings: Settings, report: RestoreReport, source_sha256: str, *, now: dt.datetime, actor: str
) -> None:
    """``backup.restored`` in the restored installation's audit log (its database must
    be in place: the file's SQLite database, or a PostgreSQL database restored first)."""
    db = open_database(settings)
    try:
        with db.transaction() as session:
            audit.record(
                session,
                actor=actor,
                action="backup.restored",
                now=now,
                detail={
                    "sha256": source_sha256,
                    "created_at": report.created_at,
                    "original_data_dir": report.original_data_dir,
                },
            )
    finally:
        db.dispose()
