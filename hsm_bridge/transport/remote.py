"""The client side of a bridge service on a secure host: the same interface as the
in-process :class:`~hsm_bridge.bridge.Bridge`, over HTTPS with mutual TLS (httpx; one
keep-alive connection pool per bridge). Each call carries the id of the gateway's HTTP
request being served (``X-Request-ID``, :mod:`hsm_bridge.transport.request_ids`), which
the bridge logs and returns."""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from hsm_bridge.credentials import CredentialRef
from hsm_bridge.errors import BridgeError, BridgeUnavailable, error_from_code
from hsm_bridge.interface import OnSigned, PasskeyOptions, SignRequest
from hsm_bridge.pkcs11.inventory import CredentialEntry, TokenEntry
from hsm_bridge.pkcs11.tokens import TokenHealth
from hsm_bridge.sam.authorization import AuthorizationRequest, Factor, PasskeyAuthorisation
from hsm_bridge.sam.signers import DeviceRecord, EnrolledDevice, EnrolmentCode
from hsm_bridge.transport import request_ids
from hsm_bridge.transport.wire import (
    MAX_CHUNK_BYTES,
    MAX_SIGN_BATCH,
    AuthorizeWire,
    CredentialWire,
    DeviceEnrolmentWire,
    DeviceRevocationWire,
    EnrolmentCodeWire,
    FactorWire,
    PasskeyEnrolmentWire,
    PasskeyOptionsWire,
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
            response = self._client.request(method, path, json=body, headers=request_ids.outgoing())
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
        """Not over the link: the bridge's administrator lists its tokens on its host
        (``signing-gateway bridge tokens``)."""
        raise BridgeUnavailable(
            f"bridge {self.name} lists its tokens on its own host: run `signing-gateway"
            " bridge tokens` there"
        )

    def holds(self, token_serial: str) -> bool:
        """Whether the bridge has a present token ``token_serial``."""
        payload = self._call("GET", f"/v1/tokens/{quote(token_serial, safe='')}")
        return bool(payload.get("present"))

    def credentials(self, token_serial: str) -> list[CredentialEntry]:
        """Not over the link (see :meth:`inventory`)."""
        raise BridgeUnavailable(
            f"bridge {self.name} lists its keys on its own host: run `signing-gateway"
            " bridge tokens` there"
        )

    def credential_status(self, credential: CredentialRef) -> CredentialEntry:
        """One named credential's inventory entry (``POST /v1/credential-status``)."""
        body = CredentialWire.of(credential).model_dump()
        return from_json(CredentialEntry, self._call("POST", "/v1/credential-status", body))

    def certificate(self, credential: CredentialRef) -> bytes:
        """The credential's certificate (DER)."""
        payload = self._call("POST", "/v1/certificate", CredentialWire.of(credential).model_dump())
        return unb64(str(payload["certificate"]))

    def pin_key(self, token_serial: str) -> bytes:
        """The bridge's HPKE public key for sealed PINs (``GET /v1/pin-key``)."""
        return unb64(str(self._call("GET", "/v1/pin-key")["public_key"]))

    def authorize(
        self, request: AuthorizationRequest, *, token_serials: frozenset[str] | None = None
    ) -> list[str | None]:
        """The bridge's SADs for a signer's factor (``POST /v1/authorize``)."""
        body = AuthorizeWire.of(request, token_serials).model_dump(mode="json")
        activations = self._call("POST", "/v1/authorize", body).get("activations")
        if not isinstance(activations, list) or len(activations) != len(request.items):
            raise BridgeUnavailable(f"bridge {self.name} answered a malformed authorization")
        return [None if a is None else str(a) for a in activations]

    def enrol_device(
        self, code_id: str, public_key_der: bytes, proof: bytes, *, kind: str = "device_key"
    ) -> EnrolledDevice:
        """Register a device key at the bridge (``POST /v1/devices``)."""
        body = DeviceEnrolmentWire(
            code_id=code_id, public_key=b64(public_key_der), proof=b64(proof), kind=kind
        )
        return from_json(EnrolledDevice, self._call("POST", "/v1/devices", body.model_dump()))

    def passkey_options(self, signer: str, display_name: str) -> PasskeyOptions:
        """Open a passkey registration at the bridge (``POST /v1/passkeys/options``)."""
        body = PasskeyOptionsWire(signer=signer, display_name=display_name)
        return from_json(
            PasskeyOptions, self._call("POST", "/v1/passkeys/options", body.model_dump())
        )

    def enrol_passkey(
        self, challenge_id: str, response: Mapping[str, Any], authorisation: PasskeyAuthorisation
    ) -> EnrolledDevice:
        """Register a passkey at the bridge (``POST /v1/passkeys``)."""
        body = PasskeyEnrolmentWire.of(challenge_id, dict(response), authorisation)
        return from_json(EnrolledDevice, self._call("POST", "/v1/passkeys", body.model_dump()))

    def devices(self, signer: str) -> list[DeviceRecord]:
        """The signer's devices at the bridge, without their keys."""
        rows = self._call("GET", f"/v1/signers/{quote(signer, safe='')}/devices")
        return [from_json(DeviceRecord, {**row, "public_key_der": b""}) for row in rows]

    def revoke_device(self, signer: str, device_id: str, factor: Factor) -> bool:
        """Revoke a signer's device with their factor."""
        path = f"/v1/devices/{quote(device_id, safe='')}/revocation"
        body = DeviceRevocationWire(signer=signer, factor=FactorWire.of(factor))
        return bool(self._call("POST", path, body.model_dump()).get("known"))

    def enrolment_code(
        self, signer: str, factor: Factor, *, ttl_seconds: int, recipient: str | None = None
    ) -> EnrolmentCode:
        """A device enrolment code on a signer's factor (``POST /v1/enrolment-codes``)."""
        body = EnrolmentCodeWire(
            signer=signer,
            factor=FactorWire.of(factor),
            ttl_seconds=ttl_seconds,
            recipient=recipient,
        )
        return from_json(
            EnrolmentCode, self._call("POST", "/v1/enrolment-codes", body.model_dump())
        )

    def check_totp(self, signer: str, otp: str) -> None:
        """Accept a signer's TOTP code once (``POST /v1/totp/check``)."""
        body = TotpConfirmationWire(signer=signer, otp=otp)
        self._call("POST", "/v1/totp/check", body.model_dump())

    def begin_totp_enrolment(
        self,
        signer: str,
        secret: str,
        *,
        current_otp: str | None = None,
        code_id: str | None = None,
        code_proof: bytes | None = None,
    ) -> None:
        """Keep a new TOTP secret pending at the bridge (``POST /v1/totp``)."""
        body = TotpEnrolmentWire(
            signer=signer,
            secret=secret,
            current_otp=current_otp,
            code_id=code_id,
            code_proof=b64(code_proof) if code_proof is not None else None,
        )
        self._call("POST", "/v1/totp", body.model_dump())

    def confirm_totp_enrolment(self, signer: str, otp: str) -> None:
        """Activate the pending TOTP secret (``POST /v1/totp/confirmation``)."""
        body = TotpConfirmationWire(signer=signer, otp=otp)
        self._call("POST", "/v1/totp/confirmation", body.model_dump())

    def sign(self, request: SignRequest) -> bytes:
        """Build and sign one approved document at the bridge; raises its error."""
        outcome = self.sign_many([request])[0]
        if isinstance(outcome, BridgeError):
            raise outcome
        return outcome

    def sign_many(
        self, requests: Sequence[SignRequest], on_signed: OnSigned | None = None
    ) -> list[bytes | BridgeError]:
        """Sign in exchanges of up to :data:`~hsm_bridge.transport.wire.MAX_SIGN_BATCH` items and
        about :data:`~hsm_bridge.transport.wire.MAX_CHUNK_BYTES` of JSON each (documents are
        large); one signed PDF or error per request, in order; ``on_signed`` hears of each
        exchange's signed PDFs when it returns."""
        outcomes: list[bytes | BridgeError] = []
        for chunk in _chunks(list(requests)):
            items = [SignItemWire.of(r) for r in chunk]
            body = {"items": [item.model_dump(mode="json") for item in items]}
            try:
                payload = self._call("POST", "/v1/sign", body)
                results = payload.get("results", [])
                if len(results) != len(chunk):
                    raise BridgeUnavailable(f"bridge {self.name} answered a malformed batch")
            except BridgeError as exc:
                # this chunk failed as a whole; earlier chunks keep their signatures
                outcomes.extend([exc] * len(chunk))
                continue
            for item, request in zip(results, chunk, strict=True):
                outcome = outcome_from_json(item, request.document)
                if on_signed is not None and isinstance(outcome, bytes):
                    on_signed(len(outcomes), outcome)
                outcomes.append(outcome)
        return outcomes


def _chunks(requests: list[SignRequest]) -> list[list[SignRequest]]:
    """``requests`` cut into runs of at most MAX_SIGN_BATCH items and, unless one item
    alone is larger, at most MAX_CHUNK_BYTES of documents (as base64)."""
    chunks: list[list[SignRequest]] = []
    current: list[SignRequest] = []
    size = 0
    for request in requests:
        item_size = 1024 + len(request.document) * 4 // 3
        if current and (len(current) >= MAX_SIGN_BATCH or size + item_size > MAX_CHUNK_BYTES):
            chunks.append(current)
            current, size = [], 0
        current.append(request)
        size += item_size
    if current:
        chunks.append(current)
    return chunks
