"""Logging set-up with a redaction filter (docs/design.md invariant 4).

Secrets never reach a log line: the filter replaces bearer tokens, our API keys,
``password=``/``pin=``/``otp=``/``secret=`` values and otpauth URIs in the formatted
message, whatever logger produced it (ours, uvicorn's, a library's).
"""

from __future__ import annotations

import logging
import re

__all__ = ["RedactingFilter", "configure_logging"]

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


def configure_logging(level: str = "INFO") -> None:
    """Root logging to stderr with the redaction filter on the handler, quieting
    libraries that log stack traces for expected conditions (pyHanko's validation of
    foreign signatures, fontTools' subsetter)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
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
