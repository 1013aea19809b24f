"""The signer's tablet app, served by the gateway at ``/app/`` with every asset local
(no CDN, no web fonts: government networks are often offline): HTML, CSS, ES modules,
the web app manifest, icons and the service worker, from ``mobile_api/static``. ``/``
leads to it. A strict Content-Security-Policy keeps the app to its own scripts."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["STATIC", "mount_app"]

STATIC = Path(__file__).resolve().parent / "static"
mimetypes.add_type("application/manifest+json", ".webmanifest")
mimetypes.add_type("text/javascript", ".js")

_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self';"
    " connect-src 'self'; worker-src 'self'; manifest-src 'self'; object-src 'none';"
    " base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


class _AppHeaders:
    """Security headers on the app's files (not on the APIs)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", _POLICY.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cache-control", b"no-cache"),
                ]
                message["headers"] = headers
            await send(message)

        await self._app(scope, receive, sending)


def mount_app(app: FastAPI) -> None:
    """Serve the app at ``/app/`` and send ``/`` there."""
    app.mount("/app", _AppHeaders(StaticFiles(directory=STATIC, html=True)), name="app")

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/app/")
