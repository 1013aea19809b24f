"""Test data written straight to the installation's database and its bridge's signer
registry: extra signers sharing a demo token key (each with its own TOTP secret, so
approvals never wait for a new TOTP step), and extra integration clients."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyotp
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.db.database import Database
from gateway.db.models import Credential, IntegrationClient, User
from gateway.passwords import hash_password
from gateway.secrets_at_rest import InstallationKeys, SecretBox
from hsm_bridge.credentials import CredentialRef
from hsm_bridge.sam.signers import SignerRegistry

# The session's test installation (set by conftest's ``installation`` fixture).
INSTALLATION_ENV = "SGW_TEST_INSTALLATION"


def bridge_registry() -> SignerRegistry:
    """The signer registry of the test installation's in-process bridge, as its
    administrator's CLI opens it (``signing-gateway bridge bind ...``)."""
    from gateway.bridges import local_registry
    from gateway.config import load_settings

    settings = load_settings(Path(os.environ[INSTALLATION_ENV]))
    return local_registry(settings, InstallationKeys.load(settings.secrets_dir))


@dataclass
class TestSigner:
    username: str
    password: str
    totp_secret: str
    credential_id: str
    user_id: str

    def otp(self, offset_steps: int = 0) -> str:
        totp = pyotp.TOTP(self.totp_secret)
        return totp.at(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30 * offset_steps))


def demo_credential(session: Session, label: str) -> Credential:
    """The demo installation's credential on the token labelled ``label`` (leader1,
    clerk1, or org1: the organisation's, kept by clerk1)."""
    return session.scalars(
        select(Credential)
        .where(Credential.id.like(f"cred-{label}-%"))
        .order_by(Credential.created_at)
    ).first()


def make_signer(
    db: Database, box: SecretBox, *, like: str = "leader1", revoked: bool = False
) -> TestSigner:
    """A new signer whose credential is the key of user ``like`` (or of the demo token
    labelled ``like``: same token, same CKA_ID, same certificate)."""
    now = dt.datetime.now(dt.UTC)
    username = f"t{secrets.token_hex(5)}"
    password = secrets.token_urlsafe(10)
    totp_secret = pyotp.random_base32(32)
    with db.transaction() as session:
        template = session.scalars(
            select(Credential)
            .join(User, User.id == Credential.user_id)
            .where(User.username == like, Credential.organisation_id.is_(None))
        ).first() or demo_credential(session, like)
        user = User(
            id=str(uuid.uuid4()),
            username=username,
            display_name=f"Người thử {username}",
            role="leader",
            password_hash=hash_password(password),
            totp_enrolled_at=now,
            created_at=now,
        )
        session.add(user)
        session.flush()
        credential = Credential(
            id=f"cred-{username}",
            user_id=user.id,
            token_serial=template.token_serial,
            key_id=template.key_id,
            mechanism=template.mechanism,
            pin_policy=template.pin_policy,
            certificate_der=template.certificate_der,
            certificate_sha256=template.certificate_sha256,
            chain_pem=template.chain_pem,
            revoked_at=now if revoked else None,
            created_at=now,
        )
        session.add(credential)
    registry = bridge_registry()
    registry.set_totp(username, totp_secret)
    registry.bind_credential(
        username, CredentialRef(template.token_serial, bytes.fromhex(template.key_id))
    )
    return TestSigner(username, password, totp_secret, credential.id, user.id)


def make_client(db: Database) -> str:
    """A new integration client; returns its API key."""
    api_key = "sgw_" + secrets.token_urlsafe(24)
    with db.transaction() as session:
        session.add(
            IntegrationClient(
                id=str(uuid.uuid4()),
                name=f"client-{secrets.token_hex(3)}",
                api_key_sha256=hashlib.sha256(api_key.encode()).hexdigest(),
                created_at=dt.datetime.now(dt.UTC),
            )
        )
    return api_key


