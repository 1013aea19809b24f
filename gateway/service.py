"""The signing-request service: submission, status, cancellation, approval with TOTP,
rejection, signing through the bridge, and recovery after a crash.

Each state change is one transaction with its audit entry (:func:`lifecycle.transition`).
The signing step is split so that a crash leaves a request that can be retried safely:
``approved → signing`` is committed before the token is touched; the signed file is
written atomically before ``signing → signed`` is committed; at start-up a request found
in ``signing`` becomes ``signed`` if its file exists, else returns to
``pending_approval`` for a new approval (an activation is single-use, so one approval
never yields two signatures).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway import audit, totp
from gateway.approvals import (
    DecisionItem,
    DeviceProof,
    Proof,
    TotpProof,
    check_device_proof,
    purge_nonces,
)
from gateway.callbacks import check_callback_url
from gateway.certificates import check_usable
from gateway.config import Settings
from gateway.db import Database
from gateway.document_store import DocumentStore
from gateway.errors import (
    BatchTooLarge,
    CertificateNotValid,
    DocumentChanged,
    GatewayError,
    IdempotencyConflict,
    NotFound,
    ParameterInvalid,
    RequestExpired,
    RequestNotPending,
    RequestNotSigned,
    SignerNoCredential,
    SignerUnknown,
)
from gateway.intake import inspect_pdf
from gateway.lifecycle import RequestStatus, transition
from gateway.models import Credential, IntegrationClient, SigningRequest, User
from gateway.pades import PadesLevel, RemoteSigner, SignatureParameters, SigningInput, sign_pdf
from hsm_bridge import BridgeClient, BridgeError, CredentialRef, SignRequest
from hsm_bridge.authorization import (
    AuthorizationItem,
    AuthorizationRequest,
    DeviceFactor,
    TotpFactor,
)
from hsm_bridge.credentials import SignatureMechanism
from hsm_bridge.errors import ActivationInvalid, AuthorizationRefused, PinRequired
from hsm_bridge.statement import Decision

__all__ = ["DecisionOutcome", "Notifier", "SigningService", "Submission", "utcnow"]

log = logging.getLogger(__name__)


def utcnow() -> dt.datetime:
    """The current time, aware, UTC."""
    return dt.datetime.now(dt.UTC)


class Notifier(Protocol):
    """Told after commit that a signer has a new request (push delivery lives in
    ``mobile_api``; the composition root wires it in). Must never raise."""

    def signing_request_created(self, signer_id: str, request_id: str) -> None:
        """Notify ``signer_id``'s devices about ``request_id``."""


@dataclass(frozen=True, slots=True)
class DecisionOutcome:
    """One request's outcome in :meth:`SigningService.decide`: the request after the
    decision, or the error that kept it from being decided or signed."""

    request_id: str
    request: SigningRequest | None
    error: GatewayError | BridgeError | None = None


@dataclass(frozen=True, slots=True)
class Submission:
    """The outcome of :meth:`SigningService.submit`: the request, and whether this call
    created it (False when an Idempotency-Key replay returned an earlier one)."""

    request: SigningRequest
    created: bool


