"""The gateway's Prometheus metrics, recorded in the process that serves HTTP (never in
the document workers of :mod:`gateway.requests.sandbox`: their counts would be lost).

Metric objects live in prometheus_client's default registry beside the bridge's
(:mod:`hsm_bridge.pkcs11.metrics`); what is read from the database at scrape time is in
:mod:`gateway.observability.backlog`. Every name starts with ``gateway_``; durations are
seconds. docs/operations.md lists them with their meaning.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram

from hsm_bridge.sam.authorization import DeviceFactor, Factor

__all__ = [
    "APPROVALS",
    "BRIDGE_SIGNING",
    "CALLBACK_DELIVERIES",
    "HTTP_DURATION",
    "HTTP_REQUESTS",
    "SIGNATURES",
    "SIGNING_LATENCY",
    "Stopwatch",
    "count_decision",
    "factor_kind",
]

_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

HTTP_REQUESTS = Counter(
    "gateway_http_requests_total",
    "HTTP requests answered, by route template, method, status class (2xx…) and status.",
    ["route", "method", "status_class", "status"],
)
HTTP_DURATION = Histogram(
    "gateway_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by route template and method.",
    ["route", "method"],
    buckets=_SECONDS,
)
APPROVALS = Counter(
    "gateway_approvals_total",
    "Signers' decisions (one a factor use, possibly over a batch), by factor (totp,"
    " device_key, passkey) and outcome (approved, rejected, refused).",
    ["factor", "outcome"],
)
SIGNATURES = Counter(
    "gateway_signatures_total",
    "Approved requests after their signing step, by outcome (signed; retry: pending"
    " again; failed) and the error code (empty when signed).",
    ["outcome", "code"],
)
SIGNING_LATENCY = Histogram(
    "gateway_signing_seconds",
    "Time from an approval's commit to its request's signed commit, in seconds.",
    buckets=_SECONDS,
)
BRIDGE_SIGNING = Histogram(
    "gateway_bridge_signing_seconds",
    "Time one sign_many call to the bridge took (one chunk of a decision), in seconds.",
    buckets=_SECONDS,
)
CALLBACK_DELIVERIES = Counter(
    "gateway_callback_deliveries_total",
    "Callback POSTs to document systems, by outcome (delivered; failed: retried later;"
    " abandoned: the last attempt failed).",
    ["outcome"],
)


def factor_kind(factor: Factor) -> str:
    """``totp``, ``device_key`` or ``passkey``: the label of ``factor``."""
    if isinstance(factor, DeviceFactor):
        return "passkey" if factor.webauthn is not None else "device_key"
    return "totp"


def count_decision(factor: Factor, outcome: str) -> None:
    """Count one decision taken with ``factor``: ``approved``, ``rejected`` or
    ``refused``."""
    APPROVALS.labels(factor_kind(factor), outcome).inc()


class Stopwatch:
    """Seconds since it was made, on :func:`time.perf_counter` (a duration to observe,
    never a time of day)."""

    def __init__(self) -> None:
        self._started = time.perf_counter()

    def seconds(self) -> float:
        """Seconds elapsed."""
        return time.perf_counter() - self._started
