"""The roots of the gateway's error tree: :class:`GatewayError` and one base class per
family of refusal."""

from __future__ import annotations

from typing import Any

__all__ = [
    "AccessRefused",
    "CertificateRefused",
    "DocumentRefused",
    "FactorRefused",
    "GatewayError",
    "RequestStateError",
    "SubmissionRefused",
]


class GatewayError(Exception):
    """Base of the gateway's errors. Each class sets a stable machine-readable ``code``,
    an HTTP ``status``, a human ``title`` and whether the same call may succeed later
    unchanged (``retryable``); an instance carries a ``detail`` message and ``extra``
    members for the problem. :func:`gateway.problems.install_error_handlers` turns them
    into RFC 9457 problems, dispatched by class."""

    code = "internal_error"
    status = 500
    title = "Internal error"
    retryable = False

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra


class AccessRefused(GatewayError):
    """Who the caller is, or what they may see, does not allow the call."""


class DocumentRefused(GatewayError):
    """Intake refused the document before anything was stored or anyone notified."""


class SubmissionRefused(GatewayError):
    """A submission or decision is refused for what it asks, not for the document."""


class RequestStateError(GatewayError):
    """The request is not in a state that allows the call."""


class FactorRefused(GatewayError):
    """A signer's second factor, or an enrolment of one, does not hold."""


class CertificateRefused(GatewayError):
    """The signer's certificate cannot sign now (DESIGN.md invariant 6)."""
