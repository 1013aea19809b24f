"""Passkeys (WebAuthn Level 2) as a device-bound factor, verified by the bridge itself.

A signer's tablet registers a platform credential (Face ID, Touch ID, fingerprint or
the device PIN: user verification required) against a challenge the bridge issued;
the bridge verifies the registration (py_webauthn: CBOR, COSE, attestation format,
RP ID hash, origin, flags) and keeps the credential's public key (COSE), its sign
counter and its backup flags (BE, BS). An approval is an assertion whose challenge is
the SHA-256 of the canonical decision statement (:mod:`hsm_bridge.sam.statement`): the
bridge rebuilds the statement from the listed requests, so an assertion made for one
statement is useless for any other. The counter must never go backwards.

Synced passkeys (iCloud Keychain, Google Password Manager: BE=1) are not bound to one
device; :attr:`RelyingParty.require_device_bound` refuses them.

The origin a browser wrote into ``clientDataJSON`` is accepted when its host is the RP
ID (the browser enforces that an RP ID is the origin's domain or a suffix of it) and its
scheme is https, or http on ``localhost``; or when it is listed in
:attr:`RelyingParty.origins`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from webauthn import (
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import decode_credential_public_key
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.decoded_public_key_to_cryptography import (
    decoded_public_key_to_cryptography,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorAttachment,
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from hsm_bridge.errors import AuthorizationRefused, RefusalReason

__all__ = [
    "PASSKEY_ENROLMENT_CONTEXT",
    "RegisteredPasskey",
    "RelyingParty",
    "passkey_device_id",
    "registration_options",
    "verify_assertion",
    "verify_registration",
]

# What an enrolment code's proof covers for a passkey: this, then the credential id's
# length (2 bytes, big-endian) and the credential id, then the credential's public key
# (DER SubjectPublicKeyInfo, as the browser's ``getPublicKey()`` gives it): the code
# enrols that key and no other one, whatever credential id a relay claims.
PASSKEY_ENROLMENT_CONTEXT = b"signing-gateway/passkey-enrolment/2\x00"

# ES256 on P-256 and RS256 with at least 2048 bits: what platform authenticators make.
SUPPORTED_ALGORITHMS = (
    COSEAlgorithmIdentifier.ECDSA_SHA_256,
    COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256,
)


@dataclass(frozen=True, slots=True)
class RelyingParty:
    """The WebAuthn relying party the bridge verifies for: ``rp_id`` (the app's host
    name, e.g. ``ky.stc.hanam.gov.vn``; ``localhost`` for the demo), extra allowed
    ``origins`` (exact, e.g. ``https://ky.stc.hanam.gov.vn:8443``), the name shown by the
    authenticator, and whether synced passkeys are refused."""

    rp_id: str = "localhost"
    origins: tuple[str, ...] = ()
    name: str = "Ký số"
    require_device_bound: bool = False

    def accepts_origin(self, origin: str) -> bool:
        """Whether a browser origin may register or assert for this RP: one of
        ``origins``, or ``https://`` + the RP ID (no port, no path), or for the RP ID
        ``localhost`` plain http on any port (development and the demo)."""
        if origin in self.origins:
            return True
        try:
            parts = urlsplit(origin)
            host, port = parts.hostname, parts.port
        except ValueError:
            return False
        if host != self.rp_id or f"{parts.scheme}://{parts.netloc}" != origin:
            return False
        if parts.scheme == "https":
            return port is None  # another port is another origin: list it
        return parts.scheme == "http" and self.rp_id == "localhost"


@dataclass(frozen=True, slots=True)
class RegisteredPasskey:
    """A verified registration: the credential id (bytes), its COSE public key and the
    same key as DER SubjectPublicKeyInfo, the sign counter it started at, and its backup
    flags (BE: may be synced; BS: is)."""

    credential_id: bytes
    public_key: bytes
    public_key_spki: bytes
    sign_count: int
    backup_eligible: bool
    backed_up: bool

    def enrolment_subject(self) -> bytes:
        """What an enrolment code's proof covers after the context: the credential id,
        length-prefixed, then its public key (see :data:`PASSKEY_ENROLMENT_CONTEXT`)."""
        return (
            len(self.credential_id).to_bytes(2, "big") + self.credential_id + self.public_key_spki
        )


def passkey_device_id(credential_id: bytes) -> str:
    """A passkey's device id: the first 16 bytes of the SHA-256 of its credential id,
    hex (32 characters)."""
    return hashlib.sha256(credential_id).hexdigest()[:32]


def registration_options(
    rp: RelyingParty,
    *,
    signer: str,
    display_name: str,
    challenge: bytes,
    exclude: list[bytes],
) -> dict[str, Any]:
    """The ``PublicKeyCredentialCreationOptions`` (JSON, as ``options_to_json`` writes
    it) for a platform passkey of ``signer``: user verification required, a
    discoverable credential preferred, ES256 or RS256, none of ``exclude`` again."""
    options = generate_registration_options(
        rp_id=rp.rp_id,
        rp_name=rp.name,
        user_name=signer,
        user_id=hashlib.sha256(b"signing-gateway/user\x00" + signer.encode()).digest(),
        user_display_name=display_name or signer,
        challenge=challenge,
        authenticator_selection=AuthenticatorSelectionCriteria(
            authenticator_attachment=AuthenticatorAttachment.PLATFORM,
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=c) for c in exclude],
        supported_pub_key_algs=list(SUPPORTED_ALGORITHMS),
        timeout=120_000,
    )
    parsed: dict[str, Any] = json.loads(options_to_json(options))
    return parsed


def verify_registration(
    rp: RelyingParty, response: Mapping[str, Any], challenge: bytes
) -> RegisteredPasskey:
    """Verify ``response`` (what ``navigator.credentials.create`` gave, as JSON) against
    the ``challenge`` the bridge issued. Raises AuthorizationRefused:
    ``passkey_invalid`` (format, origin, RP ID, challenge, no user verification),
    ``passkey_synced`` (a synced passkey where device-bound ones are required)."""
    origin = _origin(response)
    if origin is None or not rp.accepts_origin(origin):
        raise _invalid("the passkey was made for another site")
    try:
        verified = verify_registration_response(
            credential=dict(response),
            expected_challenge=challenge,
            expected_rp_id=rp.rp_id,
            expected_origin=origin,
            require_user_verification=True,
            supported_pub_key_algs=list(SUPPORTED_ALGORITHMS),
        )
        spki = _spki(verified.credential_public_key)
    except (WebAuthnException, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _invalid("the passkey registration does not verify") from exc
    backup_eligible = verified.credential_device_type.value == "multi_device"
    if rp.require_device_bound and backup_eligible:
        raise AuthorizationRefused(
            "this installation accepts only passkeys bound to one device (a security key),"
            " not synced ones",
            reason=RefusalReason.PASSKEY_SYNCED,
        )
    return RegisteredPasskey(
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        public_key_spki=spki,
        sign_count=verified.sign_count,
        backup_eligible=backup_eligible,
        backed_up=verified.credential_backed_up,
    )


def verify_assertion(
    rp: RelyingParty,
    assertion: Mapping[str, Any],
    *,
    credential_id: bytes,
    public_key: bytes,
    sign_count: int,
    statement: bytes,
) -> int:
    """Verify ``assertion`` (what ``navigator.credentials.get`` gave, as JSON) by the
    passkey ``credential_id`` over ``statement`` (the canonical statement bytes: the
    challenge is their SHA-256); the new sign counter. Raises AuthorizationRefused
    ``approval_signature_invalid`` (another statement, another credential, no user
    verification, a counter gone backwards, a bad signature), ``passkey_synced`` (the
    authenticator signs as a synced passkey where device-bound ones are required)."""
    origin = _origin(assertion)
    if origin is None or not rp.accepts_origin(origin):
        raise _refused_assertion("the approval was made on another site")
    if _raw_id(assertion) != credential_id:
        raise _refused_assertion("the approval was made with another passkey")
    try:
        verified = verify_authentication_response(
            credential=dict(assertion),
            expected_challenge=hashlib.sha256(statement).digest(),
            expected_rp_id=rp.rp_id,
            expected_origin=origin,
            credential_public_key=public_key,
            credential_current_sign_count=sign_count,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _refused_assertion("the passkey did not approve this decision") from exc
    if rp.require_device_bound and verified.credential_device_type.value == "multi_device":
        # the flags of an assertion are signed by the authenticator (unlike those of a
        # registration without attestation), so a synced passkey shows itself here
        raise AuthorizationRefused(
            "this installation accepts only passkeys bound to one device",
            reason=RefusalReason.PASSKEY_SYNCED,
        )
    return int(verified.new_sign_count)


def _spki(cose_key: bytes) -> bytes:
    """The COSE public key as DER SubjectPublicKeyInfo; ValueError for anything but a
    P-256 key or an RSA key of 2048 bits or more."""
    key = decoded_public_key_to_cryptography(decode_credential_public_key(cose_key))
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("passkeys are P-256 or RSA keys")
    elif not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
        raise ValueError("passkeys are P-256 or RSA keys")
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _origin(response: Mapping[str, Any]) -> str | None:
    """The origin the browser wrote into the response's ``clientDataJSON``."""
    try:
        client_data = json.loads(_b64url(response["response"]["clientDataJSON"]))
    except (KeyError, TypeError, ValueError):
        return None
    origin = client_data.get("origin") if isinstance(client_data, dict) else None
    return origin if isinstance(origin, str) else None


def _raw_id(response: Mapping[str, Any]) -> bytes | None:
    try:
        return _b64url(response["rawId"])
    except (KeyError, TypeError, ValueError):
        return None


def _b64url(text: object) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not base64url text")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _invalid(message: str) -> AuthorizationRefused:
    return AuthorizationRefused(message, reason=RefusalReason.PASSKEY_INVALID)


def _refused_assertion(message: str) -> AuthorizationRefused:
    return AuthorizationRefused(message, reason=RefusalReason.APPROVAL_SIGNATURE_INVALID)
