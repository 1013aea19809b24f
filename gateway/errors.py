"""The gateway's error tree: every refusal the gateway answers with is one of these
classes, found by its name.

Every class has a stable ``code``, an HTTP ``status``, a human ``title`` and whether the
same call may succeed later unchanged (``retryable``); the instance carries a ``detail``
message in words a clerk understands. :mod:`gateway.problems` is the one place that
turns them (and the bridge's errors, rebuilt from its wire codes) into RFC 9457
problems.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AccessRefused",
    "EnrolmentCodeInvalid",
    "ApprovalExpired",
    "ApprovalNonceInvalid",
    "ApprovalSignatureInvalid",
    "BatchTooLarge",
    "CertificateNotValid",
    "CertificateRefused",
    "CertificateRevoked",
    "CredentialsInvalid",
    "DeviceKeyInvalid",
    "DeviceRevoked",
    "DeviceUnknown",
    "DocumentCertifiedFieldRequired",
    "DocumentCertifiedNoChanges",
    "DocumentCertifiedNoEmptyField",
    "DocumentChanged",
    "DocumentEmpty",
    "DocumentEncrypted",
    "DocumentLocked",
    "DocumentNotPdf",
    "DocumentRefused",
    "DocumentTooLarge",
    "DocumentTruncated",
    "DocumentUnreadable",
    "DocumentXfa",
    "FactorRefused",
    "Forbidden",
    "GatewayError",
    "IdempotencyConflict",
    "LoginLocked",
    "LoginRateLimited",
    "NotFound",
    "OrganisationNoCredential",
    "OrganisationNoSeal",
    "OrganisationUnknown",
    "OtpInvalid",
    "OtpLocked",
    "OtpReused",
    "ParameterInvalid",
    "RequestExpired",
    "RequestNotPending",
    "RequestNotSigned",
    "RequestStateError",
    "SignerBlockNotFound",
    "SignerNoCredential",
    "SignerNotLeader",
    "SignerUnknown",
    "SubmissionRefused",
    "TotpNotAccepted",
    "TotpNotEnrolled",
    "Unauthenticated",
]


class GatewayError(Exception):
    """Base of the gateway's errors. Each class sets a stable machine-readable ``code``,
    an HTTP ``status``, a human ``title`` and whether the same call may succeed later
    unchanged (``retryable``); an instance carries a ``detail`` message and ``extra``
    members for the problem. :func:`install_error_handlers` turns them into RFC 9457
    problems, dispatched by class."""

    code = "internal_error"
    status = 500
    title = "Internal error"
    retryable = False

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra


class AccessRefused(GatewayError):
    """Who the caller is, or what they may see, does not allow the call."""


class DocumentRefused(GatewayError):
    """Intake refused the document before anything was stored or anyone notified."""


class SubmissionRefused(GatewayError):
    """A submission or decision is refused for what it asks, not for the document."""


class RequestStateError(GatewayError):
    """The request is not in a state that allows the call."""


class FactorRefused(GatewayError):
    """A signer's second factor, or an enrolment of one, does not hold."""


class CertificateRefused(GatewayError):
    """The signer's certificate cannot sign now (DESIGN.md invariant 6)."""


class Unauthenticated(AccessRefused):
    """No valid API key or session token came with the request (missing, unknown, expired
    or revoked)."""

    code = "unauthenticated"
    status = 401
    title = "Authentication required"


class CredentialsInvalid(AccessRefused):
    """A login named an unknown user, a wrong password, or a disabled account (the same
    answer for all three)."""

    code = "credentials_invalid"
    status = 401
    title = "Wrong username or password"


class LoginLocked(AccessRefused):
    """Logins of this account are locked for a while after too many wrong passwords."""

    code = "login_locked"
    status = 429
    title = "Too many failed logins"


class LoginRateLimited(AccessRefused):
    """One client address tried to log in more often than ``login_rate_limit`` allows."""

    code = "login_rate_limited"
    status = 429
    title = "Too many logins from this address"


class Forbidden(AccessRefused):
    """The caller is known but may not do this (invariant 7)."""

    code = "forbidden"
    status = 403
    title = "Not allowed"


