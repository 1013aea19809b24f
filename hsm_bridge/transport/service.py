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
A request's ``X-Request-ID`` (the gateway's request id) is put on the bridge's log lines
and returned (:mod:`hsm_bridge.transport.request_ids`).
Every handler is a plain function, so FastAPI runs it on its thread pool: the event
loop never waits on C_Sign.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from hsm_bridge.bridge import Bridge
from hsm_bridge.errors import BridgeError
from hsm_bridge.transport import request_ids
from hsm_bridge.transport.routes import invalid_request, router
from hsm_bridge.transport.wire import (
    MAX_BODY_BYTES,
    error_json,
)

__all__ = ["create_bridge_app", "serve"]


def create_bridge_app(bridge: Bridge) -> FastAPI:
    """The bridge service's ASGI application around an in-process ``bridge``: the
    endpoints of :mod:`hsm_bridge.transport.routes`, bridge errors as
    ``{"code", "message", "retryable"}`` with their HTTP status, bodies bounded."""
    app = FastAPI(title="hsm_bridge", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.bridge = bridge

    @app.exception_handler(BridgeError)
    def _bridge_error(_: Request, exc: BridgeError) -> JSONResponse:
        return JSONResponse(error_json(exc), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return invalid_request("; ".join(str(e.get("msg", "")) for e in exc.errors()))

    app.include_router(router)
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    request_ids.install(app)
    return app


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
