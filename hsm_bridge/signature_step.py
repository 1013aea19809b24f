"""One signature, from a spent SAD to the signed PDF: the bridge's per-item step.

Everything the step signs is checked against the SAD or read by the bridge itself: the
document's SHA-256 is the approved one; the parameters are the SAD's own; the image is
the one whose SHA-256 they name; the certificate is the token's and the one approved;
its validity is checked at the bridge's clock; the chain comes from the token and the
bridge administrator's CA file; the signing time is the bridge's clock; a sealed PIN
opens only for the SAD's approval and is tried at most once per token and approval.
The SAD was spent before the step starts, so a refusal here costs the signer a new
approval and never gives a second try (docs/design.md invariants 1, 2 and 6).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from cryptography import x509
from pyhanko.sign.timestamps import TimeStamper

from hsm_bridge.credentials import CredentialRef, SignatureMechanism
from hsm_bridge.errors import (
    ActivationInvalid,
    BridgeError,
    CertificateNotUsable,
    PinIncorrect,
    RefusalReason,
    SignatureBuildFailed,
)
from hsm_bridge.interface import SignRequest
from hsm_bridge.pades.builder import (
    SignerIdentity,
    ValidationData,
    build_signed_pdf,
    check_images,
)
from hsm_bridge.pades.chain import issuer_chain
from hsm_bridge.pades.parameters import SignatureParameters
from hsm_bridge.revocation import RevocationEvidence
from hsm_bridge.sam.activation import Activation
from hsm_bridge.sam.pin_envelope import PinEnvelopeKey
from hsm_bridge.sam.signers import SignerRegistry

__all__ = ["SignatureStep", "TokenAccess", "TokenReads"]

log = logging.getLogger(__name__)


class TokenAccess(Protocol):
    """What the step needs of the bridge's tokens."""

    def certificate(self, credential: CredentialRef) -> bytes:
        """The credential's certificate (DER) as its token holds it."""
        ...

    def token_certificates(self, token_serial: str) -> tuple[bytes, ...]:
        """Every certificate (DER) stored on the token."""
        ...

    def sign_digest(
        self,
        credential: CredentialRef,
        mechanism: SignatureMechanism,
        digest: bytes,
        pin: str | None,
    ) -> bytes:
        """The token's raw signature of a 32-byte SHA-256 ``digest`` (``pin``: the
        signer's, for this one operation; None: the stored one)."""
        ...


@dataclass
class TokenReads:
    """What one batch reads from its tokens, read once for the batch: each credential's
    certificate (DER) and each token's certificates (DER). A batch lasts a few seconds;
    the next reads the tokens again (a renewed certificate is seen then)."""

    certificates: dict[CredentialRef, bytes] = field(default_factory=dict)
    token_certificates: dict[str, tuple[bytes, ...]] = field(default_factory=dict)

    def certificate(self, tokens: TokenAccess, credential: CredentialRef) -> bytes:
        """``credential``'s certificate, read from its token the first time."""
        if credential not in self.certificates:
            self.certificates[credential] = tokens.certificate(credential)
        return self.certificates[credential]

    def on_token(self, tokens: TokenAccess, token_serial: str) -> tuple[bytes, ...]:
        """Every certificate on the token ``token_serial``, read the first time."""
        if token_serial not in self.token_certificates:
            self.token_certificates[token_serial] = tokens.token_certificates(token_serial)
        return self.token_certificates[token_serial]