class NotFound(AccessRefused):
    """No such resource, or not one the caller may see (a signer never learns of other
    signers' requests)."""

    code = "not_found"
    status = 404
    title = "Not found"


class DocumentNotPdf(DocumentRefused):
    """The upload has no ``%PDF-`` header in its first 1024 bytes."""

    code = "document_not_pdf"
    status = 415
    title = "The document is not a PDF"


class DocumentTooLarge(DocumentRefused):
    """The upload is larger than ``max_document_bytes``."""

    code = "document_too_large"
    status = 413
    title = "The document is too large"


class DocumentTruncated(DocumentRefused):
    """No ``%%EOF`` marker near the end: the file is incomplete."""

    code = "document_truncated"
    status = 422
    title = "The PDF is truncated"


class DocumentUnreadable(DocumentRefused):
    """pyHanko, the parser of record, cannot read the file or its page tree."""

    code = "document_unreadable"
    status = 422
    title = "The PDF cannot be read"


class DocumentEncrypted(DocumentRefused):
    """The document has a security handler; the decrypted file must be submitted."""

    code = "document_encrypted"
    status = 422
    title = "The PDF is encrypted"


class DocumentCertifiedNoChanges(DocumentRefused):
    """The author's certification (DocMDP P=1), or an earlier signature's lock with P=1,
    forbids any change (ISO 32000-1 §12.8.2.2)."""

    code = "document_certified_no_changes"
    status = 422
    title = "The PDF is certified with no changes allowed"


class DocumentCertifiedFieldRequired(DocumentRefused):
    """A document certified for form filling and signing (P=2) gets no new visible field;
    several empty fields are there and none was named."""

    code = "document_certified_field_required"
    status = 422
    title = (
        "The author's certification allows a signature only in one of the document's "
        "empty signature fields: name it (field_name)"
    )


class DocumentCertifiedNoEmptyField(DocumentRefused):
    """A visible signature was asked for on a P=2 document without an empty signature
    field."""

    code = "document_certified_no_empty_field"
    status = 422
    title = (
        "The author's certification allows no visible new signature field, and the "
        "document has no empty one"
    )


class DocumentLocked(DocumentRefused):
    """An earlier signature's field lock covers every field a new signature would create
    (Action /All or /Exclude)."""

    code = "document_locked"
    status = 422
    title = "An earlier signature locks every field a new signature would need"


class SignerBlockNotFound(DocumentRefused):
    """``placement=auto`` found no line with the signer's name under a title line on the
    last page."""

    code = "signer_block_not_found"
    status = 422
    title = (
        "Automatic placement found no signer block (title line, then the signer's name) "
        "on the last page"
    )


class DocumentXfa(DocumentRefused):
    """A dynamic XFA form: the signer would see a placeholder page, not the form."""

    code = "document_xfa_unsupported"
    status = 422
    title = "Dynamic XFA forms cannot be signed"


class DocumentEmpty(DocumentRefused):
    """The page tree holds no page."""

    code = "document_empty"
    status = 422
    title = "The PDF has no pages"


class SignerUnknown(SubmissionRefused):
    """The submission names a user this installation does not have."""

    code = "signer_unknown"
    status = 422
    title = "Unknown signer"


class SignerNoCredential(SubmissionRefused):
    """The signer has no registered credential that is not revoked."""

    code = "signer_no_credential"
    status = 422
    title = "The signer has no signing credential"


class ParameterInvalid(SubmissionRefused):
    """A parameter of the call is malformed or contradicts another; the detail says which
    and why."""

    code = "parameter_invalid"
    status = 422
    title = "A parameter is invalid"


class OrganisationUnknown(SubmissionRefused):
    """The workflow names an organisation this installation does not have."""

    code = "organisation_unknown"
    status = 422
    title = "Unknown organisation"


class OrganisationNoCredential(SubmissionRefused):
    """The sealing organisation's key is not registered, is revoked, or has no keeper."""

    code = "organisation_no_credential"
    status = 422
    title = "The organisation has no signing credential kept by one of its clerks"


class OrganisationNoSeal(SubmissionRefused):
    """The sealing organisation has no seal image to draw."""

    code = "organisation_no_seal"
    status = 422
    title = "The organisation has no seal image"


