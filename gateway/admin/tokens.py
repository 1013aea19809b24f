"""The tokens as the bridge sees them, the keys and certificates on each, and which
registered credential (and so which user) each key serves; a credential's PIN policy.
Used by ``tokens list``, ``credentials list --tokens``, ``credentials pin-policy`` and
the administration API."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select

from gateway.audit import log as audit
from gateway.db.database import Database
from gateway.db.models import Credential, Organisation, User
from gateway.errors import NotFound, ParameterInvalid
from hsm_bridge import BridgeClient, BridgeError
from hsm_bridge.pkcs11.inventory import CredentialEntry, TokenEntry

__all__ = [
    "PIN_POLICIES",
    "KeyHolder",
    "TokenInventory",
    "keys_on_tokens",
    "set_pin_policy",
    "token_inventory",
]

PIN_POLICIES = ("stored", "signer")


@dataclass(frozen=True, slots=True)
class KeyHolder:
    """A live (unrevoked) credential registered for a key: its id, who signs with it
    (username, display name) and, for a seal, the organisation's short name."""

    credential_id: str
    username: str
    display_name: str
    organisation: str | None


@dataclass(frozen=True, slots=True)
class TokenInventory:
    """A token (``state``: the bridge's health, ``ok``, ``removed``...), the keys found
    on it, each with the live credentials registered for it (keyed by CKA_ID, hex), and
    ``error``: the bridge's refusal code when its keys could not be read (no stored PIN,
    a wrong one), else None."""

    token: TokenEntry
    state: str
    keys: list[CredentialEntry]
    holders: dict[str, list[KeyHolder]] = field(default_factory=dict)
    error: str | None = None


def keys_on_tokens(
    bridge: BridgeClient, tokens: list[TokenEntry]
) -> tuple[list[CredentialEntry], dict[str, str]]:
    """The keys and certificates on ``tokens`` (``bridge.credentials`` of each present
    one), and per token serial the refusal code of those whose keys could not be read."""
    entries: list[CredentialEntry] = []
    errors: dict[str, str] = {}
    for token in tokens:
        if not token.present:
            continue
        try:
            entries.extend(bridge.credentials(token.serial))
        except BridgeError as exc:
            errors[token.serial] = exc.code
    return entries, errors


def token_inventory(db: Database, bridge: BridgeClient) -> list[TokenInventory]:
    """Every token the bridge sees (plus those registered credentials need but that are
    not plugged in, ``state`` ``removed``), by label, with its keys and their holders."""
    tokens = bridge.inventory()
    states = {h.serial: h.state for h in bridge.health()}
    holders = _live_holders(db)
    present = {t.serial for t in tokens}
    for serial in sorted({s for s, _ in holders} - present):
        tokens.append(TokenEntry("?", serial, "?", "?", [], [], "", present=False))
        states[serial] = "removed"
    entries, errors = keys_on_tokens(bridge, tokens)
    listed = []
    for token in sorted(tokens, key=lambda t: (t.label, t.serial)):
        keys = [e for e in entries if e.token_serial == token.serial]
        listed.append(
            TokenInventory(
                token=token,
                state=states.get(token.serial, "ok"),
                keys=keys,
                holders={
                    k.key_id: holders[(token.serial, k.key_id)]
                    for k in keys
                    if (token.serial, k.key_id) in holders
                },
                error=errors.get(token.serial),
            )
        )
    return listed


def _live_holders(db: Database) -> dict[tuple[str, str], list[KeyHolder]]:
    """The live credentials by (token serial, CKA_ID hex)."""
    with db.transaction() as session:
        rows = session.execute(
            select(Credential, User, Organisation.name)
            .join(User, User.id == Credential.user_id)
            .outerjoin(Organisation, Organisation.id == Credential.organisation_id)
            .where(Credential.revoked_at.is_(None))
            .order_by(Credential.created_at)
        ).all()
    found: dict[tuple[str, str], list[KeyHolder]] = {}
    for credential, user, organisation in rows:
        key = (credential.token_serial, credential.key_id.lower())
        holder = KeyHolder(credential.id, user.username, user.display_name, organisation)
        found.setdefault(key, []).append(holder)
    return found


def set_pin_policy(
    db: Database,
    credential_id: str,
    policy: str,
    *,
    actor: str,
    now: dt.datetime,
    client_address: str | None = None,
) -> bool:
    """Whether the bridge keeps the credential's token PIN (``stored``) or the signer
    types it with each approval (``signer``); True when it changed. Audited once:
    setting the policy it has changes nothing. The bridge's stored PIN itself is
    ``tokens set-pin`` / ``tokens forget-pin`` on the bridge's host.
    Raises ParameterInvalid (another policy), NotFound."""
    if policy not in PIN_POLICIES:
        raise ParameterInvalid("the PIN policy must be stored or signer")
    with db.transaction() as session:
        credential = session.get(Credential, credential_id, with_for_update=True)
        if credential is None:
            raise NotFound(f"no credential {credential_id}")
        if credential.pin_policy == policy:
            return False
        before, credential.pin_policy = credential.pin_policy, policy
        audit.record(
            session,
            actor=actor,
            action="credential.pin_policy",
            now=now,
            client_address=client_address,
            detail={"credential": credential_id, "pin_policy": policy, "before": before},
        )
    return True
