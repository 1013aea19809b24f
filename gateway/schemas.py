"""JSON shapes shared by the integration and mobile APIs."""

from __future__ import annotations

import datetime as dt
import json

from pydantic import BaseModel

from gateway.models import SigningRequest

__all__ = ["SigningRequestView"]


class SigningRequestView(BaseModel):
    """A signing request as the APIs show it. Hashes are lowercase hex SHA-256; times
    are ISO 8601 UTC."""

    id: str
    status: str
    failure_code: str | None = None
    document_sha256: str
    document_size: int
    page_count: int
    warnings: list[str]
    parameters: dict[str, object]
    # SHA-256 of the parameters as sorted-key compact UTF-8 JSON: what a device signs
    parameters_sha256: str
    # the certificate (SHA-256 of its DER) and mechanism that will sign: a device's
    # approval statement names them too
    certificate_sha256: str
    mechanism: str
    signed_document_sha256: str | None = None
    created_at: dt.datetime
    updated_at: dt.datetime
    expires_at: dt.datetime

    @classmethod
    def of(cls, request: SigningRequest) -> SigningRequestView:
        """Build the view of a stored request."""
        return cls(
            id=request.id,
            status=request.status,
            failure_code=request.failure_code,
            document_sha256=request.document_sha256,
            document_size=request.document_size,
            page_count=request.page_count,
            warnings=json.loads(request.warnings),
            parameters=json.loads(request.parameters),
            parameters_sha256=request.parameters_sha256,
            certificate_sha256=request.certificate_sha256,
            mechanism=request.mechanism,
            signed_document_sha256=request.signed_document_sha256,
            created_at=request.created_at,
            updated_at=request.updated_at,
            expires_at=request.expires_at,
        )
