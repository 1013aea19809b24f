"""Mobile API: approvals and rejections, one request or a batch, each with one second
factor: a TOTP code, or a signature by the device's own key over the approval statement
(``hsm_bridge.sam.statement``) that carries a server nonce."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, model_validator

from gateway.approvals.decisions import DecisionOutcome
from gateway.approvals.statements import DecisionItem, issue_nonce
from gateway.db.models import SigningRequest
from gateway.errors import (
    BatchTooLarge,
    CertificateRefused,
    FactorRefused,
    ParameterInvalid,
    RequestStateError,
)
from gateway.problems import raises
from hsm_bridge.errors import BridgeError
from hsm_bridge.sam.authorization import DeviceFactor, Factor, TotpFactor
from mobile_api.deps import Context, Signer, client_address

__all__ = ["router"]

router = APIRouter(prefix="/mobile/v1", tags=["mobile"])

_SHA256_HEX = r"^[0-9a-fA-F]{64}$"


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


class DeviceApproval(BaseModel):
    """A device's answer: the device id, the server nonce and the expiry (POSIX seconds)
    of the RFC 8785 canonical approval statement, and either ``signature`` (a native
    app's device key: base64 of the DER ECDSA-Sig-Value, P-256 with SHA-256, over the
    statement) or ``webauthn`` (a passkey: the JSON of the ``navigator.credentials.get``
    assertion whose challenge is the statement's SHA-256)."""

    device_id: str = Field(min_length=1, max_length=36)
    nonce: str = Field(min_length=16, max_length=64)
    expires_at: int = Field(gt=0)
    signature: str | None = Field(None, min_length=8, max_length=200)
    webauthn: WebAuthnAssertion | None = None

    @model_validator(mode="after")
    def _one_proof(self) -> DeviceApproval:
        if (self.signature is None) == (self.webauthn is None):
            raise ValueError("give exactly one of signature and webauthn")
        return self

    def factor(self) -> DeviceFactor:
        """As the bridge's :class:`~hsm_bridge.sam.authorization.DeviceFactor` (422 for
        bad base64)."""
        if self.webauthn is not None:
            assertion = self.webauthn.model_dump(exclude_none=True)
            return DeviceFactor(self.device_id, self.nonce, self.expires_at, b"", assertion)
        try:
            signature = base64.b64decode(self.signature or "", validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ParameterInvalid("signature must be base64") from exc
        return DeviceFactor(self.device_id, self.nonce, self.expires_at, signature)


class WebAuthnAssertionResponse(BaseModel):
    """``AuthenticatorAssertionResponse`` as base64url text (WebAuthn Level 2 §5.2.2)."""

    clientDataJSON: str = Field(min_length=1, max_length=4096)  # noqa: N815 - WebAuthn's name
    authenticatorData: str = Field(min_length=1, max_length=4096)  # noqa: N815
    signature: str = Field(min_length=1, max_length=1024)
    userHandle: str | None = Field(None, max_length=512)  # noqa: N815


class WebAuthnAssertion(BaseModel):
    """A ``PublicKeyCredential`` from ``navigator.credentials.get``, as JSON
    (``PublicKeyCredential.toJSON()``'s shape: ids base64url)."""

    id: str = Field(min_length=1, max_length=1024)
    rawId: str = Field(min_length=1, max_length=1024)  # noqa: N815
    type: Literal["public-key"] = "public-key"
    response: WebAuthnAssertionResponse
    authenticatorAttachment: str | None = Field(None, max_length=32)  # noqa: N815
    clientExtensionResults: dict[str, object] = Field(default_factory=dict)  # noqa: N815


class SecondFactor(BaseModel):
    """Exactly one of ``otp`` (TOTP code) and ``device_approval``. With a TOTP code and a
    sealed PIN, ``nonce`` is the server nonce the PIN was sealed for
    (``POST /mobile/v1/approval-nonces``)."""

    otp: str | None = Field(None, min_length=1, max_length=16, repr=False)
    nonce: str | None = Field(None, min_length=16, max_length=64)
    device_approval: DeviceApproval | None = None

    @model_validator(mode="after")
    def _one_factor(self) -> SecondFactor:
        if (self.otp is None) == (self.device_approval is None):
            raise ValueError("give exactly one of otp and device_approval")
        return self

    def factor(self) -> Factor:
        """The second factor, in the bridge's vocabulary."""
        if self.device_approval is not None:
            return self.device_approval.factor()
        assert self.otp is not None
        return TotpFactor(self.otp, self.nonce)


class PinEnvelope(BaseModel):
    """The token's PIN (only for credentials with PIN policy ``signer``), sealed by the
    app to the bridge's key (``GET /mobile/v1/signing-requests/{id}/pin-key``) with HPKE
    (RFC 9180: DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-128-GCM), ``info`` =
    ``"signing-gateway/token-pin/1"``, a NUL byte, then this approval's nonce (the
    device approval's, or ``nonce`` with a TOTP code): base64 of the encapsulated key
    followed by the ciphertext. The gateway relays it and cannot open it."""

    sealed: str = Field(min_length=16, max_length=1024, repr=False)

    def value(self) -> bytes:
        """The envelope's bytes (422 for bad base64)."""
        try:
            return base64.b64decode(self.sealed, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ParameterInvalid("pin_envelope.sealed must be base64") from exc


def _envelope(envelope: PinEnvelope | None) -> bytes | None:
    return envelope.value() if envelope is not None else None


class ApprovalBody(SecondFactor):
    """The SHA-256 (hex) of the document the signer was shown, and a second factor;
    ``pin_envelope`` when the credential's PIN policy is ``signer``."""

    document_sha256: str = Field(pattern=_SHA256_HEX)
    pin_envelope: PinEnvelope | None = None


class DecisionView(BaseModel):
    """A request's status after a decision; ``code`` is the refusal or error that kept
    it from being decided or signed (in batch answers)."""

    id: str
    status: str | None = None
    code: str | None = None
    failure_code: str | None = None
    signed_document_sha256: str | None = None


def _view(request: SigningRequest) -> DecisionView:
    return DecisionView(
        id=request.id,
        status=request.status,
        failure_code=request.failure_code,
        signed_document_sha256=request.signed_document_sha256,
    )


@router.post(
    "/signing-requests/{request_id}/approval",
    response_model=DecisionView,
    responses=raises(FactorRefused, RequestStateError, CertificateRefused, BridgeError),
)
def approve(
    request_id: str, body: ApprovalBody, request: Request, context: Context, user: Signer
) -> DecisionView:
    """Approve with a TOTP code or a device signature, and sign. Answers ``signed``, or
    ``failed`` with a code; refusals are problems (``document_changed``,
    ``otp_invalid``, ``approval_signature_invalid``…)."""
    result = context.service.approve(
        user,
        request_id,
        body.document_sha256,
        body.factor(),
        pin_envelope=_envelope(body.pin_envelope),
        client_address=client_address(request),
    )
    return _view(result)


class RejectionBody(SecondFactor):
    """Why the signer declines (free text, kept out of logs), and a second factor."""

    reason: str = Field(default="", max_length=1000)


@router.post(
    "/signing-requests/{request_id}/rejection",
    response_model=DecisionView,
    responses=raises(FactorRefused, RequestStateError, BridgeError),
)
def reject(
    request_id: str, body: RejectionBody, request: Request, context: Context, user: Signer
) -> DecisionView:
    """Decline the request with a second factor; it becomes ``rejected`` at once."""
    result = context.service.reject(
        user, request_id, body.reason, body.factor(), client_address=client_address(request)
    )
    return _view(result)


class BatchItem(BaseModel):
    """One request of a batch and the SHA-256 of its document as the signer saw it."""

    id: str = Field(min_length=1, max_length=36)
    document_sha256: str = Field(pattern=_SHA256_HEX)


class BatchBody(SecondFactor):
    """A batch decision: the requests, ``decision`` (``approve`` by default), one second
    factor for all of them (a device signature covers the statement that lists them
    all), and for ``reject`` an optional reason."""

    requests: list[BatchItem] = Field(min_length=1, max_length=500)
    decision: Literal["approve", "reject"] = "approve"
    pin_envelope: PinEnvelope | None = None
    reason: str = Field(default="", max_length=1000)


class BatchView(BaseModel):
    """One outcome per request, in the order given."""

    outcomes: list[DecisionView]


def _outcome_view(outcome: DecisionOutcome) -> DecisionView:
    if outcome.request is not None:
        return _view(outcome.request)
    assert outcome.error is not None
    return DecisionView(id=outcome.request_id, code=outcome.error.code)


@router.post(
    "/approvals",
    response_model=BatchView,
    responses=raises(FactorRefused, BatchTooLarge, BridgeError),
)
def decide_batch(body: BatchBody, request: Request, context: Context, user: Signer) -> BatchView:
    """Approve (and sign) or reject many requests with one second factor, at most
    ``batch_max_requests`` (``batch_too_large`` beyond). Each request is signed or fails
    on its own; the answer lists each outcome. A refused second factor refuses the
    whole batch (a problem, nothing decided)."""
    if body.decision == "reject":
        outcomes = context.service.reject_batch(
            user,
            [item.id for item in body.requests],
            body.factor(),
            reason=body.reason,
            client_address=client_address(request),
        )
    else:
        outcomes = context.service.approve_batch(
            user,
            [DecisionItem(item.id, item.document_sha256) for item in body.requests],
            body.factor(),
            pin_envelope=_envelope(body.pin_envelope),
            client_address=client_address(request),
        )
    return BatchView(outcomes=[_outcome_view(o) for o in outcomes])


class NonceView(BaseModel):
    """A server nonce for one signed decision and when it expires."""

    nonce: str
    expires_at: dt.datetime


@router.post("/approval-nonces", response_model=NonceView, status_code=201)
def new_nonce(context: Context, user: Signer) -> NonceView:
    """A fresh nonce (when the push did not arrive, or for a batch)."""
    with context.db.transaction() as session:
        nonce = issue_nonce(
            session,
            user.id,
            now=context.clock(),
            ttl_seconds=context.settings.approval_nonce_ttl_seconds,
        )
    return NonceView(nonce=nonce.nonce, expires_at=nonce.expires_at)
