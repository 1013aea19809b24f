"""The operator's endpoints. ``GET /health`` is the public liveness answer: it names
nothing (no token, no module, no bridge). The details, ``GET /operator/health`` (every
token with its state, unreachable bridges), and ``GET /metrics`` (Prometheus text: the
gateway's metrics, :mod:`gateway.observability`, and the in-process bridge's) need the
operator token (:mod:`gateway.admin.operators`): ``Authorization: Bearer <token>``. The
nginx sample keeps both inside the host."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.admin.operators import check_operator_token
from gateway.context import GatewayContext, context_of
from gateway.errors import Unauthenticated
from gateway.observability.backlog import Backlog, render_backlog
from hsm_bridge import BridgeError
from hsm_bridge.pkcs11 import metrics
from hsm_bridge.transport.router import BridgeRouter

__all__ = ["router"]

router = APIRouter(tags=["operations"])
Context = Annotated[GatewayContext, Depends(context_of)]
# the OpenAPI security scheme of the operator's routes; operator() does the checking
OPERATOR = HTTPBearer(
    auto_error=False,
    scheme_name="operatorToken",
    description="The operator token: `Authorization: Bearer <operator token>`.",
)


def operator(
    request: Request,
    context: Context,
    shown: Annotated[HTTPAuthorizationCredentials | None, Depends(OPERATOR)],
) -> None:
    """FastAPI dependency: the caller holds the operator token (401 otherwise).
    ``shown``: the credentials as the ``operatorToken`` scheme saw them, only to
    declare the scheme; the header is read here."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not check_operator_token(
        context.settings.secrets_dir, token.strip()
    ):
        raise Unauthenticated("send Authorization: Bearer <operator token>")


@router.get("/health")
def health() -> dict[str, str]:
    """Liveness: 200 ``{"status": "ok"}`` while the process serves. Names nothing."""
    return {"status": "ok"}


@router.get("/operator/health", dependencies=[Depends(operator)])
def operator_health(context: Context) -> dict[str, object]:
    """Every token the bridge(s) know with its state (``ok``, ``removed``,
    ``unhealthy``, ``failing``, ``pin_locked``). ``status`` is ``degraded`` when a token
    is not ``ok`` or a bridge does not answer; the HTTP status stays 200 (the gateway
    itself is alive). Needs the operator token."""
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


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(operator)])
def prometheus(context: Context) -> Response:
    """Prometheus metrics of this process (HTTP requests, approvals, signatures,
    callbacks; the in-process bridge's operations, latency, errors per token) and of the
    database, read now (requests by status, pending age, undelivered callbacks). Needs
    the operator token."""
    backlog = Backlog(context.db, context.clock, context.settings.callback_max_attempts)
    return Response(metrics.render() + render_backlog(backlog), media_type=metrics.CONTENT_TYPE)
