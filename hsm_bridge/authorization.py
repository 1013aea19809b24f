"""The signature activation module (EN 419 241-1's SAM): the bridge itself decides
whether a signer approved, and only then issues signature activation data (SAD).

The gateway relays the signer's proof, as the CSC API v2's ``credentials/authorize``
does: a device signature over the approval statement (:mod:`hsm_bridge.statement`), or
a TOTP code. The bridge checks it against what *it* holds (:mod:`hsm_bridge.signers`):
the device keys enrolled with a bridge-issued code, the TOTP secrets, which credentials
each signer may use, and which nonces and TOTP steps were spent. It rebuilds the
statement from the listed requests, so the SADs it issues are bound to exactly the
documents (SHA-256) and signature parameters the device signed, each to one credential
and mechanism, for a few minutes, usable once (:mod:`hsm_bridge.activation`). A web
tier that lies about any of it gets a refusal, never a SAD.

A TOTP code proves that the signer was present at that moment but not what they saw;
with ``accept_totp=False`` the bridge takes device signatures only (sole control in
the full sense, README "Approval model").
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from hsm_bridge.activation import ActivationIssuer
from hsm_bridge.credentials import CredentialRef, SignatureMechanism
from hsm_bridge.errors import AuthorizationRefused
from hsm_bridge.signers import SignerRegistry
from hsm_bridge.statement import (
    ApprovalStatement,
    Decision,
    StatementDocument,
    StatementSignatureInvalid,
    parameters_sha256,
    verify_statement_signature,
)

__all__ = [
    "MAX_AUTHORIZATION_ITEMS",
    "AuthorizationItem",
    "AuthorizationRequest",
    "DeviceFactor",
    "SignatureActivationModule",
    "TotpFactor",
]

log = logging.getLogger(__name__)

MAX_AUTHORIZATION_ITEMS = 1000
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class AuthorizationItem:
    """One approved request: its id, the credential and mechanism it will be signed
    with, the lowercase hex SHA-256 of the original document, the signature parameters
    (JSON object) whose :func:`~hsm_bridge.statement.parameters_sha256` the statement
    carries, and the lowercase hex SHA-256 of the credential's certificate (DER), which
    the bridge checks against the token's for its own credentials."""

    request_id: str
    credential: CredentialRef
    mechanism: SignatureMechanism
    document_sha256: str
    parameters: Mapping[str, object] = field(hash=False)
    certificate_sha256: str = ""


@dataclass(frozen=True, slots=True)
class DeviceFactor:
    """A device's signed decision: its id, the nonce and expiry (POSIX seconds) it
    signed, and the DER ECDSA P-256/SHA-256 signature over the statement."""

    device_id: str
    nonce: str
    expires_at: int
    signature: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class TotpFactor:
    """A TOTP code (RFC 6238, 6 digits) the signer typed."""

    otp: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """``signer`` (username) approves ``items`` (the whole batch, as listed in the
    statement) with one ``factor``."""

    signer: str
    items: tuple[AuthorizationItem, ...]
    factor: DeviceFactor | TotpFactor


