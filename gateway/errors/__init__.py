"""The gateway's error tree: every refusal the gateway answers with is one of these
classes, found by its name.

Every class has a stable ``code``, an HTTP ``status``, a human ``title`` and whether the
same call may succeed later unchanged (``retryable``); the instance carries a ``detail``
message in words a clerk understands. :mod:`gateway.problems` is the one place that
turns them (and the bridge's errors, rebuilt from its wire codes) into RFC 9457
problems.
"""

from __future__ import annotations

from gateway.errors.access import (
    AdminRoleRequired,
    CredentialsInvalid,
    Forbidden,
    LoginRateLimited,
    NotFound,
    PasswordChangeRequired,
    PasswordTooWeak,
    ScopeMissing,
    Unauthenticated,
    UserDisabled,
)
from gateway.errors.base import (
    AccessRefused,
    CertificateRefused,
    DocumentRefused,
    FactorRefused,
    GatewayError,
    RequestStateError,
    SubmissionRefused,
)
from gateway.errors.certificates import (
    CertificateHolderMismatch,
    CertificateNotValid,
    CertificateRevoked,
)
from gateway.errors.documents import (
    DocumentCertifiedFieldRequired,
    DocumentCertifiedNoChanges,
    DocumentCertifiedNoEmptyField,
    DocumentEmpty,
    DocumentEncrypted,
    DocumentLocked,
    DocumentNotPdf,
    DocumentTooComplex,
    DocumentTooLarge,
    DocumentTruncated,
    DocumentUnreadable,
    DocumentUnsignable,
    DocumentXfa,
    SignerBlockNotFound,
)
from gateway.errors.factors import (
    ApprovalExpired,
    ApprovalNonceInvalid,
    ApprovalSignatureInvalid,
    DeviceKeyInvalid,
    DeviceRevoked,
    DeviceUnknown,
    EnrolmentCodeInvalid,
    OtpInvalid,
    OtpLocked,
    OtpReused,
    PasskeyRefused,
    TotpNotAccepted,
    TotpNotEnrolled,
)
from gateway.errors.states import (
    DocumentChanged,
    DocumentWorkersBusy,
    RequestExpired,
    RequestNotPending,
    RequestNotSigned,
    SubmissionConflict,
)
from gateway.errors.submissions import (
    BatchTooLarge,
    CursorInvalid,
    IdempotencyConflict,
    OrganisationNoCredential,
    OrganisationNoSeal,
    OrganisationUnknown,
    ParameterInvalid,
    SignerDisabled,
    SignerNoCredential,
    SignerNotLeader,
    SignerUnknown,
)

__all__ = [
    "AccessRefused",
    "AdminRoleRequired",
    "CertificateHolderMismatch",
    "ApprovalExpired",
    "ApprovalNonceInvalid",
    "ApprovalSignatureInvalid",
    "BatchTooLarge",
    "CertificateNotValid",
    "CertificateRefused",
    "CertificateRevoked",
    "CredentialsInvalid",
    "CursorInvalid",
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
    "DocumentTooComplex",
    "DocumentTooLarge",
    "DocumentTruncated",
    "DocumentUnreadable",
    "DocumentUnsignable",
    "DocumentWorkersBusy",
    "DocumentXfa",
    "EnrolmentCodeInvalid",
    "FactorRefused",
    "Forbidden",
    "GatewayError",
    "IdempotencyConflict",
    "LoginRateLimited",
    "NotFound",
    "OrganisationNoCredential",
    "OrganisationNoSeal",
    "OrganisationUnknown",
    "OtpInvalid",
    "OtpLocked",
    "OtpReused",
    "ParameterInvalid",
    "PasswordChangeRequired",
    "PasswordTooWeak",
    "PasskeyRefused",
    "RequestExpired",
    "RequestNotPending",
    "RequestNotSigned",
    "RequestStateError",
    "ScopeMissing",
    "SignerBlockNotFound",
    "SignerDisabled",
    "SignerNoCredential",
    "SignerNotLeader",
    "SignerDisabled",
    "SignerUnknown",
    "SubmissionConflict",
    "SubmissionRefused",
    "TotpNotAccepted",
    "TotpNotEnrolled",
    "Unauthenticated",
    "UserDisabled",
    "error_class",
]


def error_class(code: str) -> type[GatewayError]:
    """The error class whose ``code`` is ``code`` (GatewayError itself for none): how an
    error raised in a document worker is rebuilt in the gateway."""
    pending: list[type[GatewayError]] = [GatewayError]
    while pending:
        cls = pending.pop()
        if cls.code == code:
            return cls
        pending.extend(cls.__subclasses__())
    return GatewayError
