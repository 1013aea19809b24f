"""The API's documentation with the network cut: ``/docs`` (Swagger UI) and ``/redoc``
(ReDoc) in Chromium, every request that would leave loopback aborted, render the
operations from local assets under their own Content-Security-Policy; and the OpenAPI
document declares the security schemes and every operation's problem answers."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from gateway.config import load_settings
from signing_gateway.app import create_app

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


@pytest.fixture(scope="module")
def openapi() -> dict:
    return create_app(load_settings(Path("unused"))).openapi()


def _operations(openapi: dict):
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_the_security_schemes_are_declared_and_required(openapi):
    schemes = openapi["components"]["securitySchemes"]
    assert {name: (s["type"], s["scheme"]) for name, s in schemes.items()} == {
        "apiKey": ("http", "bearer"),
        "session": ("http", "bearer"),
        "operatorToken": ("http", "bearer"),
    }
    for path, method, operation in _operations(openapi):
        if path.startswith("/api/v1/"):
            assert operation.get("security") == [{"apiKey": []}], (method, path)
        if path.startswith("/operator/"):
            assert operation.get("security") == [{"operatorToken": []}], (method, path)
    mobile = {(m, p): o.get("security") for p, m, o in _operations(openapi) if "/mobile/" in p}
    assert mobile[("get", "/mobile/v1/signing-requests")] == [{"session": []}]
    assert mobile[("delete", "/mobile/v1/sessions/current")] == [{"session": []}]
    assert mobile[("post", "/mobile/v1/sessions")] is None  # logging in needs none


def test_every_operation_documents_its_problems(openapi):
    assert set(openapi["components"]["schemas"]["Problem"]["required"]) >= {
        "type",
        "title",
        "status",
        "detail",
        "code",
    }
    for path, method, operation in _operations(openapi):
        errors = {s: r for s, r in operation["responses"].items() if s >= "400"}
        assert "500" in errors, (method, path)
        for status, response in errors.items():
            schema = response["content"]["application/problem+json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Problem"}, (method, path, status)
            assert response["x-problem-codes"], (method, path, status)
        if operation.get("security"):
            assert {"401", "403"} <= set(errors), (method, path)
        if "{" in path:
            assert "not_found" in errors["404"]["x-problem-codes"], (method, path)
    submit = openapi["paths"]["/api/v1/signing-requests"]["post"]["responses"]
    assert "document_too_large" in submit["413"]["x-problem-codes"]
    assert "document_not_pdf" in submit["415"]["x-problem-codes"]
    assert "idempotency_conflict" in submit["409"]["x-problem-codes"]
    assert "document_workers_busy" in submit["503"]["x-problem-codes"]
    listing = openapi["paths"]["/api/v1/signing-requests"]["get"]["responses"]
    assert {"cursor_invalid", "parameter_invalid"} <= set(listing["422"]["x-problem-codes"])
    login = openapi["paths"]["/mobile/v1/sessions"]["post"]["responses"]
    assert "login_rate_limited" in login["429"]["x-problem-codes"]


def _offline_page(browser, left: list[str], violations: list[str]):
    """A page whose requests beyond loopback are aborted (and noted in ``left``), and
    whose console errors (CSP violations among them) are noted in ``violations``."""
    page = browser.new_context().new_page()

    def guard(route) -> None:
        if urlsplit(route.request.url).hostname not in LOOPBACK:
            left.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    page.route("**/*", guard)
    page.on("console", lambda m: violations.append(m.text) if m.type == "error" else None)
    return page


def _own_blocked(console: list[str]) -> list[str]:
    """The CSP violations of the page's own resources (its scripts, styles, images):
    an off-site one blocked (ReDoc's logo from its CDN) is the policy keeping the page
    offline."""
    return [c for c in console if "Content Security Policy" in c and "https://" not in c]


@pytest.mark.browser
def test_swagger_ui_works_offline_with_its_authorize_button(browser, server):
    left: list[str] = []
    console: list[str] = []
    page = _offline_page(browser, left, console)
    answer = page.goto(f"{server.base_url}/docs")
    assert answer is not None and answer.status == 200
    assert "script-src 'self' 'sha256-" in answer.headers["content-security-policy"]
    block = page.locator(".opblock-post", has_text="/api/v1/signing-requests").first
    block.wait_for(state="visible", timeout=30_000)
    assert page.locator(".opblock-get", has_text="/api/v1/signing-requests").first.is_visible()
    authorize = page.get_by_role("button", name="Authorize")
    assert authorize.first.is_visible()
    authorize.first.click()
    assert page.get_by_text("apiKey").first.is_visible()
    assert page.get_by_text("operatorToken").first.is_visible()
    assert left == []
    assert not _own_blocked(console), console


@pytest.mark.browser
def test_redoc_works_offline(browser, server):
    left: list[str] = []
    console: list[str] = []
    page = _offline_page(browser, left, console)
    answer = page.goto(f"{server.base_url}/redoc")
    assert answer is not None and answer.status == 200
    page.get_by_text("/api/v1/signing-requests").first.wait_for(timeout=30_000)
    assert left == []
    assert not _own_blocked(console), console