class SignatureActivationModule:
    """Verifies a signer's proof and issues one SAD per approved request.

    ``registry``: the bridge's signer records; ``issuer``: mints SADs with the bridge's
    own key (the gateway never holds it); ``certificate_of``: a credential's certificate
    (DER) as its token holds it; ``activation_ttl_seconds``: how long a SAD,
    and at most how far ahead a device statement's expiry, may be; ``accept_totp``:
    whether TOTP codes count as a proof at all."""

    def __init__(
        self,
        registry: SignerRegistry,
        issuer: ActivationIssuer,
        certificate_of: Callable[[CredentialRef], bytes],
        *,
        activation_ttl_seconds: int = 300,
        accept_totp: bool = True,
    ) -> None:
        self.registry = registry
        self._issuer = issuer
        self._certificate_of = certificate_of
        self._ttl = activation_ttl_seconds
        self._accept_totp = accept_totp

    def authorize(
        self,
        request: AuthorizationRequest,
        *,
        now: float,
        token_serials: frozenset[str] | None = None,
    ) -> list[str | None]:
        """Check ``request`` and return one SAD (text) per item, in order; ``None`` for
        items whose token is not in ``token_serials`` (another bridge holds it; the
        statement still lists them all). ``now``: POSIX seconds.

        Raises :class:`~hsm_bridge.errors.AuthorizationRefused` with ``reason``:
        ``malformed`` (no items, too many, a repeated id, a bad hash);
        ``credential_not_bound`` (the signer may not use a listed credential);
        ``certificate_mismatch`` (the token holds another certificate than listed);
        ``device_unknown``, ``device_revoked``, ``approval_expired``,
        ``approval_signature_invalid``, ``approval_nonce_reused`` (device factor);
        ``totp_not_accepted``, ``totp_not_enrolled``, ``totp_locked``, ``totp_lockout``,
        ``totp_invalid``, ``totp_reused`` (TOTP factor). Nothing is issued unless
        everything holds; the nonce or TOTP step is spent only then."""
        items = request.items
        ids = [item.request_id for item in items]
        if not items or len(items) > MAX_AUTHORIZATION_ITEMS or len(set(ids)) != len(ids):
            raise self._refuse(request, "malformed", "list 1 to 1000 distinct requests")
        if not all(
            _SHA256_HEX.match(item.document_sha256) and _SHA256_HEX.match(item.certificate_sha256)
            for item in items
        ):
            raise self._refuse(request, "malformed", "the SHA-256 values are lowercase hex")
        mine = [
            item
            for item in items
            if token_serials is None or item.credential.token_serial in token_serials
        ]
        allowed = self.registry.credentials_of(request.signer)
        certificates: dict[CredentialRef, str] = {}
        for item in mine:
            if str(item.credential) not in allowed:
                raise self._refuse(
                    request, "credential_not_bound", "the signer may not use this credential"
                )
            if item.credential not in certificates:
                der = self._certificate_of(item.credential)
                certificates[item.credential] = hashlib.sha256(der).hexdigest()
            if not hmac.compare_digest(certificates[item.credential], item.certificate_sha256):
                raise self._refuse(
                    request, "certificate_mismatch", "the token holds another certificate"
                )
        if isinstance(request.factor, DeviceFactor):
            self._check_device(request, request.factor, now=now)
        else:
            if not self._accept_totp:
                raise self._refuse(
                    request, "totp_not_accepted", "this bridge takes device approvals only"
                )
            try:
                self.registry.check_totp(request.signer, request.factor.otp, now=now)
            except AuthorizationRefused as exc:
                log.warning("authorization refused for %s: %s", request.signer, exc.reason)
                raise
        issued: dict[str, str] = {
            item.request_id: self._issuer.issue(
                item.credential,
                subject=item.request_id,
                now=now,
                ttl_seconds=self._ttl,
                mechanism=item.mechanism.value,
                document_sha256=bytes.fromhex(item.document_sha256),
                parameters=dict(item.parameters),
            )
            for item in mine
        }
        log.info(
            "authorized %d signatures for %s (%s)",
            len(issued),
            request.signer,
            "device" if isinstance(request.factor, DeviceFactor) else "totp",
        )
        return [issued.get(item.request_id) for item in items]

    def _check_device(
        self, request: AuthorizationRequest, factor: DeviceFactor, *, now: float
    ) -> None:
        device = self.registry.device(factor.device_id)
        if device is None or device.signer != request.signer:
            raise self._refuse(request, "device_unknown", "the bridge knows no such device")
        if device.revoked_at is not None:
            raise self._refuse(request, "device_revoked", "this device was revoked")
        if not now < factor.expires_at <= now + self._ttl:
            raise self._refuse(
                request, "approval_expired", "the decision is expired or too far ahead"
            )
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
        try:
            verify_statement_signature(statement, device.public_key_der, factor.signature)
        except StatementSignatureInvalid as exc:
            raise self._refuse(
                request, "approval_signature_invalid", "the device did not sign this decision"
            ) from exc
        if not self.registry.spend_nonce(
            f"{request.signer}\x00{factor.nonce}", factor.expires_at, now=now
        ):
            raise self._refuse(request, "approval_nonce_reused", "this decision was used already")

    @staticmethod
    def _refuse(request: AuthorizationRequest, reason: str, message: str) -> AuthorizationRefused:
        log.warning("authorization refused for %s: %s", request.signer, reason)
        return AuthorizationRefused(message, reason=reason)
