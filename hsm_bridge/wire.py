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

from hsm_bridge.authorization import (
    MAX_AUTHORIZATION_ITEMS,
    AuthorizationItem,
    AuthorizationRequest,
    DeviceFactor,
    TotpFactor,
)
from hsm_bridge.credentials import CredentialRef, SignatureMechanism
from hsm_bridge.errors import BridgeError, error_from_code
from hsm_bridge.interface import SigningInput, SignRequest

__all__ = [
    "AuthorizeWire",
    "DeviceEnrolmentWire",
    "EnrolmentCodeWire",
    "TotpConfirmationWire",
    "TotpEnrolmentWire",
    "MAX_BODY_BYTES",
    "MAX_CHUNK_BYTES",
    "MAX_SIGN_BATCH",
    "CredentialWire",
    "SignBatchWire",
    "SignItemWire",
    "SigningInputWire",
    "as_json",
    "b64",
    "error_json",
    "from_json",
    "outcome_from_json",
    "unb64",
]

MAX_SIGN_BATCH = 1000
# A batch of digests is about 0.6 MB of JSON; prepared PDFs (base64) make it larger: the
# client sends at most MAX_CHUNK_BYTES per exchange (a single PDF may exceed it), and the
# service refuses anything beyond MAX_BODY_BYTES unread (the gateway's 50 MiB document
# limit, as base64, fits).
MAX_BODY_BYTES = 96 * 1024 * 1024
MAX_CHUNK_BYTES = 32 * 1024 * 1024

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


class SigningInputWire(BaseModel):
    """A :class:`~hsm_bridge.interface.SigningInput`: the prepared PDF and the DER signed
    attributes as base64, the original's length in bytes."""

    prepared_pdf: str = Field(min_length=4, max_length=MAX_BODY_BYTES, repr=False)
    original_length: int = Field(gt=0)
    signed_attributes: str = Field(min_length=4, max_length=65536, repr=False)

    def value(self) -> SigningInput:
        """As a :class:`SigningInput`; ValueError for bad base64."""
        return SigningInput(
            unb64(self.prepared_pdf), self.original_length, unb64(self.signed_attributes)
        )

    @classmethod
    def of(cls, value: SigningInput) -> SigningInputWire:
        """From a :class:`SigningInput`."""
        return cls(
            prepared_pdf=b64(value.prepared_pdf),
            original_length=value.original_length,
            signed_attributes=b64(value.signed_attributes),
        )


class SignItemWire(BaseModel):
    """One signature with its activation (SAD): either a ``digest`` (base64 of 32 bytes)
    or a ``signing_input`` from which the bridge derives the digest."""

    credential: CredentialWire
    digest: str | None = Field(None, min_length=44, max_length=44)
    signing_input: SigningInputWire | None = None
    mechanism: SignatureMechanism
    activation: str = Field(min_length=1, max_length=32768)
    pin: str | None = Field(None, max_length=256, repr=False)

    def request(self) -> SignRequest:
        """As a :class:`SignRequest`; ValueError when the digest is not 32 bytes or
        neither (or both) of digest and signing input is given."""
        if (self.digest is None) == (self.signing_input is None):
            raise ValueError("give a digest or a signing input")
        digest = unb64(self.digest) if self.digest is not None else None
        if digest is not None and len(digest) != 32:
            raise ValueError("digest must be 32 bytes")
        return SignRequest(
            self.credential.ref(),
            digest,
            self.mechanism,
            self.activation,
            pin=self.pin,
            signing_input=self.signing_input.value() if self.signing_input else None,
        )

    @classmethod
    def of(cls, request: SignRequest) -> SignItemWire:
        """From a :class:`SignRequest`."""
        return cls(
            credential=CredentialWire.of(request.credential),
            digest=b64(request.digest) if request.digest is not None else None,
            signing_input=(
                SigningInputWire.of(request.signing_input) if request.signing_input else None
            ),
            mechanism=request.mechanism,
            activation=request.activation,
            pin=request.pin,
        )

    def size(self) -> int:
        """About how many bytes this item takes in a JSON body."""
        return 1024 + (len(self.signing_input.prepared_pdf) if self.signing_input else 0)


class SignBatchWire(BaseModel):
    """``POST /v1/sign``: up to :data:`MAX_SIGN_BATCH` items."""

    items: list[SignItemWire] = Field(min_length=1, max_length=MAX_SIGN_BATCH)


