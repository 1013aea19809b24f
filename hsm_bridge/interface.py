"""The bridge's interface, shared by its transports: in-process (:class:`~hsm_bridge.
bridge.Bridge`), remote over mutual TLS (:class:`~hsm_bridge.transport.remote.RemoteBridge`), and
the router that sends each credential to the bridge holding its token
(:class:`~hsm_bridge.transport.router.BridgeRouter`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hsm_bridge.credentials import CredentialRef, SignatureMechanism
from hsm_bridge.errors import BridgeError
from hsm_bridge.pkcs11.inventory import CredentialEntry, TokenEntry
from hsm_bridge.pkcs11.tokens import TokenHealth
from hsm_bridge.sam.authorization import AuthorizationRequest, Factor, PasskeyAuthorisation
from hsm_bridge.sam.signers import DeviceRecord, EnrolledDevice, EnrolmentCode

__all__ = ["BridgeClient", "OnSigned", "PasskeyOptions", "SignRequest"]

# told of each signed PDF (its index in the batch, the PDF bytes) as soon as it is built
OnSigned = Callable[[int, bytes], None]


@dataclass(frozen=True, slots=True)
class PasskeyOptions:
    """A passkey registration the bridge opened: the challenge's id, and the
    ``PublicKeyCredentialCreationOptions`` (JSON) for ``navigator.credentials.create``."""

    challenge_id: str
    options: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SignRequest:
    """One signature the bridge builds and makes with ``credential`` using
    ``mechanism``, under ``activation`` (the SAD the bridge issued for the approval).

    ``document``: the approved document's bytes (the bridge checks their SHA-256
    against the SAD's); ``images``: the appearance's images by the lowercase hex SHA-256
    of their PNG bytes (the one the approved parameters name is used, checked by its
    hash); ``pin_envelope``: the signer's token PIN sealed by the tablet to the bridge
    for this approval (PIN policy ``signer``, :mod:`hsm_bridge.sam.pin_envelope`), else
    None. Nothing else travels: the parameters come from the SAD, the certificate and
    chain from the token, the time from the bridge's clock."""

    credential: CredentialRef
    mechanism: SignatureMechanism
    activation: str = field(repr=False)
    document: bytes = field(repr=False)
    images: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    pin_envelope: bytes | None = field(default=None, repr=False)


class BridgeClient(Protocol):
    """What the gateway may ask of a bridge, whatever the transport. Every method raises
    :class:`~hsm_bridge.errors.BridgeError` subclasses with stable codes."""

    name: str

    def health(self) -> list[TokenHealth]:
        """Every token the bridge knows and its state (present, removed, unhealthy...)."""
        ...

    def inventory(self) -> list[TokenEntry]:
        """The present tokens with flags and signature mechanisms (the in-process
        bridge only: a bridge on a secure host lists its tokens to its own
        administrator)."""
        ...

    def credentials(self, token_serial: str) -> list[CredentialEntry]:
        """The keys and certificates of one token (the in-process bridge only)."""
        ...

    def credential_status(self, credential: CredentialRef) -> CredentialEntry:
        """One credential's inventory entry (status, certificate); raises
        :class:`~hsm_bridge.errors.CredentialNotFound`."""
        ...

    def holds(self, token_serial: str) -> bool:
        """Whether one of this bridge's present tokens has serial ``token_serial``."""
        ...

    def certificate(self, credential: CredentialRef) -> bytes:
        """DER bytes of the credential's certificate, read from its token."""
        ...

    def pin_key(self, token_serial: str) -> bytes:
        """The public key (65-byte uncompressed P-256 point) a tablet seals a token PIN
        to, for the bridge holding ``token_serial``."""
        ...

    def authorize(
        self, request: AuthorizationRequest, *, token_serials: frozenset[str] | None = None
    ) -> list[str | None]:
        """The bridge checks the signer's proof and returns one SAD per item (None for
        items whose token is not among ``token_serials``); raises
        :class:`~hsm_bridge.errors.AuthorizationRefused`."""
        ...

    def enrol_device(
        self, code_id: str, public_key_der: bytes, proof: bytes, *, kind: str = "device_key"
    ) -> EnrolledDevice:
        """Register a device key (``kind`` ``device_key``) with a bridge-issued code's
        HMAC over it."""
        ...

    def passkey_options(self, signer: str, display_name: str) -> PasskeyOptions:
        """Open a passkey registration for ``signer`` (a challenge the bridge keeps)."""
        ...

    def enrol_passkey(
        self, challenge_id: str, response: Mapping[str, Any], authorisation: PasskeyAuthorisation
    ) -> EnrolledDevice:
        """Register the passkey ``response`` under the challenge, authorised by an
        enrolment code's proof or a TOTP code (where TOTP approves)."""
        ...

    def devices(self, signer: str) -> list[DeviceRecord]:
        """The devices the bridge holds for ``signer`` (revoked ones included)."""
        ...

    def revoke_device(self, signer: str, device_id: str, factor: Factor) -> bool:
        """Revoke one of ``signer``'s devices with the signer's own proof (a statement
        signed by one of their devices, or a TOTP code where TOTP is accepted); False
        when the bridge never knew it."""
        ...

    def enrolment_code(
        self, signer: str, factor: Factor, *, ttl_seconds: int, recipient: str | None = None
    ) -> EnrolmentCode:
        """A device enrolment code on the signer's own factor, checked by the bridge: an
        enrolled device's signed enrolment-code statement naming ``recipient`` (the
        app's one-time HPKE key, to which the code comes sealed), or a TOTP code (where
        TOTP approves)."""
        ...

    def check_totp(self, signer: str, otp: str) -> None:
        """Accept a signer's TOTP code once (the bridge holds the secret)."""
        ...

    def begin_totp_enrolment(
        self,
        signer: str,
        secret: str,
        *,
        current_otp: str | None = None,
        code_id: str | None = None,
        code_proof: bytes | None = None,
    ) -> None:
        """Keep a new TOTP secret pending at the bridge: a code of the current
        authenticator, or for a first one a bridge-issued enrolment code's HMAC over the
        secret."""
        ...

    def confirm_totp_enrolment(self, signer: str, otp: str) -> None:
        """Activate the pending TOTP secret with a code from it."""
        ...

    def sign(self, request: SignRequest) -> bytes:
        """Spend the SAD, build the signature of the approved document and sign it on
        the token; the signed PDF (the document followed by one incremental update)."""
        ...

    def sign_many(
        self, requests: Sequence[SignRequest], on_signed: OnSigned | None = None
    ) -> list[bytes | BridgeError]:
        """:meth:`sign` for each request (SADs spent in one durable transaction); one
        signed PDF or error per request, in order. ``on_signed(index, pdf)`` is told of
        each signed PDF as soon as it is there, before the call returns (so that the
        caller can check one while the next is built); it must not raise."""
        ...
