"""The demo installation (``signing-gateway init --demo``): on top of a plain installation,
a demo PKI, one SoftHSM2 token per holder with a key generated inside it, the
organisation "Sở Tài chính tỉnh Hà Nam" with its seal, users with TOTP secrets at the
bridge, an integration client, and ``demo-credentials.json`` with what a tester needs.

Idempotent: an existing demo is kept.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
import secrets
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from gateway.admin.clients import api_key_hash, new_api_key, new_callback_secret
from gateway.admin.installation import init_installation
from gateway.approvals import totp
from gateway.audit import log as audit
from gateway.bridges import add_ca_certificates, add_trust_anchors, bridge_config
from gateway.config import SETTINGS_FILE_NAME, Settings
from gateway.context import open_database
from gateway.db.models import Credential, IntegrationClient, Organisation, User
from gateway.passwords import hash_password
from gateway.secrets_at_rest import InstallationKeys, SecretBox
from hsm_bridge import Bridge
from hsm_bridge.credentials import CredentialRef, SignatureMechanism
from hsm_bridge.pkcs11.pins import PinStore
from hsm_bridge.pkcs11.provisioning import KeySpec
from hsm_bridge.pkcs11.softhsm import init_token, token_labels
from signing_gateway.demo.images import DEMO_SEAL_DIAMETER_MM, demo_seal_png, demo_signature_png
from signing_gateway.demo.pki import DemoPki, HolderName

__all__ = ["DEMO_CREDENTIALS_FILE", "DEMO_HOLDERS", "DemoHolder", "init_demo"]

DEMO_CREDENTIALS_FILE = "demo-credentials.json"


@dataclass(frozen=True, slots=True)
class DemoHolder:
    """A demo token holder: username (also the token's label), role, key type and
    certificate subject. ``keeper``: for the organisation's token, the clerk who keeps
    it (no user of its own; its credential is the organisation's)."""

    username: str
    role: str
    key: KeySpec
    holder: HolderName
    keeper: str | None = None


# The demo's organisation: short name and full name (its seal: demo_images).
DEMO_ORGANISATION = ("stc-hanam", "Sở Tài chính tỉnh Hà Nam")


DEMO_HOLDERS = (
    DemoHolder(
        "leader1",
        "leader",
        KeySpec.RSA_2048,
        HolderName("Nguyễn Văn An", "Giám đốc", "Sở Tài chính tỉnh Hà Nam"),
    ),
    DemoHolder(
        "clerk1",
        "clerk",
        KeySpec.EC_P256,
        HolderName("Trần Thị Bình", "Văn thư", "Sở Tài chính tỉnh Hà Nam"),
    ),
    DemoHolder(
        "org1",
        "organisation",
        KeySpec.RSA_2048,
        HolderName("Sở Tài chính tỉnh Hà Nam", "Cơ quan", "Sở Tài chính tỉnh Hà Nam"),
        keeper="clerk1",
    ),
)


def init_demo(settings: Settings, *, now: dt.datetime) -> Path:
    """Create or complete the installation in ``settings.data_dir`` with the demo in
    it; the path of ``demo-credentials.json``."""
    keys = init_installation(settings)
    credentials_file = settings.data_dir.resolve() / DEMO_CREDENTIALS_FILE
    if credentials_file.exists():
        return credentials_file
    return _create_demo(settings, keys, credentials_file, now)


def _create_demo(
    settings: Settings, keys: InstallationKeys, credentials_file: Path, now: dt.datetime
) -> Path:
    pins = _demo_tokens(settings.effective_softhsm2_conf)
    pki = DemoPki(settings.data_dir.resolve() / "pki", settings.demo_pki_url)
    pki.ensure(now)
    chain_pem = "".join(p.read_text() for p in (pki.issuing_path, pki.root_path))
    # the bridge embeds the chain its tokens do not hold from its administrator's CA file,
    # trusts the demo root, and timestamps with the demo TSA
    add_ca_certificates(settings, chain_pem)
    add_trust_anchors(settings, pki.root_path.read_text())
    # the archive renews with the second TSA, whose certificate outlives the first's
    _write_demo_settings(
        settings, {"tsa_url": pki.tsa_url(), "archive_tsa_url": pki.tsa_url("tsa2")}
    )
    build = _DemoBuild(settings, keys, pki, chain_pem, now)
    db = open_database(settings, keys)
    try:
        with db.transaction() as session:
            session.add(build.organisation)
            signers = [build.add_holder(session, holder, pins) for holder in DEMO_HOLDERS]
            api_key, callback_secret = build.add_client(session)
    finally:
        db.dispose()
    payload = {
        "api_key": api_key,
        "callback_secret": callback_secret,
        "signers": [signer for signer in signers if signer is not None],
        "organisation": {
            "name": build.organisation.name,
            "display_name": build.organisation.display_name,
            "keeper": next(h.keeper for h in DEMO_HOLDERS if h.keeper),
        },
        "trust_anchor": str(pki.root_path),
    }
    tmp = credentials_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False), "utf-8")
    os.chmod(tmp, 0o600)
    os.replace(tmp, credentials_file)
    return credentials_file


def _write_demo_settings(settings: Settings, values: dict[str, str]) -> None:
    """Add ``values`` to the installation's ``gateway.toml`` (settings already there, or
    in the environment, win)."""
    path = settings.data_dir.resolve() / SETTINGS_FILE_NAME
    existing = tomllib.loads(path.read_text("utf-8")) if path.exists() else {}
    lines = [
        f"{key} = {json.dumps(value)}\n" for key, value in values.items() if key not in existing
    ]
    with path.open("a", encoding="utf-8") as out:
        out.writelines(lines)


