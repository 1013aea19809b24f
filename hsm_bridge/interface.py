"""The bridge's interface, shared by its transports: in-process (:class:`~hsm_bridge.
bridge.Bridge`), remote over mutual TLS (:class:`~hsm_bridge.remote.RemoteBridge`), and
the router that sends each credential to the bridge holding its token
(:class:`~hsm_bridge.router.BridgeRouter`)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from hsm_bridge.authorization import AuthorizationRequest
from hsm_bridge.credentials import CredentialRef, SignatureMechanism
from hsm_bridge.errors import BridgeError
from hsm_bridge.inventory import CredentialEntry, TokenEntry
from hsm_bridge.signers import EnrolledDevice, EnrolmentCode
from hsm_bridge.tokens import TokenHealth

__all__ = ["BridgeClient", "SignRequest", "SigningInput"]


@dataclass(frozen=True, slots=True)
class SigningInput:
    """What a token's signature covers, with what proves it (ETSI EN 319 142-1 §5.1,
    RFC 5652 §5.4): ``prepared_pdf``, the original document's bytes followed by the
    incremental update that holds the signature dictionary, whose /Contents is a
    zero-filled placeholder outside the /ByteRange; ``original_length`` in bytes; and
    ``signed_attributes``, the DER SET OF the CMS signed attributes, whose messageDigest is
    the SHA-256 of the /ByteRange. The token signs :attr:`digest`; the bridge checks the
    whole chain (:func:`hsm_bridge.binding.verify_signing_input`)."""

    prepared_pdf: bytes = field(repr=False)
    original_length: int
    signed_attributes: bytes = field(repr=False)

    @property
    def digest(self) -> bytes:
        """SHA-256 of :attr:`signed_attributes` (32 bytes): the input of C_Sign."""
        return hashlib.sha256(self.signed_attributes).digest()


@dataclass(frozen=True, slots=True)
class SignRequest:
    """One signature with ``credential`` using ``mechanism``, authorised by
    ``activation`` (the signature activation data, SAD, from the approval step).

    What is signed: for an activation bound to a document (the gateway's PAdES path),
    ``signing_input``, from which the bridge derives the digest itself after checking it
    against the approved document's SHA-256 (``digest`` is then None); for an activation
    bound to a digest, ``digest`` (32-byte SHA-256). ``pin``: the token PIN the signer
    typed with the approval (PIN policy ``signer``), None when the bridge keeps the PIN
    (``stored``); never shown in ``repr`` and never stored."""

    credential: CredentialRef
    digest: bytes | None
    mechanism: SignatureMechanism
    activation: str
    pin: str | None = field(default=None, repr=False)
    signing_input: SigningInput | None = None


class BridgeClient(Protocol):
    """What the gateway may ask of a bridge, whatever the transport. Every method raises
    :class:`~hsm_bridge.errors.BridgeError` subclasses with stable codes."""

    name: str

    def health(self) -> list[TokenHealth]:
        """Every token the bridge knows and its state (present, removed, unhealthy...)."""
        ...

    def inventory(self) -> list[TokenEntry]:
        """The present tokens with flags and signature mechanisms."""
        ...

    def credentials(self, token_serial: str) -> list[CredentialEntry]:
        """The keys and certificates of one token."""
        ...

    def holds(self, token_serial: str) -> bool:
        """Whether one of this bridge's present tokens has serial ``token_serial``."""
        ...

    def certificate(self, credential: CredentialRef) -> bytes:
        """DER bytes of the credential's certificate, read from its token."""
        ...

    def authorize(
        self, request: AuthorizationRequest, *, token_serials: frozenset[str] | None = None
    ) -> list[str | None]:
        """The bridge checks the signer's proof and returns one SAD per item (None for
        items whose token is not among ``token_serials``); raises
        :class:`~hsm_bridge.errors.AuthorizationRefused`."""
        ...

    def enrol_device(self, code_id: str, public_key_der: bytes, proof: bytes) -> EnrolledDevice:
        """Register a device key with a bridge-issued code's HMAC over it."""
        ...

    def revoke_device(self, device_id: str) -> bool:
        """Revoke a device key; False when the bridge never knew it."""
        ...

    def enrolment_code(self, signer: str, otp: str, *, ttl_seconds: int) -> EnrolmentCode:
        """A device enrolment code for a signer who typed a TOTP code (checked by the
        bridge)."""
        ...

    def check_totp(self, signer: str, otp: str) -> None:
        """Accept a signer's TOTP code once (the bridge holds the secret)."""
        ...

    def begin_totp_enrolment(self, signer: str, secret: str, current_otp: str | None) -> None:
        """Keep a new TOTP secret pending at the bridge."""
        ...

    def confirm_totp_enrolment(self, signer: str, otp: str) -> None:
        """Activate the pending TOTP secret with a code from it."""
        ...

    def sign(self, request: SignRequest) -> bytes:
        """Verify and consume the activation, then sign; the signature bytes."""
        ...

    def sign_many(self, requests: Sequence[SignRequest]) -> list[bytes | BridgeError]:
        """:meth:`sign` for each request (activations consumed in one durable
        transaction); one signature or error per request, in order."""
        ...
