"""What a signer sees of their requests: the list, one request, the exact document, the
preview of the signature to be made, the key to seal a token PIN to; and the sweep that
expires requests whose time ran out. Only requests addressed to the signer are shown
(DESIGN.md invariant 7)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.approvals.statements import purge_nonces
from gateway.config import Settings
from gateway.db.database import Database
from gateway.db.models import Credential, IntegrationClient, SigningRequest, User
from gateway.errors import RequestNotSigned
from gateway.requests.access import expire_if_due, load_owned
from gateway.requests.document_store import DocumentStore
from gateway.requests.lifecycle import RequestStatus, transition
from gateway.requests.preview import preview_step
from gateway.requests.sandbox import DocumentSandbox
from gateway.requests.schemas import SignerRequestView, workflow_view
from gateway.signing.pipeline import SignaturePipeline
from hsm_bridge import BridgeClient
from hsm_bridge.clock import Clock, utcnow

__all__ = ["SignerInbox"]


class SignerInbox:
    """The signer's view of their requests. ``clock`` returns aware UTC now."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        store: DocumentStore,
        bridge: BridgeClient,
        sandbox: DocumentSandbox,
        *,
        clock: Clock = utcnow,
    ) -> None:
        self.settings = settings
        self.db = db
        self.store = store
        self.bridge = bridge
        self.sandbox = sandbox
        self.clock = clock
        self.pipeline = SignaturePipeline(settings, db, store, bridge, sandbox=sandbox, clock=clock)

    def list_for_signer(self, user: User, status: RequestStatus | None) -> list[SigningRequest]:
        """The signer's own requests, newest first, optionally of one status."""
        with self.db.transaction() as session:
            query = select(SigningRequest).where(SigningRequest.signer_id == user.id)
            requests = list(session.scalars(query.order_by(SigningRequest.created_at.desc())))
            for request in requests:
                expire_if_due(session, request, now=self.clock())
        return [r for r in requests if status is None or r.status == status]

    def get_for_signer(self, user: User, request_id: str) -> SigningRequest:
        """The request if addressed to ``user`` (else NotFound: invariant 7)."""
        with self.db.transaction() as session:
            request = load_owned(session, request_id, signer_id=user.id)
            expire_if_due(session, request, now=self.clock())
            return request

    def views_for_signer(self, user: User, status: RequestStatus | None) -> list[SignerRequestView]:
        """The signer's own requests as the app shows them (sender, step, pages, the
        certificate), newest first, optionally of one status."""
        requests = self.list_for_signer(user, status)
        with self.db.transaction() as session:
            return [self._view(session, request) for request in requests]

    def view_for_signer(self, user: User, request_id: str) -> SignerRequestView:
        """One of the signer's requests as the app shows it."""
        request = self.get_for_signer(user, request_id)
        with self.db.transaction() as session:
            return self._view(session, request)

    def _view(self, session: Session, request: SigningRequest) -> SignerRequestView:
        client = session.get(IntegrationClient, request.client_id)
        credential = session.get(Credential, request.credential_id)
        assert client is not None and credential is not None
        return SignerRequestView.of_signer(
            request,
            sender=client.name,
            credential=credential,
            workflow=workflow_view(session, request),
        )

    def signed_document_for_signer(self, user: User, request_id: str) -> bytes:
        """The signed PDF of one of the signer's requests; RequestNotSigned while not
        signed."""
        request = self.get_for_signer(user, request_id)
        if request.status != RequestStatus.SIGNED:
            raise RequestNotSigned(f"the request is {request.status}")
        return self.store.read_signed(request_id)

    def document_for_signer(self, user: User, request_id: str) -> bytes:
        """The exact bytes that will be signed."""
        self.get_for_signer(user, request_id)
        return self.store.read(request_id, DocumentStore.ORIGINAL)

    def preview_for_signer(self, user: User, request_id: str) -> bytes:
        """The request's document with the signature the bridge will build drawn on it
        (:func:`gateway.requests.preview.preview_step`, built in a document worker), PDF
        bytes."""
        document = self.document_for_signer(user, request_id)
        with self.db.transaction() as session:
            request = load_owned(session, request_id, signer_id=user.id)
            step = preview_step(session, request)
        return self.sandbox.build_preview(document, step, self.clock())

    def page_png(
        self, user: User, request_id: str, page: int, width: int, *, signature: bool
    ) -> bytes:
        """Page ``page`` (1-based) of the request's document, ``width`` pixels wide, PNG
        bytes, drawn in a document worker; with ``signature``, with the signature the
        bridge will make drawn where it will go. Raises NotFound (not the signer's, or
        no such page) and ParameterInvalid (a width past ``preview_max_width``)."""
        document = (
            self.preview_for_signer(user, request_id)
            if signature
            else self.document_for_signer(user, request_id)
        )
        return self.sandbox.render_page(document, page, width, self.settings.preview_max_width)

    def pin_key_for_signer(self, user: User, request_id: str) -> bytes:
        """The HPKE public key (65-byte uncompressed P-256 point) of the bridge holding
        the request's token, to which the tablet seals the token PIN."""
        request = self.get_for_signer(user, request_id)
        with self.db.transaction() as session:
            credential = session.get(Credential, request.credential_id)
            assert credential is not None
            serial = credential.token_serial
        return self.bridge.pin_key(serial)

    def housekeeping(self) -> None:
        """What every process does every few seconds: expire what ran out of time, and
        recover the signings whose lease ran out (a crashed or stopped process's)."""
        self.expire_due()
        self.pipeline.recover_interrupted()

    def expire_due(self) -> int:
        """Move every pending request whose time ran out to ``expired`` (audited, with
        its status callback), and drop expired approval nonces; return how many requests
        expired. Run periodically, so that a document
        system learns of an expiry without having to ask."""
        now = self.clock()
        with self.db.transaction() as session:
            due = session.scalars(
                select(SigningRequest)
                .where(
                    SigningRequest.status == RequestStatus.PENDING_APPROVAL,
                    SigningRequest.expires_at <= now,
                )
                .with_for_update()
            ).all()
            for request in due:
                transition(session, request, RequestStatus.EXPIRED, actor="system", now=now)
            purge_nonces(session, now=now)
        return len(due)
