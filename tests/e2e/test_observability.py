"""Metrics, request ids in JSON logs and traces, through the running server (and, for
traces, the application built as the server builds it, with an in-memory exporter)."""

from __future__ import annotations

import asyncio
import json
import sys

import httpx
import pytest

from gateway.config import load_settings
from gateway.observability import TracingUnavailable
from signing_gateway.app import create_app
from tests.commands import cli
from tests.conftest import Server, approve, submit
from tests.metrics import Samples, scrape, value
from tests.pdf_builders import hybrid_xref_pdf

APPROVAL_ROUTE = "/mobile/v1/signing-requests/{request_id}/approval"


def _scrape(server: Server, token: str) -> Samples:
    return scrape(server.base_url, token)


_value = value


def test_metrics_count_an_approved_signature_and_show_the_pending_one(server, installation, signer):
    issued = cli(installation, "operator-token")
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    before = _scrape(server, token)
    document = hybrid_xref_pdf("Metrics")
    request_id = submit(server, document, signer.username).json()["id"]
    pending = _scrape(server, token)
    assert _value(pending, "gateway_pending_requests", step="1") == (
        _value(before, "gateway_pending_requests", step="1") + 1
    )
    assert _value(pending, "gateway_pending_oldest_age_seconds", step="1") >= 0
    assert ("gateway_pending_oldest_age_seconds", frozenset({("step", "1")})) in pending
    with server.tablet(signer.username, signer.password) as tablet:
        code = signer.otp()
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        assert approve(tablet, request_id, wrong, document).status_code >= 400
        assert approve(tablet, request_id, code, document).json()["status"] == "signed"
    after = _scrape(server, token)

    def moved(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert moved("gateway_approvals_total", factor="totp", outcome="approved") == 1
    assert moved("gateway_approvals_total", factor="totp", outcome="refused") == 1
    assert moved("gateway_signatures_total", outcome="signed", code="") == 1
    assert moved("gateway_signing_seconds_count") == 1
    assert moved("gateway_signing_seconds_sum") > 0
    assert moved("gateway_bridge_signing_seconds_count") == 1
    assert moved("gateway_signing_requests", status="signed") == 1
    assert moved("gateway_pending_requests", step="1") == 0
    route = {"route": APPROVAL_ROUTE, "method": "POST"}
    assert moved("gateway_http_requests_total", **route, status_class="2xx", status="200") == 1
    refused = [
        labels
        for (name, labels), value in after.items()
        if name == "gateway_http_requests_total"
        and ("route", APPROVAL_ROUTE) in labels
        and ("status_class", "4xx") in labels
        and value > _value(before, name, **dict(labels))
    ]
    assert len(refused) == 1
    # ids and unknown paths never become label values
    assert not any(request_id in str(labels) for _, labels in after)


def test_json_logs_carry_the_request_id_from_the_answer_to_the_bridge(json_server, signer):
    document = hybrid_xref_pdf("Request ids")
    submitted = submit(json_server, document, signer.username)
    submit_id = submitted.headers["X-Request-ID"]
    request_id = submitted.json()["id"]
    with json_server.tablet(signer.username, signer.password) as tablet:
        answer = approve(tablet, request_id, signer.otp(), document)
        assert answer.json()["status"] == "signed"
        approval_id = answer.headers["X-Request-ID"]
        chosen = tablet.get(
            "/mobile/v1/signing-requests/unknown-request", headers={"X-Request-ID": "clerk-42"}
        )
        assert chosen.headers["X-Request-ID"] == "clerk-42"
        assert chosen.json()["request_id"] == "clerk-42"  # in the problem, for a screenshot
        forged = tablet.get("/health", headers={"X-Request-ID": "a\tb password=x"})
        assert forged.headers["X-Request-ID"] not in ("clerk-42", "a\tb password=x")
    assert submit_id != approval_id
    lines = json_server.log_path.read_text("utf-8").splitlines()
    records = [json.loads(line) for line in lines if line.strip()]  # every line is JSON
    mine = [r for r in records if r["request_id"] == approval_id]
    loggers = {r["logger"] for r in mine}
    assert "hsm_bridge.bridge" in loggers  # the bridge's "signed … with credential"
    assert any("with credential" in r["message"] for r in mine)
    assert any(APPROVAL_ROUTE.split("{")[0] in r["message"] for r in mine)  # access line
    assert any(r["request_id"] == submit_id for r in records)
    assert all(set(r) >= {"time", "level", "logger", "message", "request_id"} for r in records)


def _get(app, path: str) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            return await http.get(path)

    return asyncio.run(call())


def test_tracing_makes_a_span_per_request(installation):
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    settings = load_settings(installation.data_dir, otel_enabled=True)
    app = create_app(settings, span_exporter=exporter)
    answer = _get(app, "/")  # the redirect to the tablet app (needs no installation open)
    assert answer.status_code == 307
    spans = exporter.get_finished_spans()
    server_spans = [s for s in spans if s.kind.name == "SERVER"]
    assert len(server_spans) == 1
    assert server_spans[0].attributes is not None
    assert server_spans[0].attributes.get("http.route") == "/"
    assert server_spans[0].name == "GET /"
    assert answer.headers["X-Request-ID"]
    assert _get(create_app(load_settings(installation.data_dir)), "/").status_code == 307
    assert len(exporter.get_finished_spans()) == len(spans)  # off unless enabled


def test_tracing_enabled_without_the_extra_refuses_to_start(installation, monkeypatch):
    monkeypatch.setitem(sys.modules, "opentelemetry.instrumentation.fastapi", None)
    settings = load_settings(installation.data_dir, otel_enabled=True)
    with pytest.raises(TracingUnavailable, match=r"pip install '\.\[otel\]'"):
        create_app(settings)
