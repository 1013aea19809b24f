"""The signing step, after approval: each request's document, parameters and image are
checked again against what was approved, the credential's certificate is checked
(expiry, revocation), and the bridge builds the PAdES signature of the approved document
and signs it under the SAD it issued for that request; the gateway keeps what it returns.

Requests go to the bridge in chunks (one ``sign_many`` each, so the bridge spends their
SADs in one durable write), bounded by their documents' size; each chunk's outcomes are
recorded in one transaction. The step is split so that a crash leaves a request that
can be retried safely: ``approved → signing`` is committed, with a signing lease (this
process, until ``signing_lease_seconds`` from now), before the bridge is called; the
signed file is written atomically before ``signing → signed`` is committed. Recovery
(at start-up and then every few seconds, in every process) takes over only requests
whose lease ran out: one whose signed file is there becomes ``signed`` (audited, called
back), any other returns to ``pending_approval`` for a new approval. A process never
records the outcome of a request whose lease it no longer holds, and a SAD is
single-use: one approval never yields two signatures, and a replica, a rolling restart
or a second worker never resets another's signing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import secrets
import socket
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.config import Settings
from gateway.db.database import Database
from gateway.db.models import Credential, SigningRequest
from gateway.errors import DocumentChanged, GatewayError
from gateway.observability.metrics import (
    BRIDGE_SIGNING,
    SIGNATURES,
    SIGNING_LATENCY,
    Stopwatch,
)
from gateway.requests import workflows
from gateway.requests.document_store import DocumentStore
from gateway.requests.lifecycle import RequestStatus, transition
from gateway.requests.preview import signature_image
from gateway.requests.sandbox import DocumentSandbox
from gateway.requests.submission import Notifier
from gateway.signing.certificates import check_usable
from gateway.signing.levels import newest_signature_level
from hsm_bridge import BridgeClient, BridgeError, CredentialRef, SignRequest
from hsm_bridge.clock import Clock, utcnow
from hsm_bridge.credentials import SignatureMechanism
from hsm_bridge.errors import (
    ActivationInvalid,
    CertificateRevoked,
    PadesLevelNotReached,
    PinEnvelopeInvalid,
    PinIncorrect,
    PinRequired,
)
from hsm_bridge.pades import PadesLevel, SignatureParameters
from hsm_bridge.pades.chain import load_ca_file

__all__ = ["CHUNK_BYTES", "SignaturePipeline", "chain_der"]

log = logging.getLogger(__name__)

# Bridge answers about a PIN the signer typed: the request goes back to pending.
_SIGNER_PIN_ERRORS = (PinIncorrect, PinRequired, PinEnvelopeInvalid)
# Documents handed to the bridge in one call (bytes): the memory a batch holds at once.
CHUNK_BYTES = 64 * 1024 * 1024


@dataclass
class _Outcome:
    """What happened to one request of a chunk: its signed PDF, the bridge's error, or
    the code it fails with."""

    request: SigningRequest
    document_length: int = 0
    signed: bytes | None = None
    bridge_error: BridgeError | None = None
    failure: str | None = None
    level: str | None = None


class SignaturePipeline:
    """Signs approved requests through ``bridge``. ``clock`` returns aware UTC now."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        store: DocumentStore,
        bridge: BridgeClient,
        *,
        sandbox: DocumentSandbox | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self.settings = settings
        self.db = db
        self.store = store
        self.bridge = bridge
        self.sandbox = sandbox
        self.clock = clock
        # this process, as the owner of the signing leases it takes
        self.owner = f"{socket.gethostname()[:40]}/{os.getpid()}/{secrets.token_hex(4)}"
        # told (after commit) of each workflow step created for a clerk
        self.notifiers: list[Notifier] = []

    def lease(self, request: SigningRequest, *, now: dt.datetime) -> None:
        """Take ``request`` (just moved to ``signing``, in the same transaction) for
        this process until ``signing_lease_seconds`` after ``now``."""
        request.signing_owner = self.owner
        request.signing_lease_until = now + dt.timedelta(
            seconds=self.settings.signing_lease_seconds
        )

    def sign_batch(
        self,
        requests: Sequence[SigningRequest],
        activations: dict[str, str],
        client_address: str | None,
        *,
        pin_envelope: bytes | None = None,
    ) -> dict[str, SigningRequest | BridgeError]:
        """Have the bridge build and sign each of ``requests`` (all in ``signing``) under
        its SAD from ``activations`` (request id → SAD), and record each outcome:
        ``signed`` (with the workflow's next step), back to ``pending_approval`` for a
        retryable or PIN error, or ``failed`` with the error's code. Returns, by request
        id, the request after its transition, or the bridge error that sent it back to
        pending."""
        results: dict[str, SigningRequest | BridgeError] = {}
        since_approval = Stopwatch()
        for chunk in _chunks(requests):
            outcomes = self._sign_chunk(chunk, activations, pin_envelope)
            results.update(self._record(outcomes, client_address, pin_envelope))
            _count(results, [o.request.id for o in outcomes], since_approval)
        return results

    def _sign_chunk(
        self,
        chunk: Sequence[SigningRequest],
        activations: dict[str, str],
        pin_envelope: bytes | None,
    ) -> list[_Outcome]:
        """The chunk's requests checked, sent to the bridge in one call, and the signed
        ones kept in the document store."""
        outcomes: list[_Outcome] = []
        calls: list[tuple[_Outcome, SignRequest]] = []
        for request in chunk:
            outcome = _Outcome(request)
            outcomes.append(outcome)
            try:
                call = self._sign_request(request, activations.get(request.id), pin_envelope)
            except GatewayError as exc:
                outcome.failure = exc.code
                continue
            except BridgeError as exc:
                outcome.bridge_error = exc
                continue
            outcome.document_length = len(call.document)
            calls.append((outcome, call))
        with _LevelJudge(self._anchors(), self.sandbox, self._judges()) as judge:
            if len(calls) < 2:
                judge.in_process_only()
            answers: list[bytes | BridgeError] = []
            if calls:
                at_bridge = Stopwatch()
                answers = self.bridge.sign_many([c for _, c in calls], on_signed=judge.submit)
                BRIDGE_SIGNING.observe(at_bridge.seconds())
            for index, ((outcome, call), answer) in enumerate(zip(calls, answers, strict=True)):
                if isinstance(answer, BridgeError):
                    log.warning(
                        "bridge refused or failed for %s: %s", outcome.request.id, answer.code
                    )
                    outcome.bridge_error = answer
                elif not answer.startswith(call.document):
                    outcome.failure = DocumentChanged.code
                elif failure := self._judge_level(outcome, judge.level(index, answer)):
                    outcome.failure = failure
                else:
                    self.store.write_signed(outcome.request.id, answer, len(call.document))
                    outcome.signed = answer
        return outcomes

    def _judges(self) -> int:
        """How many signed PDFs are judged at once while the bridge signs: the document
        workers, but one core fewer than the machine has (the bridge's signing, in this
        process with the embedded bridge, keeps a core of its own)."""
        return max(1, min(self.settings.document_workers, (os.cpu_count() or 2) - 1))

    def _anchors(self) -> list[bytes]:
        """The installation's trust anchors (DER), against which its output is judged."""
        return list(load_ca_file(self.settings.effective_trust_anchors_file))

    def _judge_level(self, outcome: _Outcome, level: str | None | bool) -> str | None:
        """Keep the level reached on the outcome; the failure code when it is below the
        level asked for (``level`` True: not judged)."""
        if level is True:
            return None
        asked = SignatureParameters.from_json(outcome.request.parameters).pades_level
        outcome.level = level if isinstance(level, str) else None
        if PadesLevel.rank(outcome.level or "") < PadesLevel.rank(asked):
            log.error(
                "signature of %s reached %s, %s was asked for: not kept",
                outcome.request.id,
                outcome.level,
                asked,
            )
            return PadesLevelNotReached.code
        return None

    def _sign_request(
        self, request: SigningRequest, activation: str | None, pin_envelope: bytes | None
    ) -> SignRequest:
        """What the bridge gets for ``request``: its SAD, the approved document (checked
        against its SHA-256) and the approved image. Raises DocumentChanged (the stored
        document, parameters or image are not the approved ones), CertificateNotValid,
        and ActivationInvalid when the bridge issued no SAD for it."""
        if activation is None:
            raise ActivationInvalid("the bridge issued no activation", reason="missing")
        document = self.store.read(request.id, DocumentStore.ORIGINAL)
        if hashlib.sha256(document).hexdigest() != request.document_sha256:
            raise DocumentChanged("the stored document no longer matches the approved hash")
        params = SignatureParameters.from_json(request.parameters)
        if params.sha256() != request.parameters_sha256:
            raise DocumentChanged("the signature parameters changed after approval")
        with self.db.transaction() as session:
            credential = session.get(Credential, request.credential_id)
            assert credential is not None
            image = signature_image(session, request, credential)
        images: dict[str, bytes] = {}
        if params.image_sha256 is not None:
            if image is None or hashlib.sha256(image).hexdigest() != params.image_sha256:
                raise DocumentChanged("the signature image changed after approval")
            images[params.image_sha256] = image
        check_usable(
            [credential.certificate_der, *chain_der(credential.chain_pem)],
            revoked_at=credential.revoked_at,
            now=self.clock(),
        )
        return SignRequest(
            CredentialRef(credential.token_serial, bytes.fromhex(credential.key_id)),
            SignatureMechanism(request.mechanism),
            activation,
            document,
            images,
            pin_envelope,
        )

    def _record(
        self, outcomes: list[_Outcome], client_address: str | None, pin_envelope: bytes | None
    ) -> dict[str, SigningRequest | BridgeError]:
        """Every outcome of a chunk, in one transaction; then the notifications of the
        workflow steps it created."""
        now = self.clock()
        results: dict[str, SigningRequest | BridgeError] = {}
        created: list[SigningRequest] = []
        with self.db.transaction() as session:
            for outcome in outcomes:
                current = session.get(SigningRequest, outcome.request.id, with_for_update=True)
                assert current is not None
                if not self._holds(current):
                    # the lease ran out and another process recovered the request
                    log.error("lost the signing lease of %s: outcome not recorded", current.id)
                    continue
                _release(current)
                error = outcome.bridge_error
                if outcome.signed is not None:
                    current.pades_level_reached = outcome.level
                    step = self._signed(session, current, outcome.signed, now)
                    created.extend([step] if step is not None else [])
                elif error is not None and _stays_pending(error, pin_envelope):
                    # A PIN the signer typed may be typed again (a stored PIN never is),
                    # and a token whose PIN is missing at the bridge may get one.
                    _readdress(session, current)
                    transition(
                        session,
                        current,
                        RequestStatus.PENDING_APPROVAL,
                        actor="system",
                        now=now,
                        detail={"retryable": error.code},
                    )
                    results[current.id] = error
                    continue
                else:
                    transition(
                        session,
                        current,
                        RequestStatus.FAILED,
                        actor="system",
                        now=now,
                        failure_code=error.code if error is not None else outcome.failure,
                        client_address=client_address,
                    )
                results[current.id] = current
        for step in created:
            for notifier in self.notifiers:
                notifier.signing_request_created(step.signer_id, step.id)
        return results

    def _signed(
        self, session: Session, request: SigningRequest, signed: bytes, now: dt.datetime
    ) -> SigningRequest | None:
        """``request`` becomes ``signed``; the workflow's next step, if any (same
        transaction)."""
        request.signed_document_sha256 = hashlib.sha256(signed).hexdigest()
        transition(
            session,
            request,
            RequestStatus.SIGNED,
            actor="system",
            now=now,
            detail={
                "signed_document_sha256": request.signed_document_sha256,
                "pades_level": request.pades_level_reached,
            },
        )
        return workflows.advance(
            session,
            request,
            signed,
            self.store,
            ttl_seconds=self.settings.request_ttl_seconds,
            now=now,
        )

    def _holds(self, request: SigningRequest) -> bool:
        return request.status == RequestStatus.SIGNING and request.signing_owner == self.owner

    def recover_interrupted(self) -> int:
        """Finish or roll back the requests in ``signing`` whose lease ran out (their
        process crashed or stopped); return how many. Each becomes ``signed`` when its
        signed file is there, else ``pending_approval``. Safe in every process at once:
        a live lease is never touched."""
        now = self.clock()
        count = 0
        created: list[SigningRequest] = []
        with self.db.transaction() as session:
            stuck = session.scalars(
                select(SigningRequest)
                .where(
                    SigningRequest.status == RequestStatus.SIGNING,
                    (SigningRequest.signing_lease_until.is_(None))
                    | (SigningRequest.signing_lease_until < now),
                )
                .with_for_update(skip_locked=True)
            ).all()
            for request in stuck:
                count += 1
                log.warning(
                    "recovering %s: its signing lease (%s) ran out",
                    request.id,
                    request.signing_owner,
                )
                _release(request)
                if self.store.has_signed(request.id):
                    signed = self.store.read_signed(request.id)
                    if signed.startswith(self.store.read(request.id, DocumentStore.ORIGINAL)):
                        step = self._signed(session, request, signed, now)
                        created.extend([step] if step is not None else [])
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


