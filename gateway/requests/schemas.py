"""JSON shapes shared by the integration and mobile APIs."""

from __future__ import annotations

import datetime as dt
import json

from cryptography import x509
from cryptography.x509.oid import NameOID
from pydantic import BaseModel
from sqlalchemy.orm import Session

from gateway.db.models import Credential, Organisation, SigningRequest
from gateway.requests.workflow_steps import step_summary, steps_of, workflow_status

__all__ = [
    "CertificateView",
    "SignerRequestView",
    "SigningRequestView",
    "WorkflowStepView",
    "WorkflowView",
    "workflow_view",
]


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
    title: str | None = None
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
    # once signed, the PAdES level the signature reached (``parameters.pades_level`` is
    # the one asked for), as the gateway's own offline validation judged it
    pades_level_reached: str | None = None
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
            title=request.title,
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
            pades_level_reached=request.pades_level_reached,
            created_at=request.created_at,
            updated_at=request.updated_at,
            expires_at=request.expires_at,
        )


class CertificateView(BaseModel):
    """Who the signature will name, as the certificate says it (subject CN, title,
    organisation), who issued it, and until when it is valid."""

    holder: str
    title: str | None = None
    organisation: str | None = None
    issuer: str
    not_after: dt.datetime

    @classmethod
    def of(cls, certificate_der: bytes) -> CertificateView:
        """Read from a certificate (DER)."""
        certificate = x509.load_der_x509_certificate(certificate_der)

        def first(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
            found = name.get_attributes_for_oid(oid)
            return str(found[0].value) if found else None

        subject, issuer = certificate.subject, certificate.issuer
        return cls(
            holder=first(subject, NameOID.COMMON_NAME) or subject.rfc4514_string(),
            title=first(subject, NameOID.TITLE),
            organisation=first(subject, NameOID.ORGANIZATION_NAME),
            issuer=first(issuer, NameOID.COMMON_NAME) or issuer.rfc4514_string(),
            not_after=certificate.not_valid_after_utc,
        )


class SignaturePlace(BaseModel):
    """Where a signature shows: ``page`` (1-based) and ``box`` (x1, y1, x2, y2 in points
    from the bottom-left corner of the page as displayed)."""

    page: int
    box: tuple[float, float, float, float]

    @classmethod
    def of(cls, stored: str | None) -> SignaturePlace | None:
        """From the stored JSON ``[page, [x1, y1, x2, y2]]``; None for none."""
        if stored is None:
            return None
        page, box = json.loads(stored)
        return cls(page=page, box=tuple(box))


class SignerRequestView(SigningRequestView):
    """A request as the signer's app shows it: besides what the document system sees,
    who sent it (the integration client's name), what this step is (``sign``: the
    signer's own signature; ``leader``: a leader's in an official document; ``seal``:
    the organisation's seal), each page's size as displayed (points: width, height),
    where the signature will show (``signature_place``; null when invisible),
    the certificate that will sign, and whether the token's PIN must be typed
    (``pin_policy`` ``signer``)."""

    sender: str
    step_kind: str
    page_sizes: list[tuple[float, float]]
    signature_place: SignaturePlace | None
    certificate: CertificateView
    pin_policy: str

    @classmethod
    def of_signer(
        cls,
        request: SigningRequest,
        *,
        sender: str,
        credential: Credential,
        workflow: WorkflowView | None,
    ) -> SignerRequestView:
        """Build the signer's view of a stored request."""
        base = SigningRequestView.of(request, workflow).model_dump()
        kind = "sign"
        if request.workflow is not None:
            kind = "seal" if credential.organisation_id is not None else "leader"
        return cls(
            **base,
            sender=sender,
            step_kind=kind,
            page_sizes=[tuple(size) for size in json.loads(request.page_sizes or "[]")],
            signature_place=SignaturePlace.of(request.signature_place),
            certificate=CertificateView.of(credential.certificate_der),
            pin_policy=credential.pin_policy,
        )


def workflow_view(session: Session, request: SigningRequest) -> WorkflowView | None:
    """The workflow ``request`` is a step of, in ``session``; None outside workflows."""
    if request.workflow is None or request.workflow_id is None:
        return None
    steps = steps_of(session, request)
    organisation = (
        session.get(Organisation, request.organisation_id) if request.organisation_id else None
    )
    return WorkflowView(
        name=request.workflow,
        id=request.workflow_id,
        organisation=organisation.name if organisation is not None else None,
        status=workflow_status(request.workflow, steps),
        steps=[WorkflowStepView.model_validate(step_summary(step)) for step in steps],
    )
