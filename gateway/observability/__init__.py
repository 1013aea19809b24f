"""The gateway's metrics, request ids and traces: :func:`install` wires them into the
application (docs/operations.md, "Metrics, logs and traces")."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from gateway.config import Settings
from gateway.logs import redact
from gateway.observability.http import HttpMetrics
from gateway.observability.tracing import TracingUnavailable, instrument
from hsm_bridge.transport import request_ids

__all__ = ["TracingUnavailable", "accepted_request_id", "install"]


def accepted_request_id(value: str) -> bool:
    """Whether a caller's ``X-Request-ID`` is used as is: a short safe token
    (:func:`hsm_bridge.transport.request_ids.is_safe`) that looks like no secret (it is
    logged unredacted)."""
    return request_ids.is_safe(value) and redact(value) == value


def install(app: FastAPI, settings: Settings, *, span_exporter: Any = None) -> None:
    """Give ``app`` its HTTP metrics, request ids (outermost: every log line of the
    request carries the id) and, when enabled, OpenTelemetry tracing (``span_exporter``:
    see :func:`~gateway.observability.tracing.instrument`). Raises TracingUnavailable."""
    instrument(app, settings, span_exporter=span_exporter)
    app.add_middleware(HttpMetrics)
    request_ids.install(app, accepted_request_id)
