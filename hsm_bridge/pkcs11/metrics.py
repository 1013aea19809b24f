"""Prometheus metrics of the bridge: operations, latency and errors per token.

Metric objects live in prometheus_client's default registry (one set per process);
:func:`render` gives the text exposition format for a ``/metrics`` endpoint.
"""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "count", "observe", "render"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

OPERATIONS = Counter(
    "bridge_operations_total",
    "PKCS#11 operations by token, operation and outcome (ok or an error code).",
    ["token", "operation", "outcome"],
)
ERRORS = Counter(
    "bridge_errors_total",
    "Failed PKCS#11 operations by token and error code.",
    ["token", "code"],
)
LATENCY = Histogram(
    "bridge_operation_seconds",
    "Time a PKCS#11 operation took on its token, in seconds.",
    ["token", "operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


def observe(token: str, operation: str, outcome: str, started: float) -> None:
    """Record one finished operation; ``started`` is a :func:`time.perf_counter` value."""
    LATENCY.labels(token, operation).observe(time.perf_counter() - started)
    count(token, operation, outcome)


def count(token: str, operation: str, outcome: str) -> None:
    """Count one operation outcome (``ok`` or an error code) without a latency."""
    OPERATIONS.labels(token, operation, outcome).inc()
    if outcome != "ok":
        ERRORS.labels(token, outcome).inc()


def render() -> bytes:
    """The process's metrics in the Prometheus text format (:data:`CONTENT_TYPE`)."""
    return generate_latest()
