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
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import update
from sqlalchemy.orm import Session

from gateway.approvals import totp
from gateway.approvals.inbox import SignerInbox
from gateway.approvals.statements import DecisionItem, check_device_factor
from gateway.audit import log as audit
from gateway.bridges import relying_party
from gateway.db.models import ApprovalNonce, Credential, SigningRequest, User
from gateway.errors import (
    BatchTooLarge,
    CertificateRevoked,
    DocumentChanged,
    GatewayError,
    ParameterInvalid,
    RequestExpired,
    RequestNotPending,
)
from gateway.observability.metrics import count_decision
from gateway.requests.access import expire_if_due, load_owned
from gateway.requests.lifecycle import RequestStatus, transition
from hsm_bridge import BridgeError, CredentialRef
from hsm_bridge.credentials import SignatureMechanism
from hsm_bridge.errors import AuthorizationRefused, PinRequired
from hsm_bridge.sam.authorization import (
    AuthorizationItem,
    AuthorizationRequest,
    DeviceFactor,
    Factor,
    TotpFactor,
)
from hsm_bridge.sam.statement import Decision

__all__ = ["DecisionOutcome", "SigningService"]


log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DecisionOutcome:
    """One request's outcome in a decision: the request after the decision, or the error
    that kept it from being decided or signed."""

    request_id: str
    request: SigningRequest | None
    error: GatewayError | BridgeError | None = None

    def result(self) -> SigningRequest:
        """The request; raises the error when there is one."""
        if self.error is not None:
            raise self.error
        assert self.request is not None
        return self.request


@dataclass(frozen=True, slots=True)
class _Decision:
    """Who decides what, with which factor, from where, when."""

    user: User
    kind: Decision
    factor: Factor
    client_address: str | None
    now: dt.datetime

    @property
    def actor(self) -> str:
        """The audit actor: ``user:<username>``."""
        return f"user:{self.user.username}"


@dataclass
class _Triage:
    """A decision's requests as it goes: all of them in order, the ones decided, the
    SADs the bridge issued for them, what finished and what was refused."""

    requests: list[SigningRequest] = field(default_factory=list)
    decided: list[SigningRequest] = field(default_factory=list)
    activations: dict[str, str] = field(default_factory=dict)
    finished: dict[str, SigningRequest] = field(default_factory=dict)
    errors: dict[str, GatewayError | BridgeError] = field(default_factory=dict)

    def outcomes(self, ids: list[str]) -> list[DecisionOutcome]:
        """One outcome per listed id, in order."""
        return [
            DecisionOutcome(i, None, self.errors[i])
            if i in self.errors
            else DecisionOutcome(i, self.finished.get(i) or self._decided(i))
            for i in ids
        ]

    def _decided(self, request_id: str) -> SigningRequest:
        return next(r for r in self.decided if r.id == request_id)


