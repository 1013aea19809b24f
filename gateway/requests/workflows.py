"""Workflows: signing requests that follow one another on one document
(docs/vn-signature-format.md, "Two signatures on an outgoing document").

``official_document``: step 1, the leader signs with a personal certificate; its update
also creates the organisation's seal field, empty, so that step 2 only fills it (a later
signature adds nothing that the first one's modification policy would forbid). A
document that has both fields already (a template with the leader's and the seal's)
is signed into them. Once
step 1 is signed, step 2 is created in the same transaction, on step 1's output, for the
clerk who keeps the organisation's token; the clerk is notified like any signer. A step
that is rejected, expires, is cancelled or fails ends the workflow.

``organisation_only``: attachments, appendices and copies in separate files, one step
signed by the organisation alone, with a text line at the top right of page 1.

Each step is an ordinary signing request (approved, authorised by the bridge and signed
the same way); ``workflow_id`` is the first step's id.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.admin.organisations import organisation_credential
from gateway.audit import log as audit
from gateway.db.models import Organisation, SigningRequest
from gateway.errors import GatewayError
from gateway.integration import callbacks
from gateway.requests.document_store import DocumentStore
from gateway.requests.lifecycle import RequestStatus
from hsm_bridge.pades import SignatureParameters

__all__ = [
    "OFFICIAL_DOCUMENT",
    "ORGANISATION_ONLY",
    "WORKFLOWS",
    "advance",
    "step_summary",
    "steps_of",
    "workflow_status",
]

log = logging.getLogger(__name__)

OFFICIAL_DOCUMENT = "official_document"
ORGANISATION_ONLY = "organisation_only"
WORKFLOWS = (OFFICIAL_DOCUMENT, ORGANISATION_ONLY)
# how many steps each workflow has
_STEPS = {OFFICIAL_DOCUMENT: 2, ORGANISATION_ONLY: 1}


def advance(
    session: Session,
    request: SigningRequest,
    signed: bytes,
    store: DocumentStore,
    *,
    ttl_seconds: int,
    now: dt.datetime,
) -> SigningRequest | None:
    """After ``request`` became ``signed`` (in ``session``'s transaction): the next step
    of its workflow, on ``signed`` (the step's output, PDF bytes), stored and added to
    the session; None when there is none. The step is addressed to the clerk who keeps
    the organisation's credential and fills the seal field step 1 created, with the
    organisation's seal image. When the organisation can no longer sign (no credential,
    no seal) the step is recorded ``failed`` with the refusal's code, so that the
    document system learns why the workflow ended."""
    if request.workflow is None or request.step >= _STEPS.get(request.workflow, 1):
        return None
    first = SignatureParameters.from_json(request.parameters)
    if first.next_field_name is None:
        raise ValueError("step 1 of an official document names no field for the seal")
    organisation = session.get(Organisation, request.organisation_id)
    assert organisation is not None
    step_id = str(uuid.uuid4())
    params = SignatureParameters(
        location=first.location,
        field_name=first.next_field_name,
        pades_level=first.pades_level,
    )
    failure: GatewayError | None = None
    try:
        credential, keeper = organisation_credential(
            session, organisation, need_seal=True, for_update=True
        )
        assert organisation.seal_image is not None
        params = SignatureParameters(
            location=params.location,
            field_name=params.field_name,
            pades_level=params.pades_level,
            image_sha256=hashlib.sha256(organisation.seal_image).hexdigest(),
            seal=True,
        )
        signer_id, credential_id = keeper.id, credential.id
        certificate_sha256, mechanism = credential.certificate_sha256, credential.mechanism
    except GatewayError as exc:
        failure = exc
        # nobody can sign it: recorded against step 1's signer and credential
        signer_id, credential_id = request.signer_id, request.credential_id
        certificate_sha256, mechanism = request.certificate_sha256, request.mechanism
    store.write(step_id, DocumentStore.ORIGINAL, signed)
    step = SigningRequest(
        id=step_id,
        client_id=request.client_id,
        signer_id=signer_id,
        credential_id=credential_id,
        organisation_id=request.organisation_id,
        workflow=request.workflow,
        workflow_id=request.workflow_id,
        step=request.step + 1,
        status=(RequestStatus.FAILED if failure else RequestStatus.PENDING_APPROVAL).value,
        failure_code=failure.code if failure else None,
        document_sha256=hashlib.sha256(signed).hexdigest(),
        document_size=len(signed),
        page_count=request.page_count,
        warnings="[]",
        parameters=params.canonical_json(),
        parameters_sha256=params.sha256(),
        certificate_sha256=certificate_sha256,
        mechanism=mechanism,
        idempotency_key=None,
        submission_sha256=hashlib.sha256(
            f"{request.id}\nstep {request.step + 1}".encode()
        ).hexdigest(),
        callback_url=request.callback_url,
        created_at=now,
        updated_at=now,
        expires_at=now + dt.timedelta(seconds=ttl_seconds),
    )
    session.add(step)
    audit.record(
        session,
        actor="system",
        action="request.step_created" if failure is None else "request.failed",
        now=now,
        request_id=step_id,
        detail={
            "workflow": request.workflow,
            "workflow_id": request.workflow_id,
            "step": step.step,
            "organisation": organisation.name,
            "document_sha256": step.document_sha256,
            **({"failure_code": failure.code} if failure else {}),
        },
    )
    if failure is not None:
        log.warning("workflow %s cannot go on: %s", request.workflow_id, failure.code)
        callbacks.enqueue(session, step, now=now)
        return None
    return step


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
    if len(steps) == _STEPS.get(workflow, 1) and steps[-1].status == RequestStatus.SIGNED:
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
