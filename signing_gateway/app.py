"""``create_app(settings)``: the one place that imports every layer and wires them."""

from __future__ import annotations

import functools
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from fastapi import FastAPI

from gateway import observability, operations
from gateway.config import Settings
from gateway.context import build_context
from gateway.integration import api as integration_api
from gateway.integration import validations as integration_validations
from gateway.integration.callbacks import CallbackDeliverer
from gateway.integration.destinations import DestinationPolicy
from gateway.problems import document_problems, install_error_handlers
from gateway.secrets_at_rest import vapid_key
from mobile_api import admin as mobile_admin
from mobile_api import decisions as mobile_decisions
from mobile_api import devices as mobile_devices
from mobile_api import passkeys as mobile_passkeys
from mobile_api import routes as mobile_routes
from mobile_api.push import (
    FcmPushProvider,
    LogPushProvider,
    PushNotifier,
    PushProvider,
    WebPushProvider,
)
from mobile_api.throttle import LoginThrottle
from mobile_api.web_app import mount_app
from signing_gateway.api_docs import mount_docs

__all__ = ["create_app"]


def push_provider(settings: Settings) -> PushProvider:
    """The push provider the settings name: FCM (with its service-account file) or the
    log (the embedded default). RuntimeError when FCM lacks its file."""
    if settings.push_provider == "fcm":
        if settings.fcm_service_account_file is None:
            raise RuntimeError("push_provider=fcm needs GATEWAY_FCM_SERVICE_ACCOUNT_FILE")
        return FcmPushProvider(settings.fcm_service_account_file)
    return LogPushProvider()


def web_push_provider(settings: Settings) -> WebPushProvider:
    """Web Push for the installed app, signed with the installation's VAPID key."""
    key = vapid_key(settings.secrets_dir)
    return WebPushProvider(
        key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()),
        settings.web_push_subject,
        policy=DestinationPolicy(
            settings.web_push_allowed_networks,
            what="the push subscription's endpoint",
            setting="web_push_allowed_networks",
        ),
        hosts=settings.web_push_hosts,
    )


def create_app(settings: Settings, *, span_exporter: Any = None) -> FastAPI:
    """Build the ASGI application for the installation described by ``settings``
    (``span_exporter``: where traces go when tracing is enabled, see
    :func:`gateway.observability.install`; raises TracingUnavailable).

    On start-up it opens the installation, recovers requests interrupted while signing,
    and wires push notifications and callbacks; on shutdown it drains them."""
    app = FastAPI(
        title="Remote signing gateway",
        version="0.1.0",
        lifespan=functools.partial(_lifespan, settings),
        description="PAdES signatures with keys that stay on PKCS#11 tokens, approved "
        "from a tablet.",
        docs_url=None,  # served from local assets by mount_docs
        redoc_url=None,
    )
    install_error_handlers(app)
    document_problems(app)
    app.state.login_throttle = LoginThrottle(
        settings.login_rate_limit, settings.rate_limit_storage_url
    )
    for router in (
        integration_api.router,
        integration_validations.router,
        mobile_routes.router,
        mobile_decisions.router,
        mobile_devices.router,
        mobile_passkeys.router,
        mobile_admin.router,
        operations.router,
    ):
        app.include_router(router)
    mount_app(app)
    mount_docs(app)
    observability.install(app, settings, span_exporter=span_exporter)
    return app


@asynccontextmanager
async def _lifespan(settings: Settings, app: FastAPI) -> AsyncIterator[None]:
    """The gateway's context on ``app.state.gateway`` while the application runs, with
    its push notifier and the callbacks' delivery thread (which also expires requests
    whose time ran out)."""
    context = build_context(settings)
    context.start()
    app.state.web_push = web_push_provider(settings)
    notifier = PushNotifier(
        context.db,
        push_provider(settings),
        settings.push_title,
        nonce_ttl_seconds=settings.approval_nonce_ttl_seconds,
        web=app.state.web_push,
    )
    context.submissions.notifiers.append(notifier)
    context.service.pipeline.notifiers.append(notifier)
    context.service.pipeline.recover_interrupted()
    deliverer = CallbackDeliverer(
        context.db,
        context.box,
        retry_seconds=settings.callback_retry_seconds,
        max_attempts=settings.callback_max_attempts,
        timeout_seconds=settings.callback_timeout_seconds,
        policy=DestinationPolicy(settings.callback_allowed_networks),
        clock=context.clock,
    )
    stop = threading.Event()
    sweeper = threading.Thread(
        target=deliverer.run,
        args=(stop, settings.callback_poll_seconds, context.service.housekeeping),
        name="callbacks",
        daemon=True,
    )
    sweeper.start()
    app.state.gateway = context
    try:
        yield
    finally:
        stop.set()
        sweeper.join(timeout=30)
        deliverer.close()
        notifier.close()
        context.close()
