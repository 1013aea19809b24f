"""What the database says at scrape time: requests by status, the pending requests'
count and oldest age by workflow step, and callbacks not yet delivered. Read on each
``GET /metrics`` (a few grouped counts over indexed columns), so every process and
replica reports the same figures, and nothing is lost at a restart."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select

from gateway.db.database import Database
from gateway.db.models import CallbackDelivery, SigningRequest
from gateway.requests.lifecycle import RequestStatus
from hsm_bridge.clock import Clock

__all__ = ["Backlog", "render_backlog"]


class Backlog(Collector):
    """A Prometheus collector over the gateway's database; ``clock`` gives aware UTC
    now (the ages are measured against it); ``max_attempts`` is the callbacks' setting
    (a delivery that used them all is abandoned)."""

    def __init__(self, db: Database, clock: Clock, max_attempts: int) -> None:
        self._db = db
        self._clock = clock
        self._max_attempts = max_attempts

    def collect(self) -> Iterator[Metric]:
        """The gauges, read in one transaction."""
        requests = GaugeMetricFamily(
            "gateway_signing_requests",
            "Signing requests in the database by status.",
            labels=["status"],
        )
        pending = GaugeMetricFamily(
            "gateway_pending_requests",
            "Requests waiting for their signer's approval, by workflow step (1: the first).",
            labels=["step"],
        )
        oldest = GaugeMetricFamily(
            "gateway_pending_oldest_age_seconds",
            "Age of the oldest request waiting for approval, by workflow step, in seconds.",
            labels=["step"],
        )
        callbacks = GaugeMetricFamily(
            "gateway_callbacks_undelivered",
            "Callbacks not delivered: waiting (to be tried again) or abandoned (every"
            " attempt failed).",
            labels=["state"],
        )
        now = self._clock()
        with self._db.transaction() as session:
            by_status = dict(
                session.execute(
                    select(SigningRequest.status, func.count()).group_by(SigningRequest.status)
                ).all()
            )
            steps = session.execute(
                select(SigningRequest.step, func.count(), func.min(SigningRequest.created_at))
                .where(SigningRequest.status == RequestStatus.PENDING_APPROVAL)
                .group_by(SigningRequest.step)
            ).all()
            # one row (count, abandoned): a CASE summed, the same SQL on SQLite and
            # PostgreSQL (grouping by the comparison binds its parameter twice, which
            # PostgreSQL does not take for the same expression)
            abandoned = case((CallbackDelivery.attempts >= self._max_attempts, 1), else_=0)
            undelivered, given_up = session.execute(
                select(func.count(), func.coalesce(func.sum(abandoned), 0)).where(
                    CallbackDelivery.delivered_at.is_(None)
                )
            ).one()
        for status in RequestStatus:
            requests.add_metric([status.value], float(by_status.get(status.value, 0)))
        for step, count, first in steps:
            pending.add_metric([str(step)], float(count))
            oldest.add_metric([str(step)], max(0.0, (now - first).total_seconds()))
        callbacks.add_metric(["waiting"], float(undelivered - given_up))
        callbacks.add_metric(["abandoned"], float(given_up))
        yield from (requests, pending, oldest, callbacks)


def render_backlog(backlog: Backlog) -> bytes:
    """The backlog's gauges in the Prometheus text format, read now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(backlog)
    return generate_latest(registry)
