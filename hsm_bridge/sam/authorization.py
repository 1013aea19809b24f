"""The signature activation module (EN 419 241-1's SAM): the bridge itself decides
whether a signer approved, and only then issues signature activation data (SAD).

The gateway relays the signer's second factor, as the CSC API v2's
``credentials/authorize`` does: a device signature over the approval statement
(:mod:`hsm_bridge.sam.statement`), or a TOTP code. The bridge checks it against what *it*
holds (:mod:`hsm_bridge.sam.signers`): the devices enrolled with a bridge-issued code, the
TOTP secrets, which credentials each signer may use, and which nonces and TOTP steps
were spent. It rebuilds the statement from the listed requests, so the SADs it issues
are bound to exactly the documents (SHA-256), signature parameters and certificates the
device signed, each to one credential and mechanism, for a few minutes, usable once
(:mod:`hsm_bridge.sam.activation`). A web tier that lies about any of it gets a refusal,
never a SAD.

Two profiles (:class:`Profile`). A TOTP code proves that the signer was present at that
moment but not what they saw: in the ``embedded`` profile (the bridge in the gateway's
process, one host) it approves; in the ``secure_host`` profile (the bridge on its own
host, the web tier possibly hostile) it approves nothing, and only devices enrolled with
a code from the bridge's administrator or from another device-bound factor count.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from hsm_bridge.clock import posix
from hsm_bridge.credentials import CredentialRef, SignatureMechanism
from hsm_bridge.errors import AuthorizationRefused, RefusalReason
from hsm_bridge.pades.parameters import SignatureParameters, parameters_sha256
from hsm_bridge.sam.activation import ActivationIssuer
from hsm_bridge.sam.code_envelope import recipient_key, seal_code
from hsm_bridge.sam.passkeys import (
    PASSKEY_ENROLMENT_CONTEXT,
    RelyingParty,
    registration_options,
    verify_assertion,
    verify_registration,
)
from hsm_bridge.sam.signers import (
    CodeIssuer,
    DeviceRecord,
    EnrolledDevice,
    EnrolmentCode,
    SignerRegistry,
)
from hsm_bridge.sam.statement import (
    ApprovalStatement,
    Decision,
    EnrolmentCodeStatement,
    RevocationStatement,
    Statement,
    StatementDocument,
    StatementSignatureInvalid,
    verify_statement_signature,
)

__all__ = [
    "AuthorizationItem",
    "AuthorizationRequest",
    "DeviceFactor",
    "EnrolmentCodeProof",
    "Factor",
    "PasskeyAuthorisation",
    "Profile",
    "SignatureActivationModule",
    "TotpFactor",
]

log = logging.getLogger(__name__)

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class Profile(enum.StrEnum):
    """What the bridge accepts as a signer's approval. ``embedded``: the bridge runs in
    the gateway's process on one host; a TOTP code approves, and codes it obtains enrol
    devices. ``secure_host``: the bridge runs on its own host behind mutual TLS; only a
    device-bound factor approves, and only devices enrolled with a code from the
    bridge's administrator or from another device-bound factor; TOTP still lets a
    signer decline."""

    EMBEDDED = "embedded"
    SECURE_HOST = "secure_host"

    @property
    def totp_approves(self) -> bool:
        """Whether a TOTP code may authorise signatures and enrolment codes."""
        return self is Profile.EMBEDDED

    def accepts(self, device: DeviceRecord) -> bool:
        """Whether a device enrolled the way ``device`` was counts as a factor here (a
        device enrolled with a TOTP-issued code stops counting when the profile
        tightens)."""
        return self.totp_approves or device.enrolled_with != CodeIssuer.TOTP


@dataclass(frozen=True, slots=True)
class AuthorizationItem:
    """One approved request: its id, the credential and mechanism it will be signed
    with, the lowercase hex SHA-256 of the original document, the signature parameters
    (JSON object) whose :func:`~hsm_bridge.pades.parameters.parameters_sha256` the
    statement carries, and the lowercase hex SHA-256 of the credential's certificate
    (DER), which the bridge checks against the token's for its own credentials."""

    request_id: str
    credential: CredentialRef
    mechanism: SignatureMechanism
    document_sha256: str
    parameters: Mapping[str, object] = field(hash=False)
    certificate_sha256: str = ""


