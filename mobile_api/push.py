"""Push delivery: a provider interface with an FCM implementation (firebase-admin) and a
log implementation for the embedded default, and the notifier that tells a signer's
devices about a new request after it was committed.

A push message carries only the request id, a server nonce for the signed answer (see
:mod:`gateway.approvals.statements`) and a localised title: never document content, names of
secrets or tokens. A push failure never loses or blocks the request: the signer still
sees it in the pending list, and the app can fetch a nonce itself.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import logging
import re
import uuid
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from py_vapid import Vapid02
from pywebpush import WebPushException, webpush
from sqlalchemy import select

from gateway.approvals.statements import issue_nonce
from gateway.db.database import Database
from gateway.db.models import Device
from gateway.integration.destinations import DestinationPolicy, DestinationRefused

__all__ = [
    "WebPushProvider",
    "FcmPushProvider",
    "LogPushProvider",
    "PushNotifier",
    "PushOutcome",
    "PushProvider",
]

log = logging.getLogger(__name__)

# A Web Push endpoint as the browsers' push services give them: https, a DNS name,
# optionally a port, a path of RFC 3986 characters, nothing else.
_ENDPOINT = re.compile(r"https://[A-Za-z0-9.-]+(:[0-9]{1,5})?/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*")


class PushOutcome(enum.StrEnum):
    """What a provider answered for one device."""

    DELIVERED = "delivered"
    TOKEN_STALE = "token_stale"  # noqa: S105 - FCM UNREGISTERED or SENDER_ID_MISMATCH
    FAILED = "failed"


class PushProvider(Protocol):
    """Sends one notification to one device registration token."""

    def send(self, push_token: str, request_id: str, nonce: str, title: str) -> PushOutcome:
        """Deliver ``title`` with data ``{"type": "signing_request", "request_id": ...,
        "nonce": ...}``."""


class LogPushProvider:
    """The embedded default: writes the notification to the log instead of sending it."""

    def send(self, push_token: str, request_id: str, nonce: str, title: str) -> PushOutcome:
        """Log the request id (never the device token or the nonce)."""
        log.info("push (log provider): new signing request %s", request_id)
        return PushOutcome.DELIVERED


class FcmPushProvider:
    """Firebase Cloud Messaging HTTP v1 through firebase-admin.

    ``service_account_file``: the Firebase service-account JSON. A private Firebase app
    instance is created (never the default app), so several gateways in one process do
    not clash."""

    def __init__(self, service_account_file: Path) -> None:
        import firebase_admin
        from firebase_admin import credentials

        self._app = firebase_admin.initialize_app(
            credentials.Certificate(str(service_account_file)),
            name=f"signing-gateway-{uuid.uuid4()}",
        )

    def send(self, push_token: str, request_id: str, nonce: str, title: str) -> PushOutcome:
        """Send one message (``messaging.send``); map FCM's answer to an outcome."""
        from firebase_admin import exceptions, messaging

        with warnings.catch_warnings():
            # firebase-admin 7.7 deprecates ``token`` for ``fid`` (a Firebase installation
            # ID); the native apps register FCM registration tokens, which FCM's v1 API
            # still addresses as ``message.token``.
            warnings.filterwarnings("ignore", "Message.token is deprecated", DeprecationWarning)
            message = messaging.Message(
                token=push_token,
                data={"type": "signing_request", "request_id": request_id, "nonce": nonce},
                notification=messaging.Notification(title=title),
                android=messaging.AndroidConfig(priority="high"),
                apns=messaging.APNSConfig(headers={"apns-priority": "10"}),
            )
        try:
            messaging.send(message, app=self._app)
        except (messaging.UnregisteredError, messaging.SenderIdMismatchError):
            return PushOutcome.TOKEN_STALE
        except (exceptions.FirebaseError, ValueError) as exc:
            log.warning("FCM refused a push for request %s: %s", request_id, type(exc).__name__)
            return PushOutcome.FAILED
        return PushOutcome.DELIVERED