class FactorWire(BaseModel):
    """The signer's proof: a device's signed decision (``device_id``, ``nonce``,
    ``expires_at``, ``signature`` base64 DER) or a TOTP code (``otp``)."""

    device_id: str | None = Field(None, max_length=64)
    nonce: str | None = Field(None, max_length=128)
    expires_at: int | None = None
    signature: str | None = Field(None, max_length=512, repr=False)
    otp: str | None = Field(None, max_length=16, repr=False)

    def value(self) -> DeviceFactor | TotpFactor:
        """As a factor; ValueError when it is neither or both kinds."""
        if self.otp is not None and self.device_id is None:
            return TotpFactor(self.otp)
        if (
            self.otp is None
            and self.device_id is not None
            and self.nonce is not None
            and self.expires_at is not None
            and self.signature is not None
        ):
            return DeviceFactor(self.device_id, self.nonce, self.expires_at, unb64(self.signature))
        raise ValueError("give a TOTP code or a complete device signature")

    @classmethod
    def of(cls, factor: DeviceFactor | TotpFactor) -> FactorWire:
        """From a factor."""
        if isinstance(factor, TotpFactor):
            return cls(otp=factor.otp)
        return cls(
            device_id=factor.device_id,
            nonce=factor.nonce,
            expires_at=factor.expires_at,
            signature=b64(factor.signature),
        )


class AuthorizationItemWire(BaseModel):
    """One approved request of an authorization."""

    request_id: str = Field(min_length=1, max_length=64)
    credential: CredentialWire
    mechanism: SignatureMechanism
    document_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    parameters: dict[str, Any]
    certificate_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class AuthorizeWire(BaseModel):
    """``POST /v1/authorize``: the signer, the whole batch, one factor, and which tokens
    this bridge should issue SADs for (all when absent)."""

    signer: str = Field(min_length=1, max_length=64)
    items: list[AuthorizationItemWire] = Field(min_length=1, max_length=MAX_AUTHORIZATION_ITEMS)
    factor: FactorWire
    token_serials: list[str] | None = Field(None, max_length=MAX_AUTHORIZATION_ITEMS)

    def value(self) -> AuthorizationRequest:
        """As an :class:`AuthorizationRequest`; ValueError for a bad factor."""
        return AuthorizationRequest(
            self.signer,
            tuple(
                AuthorizationItem(
                    i.request_id,
                    i.credential.ref(),
                    i.mechanism,
                    i.document_sha256,
                    i.parameters,
                    i.certificate_sha256,
                )
                for i in self.items
            ),
            self.factor.value(),
        )

    @classmethod
    def of(
        cls, request: AuthorizationRequest, token_serials: frozenset[str] | None
    ) -> AuthorizeWire:
        """From an :class:`AuthorizationRequest`."""
        return cls(
            signer=request.signer,
            items=[
                AuthorizationItemWire(
                    request_id=i.request_id,
                    credential=CredentialWire.of(i.credential),
                    mechanism=i.mechanism,
                    document_sha256=i.document_sha256,
                    parameters=dict(i.parameters),
                    certificate_sha256=i.certificate_sha256,
                )
                for i in request.items
            ],
            factor=FactorWire.of(request.factor),
            token_serials=sorted(token_serials) if token_serials is not None else None,
        )


class DeviceEnrolmentWire(BaseModel):
    """``POST /v1/devices``: an enrolment code's id, the device key (base64 DER SPKI)
    and the code's HMAC over it (base64)."""

    code_id: str = Field(min_length=1, max_length=64)
    public_key: str = Field(min_length=4, max_length=1024)
    proof: str = Field(min_length=4, max_length=128)


class EnrolmentCodeWire(BaseModel):
    """``POST /v1/enrolment-codes``: a signer, a TOTP code of theirs, the code's life."""

    signer: str = Field(min_length=1, max_length=64)
    otp: str = Field(min_length=1, max_length=16, repr=False)
    ttl_seconds: int = Field(ge=30, le=86400)


class TotpEnrolmentWire(BaseModel):
    """``POST /v1/totp``: a new pending secret (base32), with a code of the current
    one when the signer has one."""

    signer: str = Field(min_length=1, max_length=64)
    secret: str = Field(min_length=16, max_length=128, repr=False)
    current_otp: str | None = Field(None, max_length=16, repr=False)


class TotpConfirmationWire(BaseModel):
    """``POST /v1/totp/confirmation``: a first code of the pending secret;
    ``POST /v1/totp/check``: a code to accept once."""

    signer: str = Field(min_length=1, max_length=64)
    otp: str = Field(min_length=1, max_length=16, repr=False)


def error_json(error: BridgeError) -> dict[str, Any]:
    """``{"code", "message", "retryable"}`` of a bridge error, plus ``reason`` for an
    :class:`~hsm_bridge.errors.ActivationInvalid` or
    :class:`~hsm_bridge.errors.AuthorizationRefused`."""
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
