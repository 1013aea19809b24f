"""The bridge's error tree, and the one function that maps python-pkcs11 errors into it.

Every error has a stable machine-readable ``code``, an HTTP ``status`` (the bridge
service answers with it; the gateway's problem mapping keeps it) and a ``retryable``
flag. Messages never contain a PIN.
"""

from __future__ import annotations

import enum

import pkcs11.exceptions as p11e

__all__ = [
    "BatchAbandoned",
    "ActivationInvalid",
    "AuthorizationRefused",
    "BridgeError",
    "BridgeUnavailable",
    "CertificateNotUsable",
    "CertificateRevoked",
    "PadesLevelNotReached",
    "RevocationUnavailable",
    "CredentialNotFound",
    "MechanismUnsupported",
    "NoMatchingKey",
    "CertificateRequestInvalid",
    "TokenFull",
    "TokenLabelTaken",
    "PinIncorrect",
    "PinEnvelopeInvalid",
    "PinLocked",
    "PinRequired",
    "RefusalReason",
    "SignatureBuildFailed",
    "TokenBusy",
    "TokenError",
    "TokenNotPresent",
    "TokenTimeout",
    "TokenUnhealthy",
    "error_from_code",
    "from_pkcs11_error",
]


class BridgeError(Exception):
    """Base of every error raised by :mod:`hsm_bridge`.

    ``code`` is stable and machine-readable; ``retryable`` says whether the same
    operation may succeed later without a change by the caller.
    """

    code = "bridge_error"
    status = 500
    title = "Signing device error"
    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TokenNotPresent(BridgeError):
    """The token holding the credential is absent or was removed (CKR_TOKEN_NOT_PRESENT,
    CKR_DEVICE_REMOVED, or no slot shows the token serial)."""

    code = "token_not_present"
    status = 503
    title = "The signing token is not present"
    retryable = True


class TokenError(BridgeError):
    """The token or module failed (CKR_DEVICE_ERROR, CKR_FUNCTION_FAILED, a session that
    vanished...)."""

    code = "token_error"
    status = 502
    title = "The signing token failed"
    retryable = True


class TokenBusy(BridgeError):
    """Every session of the token stayed busy for the whole operation timeout (the
    per-token concurrency limit from the settings)."""

    code = "token_busy"
    status = 503
    title = "The signing token is busy"
    retryable = True


class BatchAbandoned(BridgeError):
    """The token's worker gave up on a batch whose caller stopped adding to it; these
    items never reached the token."""

    code = "batch_abandoned"
    status = 503
    title = "The batch was abandoned before it reached the token"
    retryable = True


class TokenTimeout(BridgeError):
    """The token did not answer within the operation timeout; it is now unhealthy."""

    code = "token_timeout"
    status = 503
    title = "The signing token did not answer in time"
    retryable = True


class TokenUnhealthy(BridgeError):
    """An earlier operation on the token has not returned yet: new ones are refused at
    once instead of queueing behind a stuck device."""

    code = "token_unhealthy"
    status = 503
    title = "The signing token is not answering"
    retryable = True


class BridgeUnavailable(BridgeError):
    """A remote bridge could not be reached, or answered with something unexpected."""

    code = "bridge_unavailable"
    status = 503
    title = "The signing service cannot be reached"
    retryable = True


class CredentialNotFound(BridgeError):
    """No private key or certificate with the credential's CKA_ID on its token, or more
    than one (ambiguous; never guessed between)."""

    code = "credential_not_found"
    status = 409
    title = "The key is not on the token"


class PinIncorrect(BridgeError):
    """C_Login answered CKR_PIN_INCORRECT. Never retried automatically."""

    code = "pin_incorrect"
    status = 403
    title = "The token refused the PIN"


class PinRequired(BridgeError):
    """The credential's PIN policy is ``signer`` (no PIN is stored for its token) and
    the request carries no PIN."""

    code = "pin_required"
    status = 422
    title = "The token's PIN is needed"


class PinLocked(BridgeError):
    """The user PIN is locked (CKR_PIN_LOCKED)."""

    code = "pin_locked"
    status = 403
    title = "The token's PIN is locked"


