"""The document store: original and signed PDFs on disk, written atomically.

Layout: ``<root>/<request id>/original.pdf``, ``signed.update`` and, once the archive
renewed it, ``archive.update`` (:mod:`gateway.signing.archive`): a signed PDF is
the original followed by one incremental update, so only the update is written (a few
kilobytes, where the document may be 50 MB) and the signed PDF is read back as the two
joined (``signed.pdf``, a whole signed PDF, is still read where an earlier version wrote
one). A write goes to a temporary file in the same folder, is fsynced, then renamed, so a
reader never sees a half-written file and a crash leaves either the old state or the new
one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["DocumentStore"]


class DocumentStore:
    """Files of signing requests under ``root``."""

    ORIGINAL = "original.pdf"
    SIGNED_UPDATE = "signed.update"
    ARCHIVE_UPDATE = "archive.update"
    _SIGNED_WHOLE = "signed.pdf"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, request_id: str, name: str) -> Path:
        if not request_id or "/" in request_id or request_id.startswith("."):
            raise ValueError("bad request id")
        return self.root / request_id / name

    def write(self, request_id: str, name: str, data: bytes) -> Path:
        """Atomically write ``data`` as ``name`` of ``request_id``; return its path."""
        path = self._path(request_id, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def read(self, request_id: str, name: str) -> bytes:
        """The bytes of ``name`` of ``request_id``; FileNotFoundError if absent."""
        return self._path(request_id, name).read_bytes()

    def write_signed(self, request_id: str, signed: bytes, original_length: int) -> Path:
        """Keep the signed PDF ``signed`` of ``request_id``, whose first
        ``original_length`` bytes are its original: only what follows them is written."""
        return self.write(request_id, self.SIGNED_UPDATE, signed[original_length:])

    def read_signed(self, request_id: str) -> bytes:
        """The signed PDF of ``request_id``: its original followed by the update;
        FileNotFoundError when it was not signed."""
        whole = self._path(request_id, self._SIGNED_WHOLE)
        if whole.exists():
            signed = whole.read_bytes()
        else:
            update = self._path(request_id, self.SIGNED_UPDATE).read_bytes()
            signed = self.read(request_id, self.ORIGINAL) + update
        renewals = self._path(request_id, self.ARCHIVE_UPDATE)
        return signed + renewals.read_bytes() if renewals.exists() else signed

    def write_archive(self, request_id: str, renewed: bytes) -> Path:
        """Keep ``renewed``, the signed PDF of ``request_id`` with the archive's renewals
        appended (document timestamps and their validation data): what follows the signed
        PDF is written. ValueError when ``renewed`` does not extend the signed PDF."""
        whole = self._path(request_id, self._SIGNED_WHOLE)
        signed = (
            whole.read_bytes()
            if whole.exists()
            else self.read(request_id, self.ORIGINAL) + self.read(request_id, self.SIGNED_UPDATE)
        )
        if not renewed.startswith(signed):
            raise ValueError("a renewal extends the signed document")
        return self.write(request_id, self.ARCHIVE_UPDATE, renewed[len(signed) :])

    def has_signed(self, request_id: str) -> bool:
        """Whether a signed PDF of ``request_id`` was kept."""
        return self.exists(request_id, self.SIGNED_UPDATE) or self.exists(
            request_id, self._SIGNED_WHOLE
        )

    def exists(self, request_id: str, name: str) -> bool:
        """Whether ``name`` of ``request_id`` was written."""
        return self._path(request_id, name).exists()

    def discard(self, request_id: str) -> None:
        """Remove every file of ``request_id`` (used when its creation rolls back)."""
        shutil.rmtree(self.root / request_id, ignore_errors=True)