@dataclass
class SignatureStep:
    """Builds and signs one approved document. ``ca_certificates``: the bridge
    administrator's CA certificates (DER) for chains the token lacks;
    ``timestamper``: the TSA for PAdES B-T and above, or None when none is configured;
    ``check_certificate``: the CA's word that the certificate is not revoked, asked
    right before signing (raises when it is, or when no answer comes: see
    :meth:`hsm_bridge.Bridge.check_certificate`); ``trust_anchors``: the bridge's roots,
    for the validation data a B-LT signature embeds."""

    tokens: TokenAccess
    registry: SignerRegistry
    envelope_key: PinEnvelopeKey
    ca_certificates: tuple[bytes, ...] = ()
    timestamper: Callable[[], TimeStamper | None] = lambda: None
    check_certificate: Callable[[CredentialRef, bytes, dt.datetime], RevocationEvidence] = (
        lambda _credential, _der, _now: RevocationEvidence()
    )
    trust_anchors: tuple[bytes, ...] = ()
    fetch_timeout_seconds: float = 5.0

    def run(
        self,
        request: SignRequest,
        activation: Activation,
        now: dt.datetime,
        reads: TokenReads | None = None,
    ) -> bytes:
        """The signed PDF of ``request``'s document under the spent ``activation``, made
        at ``now`` (aware); ``reads``: what the batch read from its tokens already.
        Raises :class:`~hsm_bridge.errors.ActivationInvalid`
        (``wrong_document``, ``wrong_image``, ``certificate_mismatch``),
        :class:`~hsm_bridge.errors.CertificateNotUsable`, PIN and token errors, and
        :class:`~hsm_bridge.errors.SignatureBuildFailed`."""
        document_sha256 = hashlib.sha256(request.document).hexdigest()
        if not hmac.compare_digest(document_sha256, activation.document_sha256):
            raise ActivationInvalid(
                "this is not the approved document", reason=RefusalReason.WRONG_DOCUMENT
            )
        params = SignatureParameters.from_object(activation.parameters)
        try:
            image = check_images(params, request.images)
        except ValueError as exc:
            raise ActivationInvalid(str(exc), reason=RefusalReason.WRONG_IMAGE) from exc
        identity = self._identity(request, activation, now, reads or TokenReads())
        # the CA's word right before the signature (a revocation since the approval
        # stops it); its answers are what a B-LT signature embeds
        evidence = self.check_certificate(request.credential, identity.certificate, now)
        pin = self._pin(request, activation, now)

        def on_token(digest: bytes) -> bytes:
            try:
                return self.tokens.sign_digest(request.credential, request.mechanism, digest, pin)
            except PinIncorrect:
                if pin is not None:
                    serial = request.credential.token_serial
                    self.registry.refuse_pin(
                        activation.authorization, serial, activation.expires_at
                    )
                raise

        timestamper = self.timestamper()
        try:
            return build_signed_pdf(
                request.document,
                params,
                identity,
                image=image,
                signing_time=now,
                sign_digest=on_token,
                timestamper=timestamper,
                validation_data=ValidationData(
                    self.trust_anchors,
                    evidence.ocsps,
                    evidence.crls,
                    self.fetch_timeout_seconds,
                ),
            )
        except BridgeError:
            raise
        except Exception as exc:  # noqa: BLE001 - pyHanko raises many kinds on odd input
            log.error("building the signature of %s failed: %r", activation.subject, exc)
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise SignatureBuildFailed(f"the signature could not be built: {reason}") from exc

    def _identity(
        self, request: SignRequest, activation: Activation, now: dt.datetime, reads: TokenReads
    ) -> SignerIdentity:
        """The token's certificate (the approved one, valid now) and its chain."""
        der = reads.certificate(self.tokens, request.credential)
        if not hmac.compare_digest(hashlib.sha256(der).hexdigest(), activation.certificate_sha256):
            raise ActivationInvalid(
                "the token holds another certificate than the approved one",
                reason=RefusalReason.CERTIFICATE_MISMATCH,
            )
        certificate = x509.load_der_x509_certificate(der)
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise CertificateNotUsable(
                "the certificate is expired or not yet valid"
                f" (valid {certificate.not_valid_before_utc:%Y-%m-%d}"
                f" to {certificate.not_valid_after_utc:%Y-%m-%d})"
            )
        candidates = reads.on_token(self.tokens, request.credential.token_serial)
        chain = issuer_chain(der, (*candidates, *self.ca_certificates))
        return SignerIdentity(der, chain, request.mechanism)

    def _pin(self, request: SignRequest, activation: Activation, now: dt.datetime) -> str | None:
        """The signer's PIN from the request's envelope, or None (the stored PIN)."""
        if request.pin_envelope is None:
            return None
        serial = request.credential.token_serial
        if self.registry.pin_refused(activation.authorization, serial, now=now):
            raise PinIncorrect(
                "the token refused this approval's PIN already; it is not tried again"
            )
        return self.envelope_key.open(request.pin_envelope, activation.authorization)