class MechanismUnsupported(BridgeError):
    """The key type and the requested mechanism do not fit, or the token lacks it."""

    code = "mechanism_unsupported"
    status = 409
    title = "The token cannot sign with this mechanism"


class RefusalReason(enum.StrEnum):
    """Why the bridge refused: the ``reason`` of :class:`ActivationInvalid` (a SAD that
    does not hold for what was sent) and of :class:`AuthorizationRefused` (a factor, a
    binding or an enrolment that does not hold). Stable, machine-readable, sent over
    the link and shown in problems; docs/security-model.md says what each means."""

    MALFORMED = "malformed"
    FORGED = "forged"
    EXPIRED = "expired"
    REUSED = "reused"
    MISSING = "missing"
    WRONG_CREDENTIAL = "wrong_credential"
    WRONG_MECHANISM = "wrong_mechanism"
    WRONG_DOCUMENT = "wrong_document"
    WRONG_IMAGE = "wrong_image"
    CERTIFICATE_MISMATCH = "certificate_mismatch"
    CREDENTIAL_NOT_BOUND = "credential_not_bound"
    DEVICE_UNKNOWN = "device_unknown"
    DEVICE_REVOKED = "device_revoked"
    DEVICE_NOT_ACCEPTED = "device_not_accepted"
    APPROVAL_EXPIRED = "approval_expired"
    APPROVAL_SIGNATURE_INVALID = "approval_signature_invalid"
    APPROVAL_NONCE_REUSED = "approval_nonce_reused"
    TOTP_NOT_ACCEPTED = "totp_not_accepted"
    TOTP_NOT_ENROLLED = "totp_not_enrolled"
    TOTP_LOCKED = "totp_locked"
    TOTP_LOCKOUT = "totp_lockout"
    TOTP_INVALID = "totp_invalid"
    TOTP_REUSED = "totp_reused"
    TOTP_SECRET_INVALID = "totp_secret_invalid"  # noqa: S105 - a reason, not a secret
    ENROLMENT_CODE_INVALID = "enrolment_code_invalid"
    DEVICE_KEY_INVALID = "device_key_invalid"
    PASSKEY_INVALID = "passkey_invalid"
    PASSKEY_SYNCED = "passkey_synced"
    CHALLENGE_INVALID = "challenge_invalid"


class ActivationInvalid(BridgeError):
    """The signature activation data (SAD) is missing, forged, expired, already used, or
    does not cover what was sent: another credential or mechanism (``wrong_credential``,
    ``wrong_mechanism``), another document (``wrong_document``), an image other than the
    approved one (``wrong_image``), a certificate the token no longer holds
    (``certificate_mismatch``). The bridge refuses to sign; a SAD that was authentic
    and unexpired is spent all the same."""

    code = "activation_invalid"
    status = 403
    title = "The bridge refused to sign: the activation does not hold"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class AuthorizationRefused(BridgeError):
    """The signature activation module refused to issue activations, or to enrol a
    device or an authenticator: the signer's proof (device signature, TOTP code,
    enrolment code) does not hold, or the signer may not use the credential.
    ``reason`` says which check failed (e.g. ``device_revoked``, ``totp_reused``)."""

    code = "authorization_refused"
    status = 403
    title = "The bridge refused the approval"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class PinEnvelopeInvalid(BridgeError):
    """The sealed PIN (:mod:`hsm_bridge.sam.pin_envelope`) does not open with the bridge's
    key for the approval the SAD names: sealed for another approval or key, or
    altered. No login was tried."""

    code = "pin_envelope_invalid"
    status = 403
    title = "The sealed PIN does not open for this approval"


class CertificateNotUsable(BridgeError):
    """The credential's certificate is expired or not yet valid at the bridge's clock
    (docs/design.md invariant 6, checked right before signing). Nothing was signed."""

    code = "certificate_not_usable"
    status = 409
    title = "The signer's certificate is expired or not yet valid"


class CertificateRevoked(BridgeError):
    """The CA says the signer's certificate, or one of its CAs' certificates, is
    revoked (OCSP or CRL, checked right before the signature). Nothing was signed; the
    request stays pending (a new certificate must be registered, or the request
    cancelled)."""

    code = "certificate_revoked"
    status = 409
    title = "The signer's certificate was revoked"


