"""The document system's side of a signing request: submission (intake checks before
anyone is notified, Idempotency-Key replays), status, the signed document, and
cancellation. Only the client that submitted a request sees it."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from dataclasses import dataclass, replace
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.audit import log as audit
from gateway.config import Settings
from gateway.db.database import Database
from gateway.db.models import Device, IntegrationClient, SigningRequest
from gateway.errors import (
    IdempotencyConflict,
    ParameterInvalid,
    RequestExpired,
    RequestNotSigned,
    SubmissionConflict,
)
from gateway.integration.destinations import DestinationPolicy, DestinationRefused
from gateway.requests.access import expire_if_due, load_owned
from gateway.requests.document_store import DocumentStore
from gateway.requests.intake import DocumentReport
from gateway.requests.lifecycle import RequestStatus, transition
from gateway.requests.placement import TextLine
from gateway.requests.placement_policy import (
    check_final_placement,
    requested_placement,
    signature_place,
    signer_block_placement,
)
from gateway.requests.sandbox import DocumentSandbox
from gateway.requests.schemas import WorkflowView, workflow_view
from gateway.requests.signable import signature_steps
from gateway.requests.workflow_rules import (
    SignerChoice,
    WorkflowOrder,
    check_texts,
    check_workflow_order,
    choose_signer,
    official_document_fields,
)
from gateway.requests.workflow_steps import (
    OFFICIAL_DOCUMENT,
)
from hsm_bridge.clock import Clock, utcnow
from hsm_bridge.pades import SignatureParameters

__all__ = ["Notifier", "Submission", "Submissions", "WorkflowOrder"]


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
        sandbox: DocumentSandbox,
        *,
        clock: Clock = utcnow,
    ) -> None:
        self.settings = settings
        self.db = db
        self.store = store
        self.sandbox = sandbox
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
        title: str | None = None,
    ) -> Submission:
        """Check and store a document for ``signer_username`` to sign; notify them.

        Named stages, each raising what the document system gets at once (before
        anything is stored or anyone is notified): the call itself
        (:func:`~gateway.requests.workflow_rules.check_workflow_order`, the callback
        URL), intake (:func:`~gateway.requests.intake.inspect_pdf`), the placement
        policy (:mod:`gateway.requests.placement_policy`), the workflow rules
        (:mod:`gateway.requests.workflow_rules`), then persistence with its audit entry.
        ``callback_url``: where to POST the final status
        (:mod:`gateway.integration.callbacks`); the client needs a callback secret.
        ``placement="auto"``: a visible signature in the signer block of the last page
        (:mod:`gateway.requests.placement`). ``workflow``: the request is the first step
        of an ``official_document`` (the leader signs visibly, then the organisation's
        clerk seals) or the one step of an ``organisation_only`` signature (no
        ``signer_username``: the organisation's clerk signs, at the top right of page 1).
        An Idempotency-Key with the same body answers the earlier request.

        Raises the intake errors, SignerUnknown, SignerNoCredential, ParameterInvalid,
        OrganisationUnknown, OrganisationNoCredential, OrganisationNoSeal,
        SignerNotLeader, IdempotencyConflict (same key, other body)."""
        check_texts(params, workflow, title)
        check_workflow_order(workflow, signer_username, params, placement)
        callback_url = self._callback_url(client, callback_url)
        fingerprint = _fingerprint(document, signer_username, params, placement, workflow, title)
        if idempotency_key is not None:
            earlier = self._idempotent_replay(client, idempotency_key, fingerprint)
            if earlier is not None:
                return Submission(earlier, created=False)
        report = self.sandbox.inspect(
            document, self.settings.max_document_bytes, self.settings.document_limits
        )
        params = requested_placement(params, report, placement, has_tsa=bool(self.settings.tsa_url))
        lines = (
            self.sandbox.page_lines(document, report.page_count - 1) if placement == "auto" else []
        )
        order = _Order(
            client,
            document,
            report,
            signer_username,
            params,
            placement,
            workflow,
            fingerprint,
            lines,
            title.strip() if title else None,
        )
        choice = self._check_signable(order)
        try:
            request = self._persist(order, choice, idempotency_key, callback_url, client_address)
        except IntegrityError as exc:
            # a concurrent submission with the same Idempotency-Key committed first
            if idempotency_key is None:
                raise
            earlier = self._idempotent_replay(client, idempotency_key, fingerprint)
            if earlier is None:
                raise IdempotencyConflict("the Idempotency-Key is being used") from exc
            return Submission(earlier, created=False)
        for notifier in self.notifiers:
            notifier.signing_request_created(request.signer_id, request.id)
        return Submission(request, created=True)

    def _callback_url(self, client: IntegrationClient, callback_url: str | None) -> str | None:
        """The callback URL, checked against the installation's destination policy
        (:mod:`gateway.integration.destinations`); the client must have a secret to sign
        callbacks."""
        if callback_url is None:
            return None
        policy = DestinationPolicy(self.settings.callback_allowed_networks)
        try:
            checked = policy.check_url(callback_url)
        except DestinationRefused as exc:
            raise ParameterInvalid(str(exc)) from exc
        if client.callback_secret is None:
            raise ParameterInvalid("this client has no callback secret to sign callbacks")
        return checked

    def _check_signable(self, order: _Order) -> SignerChoice:
        """The workflow rules and the final placement, then every signature the request
        will get built on the document with a stand-in signature value, in a document
        worker, as the bridge will build them: a document that cannot take them is
        refused now (DocumentUnsignable), before anyone approves it."""
        with self.db.transaction() as session:
            choice = self._signer_choice(session, order)
            check_final_placement(choice.params, order.report)
            steps = signature_steps(session, order.workflow, choice)
        self.sandbox.check_signable(order.document, steps, self.clock())
        return choice

    def _persist(
        self,
        order: _Order,
        checked: SignerChoice,
        idempotency_key: str | None,
        callback_url: str | None,
        client_address: str | None,
    ) -> SigningRequest:
        """Store the document, then in one transaction: the workflow rules again (they
        must still give what was checked: SubmissionConflict otherwise), the request and
        its audit entry. The stored document is discarded when anything fails."""
        request_id = str(uuid.uuid4())
        self.store.write(request_id, DocumentStore.ORIGINAL, order.document)
        try:
            with self.db.transaction() as session:
                choice = self._signer_choice(session, order)
                if (choice.params, choice.credential.id) != (
                    checked.params,
                    checked.credential.id,
                ):
                    raise SubmissionConflict(
                        "the signer's credential or organisation changed while the document"
                        " was being checked; submit it again"
                    )
                request = self._new_request(
                    session, request_id, order, choice, idempotency_key, callback_url
                )
                session.add(request)
                _audit_submission(session, request, order, choice, client_address)
        except BaseException:
            self.store.discard(request_id)
            raise
        return request

    def _signer_choice(self, session: Session, order: _Order) -> SignerChoice:
        """Who signs, with the parameters the workflow and the signer's image make."""
        workflow, report = order.workflow, order.report
        choice = choose_signer(session, workflow, order.signer_username, order.params, report)
        params, signer = choice.params, choice.signer
        if order.placement == "auto":
            params = signer_block_placement(params, order.lines, report, signer)
        if choice.organisation is None and signer.signature_image is not None and params.visible:
            # a visible signature shows the signer's image: they approve it too
            params = replace(
                params,
                image_sha256=hashlib.sha256(signer.signature_image).hexdigest(),
                text_with_image=self.settings.signature_text_with_image,
            )
        choice = replace(choice, params=params)
        if workflow is not None and workflow.name == OFFICIAL_DOCUMENT:
            choice = official_document_fields(session, workflow, choice, report)
        return choice

    def _new_request(
        self,
        session: Session,
        request_id: str,
        order: _Order,
        choice: SignerChoice,
        idempotency_key: str | None,
        callback_url: str | None,
    ) -> SigningRequest:
        """The request row, pending approval."""
        now = self.clock()
        workflow, params = order.workflow, choice.params
        return SigningRequest(
            id=request_id,
            client_id=order.client.id,
            signer_id=choice.signer.id,
            credential_id=choice.credential.id,
            organisation_id=choice.organisation.id if choice.organisation else None,
            workflow=workflow.name if workflow is not None else None,
            workflow_id=request_id if workflow is not None else None,
            step=1,
            status=RequestStatus.PENDING_APPROVAL.value,
            document_sha256=hashlib.sha256(order.document).hexdigest(),
            document_size=len(order.document),
            page_count=order.report.page_count,
            warnings=json.dumps(order.report.warnings + _reachability(session, choice)),
            title=order.title,
            page_sizes=json.dumps([list(size) for size in order.report.page_sizes]),
            signature_place=signature_place(params, order.report.empty_field_places),
            parameters=params.canonical_json(),
            parameters_sha256=params.sha256(),
            certificate_sha256=choice.credential.certificate_sha256,
            mechanism=choice.credential.mechanism,
            idempotency_key=idempotency_key,
            submission_sha256=order.fingerprint,
            callback_url=callback_url,
            created_at=now,
            updated_at=now,
            expires_at=now + dt.timedelta(seconds=self.settings.request_ttl_seconds),
        )

    def _idempotent_replay(
        self, client: IntegrationClient, key: str, submission_sha256: str
    ) -> SigningRequest | None:
        """The request an earlier call with this key made, or None; IdempotencyConflict
        when its body was another."""
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
            return workflow_view(session, request)

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


@dataclass(frozen=True, slots=True)
class _Order:
    """One submission as it goes through the stages."""

    client: IntegrationClient
    document: bytes
    report: DocumentReport
    signer_username: str | None
    params: SignatureParameters
    placement: str | None
    workflow: WorkflowOrder | None
    fingerprint: str
    lines: list[TextLine]
    title: str | None


def _fingerprint(
    document: bytes,
    signer_username: str | None,
    params: SignatureParameters,
    placement: str | None,
    workflow: WorkflowOrder | None,
    title: str | None = None,
) -> str:
    """The SHA-256 (hex) of what a submission asks: an Idempotency-Key replay must ask
    the same."""
    document_sha256 = hashlib.sha256(document).hexdigest()
    asked = (
        f"{document_sha256}\n{signer_username}\n{params.canonical_json()}\n{placement}"
        f"\n{workflow}" + (f"\n{title}" if title else "")
    )
    return hashlib.sha256(asked.encode()).hexdigest()


def _audit_submission(
    session: Session,
    request: SigningRequest,
    order: _Order,
    choice: SignerChoice,
    client_address: str | None,
) -> None:
    """The ``request.submitted`` audit entry (in the submission's transaction)."""
    workflow, organisation = order.workflow, choice.organisation
    audit.record(
        session,
        actor=f"client:{order.client.name}",
        action="request.submitted",
        now=request.created_at,
        request_id=request.id,
        client_address=client_address,
        detail={
            "document_sha256": request.document_sha256,
            "signer": choice.signer.username,
            "warnings": order.report.warnings,
            **(
                {"workflow": workflow.name, "organisation": organisation.name}
                if workflow is not None and organisation is not None
                else {}
            ),
        },
    )


def _reachability(session: Session, choice: SignerChoice) -> list[str]:
    """``signer_unreachable`` when the signer has neither an authenticator nor a live
    device: nobody can approve until they enrol one (the app leads them there)."""
    if choice.signer.totp_enrolled_at is not None:
        return []
    live = session.scalar(
        select(Device.id).where(Device.user_id == choice.signer.id, Device.revoked_at.is_(None))
    )
    return [] if live is not None else ["signer_unreachable"]