class SigningService(SignerInbox):
    """Use cases of the signer's side: what the signer sees (:class:`SignerInbox`) and
    their decisions, approve or reject, one request or a batch; ``pipeline`` signs what
    was approved."""

    # ---- decisions: one request or a batch, approve or reject --------------------------

    def approve(
        self,
        user: User,
        request_id: str,
        document_sha256: str,
        factor: Factor,
        *,
        pin_envelope: bytes | None = None,
        client_address: str | None,
    ) -> SigningRequest:
        """Approve one request with a second factor and have it signed (see
        :meth:`approve_batch`). Returns the request, ``signed`` or ``failed`` with
        ``failure_code``; raises its refusal, or a retryable BridgeError after which it
        is ``pending_approval``."""
        (outcome,) = self.approve_batch(
            user,
            [DecisionItem(request_id, document_sha256)],
            factor,
            pin_envelope=pin_envelope,
            client_address=client_address,
        )
        return outcome.result()

    def reject(
        self,
        user: User,
        request_id: str,
        reason: str,
        factor: Factor,
        *,
        client_address: str | None,
    ) -> SigningRequest:
        """The signer declines one request with a second factor; it becomes ``rejected``
        at once. Raises the request's refusal (NotFound, RequestExpired,
        RequestNotPending) or the factor's."""
        (outcome,) = self.reject_batch(
            user, [request_id], factor, reason=reason, client_address=client_address
        )
        return outcome.result()

    def approve_batch(
        self,
        user: User,
        items: Sequence[DecisionItem],
        factor: Factor,
        *,
        pin_envelope: bytes | None = None,
        client_address: str | None,
    ) -> list[DecisionOutcome]:
        """Approve the listed requests with one second factor and have them signed.

        The whole decision is refused when the list is empty or repeats a request
        (ParameterInvalid), is longer than ``batch_max_requests`` (BatchTooLarge), names
        a request that is not the signer's (NotFound), or when the factor fails: a TOTP
        code (OtpLocked, OtpInvalid, OtpReused; failures count towards the lockout) or a
        device signature over the statement rebuilt from the stored requests
        (:func:`~gateway.approvals.statements.check_device_factor`); then the bridge checks
        the factor again against its own records and issues the SADs. Each request is
        decided on its own: one that expired, is no longer pending, whose
        ``document_sha256`` is not the stored document's (DocumentChanged), or whose PIN
        policy does not fit ``pin_envelope`` (PinRequired, ParameterInvalid) gets its
        refusal while the others go on; the factor is spent only when at least one
        request can be decided. ``pin_envelope``: for credentials with PIN policy
        ``signer``, the token PIN sealed by the tablet to the bridge for this approval
        (:mod:`hsm_bridge.sam.pin_envelope`): the gateway relays it and cannot read it.
        Returns one outcome per item, in order: the request (``signed``, ``failed`` with
        ``failure_code``) or the error (a retryable BridgeError leaves it
        ``pending_approval``)."""
        ids = self._checked_ids([item.request_id for item in items])
        decision = _Decision(user, Decision.APPROVE, factor, client_address, self.clock())
        with self.db.transaction() as session:
            triage = self._triage(session, decision, items, pin_envelope)
            refusal = self._accept_factor(session, decision, triage, len(ids))
            if refusal is None and triage.decided:
                self._record(session, decision, triage.decided, ids, reason="")
        _count(decision, refusal, triage.decided)
        if refusal is not None:
            raise refusal
        if triage.decided:
            signed = self.pipeline.sign_batch(
                triage.decided, triage.activations, client_address, pin_envelope=pin_envelope
            )
            for request_id, result in signed.items():
                if isinstance(result, BridgeError):  # retryable: the request is pending again
                    triage.errors[request_id] = result
                else:
                    triage.finished[request_id] = result
        return triage.outcomes(ids)

    def reject_batch(
        self,
        user: User,
        request_ids: Sequence[str],
        factor: Factor,
        *,
        reason: str,
        client_address: str | None,
    ) -> list[DecisionOutcome]:
        """Decline the listed requests with one second factor (a rejection signs nothing,
        but still needs the signer's presence); each becomes ``rejected`` at once, or
        gets its own refusal. Refused as a whole like :meth:`approve_batch`. ``reason``
        is kept out of logs (only its length is audited)."""
        ids = self._checked_ids(list(request_ids))
        decision = _Decision(user, Decision.REJECT, factor, client_address, self.clock())
        items = [DecisionItem(i, "") for i in ids]
        with self.db.transaction() as session:
            triage = self._triage(session, decision, items, None)
            refusal = self._accept_factor(session, decision, triage, len(ids))
            if refusal is None and triage.decided:
                self._record(session, decision, triage.decided, ids, reason=reason)
        _count(decision, refusal, triage.decided)
        if refusal is not None:
            raise refusal
        return triage.outcomes(ids)

    def _checked_ids(self, ids: list[str]) -> list[str]:
        """The listed request ids, when the list is a decision's: ParameterInvalid for
        none or a repeat, BatchTooLarge beyond ``batch_max_requests``."""
        if not ids:
            raise ParameterInvalid("no request to decide on")
        if len(ids) > self.settings.batch_max_requests:
            raise BatchTooLarge(
                f"at most {self.settings.batch_max_requests} requests in one decision"
            )
        if len(set(ids)) != len(ids):
            raise ParameterInvalid("a request is listed twice")
        return ids

    def _triage(
        self,
        session: Session,
        decision: _Decision,
        items: Sequence[DecisionItem],
        pin_envelope: bytes | None,
    ) -> _Triage:
        """The requests, each either refused on its own, failed (a revoked credential:
        nobody can sign it any more) or to be decided."""
        triage = _Triage()
        for item in items:
            request = load_owned(
                session, item.request_id, signer_id=decision.user.id, for_update=True
            )
            triage.requests.append(request)
            error = self._item_refusal(session, request, item, decision.kind, pin_envelope)
            if error is not None:
                triage.errors[request.id] = error
            elif decision.kind is Decision.APPROVE and _credential_revoked(session, request):
                transition(
                    session,
                    request,
                    RequestStatus.FAILED,
                    actor=decision.actor,
                    now=decision.now,
                    failure_code=CertificateRevoked.code,
                    client_address=decision.client_address,
                )
                triage.finished[request.id] = request
            else:
                triage.decided.append(request)
        return triage

    def _accept_factor(
        self, session: Session, decision: _Decision, triage: _Triage, batch: int
    ) -> GatewayError | BridgeError | None:
        """The factor checked (and spent) for the decided requests: by the gateway, then
        for an approval by the bridge, which issues the SADs into ``triage``. The
        refusal, audited, or None."""
        if not triage.decided:
            return None
        refusal = self._check_factor(session, decision, triage.requests)
        if refusal is not None or decision.kind is Decision.REJECT:
            return refusal
        # The bridge checks the factor again with what *it* holds and issues the SADs;
        # the gateway cannot make them (sole control, DESIGN invariant 1).
        statement = triage.requests if isinstance(decision.factor, DeviceFactor) else triage.decided
        try:
            triage.activations = self._authorize(session, decision, statement)
        except BridgeError as exc:
            return self._bridge_refusal(session, decision, exc, triage, batch)
        return None

    def _bridge_refusal(
        self,
        session: Session,
        decision: _Decision,
        error: BridgeError,
        triage: _Triage,
        batch: int,
    ) -> GatewayError | BridgeError:
        """The gateway's answer to the bridge refusing a factor, audited; a device's
        nonce is given back (the bridge refused before spending it: the device may
        answer again once the cause is fixed)."""
        factor = decision.factor
        if isinstance(factor, DeviceFactor):
            session.execute(
                update(ApprovalNonce)
                .where(ApprovalNonce.nonce == factor.nonce)
                .values(used_at=None)
            )
        request_id = triage.requests[0].id if len(triage.requests) == 1 else None
        if isinstance(error, AuthorizationRefused) and totp.is_totp_refusal(error):
            return _totp_refusal(session, decision, error, request_id)
        audit.record(
            session,
            actor=decision.actor,
            action="decision.refused",
            now=decision.now,
            request_id=request_id,
            client_address=decision.client_address,
            detail={"code": error.code, "reason": getattr(error, "reason", None), "batch": batch},
        )
        return error

    def _record(
        self,
        session: Session,
        decision: _Decision,
        decided: Sequence[SigningRequest],
        ids: list[str],
        *,
        reason: str,
    ) -> None:
        """The decided requests' transitions, each with its audit entry; a device's
        signed decision is kept in the entry so that it can be verified again later
        (with the device's public key and the requests' stored hashes)."""
        factor = decision.factor
        detail: dict[str, object] = {
            "factor": "totp" if isinstance(factor, TotpFactor) else "device",
            "batch": len(ids),
        }
        if isinstance(factor, DeviceFactor):
            detail.update(
                device=factor.device_id,
                nonce=factor.nonce,
                expires_at=factor.expires_at,
                signature=base64.b64encode(factor.signature).decode("ascii"),
                requests=ids,
            )
        for request in decided:
            if decision.kind is Decision.REJECT:
                transition(
                    session,
                    request,
                    RequestStatus.REJECTED,
                    actor=decision.actor,
                    now=decision.now,
                    client_address=decision.client_address,
                    detail={**detail, "reason_length": len(reason)},
                )
                continue
            transition(
                session,
                request,
                RequestStatus.APPROVED,
                actor=decision.actor,
                now=decision.now,
                client_address=decision.client_address,
                detail=detail,
            )
            transition(session, request, RequestStatus.SIGNING, actor="system", now=decision.now)
            self.pipeline.lease(request, now=decision.now)

    def _authorize(
        self, session: Session, decision: _Decision, requests: Sequence[SigningRequest]
    ) -> dict[str, str]:
        """The bridge's SADs for ``requests`` (the whole statement for a device factor),
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
        issued = self.bridge.authorize(
            AuthorizationRequest(decision.user.username, tuple(items), decision.factor)
        )
        return {
            item.request_id: sad for item, sad in zip(items, issued, strict=True) if sad is not None
        }

    def _item_refusal(
        self,
        session: Session,
        request: SigningRequest,
        item: DecisionItem,
        kind: Decision,
        pin_envelope: bytes | None,
    ) -> GatewayError | BridgeError | None:
        """Why this one request cannot be decided, or None."""
        if expire_if_due(session, request, now=self.clock()):
            return RequestExpired("the request has expired")
        if request.status != RequestStatus.PENDING_APPROVAL:
            return RequestNotPending(f"the request is {request.status}")
        if kind is Decision.REJECT:
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

    def _check_factor(
        self, session: Session, decision: _Decision, requests: Sequence[SigningRequest]
    ) -> GatewayError | None:
        """The gateway's own check of the factor: a device statement here (and its
        nonce spent); a TOTP code of a rejection at the bridge (an approval's code is
        checked by the bridge when it authorises)."""
        request_id = requests[0].id if len(requests) == 1 else None
        factor = decision.factor
        if isinstance(factor, TotpFactor):
            if decision.kind is Decision.APPROVE:
                return None
            try:
                self.bridge.check_totp(decision.user.username, factor.otp.strip())
            except AuthorizationRefused as exc:
                if not totp.is_totp_refusal(exc):
                    raise
                return _totp_refusal(session, decision, exc, request_id)
            return None
        refusal = check_device_factor(
            session,
            decision.user,
            decision.kind,
            factor,
            requests,
            now=decision.now,
            max_ttl_seconds=self.settings.activation_ttl_seconds,
            relying_party=relying_party(self.settings),
        )
        if refusal is not None:
            audit.record(
                session,
                actor=decision.actor,
                action="decision.refused",
                now=decision.now,
                request_id=request_id,
                client_address=decision.client_address,
                detail={"code": refusal.code, "device": factor.device_id, "batch": len(requests)},
            )
        return refusal


def _count(
    decision: _Decision,
    refusal: GatewayError | BridgeError | None,
    decided: Sequence[SigningRequest],
) -> None:
    """Count a decision in the metrics: refused (its factor was), or approved/rejected
    when it decided at least one request (else each request had its own refusal)."""
    if refusal is not None:
        count_decision(decision.factor, "refused")
    elif decided:
        outcome = "approved" if decision.kind is Decision.APPROVE else "rejected"
        count_decision(decision.factor, outcome)


def _credential_revoked(session: Session, request: SigningRequest) -> bool:
    credential = session.get(Credential, request.credential_id)
    return credential is not None and credential.revoked_at is not None


def _pin_policy(session: Session, request: SigningRequest) -> str:
    credential = session.get(Credential, request.credential_id)
    return credential.pin_policy if credential is not None else "stored"


def _totp_refusal(
    session: Session, decision: _Decision, error: AuthorizationRefused, request_id: str | None
) -> GatewayError:
    """The gateway's problem for the bridge refusing the decision's TOTP code, audited."""
    return totp.refusal_of(
        session,
        error,
        username=decision.user.username,
        now=decision.now,
        request_id=request_id,
        client_address=decision.client_address,
    )