def make_client_with_callbacks(db: Database, box: SecretBox) -> tuple[str, str]:
    """A new integration client with a callback secret; returns (API key, secret)."""
    api_key = "sgw_" + secrets.token_urlsafe(24)
    secret = "whsec_" + secrets.token_urlsafe(24)
    with db.transaction() as session:
        session.add(
            IntegrationClient(
                id=str(uuid.uuid4()),
                name=f"client-{secrets.token_hex(3)}",
                api_key_sha256=hashlib.sha256(api_key.encode()).hexdigest(),
                callback_secret=box.seal(secret),
                created_at=dt.datetime.now(dt.UTC),
            )
        )
    return api_key, secret


def enrolment_code(db: Database, username: str) -> str:
    """A one-time enrolment code (``code_id.secret``) for ``username``, as the
    bridge's administrator issues it (``signing-gateway devices enrolment-code``)."""
    from gateway.approvals import devices

    now = dt.datetime.now(dt.UTC)
    issued = bridge_registry().issue_enrolment_code(username, now=now, ttl_seconds=600)
    with db.transaction() as session:
        user = session.scalar(select(User).where(User.username == username))
        devices.record_enrolment_code(session, user, issued, actor="user:admin", now=now)
    return issued.text


def add_bare_user(session, user_id: str, now: dt.datetime) -> None:
    """A minimal user row (no password that works, no TOTP) for tests on an empty
    database; flushed, so that rows referring to it can follow."""
    session.add(
        User(
            id=user_id,
            username=user_id,
            display_name=user_id,
            role="leader",
            password_hash="x",
            created_at=now,
        )
    )
    session.flush()


@dataclass(frozen=True, slots=True)
class TestOrganisation:
    """An organisation made for one test: its short name, its leader (with a blue
    signature image) and the clerk who keeps its key (the demo org1 token's), each with
    a personal credential too."""

    name: str
    display_name: str
    leader: TestSigner
    leader_name: str
    clerk: TestSigner
    credential_id: str


def make_organisation(db: Database, box: SecretBox, *, seal_mm: float = 36.0) -> TestOrganisation:
    """A new organisation with the demo seal (``seal_mm`` across), a leader and a clerk
    who keeps the organisation's key, the bridge told that the clerk signs with it."""
    from gateway.db.models import Organisation
    from signing_gateway.demo.images import demo_seal_png, demo_signature_png

    now = dt.datetime.now(dt.UTC)
    suffix = secrets.token_hex(3)
    name, display_name = f"org-{suffix}", f"Sở Thử nghiệm {suffix}"
    leader = make_signer(db, box)
    clerk = make_signer(db, box, like="clerk1")
    with db.transaction() as session:
        organisation = Organisation(
            id=str(uuid.uuid4()),
            name=name,
            display_name=display_name,
            seal_image=demo_seal_png(),
            seal_diameter_mm=seal_mm,
            created_at=now,
        )
        session.add(organisation)
        session.flush()
        lead = session.get(User, leader.user_id)
        lead.organisation_id = organisation.id
        lead.display_name = f"Nguyễn Thị Ánh {suffix}"
        lead.signature_image = demo_signature_png()
        keeper = session.get(User, clerk.user_id)
        keeper.role, keeper.organisation_id = "clerk", organisation.id
        seal = demo_credential(session, "org1")
        credential = Credential(
            id=f"cred-{name}",
            user_id=keeper.id,
            organisation_id=organisation.id,
            token_serial=seal.token_serial,
            key_id=seal.key_id,
            mechanism=seal.mechanism,
            pin_policy=seal.pin_policy,
            certificate_der=seal.certificate_der,
            certificate_sha256=seal.certificate_sha256,
            chain_pem=seal.chain_pem,
            created_at=now,
        )
        session.add(credential)
    bridge_registry().bind_credential(
        clerk.username, CredentialRef(seal.token_serial, bytes.fromhex(seal.key_id))
    )
    return TestOrganisation(
        name, display_name, leader, f"Nguyễn Thị Ánh {suffix}", clerk, credential.id
    )
