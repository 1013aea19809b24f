"""JSON shapes of the bridge service (``bridge serve``) and their conversions; shared by
the server (:mod:`hsm_bridge.service`) and the client (:mod:`hsm_bridge.remote`).

Binary values (digests, signatures, certificates) travel as standard base64; CKA_IDs as
hex. A request PIN (policy ``signer``) travels only inside the mutually authenticated
TLS channel and is never logged.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, fields
from typing import Any, TypeVar

from pydantic import BaseModel, Field

from hsm_bridge.credentials import CredentialRef, SignatureMechanism
from hsm_bridge.errors import BridgeError, error_from_code
from hsm_bridge.interface import SignRequest

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_SIGN_BATCH",
    "CredentialWire",
    "SignBatchWire",
    "SignItemWire",
    "as_json",
    "b64",
    "error_json",
    "from_json",
    "outcome_from_json",
    "unb64",
]

MAX_SIGN_BATCH = 1000
# A full batch is about 0.6 MB of JSON; anything much larger is refused unread.
MAX_BODY_BYTES = 4 * 1024 * 1024

T = TypeVar("T")


def b64(data: bytes) -> str:
    """Standard base64 text of ``data``."""
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    """Bytes of standard base64 ``text``; ValueError when it is not base64."""
    return base64.b64decode(text, validate=True)


class CredentialWire(BaseModel):
    """A credential: token serial and CKA_ID (hex)."""

    token_serial: str = Field(min_length=1, max_length=64)
    key_id: str = Field(pattern=r"^(?:[0-9a-fA-F]{2}){1,128}$")

    def ref(self) -> CredentialRef:
        """As a :class:`CredentialRef`."""
        return CredentialRef(self.token_serial, bytes.fromhex(self.key_id))

    @classmethod
    def of(cls, ref: CredentialRef) -> CredentialWire:
        """From a :class:`CredentialRef`."""
        return cls(token_serial=ref.token_serial, key_id=ref.key_id.hex())


class SignItemWire(BaseModel):
    """One digest to sign (base64 of 32 bytes) with its activation (SAD)."""

    credential: CredentialWire
    digest: str = Field(min_length=44, max_length=44)
    mechanism: SignatureMechanism
    activation: str = Field(min_length=1, max_length=8192)
    pin: str | None = Field(None, max_length=256, repr=False)

    def request(self) -> SignRequest:
        """As a :class:`SignRequest`; ValueError when the digest is not 32 bytes."""
        digest = unb64(self.digest)
        if len(digest) != 32:
            raise ValueError("digest must be 32 bytes")
        return SignRequest(
            self.credential.ref(), digest, self.mechanism, self.activation, pin=self.pin
        )

    @classmethod
    def of(cls, request: SignRequest) -> SignItemWire:
        """From a :class:`SignRequest`."""
        return cls(
            credential=CredentialWire.of(request.credential),
            digest=b64(request.digest),
            mechanism=request.mechanism,
            activation=request.activation,
            pin=request.pin,
        )


class SignBatchWire(BaseModel):
    """``POST /v1/sign``: up to :data:`MAX_SIGN_BATCH` items."""

    items: list[SignItemWire] = Field(min_length=1, max_length=MAX_SIGN_BATCH)


def error_json(error: BridgeError) -> dict[str, Any]:
    """``{"code", "message", "retryable"}`` of a bridge error, plus ``reason`` for an
    :class:`~hsm_bridge.errors.ActivationInvalid`."""
    body: dict[str, Any] = {
        "code": error.code,
        "message": error.message,
        "retryable": error.retryable,
    }
    reason = getattr(error, "reason", None)
    if reason is not None:
        body["reason"] = reason
    return body


def outcome_from_json(item: dict[str, Any]) -> bytes | BridgeError:
    """A signature (``{"signature": base64}``) or an error (``{"error": {...}}``)."""
    if "signature" in item:
        return unb64(str(item["signature"]))
    error = item.get("error") or {}
    return error_from_code(
        str(error.get("code", "bridge_error")),
        str(error.get("message", "")),
        reason=error.get("reason"),
    )


def from_json(cls: type[T], data: dict[str, Any]) -> T:
    """The dataclass ``cls`` from JSON ``data``, ignoring members it does not know (a
    newer bridge may send more)."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in known})


def as_json(value: Any) -> Any:
    """A dataclass (or list of them) as JSON-ready dicts."""
    if isinstance(value, list):
        return [as_json(v) for v in value]
    return asdict(value)
