"""The client side of a bridge service on a secure host: the same interface as the
in-process :class:`~hsm_bridge.bridge.Bridge`, over HTTPS with mutual TLS (httpx; one
keep-alive connection pool per bridge)."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from hsm_bridge.authorization import AuthorizationRequest
from hsm_bridge.credentials import CredentialRef
from hsm_bridge.errors import BridgeError, BridgeUnavailable, TokenNotPresent, error_from_code
from hsm_bridge.interface import SignRequest
from hsm_bridge.inventory import CredentialEntry, TokenEntry
from hsm_bridge.signers import EnrolledDevice, EnrolmentCode
from hsm_bridge.tokens import TokenHealth
from hsm_bridge.wire import (
    MAX_CHUNK_BYTES,
    MAX_SIGN_BATCH,
    AuthorizeWire,
    CredentialWire,
    DeviceEnrolmentWire,
    EnrolmentCodeWire,
    SignItemWire,
    TotpConfirmationWire,
    TotpEnrolmentWire,
    b64,
    from_json,
    outcome_from_json,
    unb64,
)

__all__ = ["RemoteBridge", "RemoteBridgeConfig"]


@dataclass(frozen=True, slots=True)
class RemoteBridgeConfig:
    """Where a bridge service is and how to authenticate to it: ``url``
    (``https://host:port``), the gateway's client certificate and key (PEM), the CA
    certificate that issued the bridge's server certificate (PEM), and the timeout of
    one HTTP exchange in seconds."""

    name: str
    url: str
    client_certificate: Path
    client_key: Path
    ca_certificate: Path
    timeout_seconds: float = 60.0


class RemoteBridge:
    """A bridge service reached over mutual TLS. Every method raises
    :class:`~hsm_bridge.errors.BridgeError` subclasses: the bridge's own codes, or
    :class:`~hsm_bridge.errors.BridgeUnavailable` when it cannot be reached."""

    def __init__(self, config: RemoteBridgeConfig) -> None:
        self.name = config.name
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(config.ca_certificate)
        )
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(config.client_certificate), str(config.client_key))
        self._client = httpx.Client(
            base_url=config.url.rstrip("/"),
            verify=context,
            timeout=config.timeout_seconds,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = self._client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise BridgeUnavailable(
                f"bridge {self.name} is unreachable or refused this gateway's TLS client "
                f"certificate: {type(exc).__name__}"
            ) from exc
        try:
            payload = response.json()
        except ValueError as exc:
            raise BridgeUnavailable(
                f"bridge {self.name} answered HTTP {response.status_code} without JSON"
            ) from exc
        if response.status_code >= 400 and path != "/health":
            if isinstance(payload, dict) and "code" in payload:
                raise error_from_code(
                    str(payload["code"]),
                    str(payload.get("message", "")),
                    reason=payload.get("reason"),
                )
            raise BridgeUnavailable(f"bridge {self.name} answered HTTP {response.status_code}")
        return payload

    def health(self) -> list[TokenHealth]:
        """The bridge's tokens and their state (``GET /health``)."""
        payload = self._call("GET", "/health")
        return [from_json(TokenHealth, t) for t in payload.get("tokens", [])]

    def inventory(self) -> list[TokenEntry]:
        """The bridge's present tokens (``GET /v1/tokens``)."""
        return [from_json(TokenEntry, t) for t in self._call("GET", "/v1/tokens")]

    def holds(self, token_serial: str) -> bool:
        """Whether the bridge has a present token ``token_serial``."""
        try:
            self._call("GET", f"/v1/tokens/{quote(token_serial, safe='')}")
        except TokenNotPresent:
            return False
        return True

    def credentials(self, token_serial: str) -> list[CredentialEntry]:
        """Keys and certificates of one token of the bridge."""
        path = f"/v1/tokens/{quote(token_serial, safe='')}/credentials"
        return [from_json(CredentialEntry, c) for c in self._call("GET", path)]

    def certificate(self, credential: CredentialRef) -> bytes:
        """The credential's certificate (DER)."""
        payload = self._call("POST", "/v1/certificate", CredentialWire.of(credential).model_dump())
        return unb64(str(payload["certificate"]))

    def authorize(
        self, request: AuthorizationRequest, *, token_serials: frozenset[str] | None = None
    ) -> list[str | None]:
        """The bridge's SADs for a signer's proof (``POST /v1/authorize``)."""
        body = AuthorizeWire.of(request, token_serials).model_dump(mode="json")
        activations = self._call("POST", "/v1/authorize", body).get("activations")
        if not isinstance(activations, list) or len(activations) != len(request.items):
            raise BridgeUnavailable(f"bridge {self.name} answered a malformed authorization")
        return [None if a is None else str(a) for a in activations]

    def enrol_device(self, code_id: str, public_key_der: bytes, proof: bytes) -> EnrolledDevice:
        """Register a device key at the bridge (``POST /v1/devices``)."""
        body = DeviceEnrolmentWire(
            code_id=code_id, public_key=b64(public_key_der), proof=b64(proof)
        )
        return from_json(EnrolledDevice, self._call("POST", "/v1/devices", body.model_dump()))

    def revoke_device(self, device_id: str) -> bool:
        """Revoke a device key at the bridge."""
        path = f"/v1/devices/{quote(device_id, safe='')}/revocation"
        return bool(self._call("POST", path).get("known"))

    def enrolment_code(self, signer: str, otp: str, *, ttl_seconds: int) -> EnrolmentCode:
        """A device enrolment code for a signer's TOTP code (``POST /v1/enrolment-codes``)."""
        body = EnrolmentCodeWire(signer=signer, otp=otp, ttl_seconds=ttl_seconds)
        return from_json(
            EnrolmentCode, self._call("POST", "/v1/enrolment-codes", body.model_dump())
        )

    def check_totp(self, signer: str, otp: str) -> None:
        """Accept a signer's TOTP code once (``POST /v1/totp/check``)."""
        body = TotpConfirmationWire(signer=signer, otp=otp)
        self._call("POST", "/v1/totp/check", body.model_dump())

    def begin_totp_enrolment(self, signer: str, secret: str, current_otp: str | None) -> None:
        """Keep a new TOTP secret pending at the bridge (``POST /v1/totp``)."""
        body = TotpEnrolmentWire(signer=signer, secret=secret, current_otp=current_otp)
        self._call("POST", "/v1/totp", body.model_dump())

    def confirm_totp_enrolment(self, signer: str, otp: str) -> None:
        """Activate the pending TOTP secret (``POST /v1/totp/confirmation``)."""
        body = TotpConfirmationWire(signer=signer, otp=otp)
        self._call("POST", "/v1/totp/confirmation", body.model_dump())

    def sign(self, request: SignRequest) -> bytes:
        """Sign one digest on the bridge; raises the bridge's error for it."""
        outcome = self.sign_many([request])[0]
        if isinstance(outcome, BridgeError):
            raise outcome
        return outcome

    def sign_many(self, requests: Sequence[SignRequest]) -> list[bytes | BridgeError]:
        """Sign in exchanges of up to :data:`~hsm_bridge.wire.MAX_SIGN_BATCH` items and
        about :data:`~hsm_bridge.wire.MAX_CHUNK_BYTES` of JSON each (prepared PDFs are
        large); one signature or error per request, in order."""
        outcomes: list[bytes | BridgeError] = []
        for chunk in _chunks([SignItemWire.of(r) for r in requests]):
            body = {"items": [item.model_dump(mode="json") for item in chunk]}
            try:
                payload = self._call("POST", "/v1/sign", body)
                results = payload.get("results", [])
                if len(results) != len(chunk):
                    raise BridgeUnavailable(f"bridge {self.name} answered a malformed batch")
            except BridgeError as exc:
                # this chunk failed as a whole; earlier chunks keep their signatures
                outcomes.extend([exc] * len(chunk))
                continue
            outcomes.extend(outcome_from_json(item) for item in results)
        return outcomes


def _chunks(items: list[SignItemWire]) -> list[list[SignItemWire]]:
    """``items`` cut into runs of at most MAX_SIGN_BATCH items and, unless one item alone
    is larger, at most MAX_CHUNK_BYTES."""
    chunks: list[list[SignItemWire]] = []
    current: list[SignItemWire] = []
    size = 0
    for item in items:
        if current and (len(current) >= MAX_SIGN_BATCH or size + item.size() > MAX_CHUNK_BYTES):
            chunks.append(current)
            current, size = [], 0
        current.append(item)
        size += item.size()
    if current:
        chunks.append(current)
    return chunks
