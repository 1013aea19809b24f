"""The signing step, after approval: the document and parameters are checked again, the
certificate is read from the token and checked (expiry, revocation), pyHanko prepares the
PAdES signature and the bridge signs under the SAD it issued for this request.

The step is split so that a crash leaves a request that can be retried safely:
``approved → signing`` is committed before the token is touched; the signed file is
written atomically before ``signing → signed`` is committed; at start-up a request found
in ``signing`` becomes ``signed`` if its file exists, else returns to
``pending_approval`` for a new approval (a SAD is single-use, so one approval never
yields two signatures).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import workflows
from gateway.certificates import check_usable
from gateway.config import Settings
from gateway.db import Database
from gateway.document_store import DocumentStore
from gateway.errors import CertificateNotValid, DocumentChanged, GatewayError
from gateway.lifecycle import RequestStatus, transition
from gateway.models import Credential, Organisation, SigningRequest, User
from gateway.pades import (
    IMAGE_MARGIN,
    SEAL_MARGIN,
    PadesLevel,
    RemoteSigner,
    SignatureParameters,
    SigningInput,
    sign_pdf,
)
from gateway.request_access import utcnow
from gateway.submission import Notifier
from hsm_bridge import BridgeClient, BridgeError, CredentialRef, SignRequest
from hsm_bridge.credentials import SignatureMechanism
from hsm_bridge.errors import ActivationInvalid

__all__ = ["SignaturePipeline"]

log = logging.getLogger(__name__)

# Bridge answers about a PIN the signer typed: the request goes back to pending.
_SIGNER_PIN_CODES = frozenset({"pin_incorrect", "pin_required"})


class SignaturePipeline:
    """Signs approved requests through ``bridge``. ``clock`` returns aware UTC now."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        store: DocumentStore,
        bridge: BridgeClient,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.db = db
        self.store = store
        self.bridge = bridge
        self.clock = clock
        # told (after commit) of each workflow step created for a clerk
        self.notifiers: list[Notifier] = []

    def sign(
        self,
        request: SigningRequest,
        activation: str | None,
        client_address: str | None,
        *,
        token_pin: str | None = None,
    ) -> SigningRequest:
        failure: str | None = None
        retry_error: BridgeError | None = None
        signed: bytes | None = None
        try:
            if activation is None:
                raise ActivationInvalid("the bridge issued no activation", reason="missing")
            signed = self.produce(request, activation, token_pin=token_pin)
        except BridgeError as exc:
            log.warning("bridge refused or failed for request %s: %s", request.id, exc.code)
            if (
                exc.retryable
                or exc.code == "pin_required"
                or (token_pin is not None and exc.code in _SIGNER_PIN_CODES)
            ):
                # A PIN the signer typed may be typed again (a stored PIN never is), and a
                # token whose PIN is missing at the bridge may get one: keep it pending.
                retry_error = exc
            else:
                failure = exc.code
        except GatewayError as exc:
            failure = exc.code
        except Exception as exc:  # noqa: BLE001 - pyHanko failures on odd input
            log.error("signing request %s failed: %s", request.id, type(exc).__name__, exc_info=exc)
            failure = "signing_error"
        now = self.clock()
        next_step: SigningRequest | None = None
        with self.db.transaction() as session:
            current = session.get(SigningRequest, request.id, with_for_update=True)
            assert current is not None
            if signed is not None:
                current.signed_document_sha256 = hashlib.sha256(signed).hexdigest()
                transition(
                    session,
                    current,
                    RequestStatus.SIGNED,
                    actor="system",
                    now=now,
                    detail={"signed_document_sha256": current.signed_document_sha256},
                )
                next_step = self._advance(session, current, signed, now)
            elif retry_error is not None:
                _readdress(session, current)
                transition(
                    session,
                    current,
                    RequestStatus.PENDING_APPROVAL,
                    actor="system",
                    now=now,
                    detail={"retryable": retry_error.code},
                )
            else:
                transition(
                    session,
                    current,
                    RequestStatus.FAILED,
                    actor="system",
                    now=now,
                    failure_code=failure,
                    client_address=client_address,
                )
        if retry_error is not None:
            raise retry_error
        if next_step is not None:
            for notifier in self.notifiers:
                notifier.signing_request_created(next_step.signer_id, next_step.id)
        return current

    def _advance(
        self, session: Session, request: SigningRequest, signed: bytes, now: dt.datetime
    ) -> SigningRequest | None:
        """The workflow's next step after ``request`` was signed (same transaction)."""
        return workflows.advance(
            session,
            request,
            signed,
            self.store,
            ttl_seconds=self.settings.request_ttl_seconds,
            now=now,
        )

    def produce(self, request: SigningRequest, activation: str, *, token_pin: str | None) -> bytes:
        document = self.store.read(request.id, DocumentStore.ORIGINAL)
        if hashlib.sha256(document).hexdigest() != request.document_sha256:
            raise DocumentChanged("the stored document no longer matches the approved hash")
        params = SignatureParameters.from_json(request.parameters)
        if params.sha256() != request.parameters_sha256:
            raise DocumentChanged("the signature parameters changed after approval")
        with self.db.transaction() as session:
            credential = session.get(Credential, request.credential_id)
            assert credential is not None
            image = _signature_image(session, request, credential)
        if params.image_sha256 is not None and (
            image is None or hashlib.sha256(image).hexdigest() != params.image_sha256
        ):
            raise DocumentChanged("the signature image changed after approval")
        ref = CredentialRef(credential.token_serial, bytes.fromhex(credential.key_id))
        token_certificate = self.bridge.certificate(ref)
        if hashlib.sha256(token_certificate).hexdigest() != request.certificate_sha256:
            raise CertificateNotValid("the token holds another certificate for this credential")
        chain = chain_der(credential.chain_pem)
        check_usable(
            [token_certificate, *chain], revoked_at=credential.revoked_at, now=self.clock()
        )
        mechanism = SignatureMechanism(request.mechanism)

        def sign_on_token(signing_input: SigningInput) -> bytes:
            # The bridge's SAD names the approved document and parameters, not a digest:
            # the bridge derives the digest from the prepared PDF and signed attributes
            # itself, and checks the signature dictionary against the parameters.
            return self.bridge.sign(
                SignRequest(
                    ref, None, mechanism, activation, pin=token_pin, signing_input=signing_input
                )
            )

        signer = RemoteSigner(token_certificate, chain, sign_on_token, mechanism)
        timestamper = None
        if params.pades_level == PadesLevel.B_T and self.settings.tsa_url:
            from pyhanko.sign.timestamps.requests_client import RequestsHTTPTimeStamper

            timestamper = RequestsHTTPTimeStamper(self.settings.tsa_url)
        signed = sign_pdf(
            document,
            params,
            signer,
            timestamper=timestamper,
            signature_image=image,
            # a seal is drawn at its real size: its box is its diameter
            image_margin=SEAL_MARGIN if credential.organisation_id is not None else IMAGE_MARGIN,
            text_with_image=(
                self.settings.signature_text_with_image and credential.organisation_id is None
            ),
        )
        self.store.write(request.id, DocumentStore.SIGNED, signed)
        return signed

    def back_to_pending(self, request: SigningRequest, code: str) -> None:
        """Return a request that was moved to ``signing`` but not signed to
        ``pending_approval`` (audited with ``code``), for a new approval."""
        with self.db.transaction() as session:
            current = session.get(SigningRequest, request.id, with_for_update=True)
            assert current is not None
            _readdress(session, current)
            transition(
                session,
                current,
                RequestStatus.PENDING_APPROVAL,
                actor="system",
                now=self.clock(),
                detail={"retryable": code, "not_tried": True},
            )

    def recover_interrupted(self) -> int:
        """Finish or roll back requests left in ``signing`` by a crash; return how many."""
        now = self.clock()
        count = 0
        created: list[SigningRequest] = []
        with self.db.transaction() as session:
            stuck = session.scalars(
                select(SigningRequest).where(SigningRequest.status == RequestStatus.SIGNING)
            )
            for request in stuck:
                count += 1
                if self.store.exists(request.id, DocumentStore.SIGNED):
                    signed = self.store.read(request.id, DocumentStore.SIGNED)
                    if signed.startswith(self.store.read(request.id, DocumentStore.ORIGINAL)):
                        request.signed_document_sha256 = hashlib.sha256(signed).hexdigest()
                        transition(
                            session,
                            request,
                            RequestStatus.SIGNED,
                            actor="system",
                            now=now,
                            detail={"recovered": True},
                        )
                        step = self._advance(session, request, signed, now)
                        if step is not None:
                            created.append(step)
                        continue
                _readdress(session, request)
                transition(
                    session,
                    request,
                    RequestStatus.PENDING_APPROVAL,
                    actor="system",
                    now=now,
                    detail={"recovered": True},
                )
        for step in created:  # a workflow's next step, made as the signature was recovered
            for notifier in self.notifiers:
                notifier.signing_request_created(step.signer_id, step.id)
        return count


def _readdress(session: Session, request: SigningRequest) -> None:
    """A request going back to ``pending_approval`` on an organisation's credential
    waits for whoever keeps its token now (a handover may have come in between)."""
    credential = session.get(Credential, request.credential_id)
    if credential is not None and credential.organisation_id is not None:
        request.signer_id = credential.user_id


def _signature_image(
    session: Session, request: SigningRequest, credential: Credential
) -> bytes | None:
    """The image a visible signature draws: the organisation's seal when its credential
    signs, else the signer's handwritten signature."""
    if credential.organisation_id is not None:
        organisation = session.get(Organisation, credential.organisation_id)
        return organisation.seal_image if organisation is not None else None
    owner = session.get(User, request.signer_id)
    return owner.signature_image if owner is not None else None


def chain_der(chain_pem: str) -> list[bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    if not chain_pem.strip():
        return []
    return [
        c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(chain_pem.encode())
    ]