class SignerNotLeader(SubmissionRefused):
    """The first signer of an official document is not a leader of the sealing
    organisation."""

    code = "signer_not_leader"
    status = 422
    title = "An official document is signed first by a leader of the organisation that seals it"


class IdempotencyConflict(SubmissionRefused):
    """The same Idempotency-Key came with another body."""

    code = "idempotency_conflict"
    status = 409
    title = "The Idempotency-Key was used with another request"


class RequestNotPending(RequestStateError):
    """The request was decided, cancelled or is being signed."""

    code = "request_not_pending"
    status = 409
    title = "The request is not pending approval"


class RequestExpired(RequestStateError):
    """The request's time to be approved ran out."""

    code = "request_expired"
    status = 409
    title = "The request has expired"


class RequestNotSigned(RequestStateError):
    """The signed document was asked for before the request was signed."""

    code = "request_not_signed"
    status = 409
    title = "The request is not signed"


class DocumentChanged(RequestStateError):
    """The hash the signer sent is not the stored document's, or the stored document,
    parameters or image changed after approval: nothing is signed."""

    code = "document_changed"
    status = 409
    title = "The document hash does not match the document to be signed"


class OtpInvalid(FactorRefused):
    """The bridge refused the TOTP code; the failure counts towards the lockout."""

    code = "otp_invalid"
    status = 403
    title = "The one-time code is wrong"


class OtpReused(FactorRefused):
    """The code's step, or a newer one, was accepted already."""

    code = "otp_reused"
    status = 403
    title = "The one-time code was already used"


class OtpLocked(FactorRefused):
    """The signer's TOTP approvals are locked for a while."""

    code = "otp_locked"
    status = 429
    title = "Too many wrong one-time codes; approval is locked"


class TotpNotEnrolled(FactorRefused):
    """The bridge holds no TOTP secret for the signer (or nothing is pending to confirm)."""

    code = "totp_not_enrolled"
    status = 409
    title = "No confirmed TOTP authenticator"


class TotpNotAccepted(FactorRefused):
    """The bridge runs in the secure-host profile: a TOTP code approves nothing there."""

    code = "totp_not_accepted"
    status = 403
    title = "This installation takes approvals from enrolled devices only"


class EnrolmentCodeInvalid(FactorRefused):
    """The enrolment code's proof does not hold, or the code is unknown, used or expired."""

    code = "enrolment_code_invalid"
    status = 403
    title = "The enrolment code is unknown, used or expired"


class DeviceKeyInvalid(FactorRefused):
    """An enrolment sent a key that is not P-256, or one that is revoked or someone else's."""

    code = "device_key_invalid"
    status = 422
    title = "The device key is not a P-256 public key"


class DeviceUnknown(FactorRefused):
    """The decision names a device this signer does not have."""

    code = "device_unknown"
    status = 403
    title = "No such device of this signer"


class DeviceRevoked(FactorRefused):
    """The decision comes from a revoked device."""

    code = "device_revoked"
    status = 403
    title = "The device was revoked"


class ApprovalNonceInvalid(FactorRefused):
    """The signed decision's nonce cannot be spent."""

    code = "approval_nonce_invalid"
    status = 403
    title = "The nonce is unknown, used, expired or not this signer's"


class ApprovalExpired(FactorRefused):
    """The signed decision's expiry passed, or lies too far ahead."""

    code = "approval_expired"
    status = 403
    title = "The signed decision has expired"


class ApprovalSignatureInvalid(FactorRefused):
    """The device's signature does not verify over the statement rebuilt from the stored
    requests."""

    code = "approval_signature_invalid"
    status = 403
    title = "The device signature does not match this decision"


class BatchTooLarge(SubmissionRefused):
    """More requests in one decision than ``batch_max_requests``."""

    code = "batch_too_large"
    status = 422
    title = "Too many requests in one batch"


class CertificateNotValid(CertificateRefused):
    """Checked right before signing (invariant 6): nothing is signed."""

    code = "certificate_not_valid"
    status = 409
    title = "The signer's certificate is expired or not yet valid"


class CertificateRevoked(CertificateRefused):
    """The credential was revoked: nothing is signed with it any more."""

    code = "certificate_revoked"
    status = 409
    title = "The signer's certificate is revoked"
