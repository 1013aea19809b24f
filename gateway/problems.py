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

__all__ = [
    "PROBLEM_TYPE_BASE",
    "Problem",
    "document_problems",
    "install_error_handlers",
    "problem",
    "raises",
]

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
_CODES = "x-problem-codes"  # the codes one documented status may carry, in the OpenAPI
_TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict with the request's state",
    413: "Too large",
    415: "Unsupported media type",
    422: "Invalid input",
    429: "Too many attempts",
    500: "Failed",
    503: "Unavailable for now",
}


def raises(*errors: type[GatewayError] | type[BridgeError]) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses=`` for the errors it may answer with (classes of
    :mod:`gateway.errors` or :mod:`hsm_bridge.errors`; a family's base class stands for
    every class under it): per HTTP status, a problem response naming the codes.
    :func:`document_problems` adds what every route of its kind may answer (401/403
    with a security scheme, 404 with a path parameter, 422 with parameters, 500)."""
    responses: dict[int | str, dict[str, Any]] = {}
    for error in _leaves(errors):
        entry = responses.setdefault(
            int(error.status), {"description": "", "content": _PROBLEM_CONTENT, _CODES: []}
        )
        if error.code not in entry[_CODES]:
            entry[_CODES].append(error.code)
    return responses


def _leaves(
    errors: tuple[type[GatewayError] | type[BridgeError], ...],
) -> list[type[GatewayError] | type[BridgeError]]:
    """``errors`` and every class under them that sets its own ``code``."""
    found: list[type[GatewayError] | type[BridgeError]] = []
    pending = list(errors)
    while pending:
        error = pending.pop(0)
        if "code" in vars(error) and error not in found:
            found.append(error)
        pending.extend(error.__subclasses__())
    return found


def _implied(path: str, operation: dict[str, Any]) -> dict[str, list[str]]:
    """The problems every operation like ``operation`` may answer with, by status."""
    implied = {"500": ["internal_error"]}
    schemes = {name for requirement in operation.get("security", []) for name in requirement}
    if schemes:
        implied["401"] = ["unauthenticated"]
        implied["403"] = ["forbidden"]
        if "session" in schemes:
            implied["403"] += ["password_change_required", "user_disabled"]
            if path.startswith("/admin/"):
                implied["403"].append("admin_role_required")
        if "apiKey" in schemes:
            implied["403"].append("scope_missing")
    if "{" in path:
        implied["404"] = ["not_found"]
    if operation.get("parameters") or operation.get("requestBody"):
        implied["422"] = ["parameter_invalid"]
    return implied


def _describe(path: str, operation: dict[str, Any]) -> None:
    """Every 4xx/5xx answer of ``operation`` as a problem, its codes in its description."""
    responses = operation.setdefault("responses", {})
    if _CODES not in responses.get("422", {_CODES: ()}):
        del responses["422"]  # FastAPI's validation error: ours is a problem
    for status, codes in _implied(path, operation).items():
        entry = responses.setdefault(status, {"content": _PROBLEM_CONTENT, _CODES: []})
        entry[_CODES] = list(dict.fromkeys([*entry.get(_CODES, []), *codes]))
    operation["responses"] = responses = dict(sorted(responses.items()))
    for status, entry in responses.items():
        if _CODES in entry:
            entry["content"] = _PROBLEM_CONTENT
            named = ", ".join(f"`{code}`" for code in entry[_CODES])
            entry["description"] = f"{_TITLES.get(int(status), 'Refused')}: {named}"


def document_problems(app: FastAPI) -> None:
    """Make ``app``'s OpenAPI description say what errors look like: each operation's
    4xx and 5xx answers (those its route declares with :func:`raises`, and those every
    operation of its kind may give) are :class:`Problem` documents
    (``application/problem+json``) whose description and ``x-problem-codes`` list the
    codes, in place of FastAPI's default validation-error schema."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        described = generate()
        schemas = described.setdefault("components", {}).setdefault("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        schemas["Problem"] = Problem.model_json_schema()
        for path, item in described.get("paths", {}).items():
            for operation in item.values():
                _describe(path, operation)
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
