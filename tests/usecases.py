"""Use-case tests without HTTP: the gateway's use cases (submission, decisions, the
signing pipeline, administration) on a fresh SQLite installation, against
:class:`FakeBridge` (the bridge's interface, in memory) and a :class:`FixedClock`.

The fake stands in for the key tier only where the use case is tested, not the bridge:
the bridge's own checks run on SoftHSM in the integration tests."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from gateway.admin.installation import init_installation
from gateway.approvals.decisions import SigningService
from gateway.config import Settings, load_settings
from gateway.db.database import Database
from gateway.db.models import AuditEntry, Credential, IntegrationClient, SigningRequest, User
from gateway.requests.document_store import DocumentStore
from gateway.requests.sandbox import DocumentSandbox, SandboxLimits
from gateway.requests.submission import Submissions
from hsm_bridge import BridgeError, CredentialRef, SignRequest
from hsm_bridge.credentials import SignatureMechanism
from hsm_bridge.errors import AuthorizationRefused, RefusalReason
from hsm_bridge.pades import SignatureParameters
from hsm_bridge.sam.authorization import AuthorizationRequest, TotpFactor
from signing_gateway.demo.sample_pdf import sample_pdf

# 2 March 2026, 08:00 UTC (15:00 in Hà Nội): the moment every use-case test starts at.
START = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
GOOD_OTP = "246810"


class FixedClock:
    """A clock that moves only when told (``advance``): aware UTC."""

    def __init__(self, now: dt.datetime = START) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@dataclass
class FakeBridge:
    """The bridge's interface in memory. It accepts the TOTP code :data:`GOOD_OTP` and
    refuses any other as the bridge does (``totp_invalid``); it issues one SAD per
    item (``sad:<request id>``) and "signs" by appending a comment to the approved
    document, or answers ``failures[request id]`` instead. Every call is kept."""

    certificate_der: bytes
    failures: dict[str, BridgeError] = field(default_factory=dict)
    authorized: list[AuthorizationRequest] = field(default_factory=list)
    signed: list[SignRequest] = field(default_factory=list)
    checked_codes: list[str] = field(default_factory=list)

    def _check(self, otp: str) -> None:
        self.checked_codes.append(otp)
        if otp != GOOD_OTP:
            raise AuthorizationRefused("wrong code", reason=RefusalReason.TOTP_INVALID)

    def authorize(
        self, request: AuthorizationRequest, *, token_serials: frozenset[str] | None = None
    ) -> list[str | None]:
        assert isinstance(request.factor, TotpFactor), "these tests approve with TOTP"
        self._check(request.factor.otp)
        self.authorized.append(request)
        return [f"sad:{item.request_id}" for item in request.items]

    def check_totp(self, signer: str, otp: str) -> None:
        self._check(otp)

    def sign_many(self, requests: Sequence[SignRequest]) -> list[bytes | BridgeError]:
        answers: list[bytes | BridgeError] = []
        for request in requests:
            self.signed.append(request)
            request_id = request.activation.removeprefix("sad:")
            failure = self.failures.get(request_id)
            answers.append(
                failure
                if failure is not None
                else request.document + f"\n% signed {request_id}\n".encode()
            )
        return answers

    def certificate(self, credential: CredentialRef) -> bytes:
        return self.certificate_der


def certificate_at(moment: dt.datetime, *, days: int = 365) -> bytes:
    """A self-signed P-256 signing certificate (DER) valid from a day before ``moment``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Nguyễn Văn An")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(moment - dt.timedelta(days=1))
        .not_valid_after(moment + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.DER)


@dataclass
class World:
    """One fresh installation's use cases, their fake bridge and their clock."""

    settings: Settings
    db: Database
    store: DocumentStore
    bridge: FakeBridge
    clock: FixedClock
    submissions: Submissions
    service: SigningService
    client: IntegrationClient
    leader: User
    credential: Credential

    def submit(self, lines: Sequence[str] = ("Giấy mời họp",)) -> SigningRequest:
        """An invisible signature requested for the leader on a fresh one-page PDF."""
        return self.submissions.submit(
            self.client,
            sample_pdf(list(lines)),
            self.leader.username,
            SignatureParameters(reason="Phê duyệt"),
            idempotency_key=None,
            client_address="192.0.2.10",
        ).request

    def status(self, request_id: str) -> str:
        with self.db.transaction() as session:
            request = session.get(SigningRequest, request_id)
            assert request is not None
            return request.status

    def audit(self, request_id: str) -> list[tuple[str, dt.datetime]]:
        """The request's audit entries: (action, time)."""
        with self.db.transaction() as session:
            entries = session.scalars(
                select(AuditEntry)
                .where(AuditEntry.request_id == request_id)
                .order_by(AuditEntry.id)
            )
            return [(e.action, e.at) for e in entries]


_SANDBOX: list[DocumentSandbox] = []


def shared_sandbox() -> DocumentSandbox:
    """One pool of document workers for every use-case test (workers start once)."""
    if not _SANDBOX:
        _SANDBOX.append(DocumentSandbox(SandboxLimits(workers=1)))
    return _SANDBOX[0]


def make_world(tmp_path: Path) -> World:
    """A new installation in ``tmp_path`` (SQLite) with one leader, one credential and
    one integration client, its use cases wired to a fake bridge and a fixed clock."""
    settings = load_settings(tmp_path, database_url=f"sqlite:///{tmp_path / 'gateway.db'}")
    init_installation(settings)
    db = Database(settings.effective_database_url)
    store = DocumentStore(settings.documents_dir)
    clock = FixedClock()
    der = certificate_at(clock())
    bridge = FakeBridge(der)
    with db.transaction() as session:
        leader = User(
            id=str(uuid.uuid4()),
            username="leader",
            display_name="Nguyễn Văn An",
            role="leader",
            password_hash="-",
            login_failures=0,
            created_at=clock(),
        )
        credential = Credential(
            id="cred-leader",
            user_id=leader.id,
            token_serial="0000aaaa",
            key_id="01",
            mechanism=SignatureMechanism.ECDSA_SHA256.value,
            certificate_der=der,
            certificate_sha256=hashlib.sha256(der).hexdigest(),
            chain_pem="",
            created_at=clock(),
        )
        client = IntegrationClient(
            id=str(uuid.uuid4()), name="eoffice", api_key_sha256="0" * 64, created_at=clock()
        )
        session.add(leader)
        session.flush()
        session.add_all([credential, client])
    return World(
        settings=settings,
        db=db,
        store=store,
        bridge=bridge,
        clock=clock,
        submissions=Submissions(settings, db, store, shared_sandbox(), clock=clock),
        service=SigningService(settings, db, store, bridge, shared_sandbox(), clock=clock),
        client=client,
        leader=leader,
        credential=credential,
    )
