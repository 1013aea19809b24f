"""The document system's side of a signing request: submission (intake checks before
anyone is notified, Idempotency-Key replays), status, the signed document, and
cancellation. Only the client that submitted a request sees it."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from PIL import Image
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.admin.organisations import (
    image_rect,
    organisation_credential,
    organisation_named,
    seal_box,
)
from gateway.audit import log as audit
from gateway.config import Settings
from gateway.db.database import Database
from gateway.db.models import Credential, IntegrationClient, Organisation, SigningRequest, User
from gateway.errors import (
    DocumentCertifiedFieldRequired,
    DocumentCertifiedNoEmptyField,
    DocumentLocked,
    IdempotencyConflict,
    ParameterInvalid,
    RequestExpired,
    RequestNotSigned,
    SignerNoCredential,
    SignerNotLeader,
    SignerUnknown,
)
from gateway.integration.callbacks import check_callback_url
from gateway.requests.access import expire_if_due, load_owned, utcnow
from gateway.requests.document_store import DocumentStore
from gateway.requests.intake import DocumentReport, inspect_pdf
from gateway.requests.lifecycle import RequestStatus, transition
from gateway.requests.placement import signer_block_box, top_right_box
from gateway.requests.schemas import WorkflowStepView, WorkflowView
from gateway.requests.workflows import (
    OFFICIAL_DOCUMENT,
    ORGANISATION_ONLY,
    WORKFLOWS,
    step_summary,
    steps_of,
    workflow_status,
)
from hsm_bridge.pades import IMAGE_MARGIN, EmptyField, PadesLevel, SignatureParameters
from hsm_bridge.pades.fonts import missing_glyphs

__all__ = ["MIN_BOX_POINTS", "Notifier", "Submission", "Submissions", "WorkflowOrder"]

# The smallest visible signature box (points each way): a signature's appearance needs
# room, and a box a reader cannot see is not a visible signature.
MIN_BOX_POINTS = 12.0


class Notifier(Protocol):
    """Told after commit that a signer has a new request (push delivery lives in
    ``mobile_api``; the composition root wires it in). Must never raise."""

    def signing_request_created(self, signer_id: str, request_id: str) -> None:
        """Notify ``signer_id``'s devices about ``request_id``."""


@dataclass(frozen=True, slots=True)
class Submission:
    """The outcome of :meth:`SigningService.submit`: the request, and whether this call
    created it (False when an Idempotency-Key replay returned an earlier one)."""

    request: SigningRequest
    created: bool


