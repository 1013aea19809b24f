"""JSON shapes of the bridge service (``bridge serve``) and their conversions; shared by
the server (:mod:`hsm_bridge.transport.service`) and the client
(:mod:`hsm_bridge.transport.remote`).

Binary values (documents, signatures, certificates, keys) travel as standard base64;
CKA_IDs as hex. Every shape forbids members it does not define: a prepared PDF, signed
attributes or a digest sent to be signed is refused, not ignored. A sealed token PIN
travels as its HPKE envelope only.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, fields
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from hsm_bridge.credentials import CredentialRef, SignatureMechanism
from hsm_bridge.errors import BridgeError, error_from_code
from hsm_bridge.interface import SignRequest
from hsm_bridge.sam.authorization import (
    AuthorizationItem,
    AuthorizationRequest,
    DeviceFactor,
    EnrolmentCodeProof,
    Factor,
    PasskeyAuthorisation,
    TotpFactor,
)

__all__ = [
    "AuthorizeWire",
    "CredentialWire",
    "DeviceEnrolmentWire",
    "DeviceRevocationWire",
    "EnrolmentCodeWire",
    "FactorWire",
    "MAX_BODY_BYTES",
    "MAX_CHUNK_BYTES",
    "MAX_SIGN_BATCH",
    "SignBatchWire",
    "SignItemWire",
    "TotpConfirmationWire",
    "TotpEnrolmentWire",
    "as_json",
    "b64",
    "error_json",
    "from_json",
    "outcome_from_json",
    "unb64",
]

MAX_SIGN_BATCH = 500
MAX_AUTHORIZATION_ITEMS = 500
# Documents (base64) make a sign body large: the client sends at most MAX_CHUNK_BYTES
# per exchange (a single document may exceed it), and the service refuses anything
# beyond MAX_BODY_BYTES unread (the gateway's 50 MiB document limit, as base64, fits).
MAX_BODY_BYTES = 96 * 1024 * 1024
MAX_CHUNK_BYTES = 32 * 1024 * 1024

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


def b64(data: bytes) -> str:
    """Standard base64 text of ``data``."""
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    """Bytes of standard base64 ``text``; ValueError when it is not base64."""
    return base64.b64decode(text, validate=True)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CredentialWire(_Strict):
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


class SignItemWire(_Strict):
    """One signature to build and make: the credential and mechanism, the SAD, the
    approved document (base64), the appearance's images (SHA-256 hex → base64 PNG) and
    the sealed PIN (base64 HPKE envelope) when the signer typed one."""

    credential: CredentialWire
    mechanism: SignatureMechanism
    activation: str = Field(min_length=1, max_length=65536)
    document: str = Field(min_length=4, max_length=MAX_BODY_BYTES, repr=False)
    images: dict[str, str] = Field(default_factory=dict, max_length=4, repr=False)
    pin_envelope: str | None = Field(None, max_length=1024, repr=False)

    def request(self) -> SignRequest:
        """As a :class:`SignRequest`; ValueError for bad base64."""
        return SignRequest(
            self.credential.ref(),
            self.mechanism,
            self.activation,
            unb64(self.document),
            {sha: unb64(png) for sha, png in self.images.items()},
            unb64(self.pin_envelope) if self.pin_envelope is not None else None,
        )

    @classmethod
    def of(cls, request: SignRequest) -> SignItemWire:
        """From a :class:`SignRequest`."""
        return cls(
            credential=CredentialWire.of(request.credential),
            mechanism=request.mechanism,
            activation=request.activation,
            document=b64(request.document),
            images={sha: b64(png) for sha, png in request.images.items()},
            pin_envelope=b64(request.pin_envelope) if request.pin_envelope else None,
        )


class SignBatchWire(_Strict):
    """``POST /v1/sign``: up to :data:`MAX_SIGN_BATCH` items. The answer's results hold
    each signed document's incremental update only (``update``, base64): the signed PDF
    is the document followed by it."""

    items: list[SignItemWire] = Field(min_length=1, max_length=MAX_SIGN_BATCH)


class FactorWire(_Strict):
    """The signer's factor: a device's signed decision (``device_id``, ``nonce``,
    ``expires_at``, and ``signature`` base64 DER, or ``webauthn``: a passkey's
    assertion as the browser gave it) or a TOTP code (``otp``, with the app's ``nonce``
    when a sealed PIN is bound to it)."""

    device_id: str | None = Field(None, max_length=64)
    nonce: str | None = Field(None, max_length=128)
    expires_at: int | None = None
    signature: str | None = Field(None, max_length=512, repr=False)
    webauthn: dict[str, Any] | None = Field(None, repr=False)
    otp: str | None = Field(None, max_length=16, repr=False)

    def value(self) -> Factor:
        """As a factor; ValueError when it is neither or both kinds."""
        signed = self.signature is not None or self.webauthn is not None
        if self.otp is not None and self.device_id is None and not signed:
            return TotpFactor(self.otp, self.nonce)
        if (
            self.otp is None
            and self.device_id is not None
            and self.nonce is not None
            and self.expires_at is not None
            and signed
        ):
            signature = unb64(self.signature) if self.signature is not None else b""
            return DeviceFactor(
                self.device_id, self.nonce, self.expires_at, signature, self.webauthn
            )
        raise ValueError("give a TOTP code or a complete device signature")

    @classmethod
    def of(cls, factor: Factor) -> FactorWire:
        """From a factor."""
        if isinstance(factor, TotpFactor):
            return cls(otp=factor.otp, nonce=factor.nonce)
        return cls(
            device_id=factor.device_id,
            nonce=factor.nonce,
            expires_at=factor.expires_at,
            signature=b64(factor.signature) if factor.signature else None,
            webauthn=dict(factor.webauthn) if factor.webauthn is not None else None,
        )


class AuthorizationItemWire(_Strict):
    """One approved request of an authorization."""

    request_id: str = Field(min_length=1, max_length=64)
    credential: CredentialWire
    mechanism: SignatureMechanism
    document_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    parameters: dict[str, Any]
    certificate_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class AuthorizeWire(_Strict):
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


class DeviceEnrolmentWire(_Strict):
    """``POST /v1/devices``: an enrolment code's id, the device key (base64 DER SPKI)
    and the code's HMAC over it (base64)."""

    code_id: str = Field(min_length=1, max_length=64)
    public_key: str = Field(min_length=4, max_length=1024)
    proof: str = Field(min_length=4, max_length=128)
    kind: str = Field("device_key", pattern=r"^device_key$")


