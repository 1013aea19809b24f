"""A signer's token PIN, sealed by the tablet to the bridge (HPKE, RFC 9180).

With PIN policy ``signer`` the signer types the token's PIN on the tablet. The tablet
seals it to the bridge's public key with HPKE in base mode, DHKEM(P-256, HKDF-SHA256),
HKDF-SHA256, AES-128-GCM, with the ``info`` naming the approval it is for (the
statement's nonce: :func:`envelope_info`). The web tier relays the envelope and can
neither read the PIN nor use it for another approval: the bridge opens it only with the
authorization named by the SAD it is signing under, and tries it at most once per token
and approval (:meth:`~hsm_bridge.sam.signers.SignerRegistry.pin_refused`).

Envelope bytes: the KEM's encapsulated key (65 bytes, an uncompressed P-256 point)
followed by the AEAD ciphertext of the PIN's UTF-8 bytes and its 16-byte tag.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hsm_bridge.errors import PinEnvelopeInvalid

__all__ = ["PinEnvelopeKey", "envelope_info", "seal_pin"]

_SUITE = hpke.Suite(hpke.KEM.P256, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM)
_CONTEXT = b"signing-gateway/token-pin/1\x00"
MAX_PIN_BYTES = 256


def envelope_info(authorization: str) -> bytes:
    """HPKE ``info`` of an envelope for the approval ``authorization`` (its nonce)."""
    return _CONTEXT + authorization.encode("utf-8")


def seal_pin(public_key_point: bytes, pin: str, authorization: str) -> bytes:
    """What the tablet does (here for tests and tools): seal ``pin`` to the bridge's key
    (``public_key_point``, 65-byte uncompressed P-256 point) for ``authorization``."""
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_key_point)
    return _SUITE.encrypt(pin.encode("utf-8"), key, info=envelope_info(authorization))


class PinEnvelopeKey:
    """The bridge's HPKE key pair, kept in ``path`` (PKCS#8 PEM, owner-only), made on
    first use."""

    def __init__(self, path: Path) -> None:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            key = ec.generate_private_key(ec.SECP256R1())
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as out:
                out.write(pem)
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path} does not hold a P-256 key")
        self._key = loaded

    @property
    def public_point(self) -> bytes:
        """The public key as HPKE serialises it: the 65-byte uncompressed point."""
        return self._key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    def open(self, envelope: bytes, authorization: str) -> str:
        """The PIN sealed in ``envelope`` for ``authorization``. Raises
        :class:`~hsm_bridge.errors.PinEnvelopeInvalid` when it was sealed to another
        key, for another approval, altered, or holds no PIN."""
        try:
            plain = _SUITE.decrypt(envelope, self._key, info=envelope_info(authorization))
            pin = plain.decode("utf-8")
        except (InvalidTag, ValueError) as exc:
            raise PinEnvelopeInvalid("the PIN was not sealed for this approval") from exc
        if not pin or len(plain) > MAX_PIN_BYTES:
            raise PinEnvelopeInvalid("the envelope holds no PIN")
        return pin