class RevocationUnavailable(BridgeError):
    """Whether the certificate is revoked could not be learnt: neither the OCSP
    responder nor the CRL answered (in time, correctly signed, fresh). The bridge fails
    closed: nothing was signed, and the same approval may succeed once the CA answers."""

    code = "revocation_unavailable"
    status = 503
    title = "The certificate's revocation status is unavailable"
    retryable = True


class PadesLevelNotReached(BridgeError):
    """The signed document does not reach the PAdES level asked for (a timestamp or the
    validation data could not be obtained or embedded). Its output is not used."""

    code = "pades_level_not_reached"
    status = 502
    title = "The signature does not reach the PAdES level asked for"
    retryable = True


class SignatureBuildFailed(BridgeError):
    """pyHanko could not build the signature of the approved document (an update it
    cannot write). The document was accepted at submission, so this is a defect to
    report; nothing was signed."""

    code = "signature_build_failed"
    status = 422
    title = "The signature could not be built"


class TokenFull(BridgeError):
    """The token has no room for another object (CKR_DEVICE_MEMORY): a key pair or a
    certificate could not be stored. Remove unused keys with the vendor's tool."""

    code = "token_full"
    status = 507
    title = "The token is full"


class NoMatchingKey(BridgeError):
    """No key pair on the token has the public key the certificate certifies (its
    SubjectPublicKeyInfo): the certificate is for another token or another request."""

    code = "no_matching_key"
    status = 409
    title = "No key on the token fits the certificate"


class CertificateRequestInvalid(BridgeError):
    """The PKCS#10 request signed on the token does not verify with its own public key
    (a token that signed with another key, or a broken signature): nothing was written."""

    code = "certificate_request_invalid"
    status = 502
    title = "The token's certificate request does not verify"


class TokenLabelTaken(BridgeError):
    """A token with this label exists already: labels name tokens to administrators, so
    two tokens never share one."""

    code = "token_label_taken"
    status = 409
    title = "A token with this label exists"


_MAP: list[tuple[type[Exception], type[BridgeError], str]] = [
    (p11e.PinIncorrect, PinIncorrect, "the token rejected the PIN"),
    (p11e.PinLocked, PinLocked, "the token's user PIN is locked"),
    (p11e.TokenNotPresent, TokenNotPresent, "the token is not present"),
    (p11e.DeviceRemoved, TokenNotPresent, "the token was removed"),
    (p11e.NoSuchToken, TokenNotPresent, "no slot holds the token"),
    (p11e.MechanismInvalid, MechanismUnsupported, "the token does not offer the mechanism"),
    (p11e.KeyTypeInconsistent, MechanismUnsupported, "the key type does not fit the mechanism"),
    (p11e.NoSuchKey, CredentialNotFound, "no key with that CKA_ID on the token"),
    (p11e.MultipleObjectsReturned, CredentialNotFound, "several objects share that CKA_ID"),
    (p11e.PinLenRange, PinIncorrect, "the token rejected the PIN's length"),
    (p11e.DeviceMemory, TokenFull, "the token has no room for another object"),
]


def from_pkcs11_error(exc: Exception) -> BridgeError:
    """Translate a python-pkcs11 exception into the bridge's error tree.

    The one place where foreign PKCS#11 errors enter; callers ``raise ... from exc``.
    Unknown CKR_ codes become :class:`TokenError` (retryable).
    """
    for foreign, ours, message in _MAP:
        if isinstance(exc, foreign):
            return ours(message)
    return TokenError(f"the token failed: {type(exc).__name__}")


def _subclasses(base: type[BridgeError]) -> list[type[BridgeError]]:
    found = [base]
    for sub in base.__subclasses__():
        found.extend(_subclasses(sub))
    return found


def error_from_code(code: str, message: str, *, reason: object = None) -> BridgeError:
    """Rebuild the bridge error with machine-readable ``code`` (as sent by a remote
    bridge, with ``reason`` for an activation refusal); an unknown code gives a plain
    :class:`BridgeError` carrying that code."""
    for cls in _subclasses(BridgeError):
        if cls.code == code:
            if cls in (ActivationInvalid, AuthorizationRefused):
                return cls(message, reason=str(reason or "unknown"))
            return cls(message)
    error = BridgeError(message)
    error.code = code
    return error