class Submissions:
    """Use cases of the integration API. ``clock`` returns aware UTC now; ``notifiers``
    are told (after commit) of each new request."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        store: DocumentStore,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.db = db
        self.store = store
        self.clock = clock
        self.notifiers: list[Notifier] = []

    def submit(
        self,
        client: IntegrationClient,
        document: bytes,
        signer_username: str | None,
        params: SignatureParameters,
        *,
        idempotency_key: str | None,
        client_address: str | None,
        callback_url: str | None = None,
        placement: str | None = None,
        workflow: WorkflowOrder | None = None,
    ) -> Submission:
        """Check and store a document for ``signer_username`` to sign; notify them.
        ``callback_url``: where to POST the final status (:mod:`gateway.integration.callbacks`); the
        client needs a callback secret. ``placement="auto"``: a visible signature in the
        signer block of the last page (:mod:`gateway.requests.placement`), decided now so that the
        signer approves it. ``workflow``: the request is the first step of an
        ``official_document`` (the leader ``signer_username`` signs visibly, then the
        organisation's clerk seals) or the one step of an ``organisation_only``
        signature (no ``signer_username``: the organisation's clerk signs, at the top
        right of page 1); see :mod:`gateway.requests.workflows`.

        Raises the intake errors, SignerUnknown, SignerNoCredential, ParameterInvalid,
        OrganisationUnknown, OrganisationNoCredential, OrganisationNoSeal,
        IdempotencyConflict (same key, other body)."""
        _check_workflow_order(workflow, signer_username, params, placement)
        if callback_url is not None:
            try:
                callback_url = check_callback_url(callback_url)
            except ValueError as exc:
                raise ParameterInvalid(str(exc)) from exc
            if client.callback_secret is None:
                raise ParameterInvalid("this client has no callback secret to sign callbacks")
        now = self.clock()
        document_sha256 = hashlib.sha256(document).hexdigest()
        submission_sha256 = hashlib.sha256(
            f"{document_sha256}\n{signer_username}\n{params.canonical_json()}\n{placement}"
            f"\n{workflow}".encode()
        ).hexdigest()
        if idempotency_key is not None:
            earlier = self._idempotent_replay(client, idempotency_key, submission_sha256)
            if earlier is not None:
                return Submission(earlier, created=False)
        report = inspect_pdf(document, max_bytes=self.settings.max_document_bytes)
        if params.pades_level not in PadesLevel.ALL:
            raise ParameterInvalid(f"pades_level must be one of {', '.join(PadesLevel.ALL)}")
        if params.pades_level == PadesLevel.B_T and not self.settings.tsa_url:
            raise ParameterInvalid("B-T needs a TSA; none is configured (GATEWAY_TSA_URL)")
        if params.field_name is not None and params.field_name in report.signature_fields:
            raise ParameterInvalid(f"the field {params.field_name!r} is already signed")
        if params.page is not None and not 1 <= params.page <= report.page_count:
            raise ParameterInvalid(f"page must be between 1 and {report.page_count}")
        if params.page is not None and params.box is not None:
            _check_box(params.page, params.box, report, "the box")
        params = _placement(params, report)
        if placement == "auto" and (
            params.page is not None or params.box is not None or params.field_name is not None
        ):
            raise ParameterInvalid("placement=auto decides the page and box: give neither")
        request_id = str(uuid.uuid4())
        self.store.write(request_id, DocumentStore.ORIGINAL, document)
        try:
            with self.db.transaction() as session:
                organisation: Organisation | None = None
                if workflow is not None and workflow.name == ORGANISATION_ONLY:
                    organisation = _organisation(session, workflow, None)
                    credential, signer = organisation_credential(
                        session, organisation, need_seal=False
                    )
                    params = _attachment_line(params, workflow, organisation, report)
                else:
                    signer, credential = _personal(session, signer_username)
                if placement == "auto":
                    params = _signer_block(params, document, report, signer)
                if (
                    organisation is None
                    and signer.signature_image is not None
                    and (params.box is not None or params.field_name is not None)
                ):
                    # a visible signature shows the signer's image: they approve it too
                    params = replace(
                        params,
                        image_sha256=hashlib.sha256(signer.signature_image).hexdigest(),
                        text_with_image=self.settings.signature_text_with_image,
                    )
                if workflow is not None and workflow.name == OFFICIAL_DOCUMENT:
                    organisation = _organisation(session, workflow, signer)
                    if signer.role != "leader" or signer.organisation_id != organisation.id:
                        raise SignerNotLeader(
                            f"{signer.username!r} is not a leader of {organisation.name!r}"
                        )
                    if params.field_name is not None:
                        _check_workflow_field(params.field_name, report, "the leader")
                    if workflow.seal_field_name is not None:
                        _check_workflow_field(workflow.seal_field_name, report, "the seal")
                    params = (
                        _seal_field(params, report, signer, organisation)
                        if workflow.seal_field_name is None
                        else _existing_seal_field(params, report, workflow.seal_field_name)
                    )
                _check_final_placement(params, report)
                request = SigningRequest(
                    id=request_id,
                    client_id=client.id,
                    signer_id=signer.id,
                    credential_id=credential.id,
                    organisation_id=organisation.id if organisation is not None else None,
                    workflow=workflow.name if workflow is not None else None,
                    workflow_id=request_id if workflow is not None else None,
                    step=1,
                    status=RequestStatus.PENDING_APPROVAL.value,
                    document_sha256=document_sha256,
                    document_size=len(document),
                    page_count=report.page_count,
                    warnings=json.dumps(report.warnings),
                    parameters=params.canonical_json(),
                    parameters_sha256=params.sha256(),
                    certificate_sha256=credential.certificate_sha256,
                    mechanism=credential.mechanism,
                    idempotency_key=idempotency_key,
                    submission_sha256=submission_sha256,
                    callback_url=callback_url,
                    created_at=now,
                    updated_at=now,
                    expires_at=now + dt.timedelta(seconds=self.settings.request_ttl_seconds),
                )
                session.add(request)
                audit.record(
                    session,
                    actor=f"client:{client.name}",
                    action="request.submitted",
                    now=now,
                    request_id=request_id,
                    client_address=client_address,
                    detail={
                        "document_sha256": document_sha256,
                        "signer": signer.username,
                        "warnings": report.warnings,
                        **(
                            {"workflow": workflow.name, "organisation": organisation.name}
                            if workflow is not None and organisation is not None
                            else {}
                        ),
                    },
                )
        except IntegrityError as exc:
            # a concurrent submission with the same Idempotency-Key committed first
            self.store.discard(request_id)
            if idempotency_key is None:
                raise
            earlier = self._idempotent_replay(client, idempotency_key, submission_sha256)
            if earlier is None:
                raise IdempotencyConflict("the Idempotency-Key is being used") from exc
            return Submission(earlier, created=False)
        except BaseException:
            self.store.discard(request_id)
            raise
        for notifier in self.notifiers:
            notifier.signing_request_created(request.signer_id, request.id)
        return Submission(request, created=True)

    def _idempotent_replay(
        self, client: IntegrationClient, key: str, submission_sha256: str
    ) -> SigningRequest | None:
        with self.db.transaction() as session:
            earlier = session.scalar(
                select(SigningRequest).where(
                    SigningRequest.client_id == client.id,
                    SigningRequest.idempotency_key == key,
                )
            )
        if earlier is None:
            return None
        if earlier.submission_sha256 != submission_sha256:
            raise IdempotencyConflict("this Idempotency-Key was used with a different request")
        return earlier

    def get_for_client(self, client: IntegrationClient, request_id: str) -> SigningRequest:
        """The request if ``client`` submitted it (else NotFound); expires it if due."""
        with self.db.transaction() as session:
            request = load_owned(session, request_id, client_id=client.id)
            expire_if_due(session, request, now=self.clock())
            return request

    def workflow_view(self, request: SigningRequest) -> WorkflowView | None:
        """The workflow ``request`` is a step of, as the document system sees it; None
        outside workflows."""
        if request.workflow is None or request.workflow_id is None:
            return None
        with self.db.transaction() as session:
            steps = steps_of(session, request)
            organisation = (
                session.get(Organisation, request.organisation_id)
                if request.organisation_id
                else None
            )
            return WorkflowView(
                name=request.workflow,
                id=request.workflow_id,
                organisation=organisation.name if organisation is not None else None,
                status=workflow_status(request.workflow, steps),
                steps=[WorkflowStepView(**step_summary(step)) for step in steps],  # type: ignore[arg-type]
            )

    def signed_document_for_client(self, client: IntegrationClient, request_id: str) -> bytes:
        """The signed PDF bytes; RequestNotSigned (409) while not signed."""
        request = self.get_for_client(client, request_id)
        if request.status != RequestStatus.SIGNED:
            raise RequestNotSigned(f"the request is {request.status}")
        return self.store.read_signed(request_id)

    def cancel(
        self, client: IntegrationClient, request_id: str, *, client_address: str | None
    ) -> SigningRequest:
        """Cancel a pending request of ``client``; RequestNotPending otherwise."""
        now = self.clock()
        with self.db.transaction() as session:
            request = load_owned(session, request_id, client_id=client.id, for_update=True)
            expired = expire_if_due(session, request, now=self.clock())
            if not expired:
                transition(
                    session,
                    request,
                    RequestStatus.CANCELLED,
                    actor=f"client:{client.name}",
                    now=now,
                    client_address=client_address,
                )
        if expired:
            raise RequestExpired("the request expired before it was cancelled")
        return request


def _placement(params: SignatureParameters, report: DocumentReport) -> SignatureParameters:
    """Where the signature goes, decided before anyone approves it: into an existing
    empty field when one is named (its box is the document's: no page or box then).

    On a document certified with P=2 (ISO 32000-1 §12.8.2.2: form filling and signing
    only) a signature goes into an existing empty field: the one there is, or the one
    named. Only when the author left no empty field may a new one be made, and then
    invisible (a new widget on a page is the change a strict reader refuses; a new
    invisible signature is what pyHanko's difference analysis and poppler accept, as
    on the certified government documents of ../shared/corpus). Raises
    ParameterInvalid, DocumentCertifiedFieldRequired, DocumentCertifiedNoEmptyField."""
    existing = params.field_name is not None and params.field_name in report.empty_signature_fields
    if existing and (params.page is not None or params.box is not None):
        raise ParameterInvalid(
            f"the field {params.field_name!r} exists: its place is the document's (no page/box)"
        )
    if report.certification != "fill_forms" or existing:
        return params
    empty = report.empty_signature_fields
    if not empty:
        if params.box is not None:
            raise DocumentCertifiedNoEmptyField(
                "the document is certified for form filling and signing only and has no"
                " empty signature field: only an invisible signature can be added"
            )
        return params
    if params.field_name is None and params.box is None and len(empty) == 1:
        return replace(params, field_name=empty[0])
    raise DocumentCertifiedFieldRequired(
        "sign into one of the empty signature fields: " + ", ".join(repr(n) for n in empty)
    )


def _signer_block(
    params: SignatureParameters, document: bytes, report: DocumentReport, signer: User
) -> SignatureParameters:
    """``params`` with the page and box of ``signer``'s block on the last page, the box
    shaped like their signature image (or 3:1 without one), as the page is displayed.
    Raises SignerBlockNotFound."""
    aspect = 3.0
    if signer.signature_image is not None:
        with Image.open(io.BytesIO(signer.signature_image)) as image:
            aspect = image.width / image.height
    page, found = signer_block_box(document, report.page_count, signer.display_name, aspect=aspect)
    cx1, cy1 = report.page_origins[page - 1]
    width, height = report.page_sizes[page - 1]
    x1, y1, x2, y2 = found[0] - cx1, found[1] - cy1, found[2] - cx1, found[3] - cy1
    box = (max(x1, 0.0), max(y1, 0.0), min(x2, width), min(y2, height))
    return replace(params, page=page, box=box)


@dataclass(frozen=True, slots=True)
class WorkflowOrder:
    """What the document system asked of a workflow (:mod:`gateway.requests.workflows`): its
    ``name``; the ``organisation`` (short name) that seals (for an official document,
    the leader's own by default); for ``organisation_only``, the attachment's
    ``document_number`` (number and symbol, e.g. "15/QĐ-STC") or the ``copy_type`` of a
    copy (e.g. "Sao y"); for an official document whose leader signs into an existing
    empty field, the existing empty field for the seal (``seal_field_name``)."""

    name: str
    organisation: str | None = None
    document_number: str | None = None
    copy_type: str | None = None
    seal_field_name: str | None = None


def _check_workflow_order(
    workflow: WorkflowOrder | None,
    signer_username: str | None,
    params: SignatureParameters,
    placement: str | None,
) -> None:
    """Refuse combinations that cannot be meant (ParameterInvalid), before any work."""
    if workflow is None:
        if not signer_username:
            raise ParameterInvalid("name the signer")
        return
    if workflow.name not in WORKFLOWS:
        raise ParameterInvalid(f"workflow must be one of {', '.join(WORKFLOWS)}")
    if workflow.name == ORGANISATION_ONLY:
        if workflow.seal_field_name:
            raise ParameterInvalid("seal_field_name is for official_document")
        if signer_username:
            raise ParameterInvalid(
                "organisation_only is signed by the organisation's clerk: name the"
                " organisation, not a signer"
            )
        if not workflow.organisation:
            raise ParameterInvalid("organisation_only needs the organisation")
        if placement or params.page or params.box or params.field_name:
            raise ParameterInvalid(
                "organisation_only signs at the top right of page 1: give no placement"
            )
        if bool(workflow.document_number) == bool(workflow.copy_type):
            raise ParameterInvalid(
                "give document_number (an attachment or appendix) or copy_type (a copy)"
            )
        for text in (workflow.document_number, workflow.copy_type):
            if text is not None and (not text.strip() or not text.isprintable()):
                raise ParameterInvalid(
                    "document_number and copy_type are one line of printable text"
                )
        return
    if not signer_username:
        raise ParameterInvalid("official_document needs the leader as signer")
    if workflow.document_number or workflow.copy_type:
        raise ParameterInvalid("document_number and copy_type are for organisation_only")
    if workflow.seal_field_name is not None and params.field_name is None:
        raise ParameterInvalid(
            "seal_field_name goes with the leader's empty field (field_name): name both"
            " fields of the document, or give the leader's place only and the seal is"
            " placed against it"
        )
    if params.field_name is not None and params.field_name == workflow.seal_field_name:
        raise ParameterInvalid("the leader and the seal need two different fields")
    if placement != "auto" and params.box is None and params.field_name is None:
        raise ParameterInvalid(
            "official_document needs the leader's visible signature: page and box,"
            " placement=auto, or an empty field (field_name)"
        )


def _personal(session: Session, username: str | None) -> tuple[User, Credential]:
    """The signer ``username`` and their newest active personal credential (never an
    organisation's). Raises SignerUnknown, SignerNoCredential."""
    signer = session.scalar(select(User).where(User.username == username))
    if signer is None:
        raise SignerUnknown(f"no signer named {username!r}")
    credential = session.scalar(
        select(Credential)
        .where(
            Credential.user_id == signer.id,
            Credential.organisation_id.is_(None),
            Credential.revoked_at.is_(None),
        )
        .order_by(Credential.created_at.desc())
    )
    if credential is None:
        raise SignerNoCredential(f"{username!r} has no active credential")
    return signer, credential


def _organisation(session: Session, workflow: WorkflowOrder, leader: User | None) -> Organisation:
    """The organisation the workflow names, else the leader's own; checked able to sign
    (an official document's also to seal) now, before anyone is notified."""
    if workflow.organisation:
        organisation = organisation_named(session, workflow.organisation)
    elif leader is not None and leader.organisation_id is not None:
        organisation = session.get(Organisation, leader.organisation_id)
        assert organisation is not None
    else:
        raise ParameterInvalid("the leader belongs to no organisation: name one (organisation)")
    organisation_credential(session, organisation, need_seal=workflow.name == OFFICIAL_DOCUMENT)
    return organisation


def _attachment_line(
    params: SignatureParameters,
    workflow: WorkflowOrder,
    organisation: Organisation,
    report: DocumentReport,
) -> SignatureParameters:
    """The organisation-only signature: its text (the attachment's number and symbol,
    or the copy's type and the copying organisation; the signing time is added when it
    is drawn) at the top right of page 1 as displayed."""
    lines = [
        unicodedata.normalize("NFC", line)
        for line in (
            [workflow.document_number.strip()]
            if workflow.document_number
            else [str(workflow.copy_type).strip(), organisation.display_name]
        )
    ]
    missing = missing_glyphs("".join(lines))
    if missing:
        # the reader would see the text without them: not what the clerk approved
        raise ParameterInvalid(
            "the appearance font cannot draw " + ", ".join(repr(c) for c in missing)
        )
    box = top_right_box(lines, report.page_sizes[0])
    return replace(params, page=1, box=box, stamp_text="\n".join(lines))


def _seal_field(
    params: SignatureParameters,
    report: DocumentReport,
    leader: User,
    organisation: Organisation,
) -> SignatureParameters:
    """``params`` of the leader's signature with the organisation's seal field added
    (created empty by the leader's update): at the seal's real size, over the left
    third of where the leader's image is drawn (in the approved box, or in the
    document's empty field the leader signs into). Raises ParameterInvalid."""
    assert organisation.seal_diameter_mm is not None
    if params.box is not None and params.page is not None:
        page, leader_box = params.page, params.box
    elif params.field_name in report.empty_field_places:
        page, leader_box = report.empty_field_places[params.field_name]
    else:
        raise ParameterInvalid(
            f"the field {params.field_name!r} shows on no page: the seal has nothing to overlap"
        )
    drawn = leader_box
    if leader.signature_image is not None:
        with Image.open(io.BytesIO(leader.signature_image)) as image:
            drawn = image_rect(leader_box, image.width / image.height, IMAGE_MARGIN)
    taken = set(report.field_names) | set(report.signature_fields)
    name = next(
        f"OrganisationSeal{n}" if n else "OrganisationSeal"
        for n in range(len(taken) + 1)
        if (f"OrganisationSeal{n}" if n else "OrganisationSeal") not in taken
    )
    box = seal_box(drawn, organisation.seal_diameter_mm, report.page_sizes[page - 1])
    return replace(params, empty_fields=(EmptyField(name, page, box),), next_field_name=name)


def _existing_seal_field(
    params: SignatureParameters, report: DocumentReport, seal_field_name: str
) -> SignatureParameters:
    """``params`` of the leader's signature into an existing empty field, naming the
    document's other empty field that the seal will fill (its place and size are the
    document author's)."""
    for name in (params.field_name, seal_field_name):
        if name not in report.empty_signature_fields:
            raise ParameterInvalid(f"the document has no empty signature field {name!r}")
    return replace(params, next_field_name=seal_field_name)


def _check_box(
    page: int, box: tuple[float, float, float, float], report: DocumentReport, what: str
) -> None:
    """``box`` (as page ``page`` is displayed) lies on that visible page and is at least
    :data:`MIN_BOX_POINTS` each way; ParameterInvalid names ``what`` otherwise."""
    width, height = report.page_sizes[page - 1]
    x1, y1, x2, y2 = box
    if abs(x2 - x1) < MIN_BOX_POINTS - 0.005 or abs(y2 - y1) < MIN_BOX_POINTS - 0.005:
        raise ParameterInvalid(f"{what} must be at least {MIN_BOX_POINTS:g} points wide and high")
    slack = 0.01  # derived boxes are rounded to hundredths of a point
    if (
        min(x1, x2) < -slack
        or min(y1, y2) < -slack
        or max(x1, x2) > width + slack
        or max(y1, y2) > height + slack
    ):
        raise ParameterInvalid(
            f"{what} must lie on the visible page {page}, {width:g} x {height:g} points as"
            " displayed"
        )


def _check_workflow_field(name: str, report: DocumentReport, whose: str) -> None:
    """A document's own empty field that a workflow step signs visibly: shown on a page
    (not hidden, on the visible page, at least :data:`MIN_BOX_POINTS` each way), with
    no field lock or seed values that would bind the signature beyond what was
    approved (a lock could make the next step break this one). Raises
    ParameterInvalid."""
    if name not in report.empty_signature_fields:
        raise ParameterInvalid(f"the document has no empty signature field {name!r}")
    if name not in report.empty_field_places or "hidden" in report.empty_field_flags.get(name, []):
        raise ParameterInvalid(f"the field {name!r} for {whose} shows on no page")
    page, box = report.empty_field_places[name]
    _check_box(page, box, report, f"the field {name!r} for {whose}")
    if "widgets" in report.empty_field_flags.get(name, []):
        raise ParameterInvalid(
            f"the field {name!r} for {whose} has several widgets: a signature goes into a"
            " field with exactly one"
        )
    carried = {"lock", "seed_value"} & set(report.empty_field_flags.get(name, []))
    if carried:
        raise ParameterInvalid(
            f"the field {name!r} for {whose} carries a "
            + " and ".join(sorted(c.replace("_", " ") for c in carried))
            + " (/Lock, /SV), which would bind its signature beyond what is approved"
        )


def _check_final_placement(params: SignatureParameters, report: DocumentReport) -> None:
    """Refuse, before anyone is notified, what the decided parameters cannot do: on a
    certified document (DocMDP P=2 or 3, or a field lock's /P) any new visible field,
    the signer's or an empty one for a later signer; filling a field an earlier
    signature's lock covers; a box (given, found or derived: the attachment's line, the
    seal's field) off its visible page or under :data:`MIN_BOX_POINTS`; a box for a
    field the document already has (its place is the document's). Raises
    ParameterInvalid, DocumentCertifiedFieldRequired, DocumentCertifiedNoEmptyField."""
    existing = params.field_name is not None and params.field_name in report.empty_signature_fields
    if report.certification is not None and (params.box is not None or params.empty_fields):
        # a new widget after a certification signature is a change its policy forbids
        # (pyHanko's difference analysis: not allowed after a certification signature)
        if not report.empty_signature_fields:
            raise DocumentCertifiedNoEmptyField(
                "the document is certified and has no empty signature field: no visible"
                " signature or new field can be added"
            )
        raise DocumentCertifiedFieldRequired(
            "the document is certified: sign into its empty signature fields ("
            + ", ".join(repr(n) for n in report.empty_signature_fields)
            + ") and add no new one"
        )
    if report.new_fields_locked and (not existing or params.empty_fields):
        raise DocumentLocked(
            "an earlier signature locks every form field but those it names: a new"
            " signature field would break it"
            + (
                "; sign into one of the empty fields it leaves open"
                if set(report.empty_signature_fields) - set(report.locked_fields)
                else ""
            )
        )
    if existing and "widgets" in report.empty_field_flags.get(str(params.field_name), []):
        raise ParameterInvalid(
            f"the field {params.field_name!r} has several widgets (or kid fields): a"
            " signature goes into a field with exactly one"
        )
    for name in (params.field_name, params.next_field_name):
        if name is not None and name in report.locked_fields:
            raise ParameterInvalid(
                f"the field {name!r} is locked by an earlier signature: filling it would"
                " break that signature"
            )
    if params.page is not None and params.box is not None:
        _check_box(params.page, params.box, report, "the signature's box")
    for empty in params.empty_fields:
        _check_box(empty.page, empty.box, report, f"the field {empty.name!r}")
    if existing and params.box is not None:
        raise ParameterInvalid(
            f"the field {params.field_name!r} exists: its place is the document's (no page/box)"
        )
