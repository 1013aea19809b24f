"""The one place that turns errors into RFC 9457 problem responses
(``application/problem+json``), dispatched by class: a :class:`~gateway.errors.GatewayError`
or a :class:`~hsm_bridge.errors.BridgeError` answers with its own code, status, title and
retryable flag; request validation is ``parameter_invalid``; anything else is a 500
without a stack trace (the trace goes to the log). No handler anywhere else builds error
bodies."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.errors import GatewayError
from hsm_bridge.errors import BridgeError
from hsm_bridge.transport import request_ids

__all__ = ["PROBLEM_TYPE_BASE", "Problem", "document_problems", "install_error_handlers", "problem"]

log = logging.getLogger(__name__)

PROBLEM_TYPE_BASE = "https://signing-gateway.invalid/problems/"


class Problem(BaseModel):
    """An error answer (RFC 9457 ``application/problem+json``): ``code`` is the stable
    machine-readable reason, ``detail`` says what is wrong in words a clerk understands,
    ``retryable`` whether the same call may succeed later unchanged; some problems add
    members (``retry_after`` seconds, ``reason``, ``errors``)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
    retryable: bool


_PROBLEM_CONTENT = {
    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
}


def document_problems(app: FastAPI) -> None:
    """Make ``app``'s OpenAPI description say what errors look like: every operation's
    4xx and 5xx answers are :class:`Problem` documents (``application/problem+json``),
    in place of FastAPI's default validation-error schema."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        described = generate()
        schemas = described.setdefault("components", {}).setdefault("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        schemas["Problem"] = Problem.model_json_schema()
        for path in described.get("paths", {}).values():
            for operation in path.values():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                for status, what in (("4XX", "Refused"), ("5XX", "Failed")):
                    responses[status] = {"description": what, "content": _PROBLEM_CONTENT}
        app.openapi_schema = described
        return described

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way


def problem(
    status: int, code: str, title: str, detail: str, *, retryable: bool = False, **extra: Any
) -> JSONResponse:
    """An ``application/problem+json`` response (RFC 9457) with our ``code`` member,
    whether the same call may succeed later unchanged (``retryable``) and the request's
    id (``request_id``, as in the ``X-Request-ID`` header and the log lines)."""
    body = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "retryable": retryable,
        **extra,
    }
    if (request_id := request_ids.current()) is not None:
        body["request_id"] = request_id
    return ProblemResponse(body, status_code=status)


class ProblemResponse(JSONResponse):
    """A problem document as JSON: UTF-8, or ASCII with escapes when a member echoes
    text that UTF-8 cannot carry (a lone surrogate sent as ``"\\ud800"``), so that the
    answer to bad input is never a 500."""

    media_type = "application/problem+json"

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that map every exception to a problem response. Unknown
    exceptions become a 500 problem without a stack trace (the trace goes to the log)."""

    @app.exception_handler(GatewayError)
    async def _gateway(_: Request, exc: GatewayError) -> JSONResponse:
        return problem(
            exc.status, exc.code, exc.title, exc.detail, retryable=exc.retryable, **exc.extra
        )

    @app.exception_handler(BridgeError)
    async def _bridge(_: Request, exc: BridgeError) -> JSONResponse:
        reason = getattr(exc, "reason", None)
        extra = {"reason": str(reason)} if reason is not None else {}
        return problem(
            exc.status, exc.code, exc.title, exc.message, retryable=exc.retryable, **extra
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        return problem(
            422,
            "parameter_invalid",
            "A parameter is invalid",
            "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors),
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return problem(exc.status_code, code, str(exc.detail), str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error: %s", type(exc).__name__, exc_info=exc)
        return problem(500, "internal_error", "Internal error", "An unexpected error occurred")
