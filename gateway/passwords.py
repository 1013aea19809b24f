"""Password hashing with Argon2id (RFC 9106) through argon2-cffi."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["hash_password", "verify_password"]

_HASHER = PasswordHasher()
# A valid hash of a random password, checked when the user does not exist so that the
# answer takes as long as for a wrong password.
_DUMMY = _HASHER.hash("not-a-password-2f1c")


def hash_password(password: str) -> str:
    """Argon2id PHC string for ``password``."""
    return _HASHER.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when ``password`` matches ``stored_hash`` (constant time inside argon2);
    None runs a dummy check and returns False."""
    try:
        return _HASHER.verify(stored_hash or _DUMMY, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
