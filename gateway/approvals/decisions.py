"""The signer's side of a signing request: the pending list, the document, and
decisions (approve or reject, one request or a batch) with one second factor, which the
bridge checks itself before it issues the SADs; approved requests are then signed by
:class:`~gateway.signing.pipeline.SignaturePipeline`. Each state change is one transaction with
its audit entry (:func:`lifecycle.transition`)."""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.approvals import totp
from gateway.approvals.statements import (
    DecisionItem,
    DeviceProof,
    Proof,
    TotpProof,
    check_device_proof,
    purge_nonces,
)
from gateway.audit import log as audit
from gateway.config import Settings
from gateway.db.database import Database
from gateway.db.models import ApprovalNonce, Credential, SigningRequest, User
from gateway.errors import (
    BatchTooLarge,
    DocumentChanged,
    GatewayError,
    ParameterInvalid,
    RequestExpired,
    RequestNotPending,
)
from gateway.requests.access import expire_if_due, load_owned, utcnow
from gateway.requests.document_store import DocumentStore
from gateway.requests.lifecycle import RequestStatus, transition
from gateway.requests.preview import preview_pdf
from gateway.signing.pipeline import SignaturePipeline
from hsm_bridge import BridgeClient, BridgeError, CredentialRef
from hsm_bridge.credentials import SignatureMechanism
from hsm_bridge.errors import AuthorizationRefused, PinRequired
from hsm_bridge.sam.authorization import (
    AuthorizationItem,
    AuthorizationRequest,
    DeviceFactor,
    TotpFactor,
)
from hsm_bridge.sam.statement import Decision

__all__ = ["DecisionOutcome", "SigningService"]


log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DecisionOutcome:
    """One request's outcome in :meth:`SigningService.decide`: the request after the
    decision, or the error that kept it from being decided or signed."""

    request_id: str
    request: SigningRequest | None
    error: GatewayError | BridgeError | None = None


