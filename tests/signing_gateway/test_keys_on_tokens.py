"""Keys on real tokens, as the administrator puts them there with the command line: a
new SoftHSM2 token, key pairs generated inside it with PKCS#10 requests for the CA, the
CA's certificates imported with their chain (a certificate for another key refused),
the credential listed and a document signed with it after a TOTP approval."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import secrets
import subprocess
import sys

import pyotp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
)
from pyhanko.pdf_utils.reader import PdfFileReader
from sqlalchemy import select

from gateway.db.models import AuditEntry, Credential, User
from signing_gateway.demo.pki import DemoPki, HolderName
from signing_gateway.demo.sample_pdf import sample_pdf
from tests.commands import cli
from tests.conftest import Server, approve, start_server, submit
from tests.factories import bridge_registry

HOLDER = HolderName("Phạm Thị Hoa", "Phó Giám đốc", "Sở Tài chính tỉnh Hà Nam")


def _spki(public_key) -> bytes:
    return public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


_READ_PUBLIC_KEY = """
import sys
from asn1crypto.keys import RSAPublicKey
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_der_public_key
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11.util.ec import encode_ec_public_key
from pkcs11.util.rsa import encode_rsa_public_key
from hsm_bridge.pkcs11.module import load_module
from hsm_bridge.pkcs11.softhsm import find_softhsm_module

serial, pin, key_id = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3])
token = load_module(find_softhsm_module()).lib.get_token(token_serial=serial.encode())
with token.open(user_pin=pin) as session:
    public = session.get_key(object_class=ObjectClass.PUBLIC_KEY, id=key_id)
    private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=key_id)
    assert private[Attribute.SENSITIVE] and not private[Attribute.EXTRACTABLE]
    if public.key_type == KeyType.RSA:
        parsed = RSAPublicKey.load(encode_rsa_public_key(public))
        numbers = rsa.RSAPublicNumbers(parsed["public_exponent"].native, parsed["modulus"].native)
        key = numbers.public_key()
    else:
        key = load_der_public_key(encode_ec_public_key(public))