def _demo_tokens(conf: Path) -> dict[str, str]:
    """One SoftHSM2 token per holder, labelled with its username; their user PINs."""
    pins: dict[str, str] = {}
    existing = token_labels(conf)
    for holder in DEMO_HOLDERS:
        if holder.username not in existing:
            pins[holder.username] = secrets.token_hex(8)
            init_token(conf, holder.username, secrets.token_hex(8), pins[holder.username])
    if len(pins) != len(DEMO_HOLDERS):
        raise RuntimeError(
            "a partial demo installation exists (tokens without demo-credentials.json); "
            "remove the data folder and run init again"
        )
    return pins


class _DemoBuild:
    """The demo's organisation, holders and integration client, added in one transaction:
    keys generated inside the tokens and certified by the demo PKI, the bridge's own
    records (TOTP secrets, which signer may use which key) written beside."""

    def __init__(
        self,
        settings: Settings,
        keys: InstallationKeys,
        pki: DemoPki,
        chain_pem: str,
        now: dt.datetime,
    ) -> None:
        config = bridge_config(settings, keys)
        self.bridge = Bridge(config)
        self.serials = {t.label: t.serial for t in self.bridge.inventory()}
        self.pin_store = PinStore(config.pin_file, keys.fernet_key)
        self.box = SecretBox(keys.fernet_key)
        self.pki, self.chain_pem, self.now = pki, chain_pem, now
        self.users: dict[str, User] = {}
        self.organisation = Organisation(
            id=str(uuid.uuid4()),
            name=DEMO_ORGANISATION[0],
            display_name=DEMO_ORGANISATION[1],
            seal_image=demo_seal_png(),
            seal_diameter_mm=DEMO_SEAL_DIAMETER_MM,
            created_at=now,
        )

    def add_holder(
        self, session: Session, holder: DemoHolder, pins: dict[str, str]
    ) -> dict[str, str] | None:
        """The holder's key, certificate and credential; for a person also the user
        and what a tester needs to log in (None for the organisation's seal)."""
        serial = self.serials[holder.username]
        self.pin_store.put(serial, pins[holder.username])
        key_id = secrets.token_bytes(8)
        cert_der = self.bridge.provision(
            serial,
            holder.key,
            key_id,
            holder.username,
            functools.partial(self.pki.certify, holder=holder.holder, now=self.now),
        )
        ref = CredentialRef(serial, key_id)
        credential_id = f"cred-{holder.username}-{key_id.hex()[:8]}"
        if holder.keeper is not None:
            # the organisation's seal: kept by its clerk, who alone signs with it
            keeper = self.users[holder.keeper]
            self.bridge.registry.bind_credential(keeper.username, ref)
            credential = self._credential(credential_id, keeper, holder, ref, cert_der)
            credential.organisation_id = self.organisation.id
            session.add(credential)
            return None
        password, totp_secret = secrets.token_urlsafe(12), totp.new_secret()
        user = self._user(holder, password)
        session.add(user)
        session.flush()
        self.users[holder.username] = user
        # the bridge's own records: it checks approvals itself
        self.bridge.registry.set_totp(holder.username, totp_secret)
        self.bridge.registry.bind_credential(holder.username, ref)
        session.add(self._credential(credential_id, user, holder, ref, cert_der))
        return {
            "username": holder.username,
            "password": password,
            "totp_secret": totp_secret,
            "credential_id": credential_id,
            "role": holder.role,
            "display_name": holder.holder.common_name,
        }

    def add_client(self, session: Session) -> tuple[str, str]:
        """The document system's integration client: its API key and callback secret."""
        api_key, callback_secret = new_api_key(), new_callback_secret()
        session.add(
            IntegrationClient(
                id=str(uuid.uuid4()),
                name="demo-eoffice",
                api_key_sha256=api_key_hash(api_key),
                callback_secret=self.box.seal(callback_secret),
                created_at=self.now,
            )
        )
        audit.record(
            session,
            actor="system",
            action="installation.demo_created",
            now=self.now,
            detail={
                "signers": [h.username for h in DEMO_HOLDERS if h.keeper is None],
                "organisation": self.organisation.name,
            },
        )
        return api_key, callback_secret

    def _user(self, holder: DemoHolder, password: str) -> User:
        return User(
            id=str(uuid.uuid4()),
            username=holder.username,
            display_name=holder.holder.common_name,
            role=holder.role,
            organisation_id=self.organisation.id,
            password_hash=hash_password(password),
            totp_enrolled_at=self.now,
            # the leader's handwritten signature, drawn in visible signatures
            signature_image=demo_signature_png() if holder.role == "leader" else None,
            created_at=self.now,
        )

    def _credential(
        self, credential_id: str, user: User, holder: DemoHolder, ref: CredentialRef, der: bytes
    ) -> Credential:
        return _demo_credential(
            credential_id, user, holder, ref.token_serial, ref.key_id, der, self.chain_pem, self.now
        )


def _demo_credential(
    credential_id: str,
    user: User,
    holder: DemoHolder,
    serial: str,
    key_id: bytes,
    cert_der: bytes,
    chain_pem: str,
    now: dt.datetime,
) -> Credential:
    return Credential(
        id=credential_id,
        user_id=user.id,
        token_serial=serial,
        key_id=key_id.hex(),
        mechanism=(
            SignatureMechanism.RSA_PKCS_SHA256
            if holder.key is KeySpec.RSA_2048
            else SignatureMechanism.ECDSA_SHA256
        ).value,
        certificate_der=cert_der,
        certificate_sha256=hashlib.sha256(cert_der).hexdigest(),
        chain_pem=chain_pem,
        created_at=now,
    )