@dataclass(frozen=True, slots=True)
class DeviceFactor:
    """A device's signed decision: its id, the nonce and expiry (POSIX seconds) it
    signed, and either the DER ECDSA P-256/SHA-256 ``signature`` over the statement (a
    device key) or, for a passkey, the WebAuthn assertion (``webauthn``: the JSON
    ``navigator.credentials.get`` gave) whose challenge is the statement's SHA-256."""

    device_id: str
    nonce: str
    expires_at: int
    signature: bytes = field(repr=False)
    webauthn: Mapping[str, Any] | None = field(default=None, repr=False, hash=False)


@dataclass(frozen=True, slots=True)
class EnrolmentCodeProof:
    """An enrolment code used for a passkey: its id, and the HMAC of its secret over
    the credential id and its public key
    (:data:`~hsm_bridge.sam.passkeys.PASSKEY_ENROLMENT_CONTEXT`)."""

    code_id: str
    proof: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class TotpFactor:
    """A TOTP code (RFC 6238, 6 digits) the signer typed, and the server nonce the app
    fetched for this approval (``nonce``: what a sealed token PIN is bound to; None when
    no PIN goes with it)."""

    otp: str = field(repr=False)
    nonce: str | None = None


Factor = DeviceFactor | TotpFactor
# Raises when a credential's certificate (DER) is not trusted or is revoked at a time.
CertificateCheck = Callable[[CredentialRef, bytes, dt.datetime], object]
PasskeyAuthorisation = EnrolmentCodeProof | TotpFactor


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """``signer`` (username) approves ``items`` (the whole batch, as listed in the
    statement) with one ``factor``."""

    signer: str
    items: tuple[AuthorizationItem, ...]
    factor: Factor


