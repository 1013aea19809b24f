"""Inventory on a real SoftHSM2 token: keys and certificates matched by CKA_ID, and what a
renewal after staff rotation leaves behind (two keys with one label, two certificates
with one CKA_ID) reported as ambiguous, never guessed between."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import datetime as dt, sys
    from pathlib import Path
    from gateway.config import load_settings
    from signing_gateway.demo.pki import DemoPki, HolderName
    from gateway.bridges import bridge_config
    from gateway.secrets_at_rest import InstallationKeys
    from hsm_bridge import Bridge
    from hsm_bridge.pkcs11.pins import PinStore
    from hsm_bridge.pkcs11.provisioning import KeySpec, store_certificate
    from hsm_bridge.pkcs11.softhsm import init_token

    settings = load_settings(Path(sys.argv[1]))
    keys = InstallationKeys.load(settings.secrets_dir)
    config = bridge_config(settings, keys)
    init_token(settings.effective_softhsm2_conf, "rotation", "so-pin-1", "user-pin-1")
    bridge = Bridge(config)
    serial = next(t.serial for t in bridge.inventory() if t.label == "rotation")
    PinStore(config.pin_file, keys.fernet_key).put(serial, "user-pin-1")
    pki = DemoPki(settings.data_dir / "pki")
    now = dt.datetime.now(dt.UTC)
    holder = HolderName("Lê Văn Cường", "Phó Giám đốc", "Sở Tài chính tỉnh Hà Nam")
    certify = lambda public: pki.certify(public, holder, now)
    bridge.provision(serial, KeySpec.RSA_2048, b"\\x01", "old", certify)
    bridge.provision(serial, KeySpec.EC_P256, b"\\x02", "renewed", certify)
    bridge.provision(serial, KeySpec.EC_P256, b"\\x03", "renewed", certify)
    # a second certificate under CKA_ID 01, for another key: what a sloppy renewal does
    from cryptography.hazmat.primitives.asymmetric import ec
    other = pki.certify(ec.generate_private_key(ec.SECP256R1()).public_key(), holder, now)
    bridge._pool(serial).run(
        serial, "store", lambda session: store_certificate(session, other, b"\\x01", "old")
    )
    # the issuing CA's certificate stored on the token too: the chain of the credentials
    from cryptography import x509 as cx509
    issuing = cx509.load_pem_x509_certificate(pki.issuing_path.read_bytes())
    bridge._pool(serial).run(
        serial, "store", lambda session: store_certificate(session, issuing, b"\\xca", "ca")
    )
    print(serial)
    """
)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "signing_gateway.cli", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )


def test_ambiguous_credentials_are_reported(installation):
    env = dict(os.environ)
    made = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(installation.data_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    serial = made.stdout.strip().splitlines()[-1]
    listed = _cli(
        "credentials", "list", "--tokens", "--json", "--data-dir", str(installation.data_dir)
    )
    assert listed.returncode == 0, listed.stderr
    entries = [e for e in json.loads(listed.stdout) if e["token_serial"] == serial]
    by_id = {e["key_id"]: e for e in entries}
    assert set(by_id) == {"01", "02", "03"}
    assert by_id["01"]["status"] == "ambiguous"
    assert "several certificates share this CKA_ID" in by_id["01"]["problems"]
    assert by_id["02"]["status"] == by_id["03"]["status"] == "ambiguous"
    assert "several private keys share this label" in by_id["02"]["problems"]
    assert len(by_id["02"]["chain"]) == 1 and "CN=" in by_id["02"]["chain"][0]

    demo = json.loads(listed.stdout)  # the same listing holds the demo tokens too
    leader = [e for e in demo if e["label"] == "leader1"]
    assert len(leader) == 1 and leader[0]["status"] == "ok"
    assert leader[0]["key_type"] == "rsa" and leader[0]["key_bits"] == 2048
    assert "Nguyễn Văn An" in leader[0]["subject"]
    assert dt.datetime.fromisoformat(leader[0]["not_after"]) > dt.datetime.now(dt.UTC)

    tokens = json.loads(
        _cli("tokens", "list", "--json", "--data-dir", str(installation.data_dir)).stdout
    )
    rotation = next(t for t in tokens if t["serial"] == serial)
    assert "login_required" in rotation["flags"]
    assert {"RSA_PKCS", "ECDSA"} <= set(rotation["mechanisms"])