class WebPushProvider:
    """Web Push (RFC 8030) for the installed tablet app: the message is encrypted for the
    subscription (RFC 8291, aes128gcm) and signed with the installation's VAPID key
    (RFC 8292), by pywebpush. ``push_token`` is the subscription's JSON (``endpoint``
    and ``keys``). The endpoint is checked before every send (``policy``: an https push
    service among ``hosts``, resolving to allowed addresses), so a subscription cannot
    make the gateway post into its own network. 404 and 410 mean the subscription is
    gone (stale)."""

    def __init__(
        self,
        vapid_private_pem: bytes,
        subject: str,
        *,
        policy: DestinationPolicy,
        hosts: Sequence[str],
        ttl_seconds: int = 24 * 3600,
    ) -> None:
        self._vapid = Vapid02.from_pem(vapid_private_pem)
        self._subject = subject
        self._policy = policy
        self._hosts = tuple(hosts)
        self._ttl = ttl_seconds

    def check_subscription(self, push_token: str) -> dict[str, Any]:
        """The subscription in ``push_token`` when it is one this gateway will post to;
        ValueError (in words for the app's log) otherwise."""
        try:
            subscription = json.loads(push_token)
            endpoint = str(subscription["endpoint"])
            keys = subscription["keys"]
            _ = (str(keys["p256dh"]), str(keys["auth"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError("a Web Push subscription has an endpoint and keys") from exc
        if not _ENDPOINT.fullmatch(endpoint):
            # one form only, so that every URL parser (ours, requests', urllib3's) reads
            # the same host: no user info, no backslash, ASCII only
            raise ValueError("a Web Push endpoint is a plain https URL")
        host = (urlsplit(endpoint).hostname or "").lower()
        if not any(host == h or host.endswith("." + h) for h in self._hosts):
            raise ValueError(f"{host} is not a Web Push service this gateway sends to")
        try:
            self._policy.target(endpoint)
        except DestinationRefused as exc:
            raise ValueError(str(exc)) from exc
        return dict(subscription)

    def send(self, push_token: str, request_id: str, nonce: str, title: str) -> PushOutcome:
        """Encrypt and post ``{"type", "request_id", "nonce", "title"}``."""
        try:
            subscription = self.check_subscription(push_token)
        except ValueError as exc:
            log.warning("web push for request %s not sent: %s", request_id, exc)
            return PushOutcome.FAILED
        payload = {"type": "signing_request", "request_id": request_id, "nonce": nonce}
        try:
            webpush(
                subscription,
                json.dumps({**payload, "title": title}, ensure_ascii=False),
                vapid_private_key=self._vapid,
                vapid_claims={"sub": self._subject},
                ttl=self._ttl,
                timeout=10,
            )
        except WebPushException as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status in (404, 410):
                return PushOutcome.TOKEN_STALE
            log.warning("web push for request %s refused: %s", request_id, status)
            return PushOutcome.FAILED
        return PushOutcome.DELIVERED


class PushNotifier:
    """Implements :class:`gateway.requests.submission.Notifier`: sends to each live (not stale, not
    revoked) device of the signer in a background thread, with one new server nonce
    (valid ``nonce_ttl_seconds``) for the signed answer; marks a device stale when FCM
    says its token is dead. One device's failure never affects another's."""

    def __init__(
        self,
        db: Database,
        provider: PushProvider,
        title: str,
        *,
        nonce_ttl_seconds: int = 24 * 3600,
        web: PushProvider | None = None,
    ) -> None:
        self._db = db
        self._provider = provider
        self._web = web
        self._title = title
        self._nonce_ttl_seconds = nonce_ttl_seconds
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="push")

    def signing_request_created(self, signer_id: str, request_id: str) -> None:
        """Queue the notification; returns at once and never raises."""
        try:
            self._pool.submit(self.deliver, signer_id, request_id)
        except RuntimeError:
            log.warning("push queue closed; request %s stays in the pending list", request_id)

    def deliver(self, signer_id: str, request_id: str) -> dict[str, PushOutcome]:
        """Send now to every non-stale device of ``signer_id``; return outcome by device
        id."""
        outcomes: dict[str, PushOutcome] = {}
        try:
            with self._db.transaction() as session:
                devices = list(
                    session.scalars(
                        select(Device).where(
                            Device.user_id == signer_id,
                            Device.stale.is_(False),
                            Device.revoked_at.is_(None),
                        )
                    )
                )
                nonce = None
                if devices:
                    nonce = issue_nonce(
                        session,
                        signer_id,
                        now=dt.datetime.now(dt.UTC),
                        ttl_seconds=self._nonce_ttl_seconds,
                    ).nonce
            for device in devices:
                try:
                    assert nonce is not None
                    provider = self._web if device.platform == "web" else self._provider
                    if provider is None or not device.push_token:
                        continue
                    outcome = provider.send(device.push_token, request_id, nonce, self._title)
                except Exception as exc:  # noqa: BLE001 - one device never stops the others
                    log.warning("push to device %s failed: %s", device.id, type(exc).__name__)
                    outcome = PushOutcome.FAILED
                outcomes[device.id] = outcome
                if outcome is PushOutcome.TOKEN_STALE:
                    with self._db.transaction() as session:
                        stored = session.get(Device, device.id)
                        if stored is not None:
                            stored.stale = True
                    log.info("device %s has a stale push token; it was marked", device.id)
        except Exception as exc:  # noqa: BLE001 - push never breaks the request
            log.error("push delivery for request %s failed: %s", request_id, type(exc).__name__)
        return outcomes

    def close(self) -> None:
        """Finish queued deliveries and stop the worker threads."""
        self._pool.shutdown(wait=True)
