"""OpenTelemetry tracing, an optional extra (``pip install '.[otel]'``): with
``GATEWAY_OTEL_ENABLED=true`` every HTTP request of the gateway becomes a span
(opentelemetry-instrumentation-fastapi), exported over OTLP/HTTP to where the standard
variables say (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``,
``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``…).

The packages are imported only when tracing is enabled; enabled without them, the
gateway refuses to start (:class:`TracingUnavailable`) rather than run untraced.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI

from gateway.config import Settings

__all__ = ["INSTALL_HINT", "TracingUnavailable", "instrument"]

INSTALL_HINT = "pip install '.[otel]'"
# never traced: the scrapes and liveness probes would drown the requests
_EXCLUDED_URLS = "/metrics,/health"


class TracingUnavailable(RuntimeError):
    """GATEWAY_OTEL_ENABLED is true but the OpenTelemetry packages are not installed."""


def instrument(app: FastAPI, settings: Settings, *, span_exporter: Any = None) -> Any:
    """When ``settings.otel_enabled``: instrument ``app`` with a tracer provider of its
    own, exporting through ``span_exporter`` (a ``SpanExporter``; tests pass an
    in-memory one) or else OTLP over HTTP in batches. Returns the tracer provider (None
    when tracing is off); it flushes at interpreter exit. Raises TracingUnavailable
    naming the extra to install when a package is missing."""
    if not settings.otel_enabled:
        return None
    try:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError as exc:
        raise TracingUnavailable(
            f"GATEWAY_OTEL_ENABLED=true needs OpenTelemetry ({exc.name} is missing):"
            f" {INSTALL_HINT}, or set GATEWAY_OTEL_ENABLED=false"
        ) from exc
    named = "OTEL_SERVICE_NAME" in os.environ or "service.name=" in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    provider = TracerProvider(
        resource=Resource.create({} if named else {"service.name": "signing-gateway"})
    )
    if span_exporter is None:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise TracingUnavailable(
                f"GATEWAY_OTEL_ENABLED=true needs the OTLP exporter: {INSTALL_HINT}"
            ) from exc
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, excluded_urls=_EXCLUDED_URLS)
    return provider