class PasskeyOptionsWire(_Strict):
    """``POST /v1/passkeys/options``: the signer and the name their authenticator
    shows."""

    signer: str = Field(min_length=1, max_length=64)
    display_name: str = Field("", max_length=200)


class PasskeyEnrolmentWire(_Strict):
    """``POST /v1/passkeys``: the challenge's id, the browser's registration response,
    and what authorises it: an enrolment code (``code_id``, ``proof`` base64, the HMAC
    over the credential id) or a TOTP code (``otp``, where TOTP approves)."""

    challenge_id: str = Field(min_length=1, max_length=64)
    response: dict[str, Any]
    code_id: str | None = Field(None, max_length=64)
    proof: str | None = Field(None, max_length=128)
    otp: str | None = Field(None, max_length=16, repr=False)

    def authorisation(self) -> PasskeyAuthorisation:
        """As the activation module takes it; ValueError when neither or both."""
        if self.otp is not None and self.code_id is None and self.proof is None:
            return TotpFactor(self.otp)
        if self.otp is None and self.code_id is not None and self.proof is not None:
            return EnrolmentCodeProof(self.code_id, unb64(self.proof))
        raise ValueError("give an enrolment code's proof or a TOTP code")

    @classmethod
    def of(
        cls, challenge_id: str, response: dict[str, Any], authorisation: PasskeyAuthorisation
    ) -> PasskeyEnrolmentWire:
        """From the activation module's values."""
        if isinstance(authorisation, TotpFactor):
            return cls(challenge_id=challenge_id, response=response, otp=authorisation.otp)
        return cls(
            challenge_id=challenge_id,
            response=response,
            code_id=authorisation.code_id,
            proof=b64(authorisation.proof),
        )


class DeviceRevocationWire(_Strict):
    """``POST /v1/devices/{id}/revocation``: the signer and their factor (a revocation
    statement signed by one of their devices, or a TOTP code where it approves)."""

    signer: str = Field(min_length=1, max_length=64)
    factor: FactorWire


class EnrolmentCodeWire(_Strict):
    """``POST /v1/enrolment-codes``: a signer, their factor (an enrolled device's signed
    enrolment-code statement, or a TOTP code), the code's life, and for a device's
    statement the ``recipient`` it names (base64url P-256 point)."""

    signer: str = Field(min_length=1, max_length=64)
    factor: FactorWire
    ttl_seconds: int = Field(ge=30, le=86400)
    recipient: str | None = Field(None, max_length=100)


class TotpEnrolmentWire(_Strict):
    """``POST /v1/totp``: a new pending secret (base32), with a code of the current one
    (``current_otp``) or, for a first one, an enrolment code's id and its HMAC over the
    secret (``code_id``, ``code_proof`` base64)."""

    signer: str = Field(min_length=1, max_length=64)
    secret: str = Field(min_length=16, max_length=128, repr=False)
    current_otp: str | None = Field(None, max_length=16, repr=False)
    code_id: str | None = Field(None, max_length=64)
    code_proof: str | None = Field(None, max_length=128)


class TotpConfirmationWire(_Strict):
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


def outcome_from_json(item: dict[str, Any], document: bytes) -> bytes | BridgeError:
    """A signed PDF (``{"update": base64}``, appended to ``document``) or an error
    (``{"error": {...}}``)."""
    if "update" in item:
        return document + unb64(str(item["update"]))
    error = item.get("error") or {}
    return error_from_code(
        str(error.get("code", "bridge_error")),
        str(error.get("message", "")),
        reason=error.get("reason"),
    )


def from_json(cls: type[T], data: dict[str, Any]) -> T:
    """The dataclass ``cls`` from JSON ``data``, ignoring members it does not know (a
    newer bridge may send more)."""
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


def as_json(value: Any) -> Any:
    """A dataclass (or list of them) as JSON-ready dicts."""
    if isinstance(value, list):
        return [as_json(v) for v in value]
    return asdict(value)
