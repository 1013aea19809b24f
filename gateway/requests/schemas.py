"""JSON shapes shared by the integration and mobile APIs."""

from __future__ import annotations

import datetime as dt
import json

from pydantic import BaseModel

from gateway.db.models import SigningRequest

__all__ = ["SigningRequestView", "WorkflowStepView", "WorkflowView"]


class WorkflowStepView(BaseModel):
    """One step of a workflow: who signs it (``leader`` or ``organisation``), its
    request's id and status; once signed, the hash of its output."""

    step: int
    request_id: str
    signed_by: str
    status: str
    failure_code: str | None = None
    signed_document_sha256: str | None = None


class WorkflowView(BaseModel):
    """The workflow a request is a step of: its name, id (the first step's request id),
    organisation (short name), overall ``status`` (``pending`` until its last step is
    signed, or the final status of the step that ended it) and its steps so far. The
    finished document is the last step's signed document."""

    name: str
    id: str
    organisation: str | None = None
    status: str
    steps: list[WorkflowStepView]


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
    # the workflow step this request is (1 outside workflows) and, for the document
    # system, its workflow
    step: int = 1
    workflow: WorkflowView | None = None
    created_at: dt.datetime
    updated_at: dt.datetime
    expires_at: dt.datetime

    @classmethod
    def of(
        cls, request: SigningRequest, workflow: WorkflowView | None = None
    ) -> SigningRequestView:
        """Build the view of a stored request (with its ``workflow``, when given)."""
        return cls(
            step=request.step,
            workflow=workflow,
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
