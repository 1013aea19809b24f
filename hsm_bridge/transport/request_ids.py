"""Request ids: one short token per HTTP request, carried from the gateway to the bridge
and back in the ``X-Request-ID`` header, and put on every log line written while the
request is served (:class:`RequestIdLogFilter`).

The id lives in :data:`asgi_correlation_id.correlation_id` (a context variable): the
ASGI middleware (:func:`install`) sets it from the caller's header when that is a short
safe token (:func:`is_safe`), else from a new random one, and returns it in the
response's header. FastAPI's thread pool copies the context, so the endpoint's thread
sees it, and :class:`~hsm_bridge.transport.remote.RemoteBridge` sends it on.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable

from asgi_correlation_id import CorrelationIdMiddleware, correlation_id
from starlette.applications import Starlette

__all__ = [
    "HEADER",
    "RequestIdLogFilter",
    "current",
    "install",
    "is_safe",
    "new_request_id",
    "outgoing",
]

HEADER = "X-Request-ID"
# letters, digits and . _ - ; 1 to 64 characters, starting with a letter or digit
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def is_safe(value: str) -> bool:
    """Whether a caller's ``value`` may be used as the request id: 1 to 64 ASCII
    letters, digits, ``.``, ``_`` or ``-`` (nothing a log line could be forged
    with)."""
    return _SAFE.fullmatch(value) is not None


def new_request_id() -> str:
    """A new random request id: 32 hexadecimal digits (a UUID4 without dashes)."""
    return uuid.uuid4().hex


def current() -> str | None:
    """The id of the request being served in this context, or None outside one."""
    return correlation_id.get()


def outgoing() -> dict[str, str]:
    """Headers that carry the current request id on a call to another service (empty
    outside a request)."""
    value = current()
    return {HEADER: value} if value else {}


def install(app: Starlette, validator: Callable[[str], bool] = is_safe) -> None:
    """Give ``app`` request ids: accept a caller's ``X-Request-ID`` that ``validator``
    accepts, else make one (:func:`new_request_id`); return it in the response. Add it
    last, so that it is the outermost middleware and every other one sees the id."""
    app.add_middleware(
        CorrelationIdMiddleware,
        header_name=HEADER,
        validator=validator,
        generator=new_request_id,
        transformer=None,
    )


class RequestIdLogFilter(logging.Filter):
    """Puts the current request id on each record as ``request_id`` (``-`` outside a
    request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keeps the record."""
        record.request_id = current() or "-"
        return True
