"""Status callbacks to document systems: a transactional outbox and its deliverer.

A document system may give a ``callback_url`` with a submission. Every change of that
request to a final status (``signed``, ``failed``, ``rejected``, ``expired``,
``cancelled``) writes a :class:`~gateway.db.models.CallbackDelivery` row in the same
transaction as the change (:func:`enqueue`, called by
:func:`gateway.requests.lifecycle.transition`),
so a committed change always has its callback and a rolled-back one never does. The
:class:`CallbackDeliverer` POSTs due rows and retries failures with exponential backoff;
nothing is lost when the document system is down for a while, and it can always poll.

Each POST carries ``application/json`` and the header ``X-Signing-Gateway-Signature:
t=<POSIX seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`` (the scheme Stripe and
others use: the timestamp lets the receiver refuse old replays), with the client's
callback secret. Delivery is at least once: the ``event_id`` in the body identifies
repeats.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import threading
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.db.database import Database, affected_rows
from gateway.db.models import CallbackDelivery, IntegrationClient, SigningRequest
from gateway.integration.destinations import DestinationPolicy, DestinationRefused
from gateway.observability.metrics import CALLBACK_DELIVERIES
from gateway.requests.workflow_steps import steps_of, workflow_status
from gateway.secrets_at_rest import SecretBox
from hsm_bridge.clock import Clock, posix, utcnow

__all__ = [
    "NOTIFIED_STATUSES",
    "SIGNATURE_HEADER",
    "CallbackDeliverer",
    "enqueue",
    "signature_header",
]

log = logging.getLogger(__name__)

NOTIFIED_STATUSES = frozenset({"signed", "failed", "rejected", "expired", "cancelled"})
SIGNATURE_HEADER = "X-Signing-Gateway-Signature"
_LEASE = dt.timedelta(seconds=120)  # a claimed delivery is someone's for this long


def enqueue(session: Session, request: SigningRequest, *, now: dt.datetime) -> None:
    """Owe the document system a callback for ``request``'s new status, in
    ``session``'s transaction (nothing when it gave no URL or the status is not final)."""
    if request.callback_url is None or request.status not in NOTIFIED_STATUSES:
        return
    event_id = str(uuid.uuid4())
    body = json.dumps(
        {
            "event_id": event_id,
            "type": "signing_request.status",
            "id": request.id,
            "title": request.title,
            "status": request.status,
            "failure_code": request.failure_code,
            "signed_document_sha256": request.signed_document_sha256,
            "occurred_at": now.astimezone(dt.UTC).isoformat(timespec="seconds"),
            **(_workflow_fields(session, request) if request.workflow_id is not None else {}),
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    session.add(
        CallbackDelivery(
            id=event_id,
            request_id=request.id,
            client_id=request.client_id,
            url=request.callback_url,
            body=body,
            created_at=now,
            attempts=0,
            next_attempt_at=now,
        )
    )


def _workflow_fields(session: Session, request: SigningRequest) -> dict[str, object]:
    """A workflow step's callback also says which step it is and where the whole
    workflow stands (``pending`` after step 1 of an official document is signed)."""
    assert request.workflow is not None
    return {
        "workflow_id": request.workflow_id,
        "step": request.step,
        "workflow_status": workflow_status(request.workflow, steps_of(session, request)),
    }


def signature_header(secret: bytes, timestamp: int, body: bytes) -> str:
    """The value of :data:`SIGNATURE_HEADER` for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


class CallbackDeliverer:
    """Delivers owed callbacks. ``retry_seconds``: the first retry's delay, doubled per
    attempt up to six hours; after ``max_attempts`` a delivery is left undelivered (its
    row stays, for the operator). Several replicas may run one each: a delivery is
    claimed by a conditional UPDATE before it is sent."""

    def __init__(
        self,
        db: Database,
        box: SecretBox,
        *,
        retry_seconds: float = 10.0,
        max_attempts: int = 15,
        timeout_seconds: float = 10.0,
        policy: DestinationPolicy | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self._db = db
        self._box = box
        self._policy = policy or DestinationPolicy()
        self._retry = retry_seconds
        self._max_attempts = max_attempts
        self._http = httpx.Client(timeout=timeout_seconds, follow_redirects=False)
        self._clock = clock

    def deliver_due(self, limit: int = 20) -> int:
        """Send up to ``limit`` due callbacks now; return how many were delivered."""
        now = self._clock()
        with self._db.transaction() as session:
            due = session.execute(
                select(CallbackDelivery.id, CallbackDelivery.next_attempt_at)
                .where(
                    CallbackDelivery.delivered_at.is_(None),
                    CallbackDelivery.next_attempt_at <= now,
                    CallbackDelivery.attempts < self._max_attempts,
                )
                .order_by(CallbackDelivery.next_attempt_at)
                .limit(limit)
            ).all()
        delivered = 0
        for delivery_id, next_attempt_at in due:
            if self._claim(delivery_id, next_attempt_at, now):
                delivered += self._send(delivery_id)
        return delivered

    def _claim(self, delivery_id: str, seen_at: dt.datetime, now: dt.datetime) -> bool:
        with self._db.transaction() as session:
            claimed = session.execute(
                update(CallbackDelivery)
                .where(
                    CallbackDelivery.id == delivery_id,
                    CallbackDelivery.next_attempt_at == seen_at,
                    CallbackDelivery.delivered_at.is_(None),
                )
                .values(next_attempt_at=now + _LEASE)
            )
            return affected_rows(claimed) > 0

    def _send(self, delivery_id: str) -> int:
        with self._db.transaction() as session:
            delivery = session.get(CallbackDelivery, delivery_id)
            assert delivery is not None
            client = session.get(IntegrationClient, delivery.client_id)
            secret = (
                self._box.open(client.callback_secret) if client and client.callback_secret else ""
            )
            url, body = delivery.url, delivery.body.encode()
        error = self._post(url, body, secret)
        now = self._clock()
        with self._db.transaction() as session:
            delivery = session.get(CallbackDelivery, delivery_id, with_for_update=True)
            assert delivery is not None
            delivery.attempts += 1
            if error is None:
                delivery.delivered_at = now
                delivery.last_error = None
                CALLBACK_DELIVERIES.labels("delivered").inc()
                return 1
            delay = min(self._retry * 2 ** (delivery.attempts - 1), 6 * 3600)
            delivery.next_attempt_at = now + dt.timedelta(seconds=delay)
            delivery.last_error = error
        given_up = delivery.attempts >= self._max_attempts
        CALLBACK_DELIVERIES.labels("abandoned" if given_up else "failed").inc()
        log.warning(
            "callback %s for request %s failed (%s); attempt %d, next in %.0f s",
            delivery_id,
            delivery.request_id,
            error,
            delivery.attempts,
            delay,
        )
        return 0

    def _post(self, url: str, body: bytes, secret: str) -> str | None:
        """POST ``body`` to ``url``'s checked address (:mod:`.destinations`: resolved
        now, every address allowed, the connection pinned to the one checked); the
        error (``address_refused``, ``http <status>``, the transport's) or None."""
        try:
            target = self._policy.target(url)
        except DestinationRefused as exc:
            log.warning("callback to %s refused: %s", urlsplit(url).hostname, exc)
            return "address_refused"
        port = urlsplit(url).port
        try:
            answer = self._http.post(
                target.pinned_url(),
                content=body,
                headers={
                    "Host": target.host if port is None else f"{target.host}:{port}",
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: signature_header(secret.encode(), posix(self._clock()), body),
                },
                extensions={"sni_hostname": target.host},
            )
        except httpx.HTTPError as exc:
            return type(exc).__name__
        return None if 200 <= answer.status_code < 300 else f"http {answer.status_code}"

    def run(self, stop: threading.Event, poll_seconds: float, also: Callable[[], object]) -> None:
        """Until ``stop`` is set: every ``poll_seconds``, call ``also`` (the expiry sweep)
        and deliver what is due. Never raises."""
        while not stop.wait(poll_seconds):
            try:
                also()
                while self.deliver_due():
                    pass
            except Exception as exc:  # noqa: BLE001 - the loop must survive a bad round
                log.error("callback round failed: %s", type(exc).__name__, exc_info=exc)

    def close(self) -> None:
        """Close the HTTP client."""
        self._http.close()
