"""A device-issued enrolment code, sealed by the bridge to the app that asked for it
(HPKE, RFC 9180, the suite of :mod:`hsm_bridge.sam.pin_envelope`).

The signer's enrolled device signs an enrolment-code statement that names a one-time
public key of the app (``recipient``); the bridge seals the code's text
(``code_id.secret``) to that key with the ``info`` naming the statement's nonce. The
web tier relays the envelope and learns only the code's id: the secret, which enrols a
device, is read on the signer's screen alone.

Envelope bytes: the KEM's encapsulated key (65 bytes) then the AEAD ciphertext and tag.
"""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["ENROLMENT_CODE_CONTEXT", "open_code", "recipient_key", "seal_code"]

_SUITE = hpke.Suite(hpke.KEM.P256, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM)
ENROLMENT_CODE_CONTEXT = b"signing-gateway/enrolment-code/1\x00"


def recipient_key(recipient: str) -> ec.EllipticCurvePublicKey:
    """The app's key from ``recipient`` (base64url, 65-byte uncompressed P-256 point).
    Raises ValueError for anything else."""
    if not isinstance(recipient, str) or len(recipient) > 100:
        raise ValueError("the recipient is a P-256 public key")
    point = base64.urlsafe_b64decode(recipient + "=" * (-len(recipient) % 4))
    if len(point) != 65 or point[0] != 4:
        raise ValueError("the recipient is an uncompressed P-256 point")
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)


def seal_code(recipient: str, code_text: str, nonce: str) -> bytes:
    """``code_text`` sealed to ``recipient`` for the statement with ``nonce``. Raises
    ValueError when ``recipient`` is not a P-256 point."""
    info = ENROLMENT_CODE_CONTEXT + nonce.encode("utf-8")
    return _SUITE.encrypt(code_text.encode("ascii"), recipient_key(recipient), info=info)


def open_code(key: ec.EllipticCurvePrivateKey, envelope: bytes, nonce: str) -> str:
    """What the app does (here for tests and tools): the code's text from ``envelope``.
    Raises cryptography's InvalidTag when it was sealed to another key or nonce."""
    info = ENROLMENT_CODE_CONTEXT + nonce.encode("utf-8")
    return _SUITE.decrypt(envelope, key, info=info).decode("ascii")