class SignatureActivationModule:
    """Verifies a signer's factor and issues one SAD per approved request.

    ``registry``: the bridge's signer records; ``issuer``: mints SADs with the bridge's
    own key (the gateway never holds it); ``certificate_of``: a credential's certificate
    (DER) as its token holds it; ``activation_ttl_seconds``: how long a SAD, and at most
    how far ahead a device statement's expiry, may be; ``profile``: what approves;
    ``max_items``: the most SADs one factor yields (the batch limit);
    ``certificate_check``: is a listed credential's certificate trusted and unrevoked
    now (the bridge asks its CA; raises when not), before any factor is checked or
    spent."""

    def __init__(
        self,
        registry: SignerRegistry,
        issuer: ActivationIssuer,
        certificate_of: Callable[[CredentialRef], bytes],
        *,
        activation_ttl_seconds: int = 300,
        profile: Profile = Profile.EMBEDDED,
        max_items: int = 50,
        relying_party: RelyingParty | None = None,
        certificate_check: CertificateCheck | None = None,
    ) -> None:
        self.registry = registry
        self._certificate_check = certificate_check
        self._issuer = issuer
        self._certificate_of = certificate_of
        self._ttl = activation_ttl_seconds
        self.profile = profile
        self.max_items = max_items
        self.relying_party = relying_party or RelyingParty()

    def authorize(
        self,
        request: AuthorizationRequest,
        *,
        now: dt.datetime,
        token_serials: frozenset[str] | None = None,
    ) -> list[str | None]:
        """Check ``request`` and return one SAD (text) per item, in order; ``None`` for
        items whose token is not in ``token_serials`` (another bridge holds it; the
        statement still lists them all). ``now``: aware UTC.

        Raises :class:`~hsm_bridge.errors.AuthorizationRefused` with ``reason``:
        ``malformed`` (no items, more than the batch limit, a repeated id, a bad hash,
        parameters the bridge could not build, no item on this bridge's tokens);
        ``credential_not_bound`` (the signer may not use a listed credential);
        ``certificate_mismatch`` (the token holds another certificate than listed);
        ``device_unknown``, ``device_revoked``, ``device_not_accepted``,
        ``approval_expired``, ``approval_signature_invalid``, ``approval_nonce_reused``
        (device factor); ``totp_not_accepted``, ``totp_not_enrolled``, ``totp_locked``,
        ``totp_lockout``, ``totp_invalid``, ``totp_reused`` (TOTP factor). Nothing is
        issued unless everything holds; the nonce or TOTP step is spent only then."""
        mine = self._items_here(request, token_serials)
        self._check_bindings(request, mine, now)
        if isinstance(request.factor, DeviceFactor):
            self._check_device(request, request.factor, now=now)
            authorization = request.factor.nonce
        else:
            authorization = self._check_totp(request, request.factor, now=now)
        issued: dict[str, str] = {
            item.request_id: self._issuer.issue(
                item.credential,
                mechanism=item.mechanism.value,
                document_sha256=item.document_sha256,
                certificate_sha256=item.certificate_sha256,
                parameters=item.parameters,
                authorization=authorization,
                subject=item.request_id,
                now=now,
                ttl_seconds=self._ttl,
            )
            for item in mine
        }
        log.info(
            "authorized %d signatures for %s (%s)",
            len(issued),
            request.signer,
            "device" if isinstance(request.factor, DeviceFactor) else "totp",
        )
        return [issued.get(item.request_id) for item in request.items]

    def _items_here(
        self, request: AuthorizationRequest, token_serials: frozenset[str] | None
    ) -> list[AuthorizationItem]:
        """The items this bridge issues SADs for, after the shape checks."""
        items = request.items
        ids = [item.request_id for item in items]
        if not items or len(items) > self.max_items or len(set(ids)) != len(ids):
            raise self._refuse(
                request, RefusalReason.MALFORMED, f"list 1 to {self.max_items} distinct requests"
            )
        if not all(
            _SHA256_HEX.match(item.document_sha256) and _SHA256_HEX.match(item.certificate_sha256)
            for item in items
        ):
            raise self._refuse(
                request, RefusalReason.MALFORMED, "the SHA-256 values are lowercase hex"
            )
        for item in items:
            try:
                SignatureParameters.from_object(item.parameters)
            except (ValueError, TypeError) as exc:
                raise self._refuse(
                    request,
                    RefusalReason.MALFORMED,
                    "the signature parameters are not ones the bridge builds",
                ) from exc
        mine = [
            item
            for item in items
            if token_serials is None or item.credential.token_serial in token_serials
        ]
        if not mine:
            # a factor is never checked (nor spent) for nothing to sign here
            raise self._refuse(
                request, RefusalReason.MALFORMED, "no listed request is for this bridge"
            )
        return mine

    def _check_bindings(
        self, request: AuthorizationRequest, mine: list[AuthorizationItem], now: dt.datetime
    ) -> None:
        """Each item's credential is the signer's, its token holds the listed
        certificate, and that certificate is trusted and unrevoked now."""
        allowed = self.registry.credentials_of(request.signer)
        certificates: dict[CredentialRef, str] = {}
        for item in mine:
            if str(item.credential) not in allowed:
                raise self._refuse(
                    request,
                    RefusalReason.CREDENTIAL_NOT_BOUND,
                    "the signer may not use this credential",
                )
            if item.credential not in certificates:
                der = self._certificate_of(item.credential)
                certificates[item.credential] = hashlib.sha256(der).hexdigest()
                if hmac.compare_digest(certificates[item.credential], item.certificate_sha256):
                    if self._certificate_check is not None:
                        self._certificate_check(item.credential, der, now)
            if not hmac.compare_digest(certificates[item.credential], item.certificate_sha256):
                raise self._refuse(
                    request,
                    RefusalReason.CERTIFICATE_MISMATCH,
                    "the token holds another certificate",
                )

    def _check_totp(
        self, request: AuthorizationRequest, factor: TotpFactor, *, now: dt.datetime
    ) -> str:
        """Accept the code where TOTP approves; the authorization's id (the nonce the
        app named, spent here, or a fresh one)."""
        if not self.profile.totp_approves:
            raise self._refuse(
                request, RefusalReason.TOTP_NOT_ACCEPTED, "this bridge takes device approvals only"
            )
        try:
            self.registry.check_totp(request.signer, factor.otp, now=now)
        except AuthorizationRefused as exc:
            log.warning("authorization refused for %s: %s", request.signer, exc.reason)
            raise
        if factor.nonce is None:
            return secrets.token_hex(16)
        if not self.registry.spend_nonce(
            f"{request.signer}\x00{factor.nonce}", posix(now) + self._ttl, now=now
        ):
            raise self._refuse(
                request, RefusalReason.APPROVAL_NONCE_REUSED, "this nonce was used already"
            )
        return factor.nonce

    def _device(self, signer: str, device_id: str) -> DeviceRecord:
        """The signer's active device ``device_id``, as this profile accepts it."""
        device = self.registry.device(device_id)
        if device is None or device.signer != signer:
            raise AuthorizationRefused(
                "the bridge knows no such device", reason=RefusalReason.DEVICE_UNKNOWN
            )
        if device.revoked_at is not None:
            raise AuthorizationRefused(
                "this device was revoked", reason=RefusalReason.DEVICE_REVOKED
            )
        if not self.profile.accepts(device):
            raise AuthorizationRefused(
                "this device was enrolled with a TOTP code, which this bridge no longer"
                " accepts: enrol it again with a code from the bridge's administrator",
                reason=RefusalReason.DEVICE_NOT_ACCEPTED,
            )
        return device

    def _check_device(
        self, request: AuthorizationRequest, factor: DeviceFactor, *, now: dt.datetime
    ) -> None:
        try:
            device = self._device(request.signer, factor.device_id)
        except AuthorizationRefused as exc:
            raise self._refuse(request, exc.reason, exc.message) from exc
        self._check_expiry(request.signer, factor, now=now)
        statement = ApprovalStatement(
            signer=request.signer,
            device=device.device_id,
            decision=Decision.APPROVE,
            nonce=factor.nonce,
            expires_at=factor.expires_at,
            documents=tuple(
                StatementDocument(
                    item.request_id,
                    item.document_sha256,
                    parameters_sha256(item.parameters),
                    item.certificate_sha256,
                    item.mechanism.value,
                )
                for item in request.items
            ),
        )
        self._verify(request.signer, statement, device, factor, now=now)

    def _check_expiry(self, signer: str, factor: DeviceFactor, *, now: dt.datetime) -> None:
        seconds = posix(now)
        if not seconds < factor.expires_at <= seconds + self._ttl:
            log.warning("authorization refused for %s: approval_expired", signer)
            raise AuthorizationRefused(
                "the decision is expired or too far ahead", reason=RefusalReason.APPROVAL_EXPIRED
            )

    def _verify(
        self,
        signer: str,
        statement: Statement,
        device: DeviceRecord,
        factor: DeviceFactor,
        *,
        now: dt.datetime,
    ) -> None:
        """The device's signature (or passkey assertion) over ``statement`` holds; its
        nonce is spent."""
        if device.kind == "passkey":
            self._verify_passkey(signer, statement, device, factor)
        else:
            try:
                verify_statement_signature(statement, device.public_key_der, factor.signature)
            except StatementSignatureInvalid as exc:
                log.warning("authorization refused for %s: approval_signature_invalid", signer)
                raise AuthorizationRefused(
                    "the device did not sign this decision",
                    reason=RefusalReason.APPROVAL_SIGNATURE_INVALID,
                ) from exc
        if not self.registry.spend_nonce(f"{signer}\x00{factor.nonce}", factor.expires_at, now=now):
            log.warning("authorization refused for %s: approval_nonce_reused", signer)
            raise AuthorizationRefused(
                "this decision was used already", reason=RefusalReason.APPROVAL_NONCE_REUSED
            )

    def _verify_passkey(
        self,
        signer: str,
        statement: Statement,
        device: DeviceRecord,
        factor: DeviceFactor,
    ) -> None:
        """The passkey's assertion over ``statement`` holds and its counter moves on."""
        if self.relying_party.require_device_bound and device.backup_eligible:
            # enrolled before the installation required device-bound passkeys
            raise AuthorizationRefused(
                "this installation accepts only passkeys bound to one device",
                reason=RefusalReason.PASSKEY_SYNCED,
            )
        if factor.webauthn is None or device.credential_id is None:
            raise AuthorizationRefused(
                "a passkey approves with a WebAuthn assertion",
                reason=RefusalReason.APPROVAL_SIGNATURE_INVALID,
            )
        try:
            count = verify_assertion(
                self.relying_party,
                factor.webauthn,
                credential_id=device.credential_id,
                public_key=device.public_key_der,
                sign_count=device.sign_count,
                statement=statement.canonical_bytes(),
            )
        except AuthorizationRefused:
            log.warning("authorization refused for %s: approval_signature_invalid", signer)
            raise
        if not self.registry.advance_sign_count(device.device_id, count):
            log.warning("authorization refused for %s: passkey counter went back", signer)
            raise AuthorizationRefused(
                "this passkey's counter went backwards (a cloned authenticator?)",
                reason=RefusalReason.APPROVAL_SIGNATURE_INVALID,
            )

    # ---- passkey enrolment -------------------------------------------------------

    def passkey_options(
        self, signer: str, display_name: str, *, now: dt.datetime
    ) -> tuple[str, dict[str, Any]]:
        """A registration challenge for ``signer`` and the creation options for the
        browser: (challenge id, ``PublicKeyCredentialCreationOptions`` JSON). Enrols
        nothing by itself."""
        challenge = self.registry.issue_passkey_challenge(signer, now=now)
        options = registration_options(
            self.relying_party,
            signer=signer,
            display_name=display_name,
            challenge=challenge.challenge,
            exclude=self.registry.passkey_credentials(signer),
        )
        return challenge.challenge_id, options

    def enrol_passkey(
        self,
        challenge_id: str,
        response: Mapping[str, Any],
        authorisation: PasskeyAuthorisation,
        *,
        now: dt.datetime,
    ) -> EnrolledDevice:
        """Register the passkey in ``response`` (what ``navigator.credentials.create``
        gave) for the signer the challenge was issued to, authorised by an enrolment
        code's proof over the credential id, or by a TOTP code where TOTP approves.
        Raises AuthorizationRefused: ``challenge_invalid``, ``passkey_invalid``,
        ``passkey_synced``, ``enrolment_code_invalid`` (or a code of another signer),
        ``totp_not_accepted`` and the TOTP refusals, ``device_key_invalid``."""
        challenge = self.registry.passkey_challenge(challenge_id, now=now)
        passkey = verify_registration(self.relying_party, response, challenge.challenge)
        if isinstance(authorisation, TotpFactor):
            if not self.profile.totp_approves:
                raise AuthorizationRefused(
                    "a passkey is enrolled with a code from the bridge's administrator",
                    reason=RefusalReason.TOTP_NOT_ACCEPTED,
                )
            self.registry.check_totp(challenge.signer, authorisation.otp, now=now)
            issued_by = CodeIssuer.TOTP.value
        with self.registry.transaction() as conn:
            if isinstance(authorisation, EnrolmentCodeProof):
                owner, issued_by = self.registry.spend_code(
                    conn,
                    authorisation.code_id,
                    authorisation.proof,
                    passkey.enrolment_subject(),
                    PASSKEY_ENROLMENT_CONTEXT,
                    now=now,
                )
                if owner != challenge.signer:
                    raise AuthorizationRefused(
                        "the enrolment code is another signer's",
                        reason=RefusalReason.ENROLMENT_CODE_INVALID,
                    )
            device_id = self.registry.store_passkey(conn, challenge, passkey, issued_by, now=now)
        log.info("passkey %s enrolled for %s", device_id, challenge.signer)
        return EnrolledDevice(device_id, challenge.signer)

    def revoke_device(
        self, signer: str, device_id: str, factor: Factor, *, now: dt.datetime
    ) -> bool:
        """Revoke ``signer``'s device ``device_id`` with the signer's own factor: a
        :class:`~hsm_bridge.sam.statement.RevocationStatement` signed by one of their active
        devices (it may be the one revoked), or a TOTP code where TOTP approves. False
        when the device is unknown or not the signer's. Raises
        :class:`~hsm_bridge.errors.AuthorizationRefused` as :meth:`authorize` does."""
        if isinstance(factor, TotpFactor):
            if not self.profile.totp_approves:
                raise AuthorizationRefused(
                    "a device is revoked with another device or by the bridge's administrator",
                    reason=RefusalReason.TOTP_NOT_ACCEPTED,
                )
            self.registry.check_totp(signer, factor.otp, now=now)
        else:
            device = self._device(signer, factor.device_id)
            self._check_expiry(signer, factor, now=now)
            statement = RevocationStatement(
                signer=signer,
                device=device.device_id,
                revoke=device_id,
                nonce=factor.nonce,
                expires_at=factor.expires_at,
            )
            self._verify(signer, statement, device, factor, now=now)
        target = self.registry.device(device_id)
        if target is None or target.signer != signer:
            return False
        log.info("device %s of %s revoked by the signer", device_id, signer)
        return self.registry.revoke_device(device_id, now=now)

    def enrolment_code(
        self,
        signer: str,
        factor: Factor,
        *,
        now: dt.datetime,
        ttl_seconds: int,
        recipient: str | None = None,
    ) -> EnrolmentCode:
        """A one-time code for enrolling another device of ``signer``, on the signer's
        own factor: one of their enrolled devices (a device key or a passkey) signing an
        :class:`~hsm_bridge.sam.statement.EnrolmentCodeStatement` that names
        ``recipient`` (the app's one-time HPKE key, base64url point), to which the code
        is sealed (recorded as device-issued; the answer holds no secret), or a TOTP code
        where TOTP approves (the code in clear: that factor crossed the web tier too).
        Raises AuthorizationRefused as :meth:`authorize` does, ``approval_signature_invalid``
        when the statement names no usable recipient."""
        if isinstance(factor, TotpFactor):
            return self._enrolment_code_by_totp(
                signer, factor.otp, now=now, ttl_seconds=ttl_seconds
            )
        device = self._device(signer, factor.device_id)
        self._check_expiry(signer, factor, now=now)
        statement = EnrolmentCodeStatement(
            signer=signer,
            device=device.device_id,
            nonce=factor.nonce,
            expires_at=factor.expires_at,
            recipient=recipient or "",
        )
        try:
            recipient_key(statement.recipient)
        except ValueError as exc:
            raise AuthorizationRefused(
                "a code issued on a device is sealed to the app that asked: name its key",
                reason=RefusalReason.APPROVAL_SIGNATURE_INVALID,
            ) from exc
        self._verify(signer, statement, device, factor, now=now)
        log.info("enrolment code for %s issued on device %s", signer, device.device_id)
        code = self.registry.issue_enrolment_code(
            signer, now=now, ttl_seconds=ttl_seconds, issued_by=CodeIssuer.DEVICE
        )
        sealed = seal_code(statement.recipient, code.text, factor.nonce)
        return replace(code, secret="", sealed=base64.urlsafe_b64encode(sealed).decode())

    def _enrolment_code_by_totp(
        self, signer: str, otp: str, *, now: dt.datetime, ttl_seconds: int
    ) -> EnrolmentCode:
        """A device enrolment code for ``signer`` who typed a TOTP code, where TOTP
        approves (the code is recorded as TOTP-issued). A signer the bridge does not
        know, or who may use none of its credentials, is answered as one with no
        authenticator (``totp_not_enrolled``), so the answer tells nothing about which
        names exist. Raises AuthorizationRefused."""
        if not self.profile.totp_approves:
            raise AuthorizationRefused(
                "enrolment codes come from the bridge host's administrator",
                reason=RefusalReason.TOTP_NOT_ACCEPTED,
            )
        if not self.registry.credentials_of(signer):
            raise AuthorizationRefused(
                "the bridge holds no TOTP secret for this signer",
                reason=RefusalReason.TOTP_NOT_ENROLLED,
            )
        self.registry.check_totp(signer, otp, now=now)
        return self.registry.issue_enrolment_code(
            signer, now=now, ttl_seconds=ttl_seconds, issued_by=CodeIssuer.TOTP
        )

    @staticmethod
    def _refuse(request: AuthorizationRequest, reason: str, message: str) -> AuthorizationRefused:
        log.warning("authorization refused for %s: %s", request.signer, reason)
        return AuthorizationRefused(message, reason=reason)