class _LevelJudge:
    """The PAdES level each signed PDF of a chunk reaches (:mod:`gateway.signing.levels`,
    offline, with the installation's trust anchors), judged in the document workers
    while the bridge builds the next signature: :meth:`submit` is the bridge's
    ``on_signed`` hook, :meth:`level` the verdict (waiting for it). Judged in this
    process when no worker is free, one is lost, or the chunk has one document; True for
    each (not judged) when no trust anchor is configured (nothing could be trusted)."""

    def __init__(self, anchors: list[bytes], sandbox: DocumentSandbox | None, workers: int) -> None:
        self.anchors = anchors
        self.sandbox = sandbox
        self.pool = ThreadPoolExecutor(workers) if sandbox is not None and anchors else None
        self.pending: dict[int, Future[str | None]] = {}

    def __enter__(self) -> _LevelJudge:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def in_process_only(self) -> None:
        """Judge here, at :meth:`level` (one document: a worker's round trip costs more)."""
        if self.pool is not None:
            self.pool.shutdown(wait=False)
        self.pool = None

    def submit(self, index: int, pdf: bytes) -> None:
        """Start judging ``pdf``, the chunk's ``index``-th signed PDF, in a worker."""
        if self.pool is not None:
            self.pending[index] = self.pool.submit(self._judged, pdf)

    def level(self, index: int, pdf: bytes) -> str | None | bool:
        """The level ``pdf`` (the ``index``-th) reaches, None for none, True when not
        judged."""
        if not self.anchors:
            return True
        future = self.pending.pop(index, None)
        return future.result() if future is not None else _level_here(pdf, self.anchors)

    def _judged(self, pdf: bytes) -> str | None:
        assert self.sandbox is not None
        try:
            return self.sandbox.signature_level(pdf, self.anchors)
        except GatewayError as exc:  # no worker free, or one lost: judged here
            log.warning("signature level judged in process (%s)", exc.code)
            return _level_here(pdf, self.anchors)


