"""The administration API's bodies and answers (``/admin/v1``), snake_case JSON; each
answer is built from the gateway's use-case result of the same name."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

from gateway.admin.clients import ClientSummary
from gateway.admin.listings import CredentialSummary, DeviceSummary, OrganisationSummary
from gateway.admin.tokens import KeyHolder, TokenInventory
from gateway.admin.users import UserSummary
from gateway.audit.search import AuditRecord

__all__ = [
    "AuditEntryView",
    "AuditPageView",
    "ClientAdded",
    "ClientBody",
    "ClientKey",
    "ClientSecret",
    "ClientView",
    "CredentialBody",
    "CredentialView",
    "HandoverBody",
    "HandoverView",
    "PinPolicyBody",
    "SealView",
    "TokenKeyView",
    "TokenView",
    "DeviceView",
    "OrganisationView",
    "UserAdded",
    "UserBody",
    "UserPatch",
    "UserView",
]

Role = Literal["leader", "clerk", "admin"]
Scope = Literal["requests:submit", "requests:read", "validations"]


class UserView(BaseModel):
    """An account: ``organisation`` is its short name; ``devices`` and ``credentials``
    count the live (unrevoked) ones."""

    username: str
    display_name: str
    role: str
    organisation: str | None
    disabled: bool
    password_must_change: bool
    devices: int
    credentials: int
    created_at: dt.datetime

    @classmethod
    def of(cls, user: UserSummary) -> UserView:
        return cls(
            username=user.username,
            display_name=user.display_name,
            role=user.role,
            organisation=user.organisation,
            disabled=user.disabled,
            password_must_change=user.password_must_change,
            devices=user.devices,
            credentials=user.credentials,
            created_at=user.created_at,
        )


class UserBody(BaseModel):
    """A new account: its username, full name (as on the certificate), role and
    organisation (short name)."""

    username: str = Field(min_length=1, max_length=64)
    display_name: str = Field(min_length=1, max_length=200)
    role: Role
    organisation: str | None = Field(default=None, min_length=1, max_length=64)


class UserPatch(BaseModel):
    """What changes; a member left out stays; ``organisation: null`` removes it."""

    display_name: str | None = Field(default=None, min_length=1, max_length=200)
    role: Role | None = None
    organisation: str | None = Field(default=None, min_length=1, max_length=64)


class UserAdded(BaseModel):
    """The account and its one-time password (shown once; to be changed at the first
    sign-in)."""

    user: UserView
    initial_password: str


class DeviceView(BaseModel):
    """A device (``device_key``) or passkey of a user, as registered at enrolment."""

    id: str
    kind: str
    platform: str
    name: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None

    @classmethod
    def of(cls, device: DeviceSummary) -> DeviceView:
        return cls(
            id=device.id,
            kind=device.kind,
            platform=device.platform,
            name=device.name,
            created_at=device.created_at,
            revoked_at=device.revoked_at,
        )


class ClientView(BaseModel):
    """An integration client (a document system), without its secrets."""

    id: str
    name: str
    scopes: list[str]
    created_at: dt.datetime
    key_rotated_at: dt.datetime | None
    revoked_at: dt.datetime | None
    has_callback_secret: bool

    @classmethod
    def of(cls, client: ClientSummary) -> ClientView:
        return cls(
            id=client.id,
            name=client.name,
            scopes=list(client.scopes),
            created_at=client.created_at,
            key_rotated_at=client.key_rotated_at,
            revoked_at=client.revoked_at,
            has_callback_secret=client.has_callback_secret,
        )


class ClientBody(BaseModel):
    """A new integration client: its name, its key's scopes (all three by default) and
    whether its status callbacks are signed with a callback secret."""

    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] | None = Field(default=None, min_length=1)
    callback_secret: bool = True


class ClientAdded(BaseModel):
    """The new client, its API key and its callback secret (each shown once)."""

    client: ClientView
    api_key: str
    callback_secret: str | None


class ClientKey(BaseModel):
    """The client and its new API key (shown once; the old one no longer works)."""

    client: ClientView
    api_key: str


class ClientSecret(BaseModel):
    """The client and its new callback secret (shown once)."""

    client: ClientView
    callback_secret: str


class CredentialView(BaseModel):
    """A registered credential and who signs with it (for a seal: the keeper, and the
    ``organisation``'s short name); ``key_id``: CKA_ID, hex; ``subject``: the
    certificate's common name."""

    id: str
    username: str
    display_name: str
    organisation: str | None
    token_serial: str
    key_id: str
    mechanism: str
    pin_policy: str
    subject: str
    not_after: dt.datetime
    revoked_at: dt.datetime | None

    @classmethod
    def of(cls, credential: CredentialSummary) -> CredentialView:
        return cls(
            id=credential.id,
            username=credential.username,
            display_name=credential.display_name,
            organisation=credential.organisation,
            token_serial=credential.token_serial,
            key_id=credential.key_id,
            mechanism=credential.mechanism,
            pin_policy=credential.pin_policy,
            subject=credential.subject,
            not_after=credential.not_after,
            revoked_at=credential.revoked_at,
        )


class OrganisationView(BaseModel):
    """An organisation: short name, full name, whether its seal image is kept, and the
    clerk who keeps its key (username, or null)."""

    name: str
    display_name: str
    has_seal_image: bool
    keeper: str | None

    @classmethod
    def of(cls, unit: OrganisationSummary) -> OrganisationView:
        return cls(
            name=unit.name,
            display_name=unit.display_name,
            has_seal_image=unit.has_seal_image,
            keeper=unit.keeper,
        )


class AuditEntryView(BaseModel):
    """One audit entry: when, who (``admin:cli``, ``user:NAME``, ``client:NAME``,
    ``system``), what, for which signing request, and its details."""

    id: int
    at: dt.datetime
    actor: str
    action: str
    request_id: str | None
    detail: dict[str, Any]

    @classmethod
    def of(cls, entry: AuditRecord) -> AuditEntryView:
        return cls(
            id=entry.id,
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            request_id=entry.request_id,
            detail=entry.detail,
        )


class AuditPageView(BaseModel):
    """A page of entries, newest first; ``next_cursor`` fetches the next (null: none)."""

    items: list[AuditEntryView]
    next_cursor: str | None


Mechanism = Literal["rsa_pkcs_sha256", "rsa_pss_sha256", "ecdsa_sha256"]
PinPolicy = Literal["stored", "signer"]


class CredentialBody(BaseModel):
    """A key found on a token (``GET /admin/v1/tokens``) to register as ``username``'s
    credential (for a seal: ``organisation``, kept by ``username``, one of its clerks).
    ``confirm_holder`` repeats the name the certificate gives when it is not the user's
    (or the organisation's): without it such a key is refused
    (``certificate_holder_mismatch``)."""

    username: str = Field(min_length=1, max_length=64)
    token_serial: str = Field(min_length=1, max_length=64)
    key_id: str = Field(min_length=2, max_length=128, pattern="^[0-9A-Fa-f]+$")
    mechanism: Mechanism | None = None
    pin_policy: PinPolicy = "stored"
    organisation: str | None = Field(default=None, min_length=1, max_length=64)
    confirm_holder: str | None = Field(default=None, min_length=1, max_length=200)


class PinPolicyBody(BaseModel):
    """``stored``: the bridge keeps the token's PIN; ``signer``: the signer types it with
    each approval."""

    pin_policy: PinPolicy


class KeyHolderView(BaseModel):
    """A live credential registered for a key, and who signs with it."""

    credential_id: str
    username: str
    display_name: str
    organisation: str | None

    @classmethod
    def of(cls, holder: KeyHolder) -> KeyHolderView:
        return cls(
            credential_id=holder.credential_id,
            username=holder.username,
            display_name=holder.display_name,
            organisation=holder.organisation,
        )


class TokenKeyView(BaseModel):
    """A key on a token: CKA_ID (hex), type (``rsa``, ``ec``) and size in bits, its
    certificate's subject and expiry (ISO 8601) when one is stored beside it, ``status``
    (``ok``, ``no_certificate``, ``ambiguous``, ``key_mismatch``) with the problems
    found, and the live credentials registered for it (empty: nobody's yet)."""

    key_id: str
    label: str
    key_type: str
    key_bits: int
    subject: str | None
    not_after: str | None
    status: str
    problems: list[str]
    holders: list[KeyHolderView]


class TokenView(BaseModel):
    """A token the bridge sees: label, serial, maker and model, ``state`` (``ok``,
    ``removed``...), ``error`` (why its keys could not be read, e.g. ``pin_required``),
    and its keys."""

    label: str
    serial: str
    manufacturer: str
    model: str
    present: bool
    state: str
    error: str | None
    keys: list[TokenKeyView]

    @classmethod
    def of(cls, listed: TokenInventory) -> TokenView:
        token = listed.token
        keys = [
            TokenKeyView(
                key_id=k.key_id,
                label=k.label,
                key_type=k.key_type,
                key_bits=k.key_bits,
                subject=k.subject,
                not_after=k.not_after,
                status=k.status,
                problems=list(k.problems),
                holders=[KeyHolderView.of(h) for h in listed.holders.get(k.key_id, [])],
            )
            for k in listed.keys
        ]
        return cls(
            label=token.label,
            serial=token.serial,
            manufacturer=token.manufacturer,
            model=token.model,
            present=token.present,
            state=listed.state,
            error=listed.error,
            keys=keys,
        )


class SealView(BaseModel):
    """The seal image kept: the organisation, the image's SHA-256 (hex) and its
    diameter on paper (mm)."""

    organisation: str
    image_sha256: str
    diameter_mm: float


class HandoverBody(BaseModel):
    """Hand the organisation's token to ``to`` (one of its clerks) under the written
    ``permission``: its number, date and who signed it."""

    to: str = Field(min_length=1, max_length=64)
    permission: str = Field(min_length=1, max_length=500)


class HandoverView(BaseModel):
    """What the handover did: from whom to whom, and the pending requests now waiting
    for the new keeper (who was notified)."""

    organisation: str
    previous: list[str]
    keeper: str
    readdressed: list[str]
