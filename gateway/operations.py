"""The operator's endpoints: ``GET /health`` (liveness and the tokens' states) and
``GET /metrics`` (Prometheus text of the in-process bridge)."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Depends, Response

from gateway.context import GatewayContext, context_of
from hsm_bridge import BridgeError
from hsm_bridge.pkcs11 import metrics
from hsm_bridge.transport.router import BridgeRouter

__all__ = ["router"]

router = APIRouter(tags=["operations"])


@router.get("/health")
def health(context: Annotated[GatewayContext, Depends(context_of)]) -> dict[str, object]:
    """Liveness, and every token the bridge(s) know with its state (``ok``,
    ``removed``, ``unhealthy``, ``failing``, ``pin_locked``). ``status`` is
    ``degraded`` when a token is not ``ok`` or a bridge does not answer; the HTTP
    status stays 200 (the gateway itself is alive)."""
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


@router.get("/metrics", include_in_schema=False)
def prometheus() -> Response:
    """Prometheus metrics of the in-process bridge (operations, latency, errors per
    token)."""
    return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)