def _count(
    results: dict[str, SigningRequest | BridgeError], ids: list[str], watch: Stopwatch
) -> None:
    """Count the recorded outcomes of a chunk's requests ``ids`` (one lost to another
    process's recovery is not there), and time the signed ones from the approval."""
    for request_id in ids:
        result = results.get(request_id)
        if isinstance(result, BridgeError):
            SIGNATURES.labels("retry", result.code).inc()
        elif result is not None and result.status == RequestStatus.SIGNED:
            SIGNATURES.labels("signed", "").inc()
            SIGNING_LATENCY.observe(watch.seconds())
        elif result is not None:
            SIGNATURES.labels("failed", result.failure_code or "").inc()


def _level_here(pdf: bytes, anchors: list[bytes]) -> str | None:
    """The level judged in this process; None (not reached) when pyHanko cannot even
    read the output."""
    try:
        return newest_signature_level(pdf, anchors)
    except Exception as exc:  # noqa: BLE001 - an unreadable output reaches no level
        log.error("the bridge's output cannot be read: %s", exc)
        return None


def _stays_pending(error: BridgeError, pin_envelope: bytes | None) -> bool:
    """Whether a request the bridge did not sign waits for a new approval rather than
    failing: a retryable error, a PIN missing at the bridge, a certificate its CA
    revoked (a new one may be registered), or a PIN the signer typed that the token
    refused."""
    return (
        error.retryable
        or isinstance(error, PinRequired | CertificateRevoked)
        or (pin_envelope is not None and isinstance(error, _SIGNER_PIN_ERRORS))
    )


def _chunks(requests: Sequence[SigningRequest]) -> list[list[SigningRequest]]:
    """``requests`` in runs whose documents hold at most :data:`CHUNK_BYTES` together
    (a larger document alone)."""
    chunks: list[list[SigningRequest]] = []
    current: list[SigningRequest] = []
    size = 0
    for request in requests:
        if current and size + request.document_size > CHUNK_BYTES:
            chunks.append(current)
            current, size = [], 0
        current.append(request)
        size += request.document_size
    if current:
        chunks.append(current)
    return chunks


def _release(request: SigningRequest) -> None:
    """The request leaves ``signing``: no lease any more."""
    request.signing_owner = None
    request.signing_lease_until = None


def _readdress(session: Session, request: SigningRequest) -> None:
    """A request going back to ``pending_approval`` on an organisation's credential
    waits for whoever keeps its token now (a handover may have come in between)."""
    credential = session.get(Credential, request.credential_id)
    if credential is not None and credential.organisation_id is not None:
        request.signer_id = credential.user_id


def chain_der(chain_pem: str) -> list[bytes]:
    """DER bytes of each certificate in ``chain_pem`` (PEM, possibly empty)."""
    if not chain_pem.strip():
        return []
    return [
        c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(chain_pem.encode())
    ]
