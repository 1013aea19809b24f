"""The operator's credential: a bearer token for the details of ``/operator/health``
and for ``/metrics`` (Prometheus' ``authorization: credentials_file``). Only its
SHA-256 is kept, in ``<data_dir>/secrets/operator-token.sha256``; issuing a new one
replaces the old."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

__all__ = ["TOKEN_FILE_NAME", "check_operator_token", "issue_operator_token"]

TOKEN_FILE_NAME = "operator-token.sha256"  # noqa: S105 - a file name, not a secret


def issue_operator_token(secrets_dir: Path) -> str:
    """A new operator token (shown once), its hash written owner-only in
    ``secrets_dir``; the previous token stops working."""
    token = "sgo_" + secrets.token_urlsafe(32)
    path = secrets_dir / TOKEN_FILE_NAME
    partial = path.with_suffix(".tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(hashlib.sha256(token.encode()).hexdigest() + "\n")
    os.replace(partial, path)
    return token


def check_operator_token(secrets_dir: Path, token: str) -> bool:
    """Whether ``token`` is the current operator token (False when none was issued)."""
    try:
        expected = (secrets_dir / TOKEN_FILE_NAME).read_text("ascii").strip()
    except FileNotFoundError:
        return False
    given = hashlib.sha256(token.encode()).hexdigest()
    return hmac.compare_digest(expected, given)
