"""The installation's keys: the Fernet key that encrypts secrets at rest (TOTP secrets,
token PINs), the SAD key shared by the approval step and the bridge, and the Ed25519 key
that signs audit checkpoints (its public half is written beside it, for auditors).

Keys live in ``<data_dir>/secrets/`` (mode 0700, files 0600). They are created once and
never overwritten."""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

__all__ = [
    "CHECKPOINT_PUBLIC_KEY_FILE",
    "VAPID_KEY_FILE",
    "InstallationKeys",
    "SecretBox",
    "vapid_key",
]


@dataclass(frozen=True, slots=True)
class InstallationKeys:
    """``fernet_key``: urlsafe-base64 Fernet key (44 ASCII bytes); ``activation_key``:
    32 random bytes; ``checkpoint_key``: the audit checkpoint key (Ed25519)."""

    fernet_key: bytes
    activation_key: bytes
    checkpoint_key: Ed25519PrivateKey

    @classmethod
    def create_or_load(cls, folder: Path) -> InstallationKeys:
        """Load the keys from ``folder``, creating any that is missing (never
        overwriting one that exists)."""
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        fernet = _create_once(folder / "fernet.key", Fernet.generate_key)
        activation = _create_once(folder / "activation.key", lambda: secrets.token_hex(32).encode())
        return cls(
            fernet_key=fernet,
            activation_key=bytes.fromhex(activation.decode()),
            checkpoint_key=_checkpoint_key(folder),
        )

    @classmethod
    def load(cls, folder: Path) -> InstallationKeys:
        """Load existing keys; FileNotFoundError when the installation was never
        initialised. The checkpoint key is created if an older installation lacks it."""
        return cls(
            fernet_key=(folder / "fernet.key").read_bytes().strip(),
            activation_key=bytes.fromhex((folder / "activation.key").read_text().strip()),
            checkpoint_key=_checkpoint_key(folder),
        )


VAPID_KEY_FILE = "vapid.key"


def vapid_key(folder: Path) -> ec.EllipticCurvePrivateKey:
    """The installation's VAPID key (RFC 8292: P-256, PKCS#8 PEM in ``folder``, created
    once): Web Push services accept messages signed with it for the subscriptions the
    app made with its public key."""
    pem = _create_once(
        folder / VAPID_KEY_FILE,
        lambda: ec.generate_private_key(ec.SECP256R1()).private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        ),
    )
    key = load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{VAPID_KEY_FILE} is not a P-256 key")
    return key


CHECKPOINT_KEY_FILE = "audit-checkpoint.key"
CHECKPOINT_PUBLIC_KEY_FILE = "audit-checkpoint.pub"


def _checkpoint_key(folder: Path) -> Ed25519PrivateKey:
    """The audit checkpoint key (PKCS#8 PEM, created once); its public key (SPKI PEM) is
    written beside it as :data:`CHECKPOINT_PUBLIC_KEY_FILE`."""
    if not (folder / "fernet.key").exists():
        raise FileNotFoundError(folder / "fernet.key")
    pem = _create_once(
        folder / CHECKPOINT_KEY_FILE,
        lambda: Ed25519PrivateKey.generate().private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        ),
    )
    key = load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{CHECKPOINT_KEY_FILE} is not an Ed25519 key")
    public = folder / CHECKPOINT_PUBLIC_KEY_FILE
    if not public.exists():
        public.write_bytes(
            key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        )
    return key


def _create_once(path: Path, make: Callable[[], bytes]) -> bytes:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    value = make()
    with os.fdopen(fd, "wb") as handle:
        handle.write(value)
    return value


class SecretBox:
    """Encrypts small secrets for storage (Fernet: AES-128-CBC + HMAC-SHA256)."""

    def __init__(self, fernet_key: bytes) -> None:
        self._key = fernet_key
        self._fernet = Fernet(fernet_key)

    def for_purpose(self, purpose: str) -> SecretBox:
        """A box whose key is derived from this one for ``purpose`` alone (HKDF-SHA256,
        RFC 5869, ``purpose`` as its info): what it seals, this box does not open, nor
        the other way round (values shown to callers, such as paging cursors, never
        open stored secrets)."""
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()
        ).derive(base64.urlsafe_b64decode(self._key))
        return SecretBox(base64.urlsafe_b64encode(derived))

    def seal(self, plaintext: str) -> bytes:
        """Encrypt UTF-8 ``plaintext``; returns the Fernet token (ASCII bytes)."""
        return self._fernet.encrypt(plaintext.encode())

    def open(self, sealed: bytes) -> str:
        """Decrypt a token from :meth:`seal`; raises cryptography's InvalidToken."""
        return self._fernet.decrypt(sealed).decode()
