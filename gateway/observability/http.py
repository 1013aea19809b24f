"""HTTP metrics as an ASGI middleware: each answered request counted by its route
*template* (``/api/v1/signing-requests/{request_id}``, never the id itself), method and
status, and timed. A path no route matches counts as ``unmatched``, a file of the tablet
app as ``/app``: the label set stays small whatever callers send."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.observability.metrics import HTTP_DURATION, HTTP_REQUESTS, Stopwatch

__all__ = ["HttpMetrics", "route_template"]

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetrics:
    """ASGI middleware recording :data:`HTTP_REQUESTS` and :data:`HTTP_DURATION`. A
    request that fails before any answer counts as status 500."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, noting the status the answer starts with."""
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        watch = Stopwatch()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._app(scope, receive, sending)
        finally:
            route = route_template(scope, status)
            method = scope["method"] if scope["method"] in _METHODS else "other"
            HTTP_REQUESTS.labels(route, method, f"{status // 100}xx", str(status)).inc()
            HTTP_DURATION.labels(route, method).observe(watch.seconds())


def route_template(scope: Scope, status: int) -> str:
    """The template of the route that served ``scope`` (FastAPI puts the route in the
    scope), the mount's path for a mounted application, else ``unmatched``."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    root = scope.get("app_root_path") or scope.get("root_path") or ""
    if isinstance(root, str) and root and status != 404:
        return root
    return "unmatched"
