"""The bridge's interface, shared by its transports: in-process (:class:`~hsm_bridge.
bridge.Bridge`), remote over mutual TLS (:class:`~hsm_bridge.remote.RemoteBridge`), and
the router that sends each credential to the bridge holding its token
(:class:`~hsm_bridge.router.BridgeRouter`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from hsm_bridge.credentials import CredentialRef, SignatureMechanism
from hsm_bridge.errors import BridgeError
from hsm_bridge.inventory import CredentialEntry, TokenEntry
from hsm_bridge.tokens import TokenHealth

__all__ = ["BridgeClient", "SignRequest"]


@dataclass(frozen=True, slots=True)
class SignRequest:
    """One signature: ``digest`` (32-byte SHA-256) to sign with ``credential`` using
    ``mechanism``, authorised by ``activation`` (the signature activation data, SAD, from
    the approval step). ``pin``: the token PIN the signer typed with the approval (PIN
    policy ``signer``), None when the bridge keeps the PIN (``stored``); never shown in
    ``repr`` and never stored."""

    credential: CredentialRef
    digest: bytes
    mechanism: SignatureMechanism
    activation: str
    pin: str | None = field(default=None, repr=False)


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

    def sign(self, request: SignRequest) -> bytes:
        """Verify and consume the activation, then sign; the signature bytes."""
        ...

    def sign_many(self, requests: Sequence[SignRequest]) -> list[bytes | BridgeError]:
        """:meth:`sign` for each request (activations consumed in one durable
        transaction); one signature or error per request, in order."""
        ...
