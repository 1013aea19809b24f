"""SQLAlchemy models: users, integration clients, credentials, signing requests,
mobile sessions, devices and the audit log. Times are stored as UTC."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "DEFAULT_CLIENT_SCOPES",
    "ApprovalNonce",
    "AuditCheckpoint",
    "AuditEntry",
    "CallbackDelivery",
    "Base",
    "Credential",
    "Device",
    "IntegrationClient",
    "MobileSession",
    "Organisation",
    "SigningRequest",
    "User",
]


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    """Declarative base of every table."""


class Organisation(Base):
    """A state body (unit) whose digital seal is its own credential, kept by one of its
    clerks (docs/vn-signature-format.md). ``seal_image``: PNG with transparency,
    drawn at its real size, ``seal_diameter_mm`` millimetres across."""

    __tablename__ = "organisations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    seal_image: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    seal_diameter_mm: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class User(Base):
    """A person: leader, clerk or admin, of an organisation or none.
    ``totp_enrolled_at``: when an authenticator was confirmed; its secret is the
    bridge's alone (:mod:`hsm_bridge.sam.signers`)."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    organisation_id: Mapped[str | None] = mapped_column(
        ForeignKey("organisations.id"), nullable=True, index=True
    )
    password_hash: Mapped[str] = mapped_column(String(200))
    totp_enrolled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # PNG with transparency, drawn in the user's visible signatures (signature_images.py)
    signature_image: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # a one-time password (``users add``) must be replaced at the first sign-in
    password_must_change: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    # a disabled user cannot sign in; their sessions end and nothing new is addressed to them
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


DEFAULT_CLIENT_SCOPES = "requests:submit requests:read validations"


class IntegrationClient(Base):
    """A document system. Its API key is stored only as a SHA-256 hash."""

    __tablename__ = "integration_clients"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    api_key_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    # signs status callbacks (HMAC-SHA256); Fernet-sealed, shown once at creation
    callback_secret: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # space-separated: requests:submit requests:read validations
    scopes: Mapped[str] = mapped_column(
        String(200), default=DEFAULT_CLIENT_SCOPES, server_default=DEFAULT_CLIENT_SCOPES
    )
    key_rotated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Credential(Base):
    """A signing credential: a key on a token (serial + CKA_ID) and its certificate.
    Never a slot number. A personal credential has no ``organisation_id``; an
    organisation's (its seal) has one, and ``user_id`` is the clerk who keeps its token
    and alone may sign with it."""

    __tablename__ = "credentials"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    organisation_id: Mapped[str | None] = mapped_column(
        ForeignKey("organisations.id"), nullable=True
    )
    token_serial: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(128))  # CKA_ID, hex
    mechanism: Mapped[str] = mapped_column(String(32))
    # "stored": the bridge keeps the token PIN; "signer": the signer types it with each
    # approval (hsm_bridge never stores it).
    pin_policy: Mapped[str] = mapped_column(String(16), default="stored", server_default="stored")
    certificate_der: Mapped[bytes] = mapped_column(LargeBinary)
    certificate_sha256: Mapped[str] = mapped_column(String(64))
    chain_pem: Mapped[str] = mapped_column(Text, default="")
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class SigningRequest(Base):
    """One document to be signed by one signer; ``status`` follows
    :mod:`gateway.requests.lifecycle`. A step of a workflow
    (:mod:`gateway.requests.workflows`) names it
    (``workflow``), the request that started it (``workflow_id``, the first step's id)
    and its ``step`` (1-based); ``organisation_id`` is set when the organisation signs
    (its clerk is ``signer_id``)."""

    __tablename__ = "signing_requests"
    __table_args__ = (UniqueConstraint("client_id", "idempotency_key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("integration_clients.id"))
    signer_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    credential_id: Mapped[str] = mapped_column(ForeignKey("credentials.id"))
    organisation_id: Mapped[str | None] = mapped_column(
        ForeignKey("organisations.id"), nullable=True
    )
    workflow: Mapped[str | None] = mapped_column(String(32), nullable=True)
    workflow_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    step: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    status: Mapped[str] = mapped_column(String(24), index=True)
    failure_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    document_sha256: Mapped[str] = mapped_column(String(64))
    document_size: Mapped[int] = mapped_column(BigInteger)
    page_count: Mapped[int] = mapped_column(Integer)
    warnings: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of codes
    parameters: Mapped[str] = mapped_column(Text)  # canonical JSON
    parameters_sha256: Mapped[str] = mapped_column(String(64))
    # the credential's certificate (DER, SHA-256 hex) and mechanism, fixed at submission:
    # the signer approves a signature with that certificate
    certificate_sha256: Mapped[str] = mapped_column(String(64))
    mechanism: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    submission_sha256: Mapped[str] = mapped_column(String(64))
    callback_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    signed_document_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # the PAdES level the signature reached, as the gateway judged its output (B-B … B-LTA)
    pades_level_reached: Mapped[str | None] = mapped_column(String(8), nullable=True)
    # what the document system calls the document (shown to the signer, in callbacks,
    # the download's file name), each page's size as displayed (JSON [[w, h], ...]) and
    # where this signature shows (JSON [page, [x1, y1, x2, y2]], points; null: unseen)
    title: Mapped[str | None] = mapped_column(String(300), nullable=True)
    page_sizes: Mapped[str | None] = mapped_column(Text, nullable=True)
    signature_place: Mapped[str | None] = mapped_column(Text, nullable=True)
    # while ``signing``: the process signing it and until when (recovery takes over
    # only a lease that ran out: gateway.signing.pipeline)
    signing_owner: Mapped[str | None] = mapped_column(String(80), nullable=True)
    signing_lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class MobileSession(Base):
    """A short-lived, revocable bearer session of a phone or tablet; only the token's
    SHA-256 is stored."""

    __tablename__ = "mobile_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Device(Base):
    """A signer's phone or tablet: its FCM registration token (``stale`` once FCM says it
    is dead) and the public half of the P-256 key it generated at enrolment
    (``public_key_der``: DER SubjectPublicKeyInfo) with which it signs decisions. A
    revoked device (``revoked_at``) gets no push and its signatures are refused."""

    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    platform: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100), default="", server_default="")
    push_token: Mapped[str] = mapped_column(Text)
    public_key_der: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # ``device_key`` (a native app's P-256 key: public_key_der) or ``passkey`` (WebAuthn:
    # its key lives at the bridge, which verifies its assertions)
    kind: Mapped[str] = mapped_column(String(16), default="device_key", server_default="device_key")
    stale: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ApprovalNonce(Base):
    """A server nonce (pushed with a new request, or fetched by the app) that one signed
    decision of ``user_id`` may carry; single-use (``used_at``) and short-lived."""

    __tablename__ = "approval_nonces"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AuditEntry(Base):
    """One audit record; ``entry_hash`` = SHA-256 over the previous hash and this
    entry's canonical JSON (a hash chain, see :mod:`gateway.audit.log`)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    client_address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="{}")
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """The audit chain's head at ``entry_id`` signed by the gateway's Ed25519 key
    (``signature``: base64; see :mod:`gateway.audit.checkpoints`)."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(Integer, unique=True)
    entry_hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))


class CallbackDelivery(Base):
    """A status callback owed to a document system: written in the same transaction as
    the state change it reports (a transactional outbox), delivered with retries until
    ``delivered_at``; ``body`` is the exact JSON that is POSTed and signed."""

    __tablename__ = "callback_deliveries"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("signing_requests.id"), index=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("integration_clients.id"))
    url: Mapped[str] = mapped_column(String(2000))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)
