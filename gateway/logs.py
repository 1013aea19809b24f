"""Logging set-up with a redaction filter (docs/design.md invariant 4).

Secrets never reach a log line: the filter replaces bearer tokens, our API keys,
``password=``/``pin=``/``otp=``/``secret=`` values and otpauth URIs in the formatted
message, whatever logger produced it (ours, uvicorn's, a library's).

Two formats: ``text`` (the default, for people) and ``json`` (one JSON object a line,
for a log collector: ``time``, ``level``, ``logger``, ``message``, ``request_id`` and,
for an error, ``exc_info``; nothing else a library may attach to a record). Both carry
the request id of the HTTP request being served (``-`` outside one).
"""

from __future__ import annotations

import logging
import re
from typing import Any, Literal

from pythonjsonlogger.json import JsonFormatter

from hsm_bridge.transport.request_ids import RequestIdLogFilter

__all__ = ["LogFormat", "RedactingFilter", "RedactedJsonFormatter", "configure_logging", "redact"]

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"

_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"sgw_[A-Za-z0-9_-]{8,}"),
    re.compile(
        r"(?i)\b(password|passwd|pin|so[_-]?pin|otp|secret|totp_secret|api[_-]?key|"
        r"access_token|token)(\s*[=:]\s*)(\"?)[^\s\"',;&]+"
    ),
    re.compile(r"otpauth://\S+"),
]


def redact(text: str) -> str:
    """``text`` with every secret-looking value replaced by ``***``."""
    text = _PATTERNS[0].sub(r"\1***", text)
    text = _PATTERNS[1].sub("sgw_***", text)
    text = _PATTERNS[2].sub(r"\1\2\3***", text)
    return _PATTERNS[3].sub("otpauth://***", text)


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (after %-formatting) through :func:`redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keeps the record; only its text changes."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class RedactedJsonFormatter(JsonFormatter):
    """One JSON object a line with only the fields named in the module's docstring; a
    traceback is redacted as the message is (:func:`redact`)."""

    FIELDS = ("asctime", "levelname", "name", "message", "request_id")
    _KEPT = frozenset({"time", "level", "logger", "message", "request_id", "exc_info"})

    def __init__(self) -> None:
        super().__init__(
            list(self.FIELDS),
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            json_ensure_ascii=False,
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        """The fixed fields only: extras a library puts on a record (uvicorn's
        ``color_message``, say) are left out, being unredacted."""
        super().add_fields(log_data, record, message_dict)
        for key in [k for k in log_data if k not in self._KEPT]:
            del log_data[key]

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        """The traceback, redacted."""
        return redact(str(super().formatException(ei)))


def configure_logging(level: str = "INFO", log_format: LogFormat = "text") -> None:
    """Root logging to stderr in ``log_format`` with the request id and the redaction
    filter on the handler, quieting libraries that log stack traces for expected
    conditions (pyHanko's validation of foreign signatures, fontTools' subsetter)."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(RedactedJsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RequestIdLogFilter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("pyhanko.sign.validation", "pyhanko_certvalidator", "fontTools"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