class SigningService:
    """Use cases of the signer's side, and the expiry sweep. ``clock`` returns aware UTC
    now; ``pipeline`` signs what was approved."""

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
        self.pipeline = SignaturePipeline(settings, db, store, bridge, clock=clock)

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

    def document_for_signer(self, user: User, request_id: str) -> bytes:
        """The exact bytes that will be signed."""
        self.get_for_signer(user, request_id)
        return self.store.read(request_id, DocumentStore.ORIGINAL)

    def preview_for_signer(self, user: User, request_id: str) -> bytes:
        """The request's document with the signature the bridge will build drawn on it
        (:func:`gateway.requests.preview.preview_pdf`), PDF bytes."""
        document = self.document_for_signer(user, request_id)
        with self.db.transaction() as session:
            request = load_owned(session, request_id, signer_id=user.id)
            return preview_pdf(session, request, document, now=self.clock())

    def pin_key_for_signer(self, user: User, request_id: str) -> bytes:
        """The HPKE public key (65-byte uncompressed P-256 point) of the bridge holding
        the request's token, to which the tablet seals the token PIN."""
        request = self.get_for_signer(user, request_id)
        with self.db.transaction() as session:
            credential = session.get(Credential, request.credential_id)
            assert credential is not None
            serial = credential.token_serial
        return self.bridge.pin_key(serial)

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
        pin_envelope: bytes | None = None,
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
            pin_envelope=pin_envelope,
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
        pin_envelope: bytes | None = None,
        client_address: str | None,
    ) -> SigningRequest:
        """:meth:`approve` with a TOTP code."""
        return self.approve(
            user,
            request_id,
            document_sha256,
            TotpProof(otp),
            pin_envelope=pin_envelope,
            client_address=client_address,
        )

    def decide(
        self,
        user: User,
        items: Sequence[DecisionItem],
        decision: Decision,
        proof: Proof,
        *,
        pin_envelope: bytes | None = None,
        client_address: str | None,
        reason: str = "",
    ) -> list[DecisionOutcome]:
        """Approve (and sign) or reject the listed requests with one second factor.

        The whole decision is refused when the list is empty or repeats a request
        (ParameterInvalid), is longer than ``batch_max_requests`` (BatchTooLarge), names
        a request that is not the signer's (NotFound), or when the proof fails: a TOTP
        code (OtpLocked, OtpInvalid, OtpReused; failures count towards the lockout) or a
        device signature over the statement rebuilt from the stored requests (see
        :func:`gateway.approvals.statements.check_device_proof`). Each request is then decided on
        its own: one that expired, is no longer pending, whose ``document_sha256`` is not
        the stored document's (DocumentChanged), or whose PIN policy does not fit
        ``pin_envelope`` (PinRequired, ParameterInvalid) gets its refusal while the others
        go on; the proof is spent only when at least one request can be decided.
        ``pin_envelope``: for credentials with PIN policy ``signer``, the token PIN the
        signer typed, sealed by the tablet to the bridge for this approval
        (:mod:`hsm_bridge.sam.pin_envelope`): the gateway relays it and cannot read it.
        Returns one outcome per item, in order: the request (``signed``, ``failed`` with
        ``failure_code``, or ``rejected``) or the error (a retryable BridgeError leaves
        it ``pending_approval``)."""
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
        revoked: list[SigningRequest] = []
        with self.db.transaction() as session:
            requests = [self._load_for_signer(session, user, i) for i in ids]
            for item, request in zip(items, requests, strict=True):
                error = self._item_refusal(session, request, item, decision, pin_envelope)
                if error is not None:
                    errors[request.id] = error
                elif decision is Decision.APPROVE and _credential_revoked(session, request):
                    # nobody can sign it any more: it fails on its own, the rest go on
                    transition(
                        session,
                        request,
                        RequestStatus.FAILED,
                        actor=f"user:{user.username}",
                        now=now,
                        failure_code="certificate_revoked",
                        client_address=client_address,
                    )
                    revoked.append(request)
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
                    if isinstance(proof, DeviceProof):
                        # the bridge refused before spending it: the device may answer
                        # again with the same nonce once the cause is fixed
                        session.execute(
                            update(ApprovalNonce)
                            .where(ApprovalNonce.nonce == proof.nonce)
                            .values(used_at=None)
                        )
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
        finished: dict[str, SigningRequest] = {r.id: r for r in [*decided, *revoked]}
        if decision is Decision.APPROVE and decided:
            signed = self.pipeline.sign_batch(
                decided, activations, client_address, pin_envelope=pin_envelope
            )
            for request_id, result in signed.items():
                if isinstance(result, BridgeError):  # retryable: the request is pending again
                    errors[request_id] = result
                else:
                    finished[request_id] = result
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
                    SignatureMechanism(request.mechanism),
                    request.document_sha256,
                    json.loads(request.parameters),
                    request.certificate_sha256,
                )
            )
        factor: DeviceFactor | TotpFactor = (
            TotpFactor(proof.otp, proof.nonce)
            if isinstance(proof, TotpProof)
            else DeviceFactor(proof.device_id, proof.nonce, proof.expires_at, proof.signature)
        )
        issued = self.bridge.authorize(AuthorizationRequest(user.username, tuple(items), factor))
        return {
            item.request_id: sad for item, sad in zip(items, issued, strict=True) if sad is not None
        }

    def _item_refusal(
        self,
        session: Session,
        request: SigningRequest,
        item: DecisionItem,
        decision: Decision,
        pin_envelope: bytes | None,
    ) -> GatewayError | None:
        if expire_if_due(session, request, now=self.clock()):
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
        if pin_envelope is None and policy == "signer":
            return PinRequired("this signature needs the token's PIN (pin_envelope)")
        if pin_envelope is not None and policy != "signer":
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

    def _load_for_signer(self, session: Session, user: User, request_id: str) -> SigningRequest:
        return load_owned(session, request_id, signer_id=user.id, for_update=True)

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


def _credential_revoked(session: Session, request: SigningRequest) -> bool:
    credential = session.get(Credential, request.credential_id)
    return credential is not None and credential.revoked_at is not None


def _pin_policy(session: Session, request: SigningRequest) -> str:
    credential = session.get(Credential, request.credential_id)
    return credential.pin_policy if credential is not None else "stored"
