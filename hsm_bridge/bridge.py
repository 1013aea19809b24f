"""The bridge's interface: certificates and activated signatures by credential.

This is the in-process transport (the embedded default). It verifies the signature
activation (SAD) itself, right before C_Sign, so that a caller holding only the web
tier's powers cannot make it sign a digest nobody approved (DESIGN.md invariant 1).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding

from hsm_bridge.activation import ActivationVerifier, UsedActivationStore
from hsm_bridge.credentials import CredentialRef, SignatureMechanism
from hsm_bridge.errors import CredentialNotFound
from hsm_bridge.inventory import CredentialEntry, TokenEntry, describe_token, list_credentials
from hsm_bridge.pins import PinStore
from hsm_bridge.provisioning import KeySpec, generate_key_pair, store_certificate
from hsm_bridge.signing import find_certificate, sign_digest
from hsm_bridge.tokens import TokenPool, token_serial_text

__all__ = ["Bridge", "BridgeConfig", "SignRequest", "TokenInfo"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BridgeConfig:
    """What the bridge needs: the PKCS#11 module (shared library path), the encrypted
    PIN file and its key (Fernet, urlsafe base64), the SAD key (32+ bytes) and the SQLite
    file that records used activations."""

    module_path: str
    pin_file: Path
    pin_key: bytes
    activation_key: bytes
    used_activations_file: Path


@dataclass(frozen=True, slots=True)
class SignRequest:
    """One signature: ``digest`` (32-byte SHA-256) to sign with ``credential`` using
    ``mechanism``, authorised by ``activation`` (a SAD from the approval step)."""

    credential: CredentialRef
    digest: bytes
    mechanism: SignatureMechanism
    activation: str


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A present token: label, serial, manufacturer, model (CK_TOKEN_INFO)."""

    label: str
    serial: str
    manufacturer: str
    model: str


class Bridge:
    """In-process bridge over one PKCS#11 module."""

    def __init__(self, config: BridgeConfig) -> None:
        self._pins = PinStore(config.pin_file, config.pin_key)
        self._pool = TokenPool(config.module_path, self._pins.get)
        self._verifier = ActivationVerifier(
            config.activation_key, UsedActivationStore(config.used_activations_file)
        )

    def tokens(self) -> list[TokenInfo]:
        """The tokens present now (C_GetSlotList + C_GetTokenInfo)."""
        return [
            TokenInfo(
                label=str(t.label).strip(),
                serial=token_serial_text(t),
                manufacturer=str(t.manufacturer_id).strip(),
                model=str(t.model).strip(),
            )
            for t in self._pool.tokens()
        ]

    def inventory(self) -> list[TokenEntry]:
        """Every present token with its flags and signature mechanisms."""
        return [describe_token(t) for t in self._pool.tokens()]

    def credentials(self, token_serial: str) -> list[CredentialEntry]:
        """The keys and certificates of one token (logs in with the stored PIN)."""
        with self._pool.session(token_serial) as session:
            return list_credentials(session)

    def certificate(self, credential: CredentialRef) -> bytes:
        """DER bytes of the credential's certificate, read from its token.

        Raises :class:`~hsm_bridge.errors.CredentialNotFound` or a token error."""
        with self._pool.session(credential.token_serial) as session:
            return find_certificate(session, credential.key_id)

    def sign(self, request: SignRequest, *, now: float | None = None) -> bytes:
        """Verify and consume the request's activation, then sign its digest on the token.

        Returns the signature bytes (RSA: modulus length; ECDSA: DER). ``now`` is POSIX
        seconds (defaults to the clock). Raises
        :class:`~hsm_bridge.errors.ActivationInvalid` before touching the token when
        the activation does not authorise exactly this credential and digest; PIN and
        token errors as :class:`~hsm_bridge.errors.BridgeError` subclasses.
        """
        instant = time.time() if now is None else now
        activation = self._verifier.verify_and_consume(
            request.activation, request.credential, request.digest, now=instant
        )
        with self._pool.session(request.credential.token_serial) as session:
            signature = sign_digest(
                session, request.credential.key_id, request.digest, request.mechanism
            )
        log.info(
            "signed a digest with credential %s for %s", request.credential, activation.subject
        )
        return signature

    def provision(
        self,
        token_serial: str,
        spec: KeySpec,
        key_id: bytes,
        label: str,
        certify: Callable[[PublicKeyTypes], x509.Certificate],
    ) -> bytes:
        """Generate a key pair inside the token (C_GenerateKeyPair), have ``certify``
        issue a certificate for its public key, store that certificate beside the key
        under the same CKA_ID, and return the certificate's DER bytes. Idempotent per
        CKA_ID: when a certificate with ``key_id`` is already there, it is returned."""
        with self._pool.session(token_serial) as session:
            try:
                return find_certificate(session, key_id)
            except CredentialNotFound:
                pass
            public_key = generate_key_pair(session, spec, key_id, label)
            certificate = certify(public_key)
            store_certificate(session, certificate, key_id, label)
            return certificate.public_bytes(Encoding.DER)