class SigningService:
    """Use cases of the signing-request life cycle. ``clock`` returns aware UTC now."""

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
        self.notifiers: list[Notifier] = []

    # ---- integration side -------------------------------------------------------

    def submit(
        self,
        client: IntegrationClient,
        document: bytes,
        signer_username: str,
        params: SignatureParameters,
        *,
        idempotency_key: str | None,
        client_address: str | None,
        callback_url: str | None = None,
    ) -> Submission:
        """Check and store a document for ``signer_username`` to sign; notify them.
        ``callback_url``: where to POST the final status (:mod:`gateway.callbacks`); the
        client needs a callback secret.

        Raises the intake errors, SignerUnknown, SignerNoCredential, ParameterInvalid,
        IdempotencyConflict (same key, other body)."""
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
            f"{document_sha256}\n{signer_username}\n{params.canonical_json()}".encode()
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
        request_id = str(uuid.uuid4())
        self.store.write(request_id, DocumentStore.ORIGINAL, document)
        try:
            with self.db.transaction() as session:
                signer = session.scalar(select(User).where(User.username == signer_username))
                if signer is None:
                    raise SignerUnknown(f"no signer named {signer_username!r}")
                credential = session.scalar(
                    select(Credential)
                    .where(Credential.user_id == signer.id, Credential.revoked_at.is_(None))
                    .order_by(Credential.created_at.desc())
                )
                if credential is None:
                    raise SignerNoCredential(f"{signer_username!r} has no active credential")
                request = SigningRequest(
                    id=request_id,
                    client_id=client.id,
                    signer_id=signer.id,
                    credential_id=credential.id,
                    status=RequestStatus.PENDING_APPROVAL.value,
                    document_sha256=document_sha256,
                    document_size=len(document),
                    page_count=report.page_count,
                    warnings=json.dumps(report.warnings),
                    parameters=params.canonical_json(),
                    parameters_sha256=params.sha256(),
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
                        "signer": signer_username,
                        "warnings": report.warnings,
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
            request = _load_owned(session, request_id, client_id=client.id)
            self._expire_if_due(session, request)
            return request

    def signed_document_for_client(self, client: IntegrationClient, request_id: str) -> bytes:
        """The signed PDF bytes; RequestNotSigned (409) while not signed."""
        request = self.get_for_client(client, request_id)
        if request.status != RequestStatus.SIGNED:
            raise RequestNotSigned(f"the request is {request.status}")
        return self.store.read(request_id, DocumentStore.SIGNED)

    def cancel(
        self, client: IntegrationClient, request_id: str, *, client_address: str | None
    ) -> SigningRequest:
        """Cancel a pending request of ``client``; RequestNotPending otherwise."""
        now = self.clock()
        with self.db.transaction() as session:
            request = _load_owned(session, request_id, client_id=client.id, for_update=True)
            expired = self._expire_if_due(session, request)
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

    # ---- signer side ------------------------------------------------------------

    def list_for_signer(self, user: User, status: RequestStatus | None) -> list[SigningRequest]:
        """The signer's own requests, newest first, optionally of one status."""
        with self.db.transaction() as session:
            query = select(SigningRequest).where(SigningRequest.signer_id == user.id)
            requests = list(session.scalars(query.order_by(SigningRequest.created_at.desc())))
            for request in requests:
                self._expire_if_due(session, request)
        return [r for r in requests if status is None or r.status == status]

    def get_for_signer(self, user: User, request_id: str) -> SigningRequest:
        """The request if addressed to ``user`` (else NotFound: invariant 7)."""
        with self.db.transaction() as session:
            request = _load_owned(session, request_id, signer_id=user.id)
            self._expire_if_due(session, request)
            return request

    def document_for_signer(self, user: User, request_id: str) -> bytes:
        """The exact bytes that will be signed."""
        self.get_for_signer(user, request_id)
        return self.store.read(request_id, DocumentStore.ORIGINAL)

    def reject(
        self,
        user: User,
        request_id: str,
        reason: str,
        proof: Proof,
        *,
        client_address: str | None,
    ) -> SigningRequest:
        """The signer declines one request with a second factor (a TOTP code or a signed
        decision); it becomes ``rejected`` at once. Raises the request's refusal
        (NotFound, RequestExpired, RequestNotPending) or the proof's."""
        outcome = self.decide(
            user,
            [DecisionItem(request_id, "")],
            Decision.REJECT,
            proof,
            client_address=client_address,
            reason=reason,
        )[0]
        if outcome.error is not None:
            raise outcome.error
        assert outcome.request is not None
        return outcome.request

    def approve(
        self,
        user: User,
        request_id: str,
        document_sha256: str,
        proof: Proof,
        *,
        token_pin: str | None = None,
        client_address: str | None,
    ) -> SigningRequest:
        """Approve one request with a second factor and sign it (see :meth:`decide`).
        Returns the request, ``signed`` or ``failed`` with ``failure_code``; raises its
        refusal, or a retryable BridgeError after which it is ``pending_approval``."""
        outcome = self.decide(
            user,
            [DecisionItem(request_id, document_sha256)],
            Decision.APPROVE,
            proof,
            token_pin=token_pin,
            client_address=client_address,
        )[0]
        if outcome.error is not None:
            raise outcome.error
        assert outcome.request is not None
        return outcome.request

    def approve_with_totp(
        self,
        user: User,
        request_id: str,
        otp: str,
        document_sha256: str,
        *,
        token_pin: str | None = None,
        client_address: str | None,
    ) -> SigningRequest:
        """:meth:`approve` with a TOTP code."""
        return self.approve(
            user,
            request_id,
            document_sha256,
            TotpProof(otp),
            token_pin=token_pin,
            client_address=client_address,
        )

    def decide(
        self,
        user: User,
        items: Sequence[DecisionItem],
        decision: Decision,
        proof: Proof,
        *,
        token_pin: str | None = None,
        client_address: str | None,
        reason: str = "",
    ) -> list[DecisionOutcome]:
        """Approve (and sign) or reject the listed requests with one second factor.

        The whole decision is refused when the list is empty or repeats a request
        (ParameterInvalid), is longer than ``batch_max_requests`` (BatchTooLarge), names
        a request that is not the signer's (NotFound), or when the proof fails: a TOTP
        code (OtpLocked, OtpInvalid, OtpReused; failures count towards the lockout) or a
        device signature over the statement rebuilt from the stored requests (see
        :func:`gateway.approvals.check_device_proof`). Each request is then decided on
        its own: one that expired, is no longer pending, whose ``document_sha256`` is not
        the stored document's (DocumentChanged), or whose PIN policy does not fit
        ``token_pin`` (PinRequired, ParameterInvalid) gets its refusal while the others
        go on; the proof is spent only when at least one request can be decided.
        ``token_pin``: the token PIN typed by the signer for credentials with PIN policy
        ``signer``, used for these signatures only and never stored. Returns one outcome
        per item, in order: the request (``signed``, ``failed`` with ``failure_code``, or
        ``rejected``) or the error (a retryable BridgeError leaves it
        ``pending_approval``)."""
        if not items:
            raise ParameterInvalid("no request to decide on")
        if len(items) > self.settings.batch_max_requests:
            raise BatchTooLarge(
                f"at most {self.settings.batch_max_requests} requests in one decision"
            )
        ids = [item.request_id for item in items]
        if len(set(ids)) != len(ids):
            raise ParameterInvalid("a request is listed twice")
        now = self.clock()
        refusal: GatewayError | BridgeError | None = None
        activations: dict[str, str] = {}
        errors: dict[str, GatewayError | BridgeError] = {}
        decided: list[SigningRequest] = []
        with self.db.transaction() as session:
            requests = [self._load_for_signer(session, user, i) for i in ids]
            for item, request in zip(items, requests, strict=True):
                error = self._item_refusal(session, request, item, decision, token_pin)
                if error is not None:
                    errors[request.id] = error
                else:
                    decided.append(request)
            if decided:
                refusal = self._check_proof(
                    session, user, decision, proof, requests, now, client_address
                )
            if decided and refusal is None and decision is Decision.APPROVE:
                # The bridge checks the proof again with what *it* holds and issues the
                # SADs; the gateway cannot make them (sole control, DESIGN invariant 1).
                try:
                    activations = self._authorize(
                        session,
                        user,
                        proof,
                        requests if isinstance(proof, DeviceProof) else decided,
                    )
                except BridgeError as exc:
                    refusal = exc
                    if totp.is_totp_refusal(exc):
                        assert isinstance(exc, AuthorizationRefused)
                        refusal = totp.refusal_of(
                            session,
                            exc,
                            username=user.username,
                            now=now,
                            request_id=ids[0] if len(ids) == 1 else None,
                            client_address=client_address,
                        )
                    else:
                        audit.record(
                            session,
                            actor=f"user:{user.username}",
                            action="decision.refused",
                            now=now,
                            request_id=ids[0] if len(ids) == 1 else None,
                            client_address=client_address,
                            detail={
                                "code": exc.code,
                                "reason": getattr(exc, "reason", None),
                                "batch": len(items),
                            },
                        )
            if decided and refusal is None:
                factor = "totp" if isinstance(proof, TotpProof) else "device"
                detail: dict[str, object] = {"factor": factor, "batch": len(items)}
                if isinstance(proof, DeviceProof):
                    # the signed decision itself, so that it can be verified again later
                    # (with the device's public key and the requests' stored hashes)
                    detail["device"] = proof.device_id
                    detail["nonce"] = proof.nonce
                    detail["expires_at"] = proof.expires_at
                    detail["signature"] = base64.b64encode(proof.signature).decode("ascii")
                    detail["requests"] = ids
                for request in decided:
                    if decision is Decision.REJECT:
                        transition(
                            session,
                            request,
                            RequestStatus.REJECTED,
                            actor=f"user:{user.username}",
                            now=now,
                            client_address=client_address,
                            detail={**detail, "reason_length": len(reason)},
                        )
                        continue
                    transition(
                        session,
                        request,
                        RequestStatus.APPROVED,
                        actor=f"user:{user.username}",
                        now=now,
                        client_address=client_address,
                        detail=detail,
                    )
                    transition(session, request, RequestStatus.SIGNING, actor="system", now=now)
        if refusal is not None:
            raise refusal
        finished: dict[str, SigningRequest] = {r.id: r for r in decided}
        if decision is Decision.APPROVE:
            refused_pin: BridgeError | None = None
            for request in decided:
                if refused_pin is not None:
                    # A typed PIN the token refused is never tried again: each try spends
                    # one of a real token's few attempts. The rest wait for a new PIN.
                    self._back_to_pending(request, refused_pin.code)
                    errors[request.id] = refused_pin
                    continue
                try:
                    finished[request.id] = self._sign(
                        request,
                        activations[request.id],
                        client_address,
                        token_pin=token_pin,
                    )
                except BridgeError as exc:  # retryable: the request is pending again
                    errors[request.id] = exc
                    if token_pin is not None and exc.code in ("pin_incorrect", "pin_locked"):
                        refused_pin = exc
        return [
            DecisionOutcome(i, None, errors[i]) if i in errors else DecisionOutcome(i, finished[i])
            for i in ids
        ]

    def _authorize(
        self,
        session: Session,
        user: User,
        proof: Proof,
        requests: Sequence[SigningRequest],
    ) -> dict[str, str]:
        """The bridge's SADs for ``requests`` (the whole statement for a device proof),
        by request id. Raises the bridge's refusal."""
        items = []
        for request in requests:
            credential = session.get(Credential, request.credential_id)
            assert credential is not None
            items.append(
                AuthorizationItem(
                    request.id,
                    CredentialRef(credential.token_serial, bytes.fromhex(credential.key_id)),
                    SignatureMechanism(credential.mechanism),
                    request.document_sha256,
                    json.loads(request.parameters),
                )
            )
        factor: DeviceFactor | TotpFactor = (
            TotpFactor(proof.otp)
            if isinstance(proof, TotpProof)
            else DeviceFactor(proof.device_id, proof.nonce, proof.expires_at, proof.signature)
        )
        issued = self.bridge.authorize(AuthorizationRequest(user.username, tuple(items), factor))
        return {
            item.request_id: sad for item, sad in zip(items, issued, strict=True) if sad is not None
        }

    def _back_to_pending(self, request: SigningRequest, code: str) -> None:
        """Return a request that was moved to ``signing`` but not signed to
        ``pending_approval`` (audited with ``code``), for a new approval."""
        with self.db.transaction() as session:
            current = session.get(SigningRequest, request.id, with_for_update=True)
            assert current is not None
            transition(
                session,
                current,
                RequestStatus.PENDING_APPROVAL,
                actor="system",
                now=self.clock(),
                detail={"retryable": code, "not_tried": True},
            )

    def _item_refusal(
        self,
        session: Session,
        request: SigningRequest,
        item: DecisionItem,
        decision: Decision,
        token_pin: str | None,
    ) -> GatewayError | None:
        if self._expire_if_due(session, request):
            return RequestExpired("the request has expired")
        if request.status != RequestStatus.PENDING_APPROVAL:
            return RequestNotPending(f"the request is {request.status}")
        if decision is Decision.REJECT:
            return None
        if not hmac.compare_digest(
            request.document_sha256.encode(), item.document_sha256.strip().lower().encode()
        ):
            return DocumentChanged("document_sha256 is not the hash of this document")
        policy = _pin_policy(session, request)
        if token_pin is None and policy == "signer":
            return PinRequired("this signature needs the token's PIN (token_pin)")
        if token_pin is not None and policy != "signer":
            # A shared token's PIN is the bridge's: a signer must not spend its tries.
            return ParameterInvalid("this credential's PIN is kept by the bridge")
        return None

    def _check_proof(
        self,
        session: Session,
        user: User,
        decision: Decision,
        proof: Proof,
        requests: Sequence[SigningRequest],
        now: dt.datetime,
        client_address: str | None,
    ) -> GatewayError | None:
        request_id = requests[0].id if len(requests) == 1 else None
        if isinstance(proof, TotpProof):
            if decision is Decision.APPROVE:
                return None  # the bridge checks the code when it authorises (_authorize)
            try:
                self.bridge.check_totp(user.username, proof.otp.strip())
            except AuthorizationRefused as exc:
                if not totp.is_totp_refusal(exc):
                    raise
                return totp.refusal_of(
                    session,
                    exc,
                    username=user.username,
                    now=now,
                    request_id=request_id,
                    client_address=client_address,
                )
            return None
        refusal = check_device_proof(
            session,
            user,
            decision,
            proof,
            requests,
            now=now,
            max_ttl_seconds=self.settings.activation_ttl_seconds,
        )
        if refusal is not None:
            audit.record(
                session,
                actor=f"user:{user.username}",
                action="decision.refused",
                now=now,
                request_id=request_id,
                client_address=client_address,
                detail={"code": refusal.code, "device": proof.device_id, "batch": len(requests)},
            )
        return refusal

    # ---- signing ----------------------------------------------------------------

    def _sign(
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
            signed = self._produce_signature(request, activation, token_pin=token_pin)
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
            elif retry_error is not None:
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
        return current

    def _produce_signature(
        self, request: SigningRequest, activation: str, *, token_pin: str | None
    ) -> bytes:
        document = self.store.read(request.id, DocumentStore.ORIGINAL)
        if hashlib.sha256(document).hexdigest() != request.document_sha256:
            raise DocumentChanged("the stored document no longer matches the approved hash")
        params = SignatureParameters.from_json(request.parameters)
        if params.sha256() != request.parameters_sha256:
            raise DocumentChanged("the signature parameters changed after approval")
        with self.db.transaction() as session:
            credential = session.get(Credential, request.credential_id)
            assert credential is not None
        ref = CredentialRef(credential.token_serial, bytes.fromhex(credential.key_id))
        token_certificate = self.bridge.certificate(ref)
        if hashlib.sha256(token_certificate).hexdigest() != credential.certificate_sha256:
            raise CertificateNotValid("the token holds another certificate for this credential")
        chain = _chain_der(credential.chain_pem)
        check_usable(
            [token_certificate, *chain], revoked_at=credential.revoked_at, now=self.clock()
        )
        mechanism = SignatureMechanism(credential.mechanism)

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
        signed = sign_pdf(document, params, signer, timestamper=timestamper)
        self.store.write(request.id, DocumentStore.SIGNED, signed)
        return signed

    # ---- helpers ----------------------------------------------------------------

    def _load_for_signer(self, session: Session, user: User, request_id: str) -> SigningRequest:
        return _load_owned(session, request_id, signer_id=user.id, for_update=True)

    def _expire_if_due(self, session: Session, request: SigningRequest) -> bool:
        now = self.clock()
        if request.status == RequestStatus.PENDING_APPROVAL and now >= request.expires_at:
            transition(session, request, RequestStatus.EXPIRED, actor="system", now=now)
            return True
        return request.status == RequestStatus.EXPIRED

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

    def recover_interrupted(self) -> int:
        """Finish or roll back requests left in ``signing`` by a crash; return how many."""
        now = self.clock()
        count = 0
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
                        continue
                transition(
                    session,
                    request,
                    RequestStatus.PENDING_APPROVAL,
                    actor="system",
                    now=now,
                    detail={"recovered": True},
                )
        return count


# Bridge answers about a PIN the signer typed: the request goes back to pending.
_SIGNER_PIN_CODES = frozenset({"pin_incorrect", "pin_required"})


def _pin_policy(session: Session, request: SigningRequest) -> str:
    credential = session.get(Credential, request.credential_id)
    return credential.pin_policy if credential is not None else "stored"


def _load_owned(
    session: Session,
    request_id: str,
    *,
    client_id: str | None = None,
    signer_id: str | None = None,
    for_update: bool = False,
) -> SigningRequest:
    """The request if it belongs to the integration client or is addressed to the
    signer given; NotFound otherwise, the same answer whether it exists or not
    (DESIGN.md invariant 7)."""
    request = session.get(SigningRequest, request_id, with_for_update=for_update)
    if (
        request is None
        or (client_id is not None and request.client_id != client_id)
        or (signer_id is not None and request.signer_id != signer_id)
    ):
        raise NotFound("no such signing request")
    return request


def _chain_der(chain_pem: str) -> list[bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    if not chain_pem.strip():
        return []
    return [
        c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(chain_pem.encode())
    ]