print(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo).hex())
"""


def _token_public_key(installation, serial: str, pin: str, key_id: bytes) -> bytes:
    """The SubjectPublicKeyInfo of the public key object with ``key_id``, read from the
    token with python-pkcs11, not through the gateway, in a new process (SoftHSM2 sees
    only the tokens that existed when a process loaded it); its private key is checked
    sensitive and not extractable."""
    env = {**os.environ, "SOFTHSM2_CONF": str(installation.effective_softhsm2_conf)}
    read = subprocess.run(
        [sys.executable, "-c", _READ_PUBLIC_KEY, serial, pin, key_id.hex()],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert read.returncode == 0, read.stderr
    return bytes.fromhex(read.stdout.strip())


@pytest.fixture(scope="module")
def new_token(installation, tmp_path_factory):
    """A new SoftHSM2 token made with ``tokens init`` (PINs from files)."""
    folder = tmp_path_factory.mktemp("pins")
    pin = secrets.token_hex(6)
    (folder / "so.pin").write_text(secrets.token_hex(8) + "\n")
    (folder / "user.pin").write_text(pin + "\n")
    label = f"kt-{secrets.token_hex(3)}"
    made = cli(
        installation,
        "tokens", "init", "--label", label,
        "--so-pin-file", str(folder / "so.pin"), "--pin-file", str(folder / "user.pin"),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    serial = re.search(r"serial (\S+)", made.stdout).group(1)
    again = cli(installation, "tokens", "init", "--label", label, "--pin-file", "/nonexistent")
    assert again.returncode == 1 and "token_label_taken" in again.stderr
    listed = json.loads(cli(installation, "tokens", "list", "--json").stdout)
    assert {"label": label, "serial": serial} in [
        {"label": t["label"], "serial": t["serial"]} for t in listed
    ]
    return serial, pin, folder


def _generate(installation, username: str, serial: str, algorithm: str, out, *extra: str):
    done = cli(
        installation, "credentials", "generate", username, "--token", serial,
        "--algorithm", algorithm, "--out", str(out), *extra,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    key_id = bytes.fromhex(re.search(r"key ([0-9a-f]+) ", done.stdout).group(1))
    return key_id, x509.load_pem_x509_csr(out.read_bytes())


def test_keys_generated_on_a_token_are_certified_imported_and_sign(
    installation, db, server, new_token, tmp_path
):
    serial, pin, _ = new_token
    username = f"hoa-{secrets.token_hex(3)}"
    added = cli(
        installation, "users", "add", username, "--display-name", HOLDER.common_name,
        "--role", "leader",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    password = re.search(r"initial password \(shown once\): (\S+)", added.stdout).group(1)

    # RSA with the default subject; EC with one the CA asked for
    rsa_id, rsa_csr = _generate(installation, username, serial, "rsa2048", tmp_path / "r.csr")
    subject = "CN=Phạm Thị Hoa,O=Sở Tài chính tỉnh Hà Nam,C=VN"
    ec_id, ec_csr = _generate(
        installation, username, serial, "ec-p256", tmp_path / "e.csr", "--subject", subject
    )
    assert rsa_csr.is_signature_valid and ec_csr.is_signature_valid
    assert isinstance(rsa_csr.public_key(), rsa.RSAPublicKey)
    assert rsa_csr.public_key().key_size == 2048
    assert isinstance(ec_csr.public_key(), ec.EllipticCurvePublicKey)
    assert rsa_csr.signature_algorithm_oid.dotted_string == "1.2.840.113549.1.1.11"
    assert ec_csr.signature_algorithm_oid.dotted_string == "1.2.840.10045.4.3.2"
    assert rsa_csr.subject.rfc4514_string() == f"CN={HOLDER.common_name},C=VN"
    assert ec_csr.subject == x509.Name.from_rfc4514_string(subject)
    assert _token_public_key(installation, serial, pin, rsa_id) == _spki(rsa_csr.public_key())
    assert _token_public_key(installation, serial, pin, ec_id) == _spki(ec_csr.public_key())
    refused = cli(
        installation, "credentials", "generate", username, "--token", serial,
        "--algorithm", "dsa1024", "--out", str(tmp_path / "x.csr"),
    )  # fmt: skip
    assert refused.returncode == 2 and not (tmp_path / "x.csr").exists()
    (tmp_path / "wrong.pin").write_text("0000\n")
    generate = ("credentials", "generate", username, "--token", serial, "--out")
    wrong_pin = cli(
        installation, *generate, str(tmp_path / "y.csr"), "--pin-file", str(tmp_path / "wrong.pin")
    )
    assert wrong_pin.returncode == 1 and "pin_incorrect" in wrong_pin.stderr
    no_token = cli(
        installation, "credentials", "generate", username, "--token", "nosuch",
        "--out", str(tmp_path / "z.csr"), "--pin-file", str(tmp_path / "wrong.pin"),
    )  # fmt: skip
    assert no_token.returncode == 1 and "token_not_present" in no_token.stderr
    assert not (tmp_path / "y.csr").exists() and not (tmp_path / "z.csr").exists()

    # the CA (the demo PKI) certifies the RSA request; its chain goes with it
    pki = DemoPki(installation.data_dir / "pki")
    now = dt.datetime.now(dt.UTC)
    certificate = pki.certify(rsa_csr.public_key(), HOLDER, now)
    (tmp_path / "cert.der").write_bytes(certificate.public_bytes(Encoding.DER))
    chain = tmp_path / "chain.pem"
    chain.write_text(pki.issuing_path.read_text() + pki.root_path.read_text())
    # a certificate for a key that is not on the token is refused, nothing stored
    stranger = pki.certify(ec.generate_private_key(ec.SECP256R1()).public_key(), HOLDER, now)
    (tmp_path / "stranger.pem").write_bytes(stranger.public_bytes(Encoding.PEM))
    imported = ("credentials", "import-certificate", username, "--token", serial)
    mismatch = cli(
        installation, *imported, "--certificate", str(tmp_path / "stranger.pem"),
        "--chain", str(chain),
    )  # fmt: skip
    assert mismatch.returncode == 1 and "no_matching_key" in mismatch.stderr
    assert "another request or another token" in mismatch.stderr
    wrong_chain = cli(
        installation, *imported, "--certificate", str(tmp_path / "cert.der"),
        "--chain", str(pki.root_path),
    )  # fmt: skip
    assert wrong_chain.returncode == 1 and "issuer" in wrong_chain.stderr
    done = cli(installation, *imported, "--certificate", str(tmp_path / "cert.der"),
               "--chain", str(chain))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"beside key {rsa_id.hex()}" in done.stdout
    credential_id = re.search(r"credential (\S+) registered", done.stdout).group(1)

    entries = json.loads(cli(installation, "credentials", "list", "--tokens", "--json").stdout)
    mine = {e["key_id"]: e for e in entries if e["token_serial"] == serial}
    assert mine[rsa_id.hex()]["status"] == "ok"
    assert HOLDER.common_name in mine[rsa_id.hex()]["subject"]
    assert mine[ec_id.hex()]["status"] == "no_certificate"
    with db.transaction() as session:
        credential = session.get(Credential, credential_id)
        assert credential.key_id == rsa_id.hex() and credential.token_serial == serial
        assert credential.certificate_der == certificate.public_bytes(Encoding.DER)
        assert credential.pin_policy == "stored" and "BEGIN CERTIFICATE" in credential.chain_pem
        details = {
            entry.action: json.loads(entry.detail)
            for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.id))
            if json.loads(entry.detail).get("token_serial") == serial
        }
        # the signer has confirmed a TOTP authenticator (as after the tablet's enrolment)
        user = session.scalar(select(User).where(User.username == username))
        user.totp_enrolled_at = now
    assert details["token.initialised"]["pin_stored"] is True
    assert details["credential.key_generated"]["algorithm"] == "ec-p256"
    assert details["credential.certificate_imported"]["key_id"] == rsa_id.hex()
    assert "credential.registered" in details

    # a server started after the token was made, as `tokens init` says: SoftHSM2 sees
    # only the tokens that existed when a process loaded it
    process, base_url = start_server(installation, tmp_path / "restarted.log")
    try:
        _sign_with(
            Server(base_url, tmp_path / "restarted.log", server.api_key),
            username,
            password,
            certificate,
        )
    finally:
        process.terminate()
        process.wait(timeout=30)


def _sign_with(server, username: str, password: str, certificate: x509.Certificate) -> None:
    """A document submitted for ``username``, approved with TOTP from the tablet, signed
    by the new key: the PDF's signer certificate is the imported one."""
    secret = pyotp.random_base32(32)
    bridge_registry().set_totp(username, secret)
    document = sample_pdf(["Công văn số 18", "Khóa trên token thật"])
    with server.tablet(username, password) as tablet:
        changed = tablet.post(
            "/mobile/v1/password",
            json={"current_password": password, "new_password": "Hoa-chon-2026!"},
        )
        assert changed.status_code == 204, changed.text
        request_id = submit(server, document, username).json()["id"]
        decision = approve(tablet, request_id, pyotp.TOTP(secret).now(), document)
        assert decision.json()["status"] == "signed", decision.text
        signed = tablet.get(f"/mobile/v1/signing-requests/{request_id}/signed-document")
    assert signed.status_code == 200
    signature = PdfFileReader(io.BytesIO(signed.content)).embedded_signatures[-1]
    assert signature.signer_cert.dump() == certificate.public_bytes(Encoding.DER)
