"""The bridge as a service on the secure host where the tokens are plugged in
(``signing-gateway bridge serve``): HTTPS with mutual TLS, accepting only clients whose
certificate chains to the link CA (see :mod:`hsm_bridge.transport.link_tls`).

Endpoints (JSON; shapes in :mod:`hsm_bridge.transport.wire`, each refusing members it does not
define):

- ``GET /health``: tokens and their state; 200 when every known token is ``ok``.
- ``GET /metrics``: Prometheus text format.
- ``GET /v1/tokens/{serial}``: 200 if present, else 404.
- ``POST /v1/credential-status``, ``POST /v1/certificate``: one named credential's
  inventory entry, its certificate (base64 DER). The link lists no tokens nor keys: the
  bridge's administrator does that on the host.
- ``GET /v1/pin-key``: the HPKE public key tablets seal a token PIN to.
- ``POST /v1/authorize``: the signer's factor for a batch → ``{"activations": [SAD |
  null]}`` (the bridge's signature activation module, :mod:`hsm_bridge.sam.authorization`).
- ``POST /v1/sign``: ``{"items": [...]}`` (SAD, approved document, images, sealed PIN)
  → ``{"results": [{"update"} | {"error"}]}``: the bridge builds each signature itself.
- ``POST /v1/devices``: enrol a device key with an enrolment code's HMAC;
  ``GET /v1/signers/{signer}/devices``: the signer's devices (no keys);
  ``POST /v1/devices/{id}/revocation``: revoke one with the signer's own factor.
- ``POST /v1/enrolment-codes``: a device enrolment code for a signer's TOTP code
  (embedded profile only).
- ``POST /v1/totp``, ``POST /v1/totp/confirmation``: a signer's new authenticator;
  ``POST /v1/totp/check``: accept a code once (a rejection needs one).

Binding signers to credentials, issuing enrolment codes and revoking devices on the
administrator's word are not here: they are the bridge host's administration
(``signing-gateway bridge ...``).

Errors are ``{"code", "message", "retryable"}`` with the error class's HTTP status.
Every handler is a plain function, so FastAPI runs it on its thread pool: the event
loop never waits on C_Sign.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from hsm_bridge.bridge import Bridge
from hsm_bridge.errors import BridgeError
from hsm_bridge.pkcs11 import metrics
from hsm_bridge.transport.wire import (
    MAX_BODY_BYTES,
    AuthorizeWire,
    CredentialWire,
    DeviceEnrolmentWire,
    DeviceRevocationWire,
    EnrolmentCodeWire,
    SignBatchWire,
    TotpConfirmationWire,
    TotpEnrolmentWire,
    as_json,
    b64,
    error_json,
    unb64,
)

__all__ = ["create_bridge_app", "serve"]


def create_bridge_app(bridge: Bridge) -> FastAPI:
    """The bridge service's ASGI application around an in-process ``bridge``."""
    app = FastAPI(title="hsm_bridge", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(BridgeError)
    def _bridge_error(_: Request, exc: BridgeError) -> JSONResponse:
        return JSONResponse(error_json(exc), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _invalid_request("; ".join(str(e.get("msg", "")) for e in exc.errors()))

    @app.get("/health")
    def health() -> JSONResponse:
        tokens = as_json(bridge.health())
        healthy = all(t["state"] == "ok" for t in tokens)
        return JSONResponse(
            {"status": "ok" if healthy else "degraded", "bridge": bridge.name, "tokens": tokens},
            status_code=200 if healthy else 503,
        )

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)

    @app.get("/v1/tokens/{serial}")
    def token(serial: str) -> Any:
        return {"token_serial": serial, "present": bridge.holds(serial)}

    @app.post("/v1/credential-status")
    def credential_status(body: CredentialWire) -> Any:
        return as_json(bridge.credential_status(body.ref()))

    @app.post("/v1/certificate")
    def certificate(body: CredentialWire) -> Any:
        return {"certificate": b64(bridge.certificate(body.ref()))}

    @app.get("/v1/pin-key")
    def pin_key() -> Any:
        return {"public_key": b64(bridge.pin_key(""))}

    @app.post("/v1/sign")
    def sign(body: SignBatchWire) -> Any:
        try:
            requests = [item.request() for item in body.items]
        except ValueError as exc:
            return _invalid_request(str(exc))
        results = []
        for request, outcome in zip(requests, bridge.sign_many(requests), strict=True):
            if isinstance(outcome, BridgeError):
                results.append({"error": error_json(outcome)})
            else:
                results.append({"update": b64(outcome[len(request.document) :])})
        return {"results": results}

    @app.post("/v1/authorize")
    def authorize(body: AuthorizeWire) -> Any:
        try:
            request = body.value()
        except ValueError as exc:
            return _invalid_request(str(exc))
        serials = frozenset(body.token_serials) if body.token_serials is not None else None
        return {"activations": bridge.authorize(request, token_serials=serials)}

    @app.post("/v1/devices")
    def enrol_device(body: DeviceEnrolmentWire) -> Any:
        try:
            key, proof = unb64(body.public_key), unb64(body.proof)
        except ValueError as exc:
            return _invalid_request(str(exc))
        return as_json(bridge.enrol_device(body.code_id, key, proof, kind=body.kind))

    @app.get("/v1/signers/{signer}/devices")
    def devices(signer: str) -> Any:
        return [_device_json(d) for d in bridge.devices(signer)]

    @app.post("/v1/devices/{device_id}/revocation")
    def revoke_device(device_id: str, body: DeviceRevocationWire) -> Any:
        try:
            factor = body.factor.value()
        except ValueError as exc:
            return _invalid_request(str(exc))
        return {"known": bridge.revoke_device(body.signer, device_id, factor)}

    @app.post("/v1/enrolment-codes")
    def enrolment_code(body: EnrolmentCodeWire) -> Any:
        return as_json(bridge.enrolment_code(body.signer, body.otp, ttl_seconds=body.ttl_seconds))

    @app.post("/v1/totp/check")
    def check_totp(body: TotpConfirmationWire) -> Any:
        bridge.check_totp(body.signer, body.otp)
        return {}

    @app.post("/v1/totp")
    def begin_totp(body: TotpEnrolmentWire) -> Any:
        try:
            proof = unb64(body.code_proof) if body.code_proof is not None else None
        except ValueError as exc:
            return _invalid_request(str(exc))
        bridge.begin_totp_enrolment(
            body.signer,
            body.secret,
            current_otp=body.current_otp,
            code_id=body.code_id,
            code_proof=proof,
        )
        return {}

    @app.post("/v1/totp/confirmation")
    def confirm_totp(body: TotpConfirmationWire) -> Any:
        bridge.confirm_totp_enrolment(body.signer, body.otp)
        return {}

    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    return app


def _device_json(device: Any) -> dict[str, Any]:
    """A device as the link shows it: no public key (the gateway needs none)."""
    return {
        "device_id": device.device_id,
        "signer": device.signer,
        "created_at": device.created_at,
        "revoked_at": device.revoked_at,
        "enrolled_with": device.enrolled_with,
        "kind": device.kind,
    }


def _invalid_request(message: str) -> JSONResponse:
    return JSONResponse(
        {"code": "invalid_request", "message": message[:500], "retryable": False},
        status_code=422,
    )


class BodyLimit:
    """ASGI middleware: a POST without Content-Length (411) or with more than ``limit``
    bytes (413) is refused before its body is read. Only the gateway, holding its
    client certificate, gets this far; this bounds what a mistake can cost in memory."""

    def __init__(self, app: Any, limit: int) -> None:
        self._app = app
        self._limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Check the request head, then hand over to the application."""
        if scope["type"] == "http" and scope["method"] == "POST":
            headers = dict(scope["headers"])
            length = headers.get(b"content-length", b"")
            refusal = None
            if not length.isdigit():
                refusal = (411, "length_required", "send Content-Length")
            elif int(length) > self._limit:
                refusal = (413, "request_too_large", "the body is too large")
            if refusal is not None:
                status, code, message = refusal
                response = JSONResponse(
                    {"code": code, "message": message, "retryable": False}, status_code=status
                )
                await response(scope, receive, send)
                return
        await self._app(scope, receive, send)


def serve(
    bridge: Bridge,
    *,
    host: str,
    port: int,
    certificate: Path,
    key: Path,
    client_ca: Path,
    log_level: str = "info",
) -> None:
    """Run the bridge service until interrupted: TLS with ``certificate``/``key`` (PEM),
    requiring a client certificate that chains to ``client_ca`` (PEM)."""
    import uvicorn

    uvicorn.run(
        create_bridge_app(bridge),
        host=host,
        port=port,
        ssl_certfile=str(certificate),
        ssl_keyfile=str(key),
        ssl_ca_certs=str(client_ca),
        ssl_cert_reqs=ssl.CERT_REQUIRED,
        log_level=log_level,
        access_log=False,
        # the gateway keeps a connection open: do not wait for it to say goodbye
        timeout_graceful_shutdown=5,
    )
