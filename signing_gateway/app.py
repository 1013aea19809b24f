"""``create_app(settings)``: the one place that imports every layer and wires them."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response

from gateway.config import Settings
from gateway.context import build_context
from gateway.errors import install_error_handlers
from gateway.integration import api as integration_api
from gateway.integration.callbacks import CallbackDeliverer
from hsm_bridge import BridgeError
from hsm_bridge.pkcs11 import metrics
from hsm_bridge.transport.router import BridgeRouter
from mobile_api import decisions as mobile_decisions
from mobile_api import devices as mobile_devices
from mobile_api import routes as mobile_routes
from mobile_api.auth import LoginLimiter
from mobile_api.push import FcmPushProvider, LogPushProvider, PushNotifier, PushProvider

__all__ = ["create_app"]


def push_provider(settings: Settings) -> PushProvider:
    """The push provider the settings name: FCM (with its service-account file) or the
    log (the embedded default). RuntimeError when FCM lacks its file."""
    if settings.push_provider == "fcm":
        if settings.fcm_service_account_file is None:
            raise RuntimeError("push_provider=fcm needs GATEWAY_FCM_SERVICE_ACCOUNT_FILE")
        return FcmPushProvider(settings.fcm_service_account_file)
    return LogPushProvider()


def create_app(settings: Settings) -> FastAPI:
    """Build the ASGI application for the installation described by ``settings``.

    On start-up it opens the installation, recovers requests interrupted while signing,
    and wires push notifications; on shutdown it drains the push queue."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        context = build_context(settings)
        notifier = PushNotifier(
            context.db,
            push_provider(settings),
            settings.push_title,
            nonce_ttl_seconds=settings.approval_nonce_ttl_seconds,
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
        )
        stop = threading.Event()
        sweeper = threading.Thread(
            target=deliverer.run,
            args=(stop, settings.callback_poll_seconds, context.service.expire_due),
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

    app = FastAPI(
        title="Remote signing gateway",
        version="0.1.0",
        lifespan=lifespan,
        description="PAdES signatures with keys that stay on PKCS#11 tokens, approved "
        "from a tablet.",
    )
    install_error_handlers(app)
    app.state.login_limiter = LoginLimiter(
        settings.login_rate_limit, settings.rate_limit_storage_url
    )
    app.include_router(integration_api.router)
    app.include_router(mobile_routes.router)
    app.include_router(mobile_decisions.router)
    app.include_router(mobile_devices.router)

    @app.get("/health", tags=["operations"])
    def health() -> dict[str, object]:
        """Liveness, and every token the bridge(s) know with its state (``ok``,
        ``removed``, ``unhealthy``, ``failing``, ``pin_locked``). ``status`` is
        ``degraded`` when a token is not ``ok`` or a bridge does not answer; the HTTP
        status stays 200 (the gateway itself is alive)."""
        context = app.state.gateway
        bridge = context.bridge
        try:
            tokens = [dataclasses.asdict(t) for t in bridge.health()]
        except BridgeError as exc:
            return {"status": "degraded", "error": exc.code, "tokens": []}
        unreachable = bridge.unreachable() if isinstance(bridge, BridgeRouter) else []
        healthy = not unreachable and all(t["state"] == "ok" for t in tokens)
        return {
            "status": "ok" if healthy else "degraded",
            "tokens": tokens,
            "unreachable_bridges": unreachable,
        }

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    def prometheus() -> Response:
        """Prometheus metrics of the in-process bridge (operations, latency, errors per
        token)."""
        return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)

    return app
