"""``create_app(settings)``: the one place that imports every layer and wires them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gateway import integration_api
from gateway.config import Settings
from gateway.context import build_context
from gateway.errors import install_error_handlers
from mobile_api import routes as mobile_routes
from mobile_api.push import FcmPushProvider, LogPushProvider, PushNotifier, PushProvider

__all__ = ["create_app"]


def _push_provider(settings: Settings) -> PushProvider:
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
        notifier = PushNotifier(context.db, _push_provider(settings), settings.push_title)
        context.service.notifiers.append(notifier)
        context.service.recover_interrupted()
        app.state.gateway = context
        try:
            yield
        finally:
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
    app.include_router(integration_api.router)
    app.include_router(mobile_routes.router)

    @app.get("/health", tags=["operations"])
    def health() -> dict[str, object]:
        """Liveness and the tokens the bridge sees."""
        context = app.state.gateway
        try:
            tokens = [t.label for t in context.bridge.tokens()]
            return {"status": "ok", "tokens": tokens}
        except Exception as exc:  # noqa: BLE001 - health reports, never fails
            return {"status": "degraded", "error": type(exc).__name__}

    return app
