"""Extra tokens and signers for the mechanism and PIN-policy tests, added to the test
installation in a fresh process right after ``init --demo`` (SoftHSM2 lists the tokens
that exist when a process first loads it).

Run as ``python -m tests.provision_extra DATA_DIR``; writes DATA_DIR/extra-signers.json.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import sys
import uuid
from pathlib import Path

import pyotp

from gateway.bridges import bridge_config
from gateway.config import load_settings
from gateway.db.database import Database
from gateway.db.models import Credential, User
from gateway.passwords import hash_password
from gateway.secrets_at_rest import InstallationKeys
from hsm_bridge import Bridge
from hsm_bridge.credentials import CredentialRef, SignatureMechanism
from hsm_bridge.pkcs11.pins import PinStore
from hsm_bridge.pkcs11.provisioning import KeySpec
from hsm_bridge.pkcs11.softhsm import init_token
from signing_gateway.demo.pki import DemoPki, HolderName

# label, key, mechanism, PIN policy, CKA_ALWAYS_AUTHENTICATE, holder name
EXTRA = [
    ("pss1", KeySpec.RSA_2048, SignatureMechanism.RSA_PSS_SHA256, "stored", False, "Phạm Thị Dung"),
    ("p384", KeySpec.EC_P384, SignatureMechanism.ECDSA_SHA256, "stored", False, "Hoàng Văn Em"),
    (
        "pinsigner",
        KeySpec.RSA_2048,
        SignatureMechanism.RSA_PKCS_SHA256,
        "signer",
        False,
        "Vũ Thị Giang",
    ),
    (
        "alwaysauth",
        KeySpec.RSA_2048,
        SignatureMechanism.RSA_PKCS_SHA256,
        "stored",
        True,
        "Đỗ Văn Hùng",
    ),
    # revoked at the demo CA by tests/e2e/test_revocation.py, and by nothing else
    (
        "revocable",
        KeySpec.RSA_2048,
        SignatureMechanism.RSA_PKCS_SHA256,
        "stored",
        False,
        "Lê Văn Khánh",
    ),
]


def main(data_dir: Path) -> None:
    settings = load_settings(data_dir)
    keys = InstallationKeys.load(settings.secrets_dir)
    config = bridge_config(settings, keys)
    conf = settings.effective_softhsm2_conf
    pins = {label: secrets.token_hex(4) for label, *_ in EXTRA}
    for label, *_ in EXTRA:
        init_token(conf, label, secrets.token_hex(8), pins[label])
    bridge = Bridge(config)
    serials = {t.label: t.serial for t in bridge.inventory()}
    store = PinStore(config.pin_file, config.pin_key)
    pki = DemoPki(settings.data_dir / "pki")
    now = dt.datetime.now(dt.UTC)
    chain_pem = "".join(p.read_text() for p in (pki.issuing_path, pki.root_path))
    db = Database(settings.effective_database_url)
    signers = {}
    with db.transaction() as session:
        for label, spec, mechanism, policy, always, name in EXTRA:
            serial = serials[label]
            store.put(serial, pins[label])
            key_id = secrets.token_bytes(8)
            holder = HolderName(name, "Phó Giám đốc", "Sở Tài chính tỉnh Hà Nam")
            der = bridge.provision(
                serial,
                spec,
                key_id,
                label,
                lambda public, h=holder: pki.certify(public, h, now),
                always_authenticate=always,
            )
            if policy == "signer":
                store.remove(serial)
            password = secrets.token_urlsafe(10)
            totp_secret = pyotp.random_base32(32)
            user = User(
                id=str(uuid.uuid4()),
                username=f"x-{label}",
                display_name=name,
                role="leader",
                password_hash=hash_password(password),
                totp_enrolled_at=now,
                created_at=now,
            )
            session.add(user)
            session.flush()
            bridge.registry.set_totp(user.username, totp_secret)
            bridge.registry.bind_credential(user.username, CredentialRef(serial, key_id))
            session.add(
                Credential(
                    id=f"cred-x-{label}",
                    user_id=user.id,
                    token_serial=serial,
                    key_id=key_id.hex(),
                    mechanism=mechanism.value,
                    pin_policy=policy,
                    certificate_der=der,
                    certificate_sha256=hashlib.sha256(der).hexdigest(),
                    chain_pem=chain_pem,
                    created_at=now,
                )
            )
            signers[label] = {
                "username": user.username,
                "password": password,
                "totp_secret": totp_secret,
                "token_serial": serial,
                "token_pin": pins[label],
                "display_name": name,
                "credential_id": f"cred-x-{label}",
            }
    db.dispose()
    (data_dir / "extra-signers.json").write_text(json.dumps(signers, ensure_ascii=False), "utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
