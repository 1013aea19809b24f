"""Use-case tests without HTTP: the gateway's use cases (submission, decisions, the
signing pipeline, administration) on a fresh SQLite installation, against
:class:`FakeBridge` (the bridge's interface, in memory) and a :class:`FixedClock`.

The fake stands in for the key tier only where the use case is tested, not the bridge:
it builds signatures with the bridge's own builder and software keys, but the bridge's
own checks (SAD cryptography, its signer records, PKCS#11) run on SoftHSM in the
integration tests. Document work runs in real document workers."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from gateway.admin.installation import init_installation
from gateway.approvals.decisions import SigningService
from gateway.config import Settings, load_settings
from gateway.db.database import Database
from gateway.db.models import (
    AuditEntry,
    Credential,
    IntegrationClient,
    Organisation,
    SigningRequest,
    User,
)
from gateway.requests.document_store import DocumentStore
from gateway.requests.sandbox import DocumentSandbox, SandboxLimits
from gateway.requests.submission import Submissions
from hsm_bridge import BridgeError, CredentialRef, SignRequest
from hsm_bridge.credentials import SignatureMechanism
from hsm_bridge.errors import AuthorizationRefused, RefusalReason
from hsm_bridge.interface import OnSigned
from hsm_bridge.pades import SignatureParameters, SignerIdentity, build_signed_pdf
from hsm_bridge.sam.authorization import AuthorizationItem, AuthorizationRequest, TotpFactor
from signing_gateway.demo.images import DEMO_SEAL_DIAMETER_MM, demo_seal_png, demo_signature_png
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
class SoftwareCredential:
    """A P-256 key in memory and its self-signed certificate, standing in for a token's
    key: what the fake bridge signs with."""

    key: ec.EllipticCurvePrivateKey
    certificate_der: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.certificate_der).hexdigest()

    def identity(self) -> SignerIdentity:
        return SignerIdentity(self.certificate_der, (), SignatureMechanism.ECDSA_SHA256)

    def sign_digest(self, digest: bytes) -> bytes:
        return self.key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))


def software_credential(common_name: str, moment: dt.datetime) -> SoftwareCredential:
    """A P-256 key and a self-signed signing certificate for ``common_name``, valid from
    a day before ``moment`` for a year."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(moment - dt.timedelta(days=1))
        .not_valid_after(moment + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return SoftwareCredential(key, certificate.public_bytes(serialization.Encoding.DER))


@dataclass
class FakeBridge:
    """The bridge's interface in memory. It accepts the TOTP code :data:`GOOD_OTP` and
    refuses any other as the bridge does (``totp_invalid``); it issues one SAD per item
    (``sad:<request id>``, keeping the item's approved parameters) and signs as the
    bridge does, with :func:`hsm_bridge.pades.build_signed_pdf` at its clock and the
    software key of the approved certificate; or answers ``failures[request id]``
    instead. Every call is kept."""

    keys: dict[str, SoftwareCredential]
    clock: FixedClock
    failures: dict[str, BridgeError] = field(default_factory=dict)
    authorized: list[AuthorizationRequest] = field(default_factory=list)
    signed: list[SignRequest] = field(default_factory=list)
    checked_codes: list[str] = field(default_factory=list)
    approved: dict[str, AuthorizationItem] = field(default_factory=dict)

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
        for item in request.items:
            self.approved[item.request_id] = item
        return [f"sad:{item.request_id}" for item in request.items]

    def check_totp(self, signer: str, otp: str) -> None:
        self._check(otp)

    def sign_many(
        self, requests: Sequence[SignRequest], on_signed: OnSigned | None = None
    ) -> list[bytes | BridgeError]:
        answers: list[bytes | BridgeError] = []
        for request in requests:
            self.signed.append(request)
            request_id = request.activation.removeprefix("sad:")
            failure = self.failures.get(request_id)
            answer = failure if failure is not None else self._build(request_id, request)
            if on_signed is not None and isinstance(answer, bytes):
                on_signed(len(answers), answer)
            answers.append(answer)
        return answers

    def _build(self, request_id: str, request: SignRequest) -> bytes:
        item = self.approved[request_id]
        params = SignatureParameters.from_object(item.parameters)
        credential = self.keys[item.certificate_sha256]
        return build_signed_pdf(
            request.document,
            params,
            credential.identity(),
            image=request.images.get(params.image_sha256) if params.image_sha256 else None,
            signing_time=self.clock(),
            sign_digest=credential.sign_digest,
        )

    def certificate(self, credential: CredentialRef) -> bytes:
        # the use cases take a credential's certificate from the database, never from
        # the bridge: a call here is a defect of the code under test
        raise AssertionError("a use case asked the bridge for a certificate")


@dataclass
class World:
    """One fresh installation's use cases, their fake bridge and their clock: a leader
    (``leader``, with a handwritten signature image) of the organisation ``stc``, whose
    seal is kept by the clerk ``clerk``."""

    settings: Settings
    db: Database
    store: DocumentStore
    bridge: FakeBridge
    clock: FixedClock
    submissions: Submissions
    service: SigningService
    client: IntegrationClient
    leader: User
    clerk: User
    credential: Credential

    def submit(
        self,
        lines: Sequence[str] = ("Giấy mời họp",),
        *,
        document: bytes | None = None,
        params: SignatureParameters | None = None,
        **options: object,
    ) -> SigningRequest:
        """A request for the leader (an invisible signature on a fresh one-page PDF by
        default); ``options`` go to :meth:`Submissions.submit`."""
        return self.submissions.submit(
            self.client,
            document if document is not None else sample_pdf(list(lines)),
            self.leader.username,
            params or SignatureParameters(reason="Phê duyệt"),
            idempotency_key=None,
            client_address="192.0.2.10",
            **options,  # type: ignore[arg-type]
        ).request

    def status(self, request_id: str) -> str:
        with self.db.transaction() as session:
            request = session.get(SigningRequest, request_id)
            assert request is not None
            return request.status

    def request(self, request_id: str) -> SigningRequest:
        with self.db.transaction() as session:
            request = session.get(SigningRequest, request_id)
            assert request is not None
            session.expunge(request)
            return request

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
    """A new installation in ``tmp_path`` (SQLite): the leader, the organisation and its
    clerk, their credentials (software keys the fake bridge signs with) and one
    integration client; the use cases wired to the fake bridge and a fixed clock."""
    settings = load_settings(tmp_path, database_url=f"sqlite:///{tmp_path / 'gateway.db'}")
    init_installation(settings)
    db = Database(settings.effective_database_url)
    store = DocumentStore(settings.documents_dir)
    clock = FixedClock()
    personal = software_credential("Nguyễn Văn An", clock())
    seal = software_credential("Sở Tài chính tỉnh Hà Nam", clock())
    bridge = FakeBridge({personal.sha256: personal, seal.sha256: seal}, clock)
    with db.transaction() as session:
        organisation = Organisation(
            id=str(uuid.uuid4()),
            name="stc",
            display_name="Sở Tài chính tỉnh Hà Nam",
            seal_image=demo_seal_png(),
            seal_diameter_mm=DEMO_SEAL_DIAMETER_MM,
            created_at=clock(),
        )
        leader = _user("leader", "Nguyễn Văn An", "leader", organisation, clock())
        leader.signature_image = demo_signature_png()
        clerk = _user("clerk", "Trần Thị Bình", "clerk", organisation, clock())
        client = IntegrationClient(
            id=str(uuid.uuid4()), name="eoffice", api_key_sha256="0" * 64, created_at=clock()
        )
        session.add_all([organisation, leader, clerk, client])
        session.flush()
        credential = _credential("cred-leader", leader, personal, None, clock())
        session.add(credential)
        session.add(_credential("cred-seal", clerk, seal, organisation, clock()))
    sandbox = shared_sandbox()
    return World(
        settings=settings,
        db=db,
        store=store,
        bridge=bridge,
        clock=clock,
        submissions=Submissions(settings, db, store, sandbox, clock=clock),
        service=SigningService(settings, db, store, bridge, sandbox, clock=clock),  # type: ignore[arg-type]
        client=client,
        leader=leader,
        clerk=clerk,
        credential=credential,
    )


def _user(
    username: str, name: str, role: str, organisation: Organisation, now: dt.datetime
) -> User:
    return User(
        id=str(uuid.uuid4()),
        username=username,
        display_name=name,
        role=role,
        organisation_id=organisation.id,
        password_hash="-",
        created_at=now,
    )


def _credential(
    credential_id: str,
    user: User,
    key: SoftwareCredential,
    organisation: Organisation | None,
    now: dt.datetime,
) -> Credential:
    return Credential(
        id=credential_id,
        user_id=user.id,
        organisation_id=organisation.id if organisation is not None else None,
        token_serial=f"soft-{credential_id}",
        key_id="01",
        mechanism=SignatureMechanism.ECDSA_SHA256.value,
        certificate_der=key.certificate_der,
        certificate_sha256=key.sha256,
        chain_pem="",
        created_at=now,
    )
