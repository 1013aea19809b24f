"""The API's documentation pages, served with every asset local (government networks are
often offline): Swagger UI at ``/docs`` and ReDoc at ``/redoc``, their scripts and styles
from the ``fastapi-offline`` package, mounted at ``/docs/assets``. Each page carries its own
Content-Security-Policy: its scripts from this origin only, the one inline script Swagger UI
needs allowed by its SHA-256 (CSP Level 2 hash source), nothing fetched elsewhere."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS", "docs_policy", "mount_docs"]

ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
_ASSETS_URL = "/docs/assets"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def docs_policy(html: str) -> str:
    """The Content-Security-Policy of a documentation page ``html``: scripts from this
    origin and the page's own inline scripts (each allowed by its SHA-256); styles
    inline too (both viewers set them from script); images from this origin or data:
    URLs; ReDoc's worker from a blob: URL; connections to this origin only."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(html)
    )
    return (
        f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline';"
        " img-src 'self' data:; font-src 'self'; connect-src 'self'; worker-src 'self' blob:;"
        " object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )


def _page(response: HTMLResponse) -> HTMLResponse:
    html = bytes(response.body).decode()
    return HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": docs_policy(html),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache",
        },
    )


def mount_docs(app: FastAPI) -> None:
    """Serve ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) for ``app``'s OpenAPI
    document from local assets. ``app`` is made with ``docs_url=None, redoc_url=None``."""
    app.mount(_ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return _page(
            get_swagger_ui_html(
                openapi_url=openapi_url,
                title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{_ASSETS_URL}/swagger-ui-bundle.js",
                swagger_css_url=f"{_ASSETS_URL}/swagger-ui.css",
                swagger_favicon_url=f"{_ASSETS_URL}/favicon.png",
                # no badge from the public validator: nothing leaves the installation
                swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": False},
            )
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return _page(
            get_redoc_html(
                openapi_url=openapi_url,
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{_ASSETS_URL}/redoc.standalone.js",
                redoc_favicon_url=f"{_ASSETS_URL}/favicon.png",
                with_google_fonts=False,
            )
        )
