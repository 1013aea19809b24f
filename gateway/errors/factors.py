"""A signer's second factor, or an enrolment of one, does not hold."""

from __future__ import annotations

from gateway.errors.base import FactorRefused

__all__ = [
    "PasskeyRefused",
    "ApprovalExpired",
    "ApprovalNonceInvalid",
    "ApprovalSignatureInvalid",
    "DeviceKeyInvalid",
    "DeviceRevoked",
    "DeviceUnknown",
    "EnrolmentCodeInvalid",
    "OtpInvalid",
    "OtpLocked",
    "OtpReused",
    "TotpNotAccepted",
    "TotpNotEnrolled",
]


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


class PasskeyRefused(FactorRefused):
    """The bridge refused a passkey registration: the challenge is unknown, used or
    expired, the browser's answer does not verify (another site, no user
    verification), or the installation accepts only passkeys bound to one device and
    this one is synced (``reason`` says which)."""

    code = "passkey_refused"
    status = 422
    title = "The passkey could not be registered"
