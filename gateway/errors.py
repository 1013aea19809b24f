"""The gateway's error tree and the one place that turns errors into RFC 9457 problems.

Every error class has a stable ``code``, an HTTP ``status`` and a human ``title``; the
instance carries a ``detail`` message. No handler anywhere else builds error bodies.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from hsm_bridge.errors import BridgeError

__all__ = ["GatewayError", "install_error_handlers", "problem"]

log = logging.getLogger(__name__)

PROBLEM_TYPE_BASE = "https://signing-gateway.invalid/problems/"


class GatewayError(Exception):
    """Base class. Subclasses set ``code``, ``status`` and ``title``."""

    code = "internal_error"
    status = 500
    title = "Internal error"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra


def _error(code: str, status: int, title: str) -> type[GatewayError]:
    return type(
        "".join(part.title() for part in code.split("_")) + "Error",
        (GatewayError,),
        {"code": code, "status": status, "title": title, "__module__": __name__},
    )


# Authentication and authorisation
Unauthenticated = _error("unauthenticated", 401, "Authentication required")
CredentialsInvalid = _error("credentials_invalid", 401, "Wrong username or password")
LoginLocked = _error("login_locked", 429, "Too many failed logins")
LoginRateLimited = _error("login_rate_limited", 429, "Too many logins from this address")
Forbidden = _error("forbidden", 403, "Not allowed")
NotFound = _error("not_found", 404, "Not found")
# Submission
DocumentNotPdf = _error("document_not_pdf", 415, "The document is not a PDF")
DocumentTooLarge = _error("document_too_large", 413, "The document is too large")
DocumentTruncated = _error("document_truncated", 422, "The PDF is truncated")
DocumentUnreadable = _error("document_unreadable", 422, "The PDF cannot be read")
DocumentEncrypted = _error("document_encrypted", 422, "The PDF is encrypted")
DocumentCertifiedNoChanges = _error(
    "document_certified_no_changes", 422, "The PDF is certified with no changes allowed"
)
DocumentCertifiedFieldRequired = _error(
    "document_certified_field_required",
    422,
    "The author's certification allows a signature only in one of the document's empty"
    " signature fields: name it (field_name)",
)
DocumentCertifiedNoEmptyField = _error(
    "document_certified_no_empty_field",
    422,
    "The author's certification allows no visible new signature field, and the document"
    " has no empty one",
)
DocumentLocked = _error(
    "document_locked",
    422,
    "An earlier signature locks every field a new signature would need",
)
SignerBlockNotFound = _error(
    "signer_block_not_found",
    422,
    "Automatic placement found no signer block (title line, then the signer's name) on the"
    " last page",
)
DocumentXfa = _error("document_xfa_unsupported", 422, "Dynamic XFA forms cannot be signed")
DocumentEmpty = _error("document_empty", 422, "The PDF has no pages")
SignerUnknown = _error("signer_unknown", 422, "Unknown signer")
SignerNoCredential = _error("signer_no_credential", 422, "The signer has no signing credential")
ParameterInvalid = _error("parameter_invalid", 422, "A parameter is invalid")
OrganisationUnknown = _error("organisation_unknown", 422, "Unknown organisation")
OrganisationNoCredential = _error(
    "organisation_no_credential",
    422,
    "The organisation has no signing credential kept by one of its clerks",
)
OrganisationNoSeal = _error("organisation_no_seal", 422, "The organisation has no seal image")
SignerNotLeader = _error(
    "signer_not_leader",
    422,
    "An official document is signed first by a leader of the organisation that seals it",
)
IdempotencyConflict = _error(
    "idempotency_conflict", 409, "The Idempotency-Key was used with another request"
)
# Life cycle
RequestNotPending = _error("request_not_pending", 409, "The request is not pending approval")
RequestExpired = _error("request_expired", 409, "The request has expired")
RequestNotSigned = _error("request_not_signed", 409, "The request is not signed")
DocumentChanged = _error(
    "document_changed", 409, "The document hash does not match the document to be signed"
)
# Second factor
OtpInvalid = _error("otp_invalid", 403, "The one-time code is wrong")
OtpReused = _error("otp_reused", 403, "The one-time code was already used")
OtpLocked = _error("otp_locked", 429, "Too many wrong one-time codes; approval is locked")
TotpNotEnrolled = _error("totp_not_enrolled", 409, "No confirmed TOTP authenticator")
TotpNotAccepted = _error(
    "totp_not_accepted", 403, "This installation takes approvals from enrolled devices only"
)
# Devices and signed decisions
ActivationCodeInvalid = _error(
    "activation_code_invalid", 403, "The device activation code is unknown, used or expired"
)
DeviceKeyInvalid = _error("device_key_invalid", 422, "The device key is not a P-256 public key")
DeviceUnknown = _error("device_unknown", 403, "No such device of this signer")
DeviceRevoked = _error("device_revoked", 403, "The device was revoked")
ApprovalNonceInvalid = _error(
    "approval_nonce_invalid", 403, "The nonce is unknown, used, expired or not this signer's"
)
ApprovalExpired = _error("approval_expired", 403, "The signed decision has expired")
ApprovalSignatureInvalid = _error(
    "approval_signature_invalid", 403, "The device signature does not match this decision"
)
BatchTooLarge = _error("batch_too_large", 422, "Too many requests in one batch")
# Certificates
CertificateNotValid = _error(
    "certificate_not_valid", 409, "The signer's certificate is expired or not yet valid"
)
CertificateRevoked = _error("certificate_revoked", 409, "The signer's certificate is revoked")

_BRIDGE_TITLES = {
    "activation_invalid": "The bridge refused to sign: the activation does not hold",
    "authorization_refused": "The bridge refused the approval",
    "pin_required": "The token's PIN is needed",
    "pin_incorrect": "The token refused the PIN",
    "pin_locked": "The token's PIN is locked",
    "pin_envelope_invalid": "The sealed PIN does not open for this approval",
    "certificate_not_usable": "The signer's certificate is expired or not yet valid",
    "signature_build_failed": "The signature could not be built",
}


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    """An ``application/problem+json`` response (RFC 9457) with our ``code`` member."""
    body = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that map every exception to a problem response. Unknown
    exceptions become a 500 problem without a stack trace (the trace goes to the log)."""

    @app.exception_handler(GatewayError)
    async def _gateway(_: Request, exc: GatewayError) -> JSONResponse:
        return problem(exc.status, exc.code, exc.title, exc.detail, **exc.extra)

    @app.exception_handler(BridgeError)
    async def _bridge(_: Request, exc: BridgeError) -> JSONResponse:
        status = exc.status
        reason = getattr(exc, "reason", None)
        extra = {"reason": reason} if reason is not None else {}
        title = _BRIDGE_TITLES.get(exc.code, "Signing device error")
        return problem(status, exc.code, title, exc.message, **extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        return problem(
            422,
            "parameter_invalid",
            "A parameter is invalid",
            "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors),
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return problem(exc.status_code, code, str(exc.detail), str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error: %s", type(exc).__name__, exc_info=exc)
        return problem(500, "internal_error", "Internal error", "An unexpected error occurred")
