"""The steps of a workflow as the document system sees them: which workflows exist, how
many steps each has, the steps of one so far and where the whole stands. Read by the
callbacks and the integration API; :mod:`gateway.requests.workflows` creates the steps."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.db.models import SigningRequest
from gateway.requests.states import RequestStatus

__all__ = [
    "OFFICIAL_DOCUMENT",
    "ORGANISATION_ONLY",
    "STEPS",
    "WORKFLOWS",
    "step_summary",
    "steps_of",
    "workflow_status",
]

OFFICIAL_DOCUMENT = "official_document"
ORGANISATION_ONLY = "organisation_only"
WORKFLOWS = (OFFICIAL_DOCUMENT, ORGANISATION_ONLY)
# how many steps each workflow has
STEPS = {OFFICIAL_DOCUMENT: 2, ORGANISATION_ONLY: 1}


def steps_of(session: Session, request: SigningRequest) -> list[SigningRequest]:
    """The steps of ``request``'s workflow so far, in order (``[request]`` alone when it
    belongs to none)."""
    if request.workflow_id is None:
        return [request]
    return list(
        session.scalars(
            select(SigningRequest)
            .where(SigningRequest.workflow_id == request.workflow_id)
            .order_by(SigningRequest.step)
        )
    )


def workflow_status(workflow: str, steps: list[SigningRequest]) -> str:
    """Where the whole workflow stands: the final status of the step that ended it
    (``rejected``, ``expired``, ``cancelled``, ``failed``), ``signed`` once its last
    step is signed, else ``pending``."""
    for step in steps:
        if step.status in (
            RequestStatus.REJECTED,
            RequestStatus.EXPIRED,
            RequestStatus.CANCELLED,
            RequestStatus.FAILED,
        ):
            return step.status
    if len(steps) == STEPS.get(workflow, 1) and steps[-1].status == RequestStatus.SIGNED:
        return RequestStatus.SIGNED.value
    return "pending"


def step_summary(step: SigningRequest) -> dict[str, object]:
    """One step as the document system sees it: its number, request id, who signs
    (``leader`` or ``organisation``), status, failure code and signed output's hash."""
    return {
        "step": step.step,
        "request_id": step.id,
        "signed_by": "leader"
        if step.workflow == OFFICIAL_DOCUMENT and step.step == 1
        else "organisation",
        "status": step.status,
        "failure_code": step.failure_code,
        "signed_document_sha256": step.signed_document_sha256,
    }
