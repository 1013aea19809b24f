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
from dataclasses import dataclass

from sqlalchemy.orm import Session

from gateway.admin.organisations import organisation_credential
from gateway.audit import log as audit
from gateway.db.models import Organisation, SigningRequest
from gateway.errors import GatewayError
from gateway.integration import callbacks
from gateway.requests.document_store import DocumentStore
from gateway.requests.placement_policy import signature_place
from gateway.requests.states import RequestStatus
from gateway.requests.workflow_steps import STEPS
from hsm_bridge.pades import PadesLevel, SignatureParameters

__all__ = ["advance", "seal_step_parameters"]

log = logging.getLogger(__name__)


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
    if request.workflow is None or request.step >= STEPS.get(request.workflow, 1):
        return None
    organisation = session.get(Organisation, request.organisation_id)
    assert organisation is not None
    step_id = str(uuid.uuid4())
    signer, failure = _seal_signer(session, request, organisation)
    store.write(step_id, DocumentStore.ORIGINAL, signed)
    step = SigningRequest(
        id=step_id,
        client_id=request.client_id,
        signer_id=signer.signer_id,
        credential_id=signer.credential_id,
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
        parameters=signer.parameters.canonical_json(),
        parameters_sha256=signer.parameters.sha256(),
        certificate_sha256=signer.certificate_sha256,
        mechanism=signer.mechanism,
        idempotency_key=None,
        submission_sha256=hashlib.sha256(
            f"{request.id}\nstep {request.step + 1}".encode()
        ).hexdigest(),
        callback_url=request.callback_url,
        title=request.title,
        page_sizes=request.page_sizes,
        signature_place=signature_place(signer.parameters, _created_fields(request)),
        created_at=now,
        updated_at=now,
        expires_at=now + dt.timedelta(seconds=ttl_seconds),
    )
    session.add(step)
    _audit_step(session, request, step, organisation, failure, now=now)
    if failure is not None:
        log.warning("workflow %s cannot go on: %s", request.workflow_id, failure.code)
        callbacks.enqueue(session, step, now=now)
        return None
    return step


def _created_fields(
    request: SigningRequest,
) -> dict[str, tuple[int, tuple[float, float, float, float]]]:
    """The empty fields ``request``'s signature creates for the next step: name to page
    and box."""
    created = SignatureParameters.from_json(request.parameters).empty_fields
    return {field.name: (field.page, field.box) for field in created}


def seal_step_parameters(first: SignatureParameters, seal_image: bytes) -> SignatureParameters:
    """The seal's signature parameters after step 1 signed with ``first``: the field step
    1 named for it, the organisation's seal image (PNG bytes), step 1's location and
    PAdES level, raised to B-LTA when step 1 is long-term (B-LT): the seal closes the
    document, and its document timestamp keeps both signatures verifiable. ValueError
    when step 1 named no field for the seal."""
    if first.next_field_name is None:
        raise ValueError("step 1 of an official document names no field for the seal")
    return SignatureParameters(
        location=first.location,
        field_name=first.next_field_name,
        pades_level=(
            PadesLevel.B_LTA
            if first.pades_level in PadesLevel.WITH_VALIDATION_DATA
            else first.pades_level
        ),
        image_sha256=hashlib.sha256(seal_image).hexdigest(),
        seal=True,
    )


@dataclass(frozen=True, slots=True)
class _StepSigner:
    """Who signs the seal step, with which credential, and the step's parameters."""

    signer_id: str
    credential_id: str
    certificate_sha256: str
    mechanism: str
    parameters: SignatureParameters


def _seal_signer(
    session: Session, request: SigningRequest, organisation: Organisation
) -> tuple[_StepSigner, GatewayError | None]:
    """The keeper of ``organisation``'s credential and the seal field step 1 created, with
    the organisation's seal image; when the organisation can no longer sign (no
    credential, no seal) step 1's signer and credential, with the refusal."""
    first = SignatureParameters.from_json(request.parameters)
    if first.next_field_name is None:
        raise ValueError("step 1 of an official document names no field for the seal")
    try:
        credential, keeper = organisation_credential(
            session, organisation, need_seal=True, for_update=True
        )
    except GatewayError as exc:
        # nobody can sign it: recorded against step 1's signer and credential
        unsigned = SignatureParameters(
            location=first.location,
            field_name=first.next_field_name,
            pades_level=first.pades_level,
        )
        return _StepSigner(
            request.signer_id,
            request.credential_id,
            request.certificate_sha256,
            request.mechanism,
            unsigned,
        ), exc
    assert organisation.seal_image is not None
    params = seal_step_parameters(first, organisation.seal_image)
    return _StepSigner(
        keeper.id, credential.id, credential.certificate_sha256, credential.mechanism, params
    ), None


def _audit_step(
    session: Session,
    request: SigningRequest,
    step: SigningRequest,
    organisation: Organisation,
    failure: GatewayError | None,
    *,
    now: dt.datetime,
) -> None:
    audit.record(
        session,
        actor="system",
        action="request.step_created" if failure is None else "request.failed",
        now=now,
        request_id=step.id,
        detail={
            "workflow": request.workflow,
            "workflow_id": request.workflow_id,
            "step": step.step,
            "organisation": organisation.name,
            "document_sha256": step.document_sha256,
            **({"failure_code": failure.code} if failure else {}),
        },
    )
