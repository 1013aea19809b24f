"""Day one of a real installation, with only what an administrator and the integrator
have: the ``signing-gateway`` command line in child processes (PINs and passphrases in
files) and HTTP against ``signing-gateway serve``. No demo installation: a plain
``init``, a SoftHSM2 token, a key generated on it with a request for the CA, the CA's
certificate imported, a user and an integration client, TOTP enrolled from the tablet
API with the administrator's enrolment code, a real PDF signed after a TOTP approval;
then ``backup`` while serving, ``restore`` into a new folder, and the restored
installation serves the same signed PDF and verifies its audit chain.

"The CA" is an outside certification authority with live OCSP, CRL and time-stamping
services: the demo PKI module on a free loopback port, in its own folder, not part of
the installation, which trusts its root through ``trust-anchors.pem`` like any CA's.
docs/first-installation.md gives the same steps for a person. Always on SQLite (a
PostgreSQL database is backed up with its own tools, see docs/backup.md)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import io
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyotp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils.reader import PdfFileReader

from gateway.signing.levels import newest_signature_level
from gateway.signing.validation import validate_with_pyhanko
from signing_gateway.demo.driver import wait_until_up
from signing_gateway.demo.pki import DemoPki, HolderName
from signing_gateway.demo.pki_service import start_pki_service
from signing_gateway.demo.sample_pdf import sample_pdf

CORPUS_PDF = (
    Path(__file__).resolve().parents[2].parent / "shared/corpus/pdf/vn-word-text-hybrid-xref.pdf"
)
HOLDER = HolderName("Nguyễn Văn An", "Giám đốc", "Sở Tài chính tỉnh Hà Nam")
NEW_PASSWORD = "Nguyen-Van-An-2026"  # holds the username "an": a syllable, allowed


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environment(data_dir: Path) -> dict[str, str]:
    """The administrator's shell: nothing of the test session's settings, SoftHSM2
    pointed at this installation's configuration (as a service's unit would)."""
    kept = {
        k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_") and k != "SOFTHSM2_CONF"
    }
    return {**kept, "SOFTHSM2_CONF": str(data_dir / "softhsm2.conf")}


def _run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``signing-gateway ARGS --data-dir DATA_DIR``; it must succeed."""
    done = subprocess.run(
        [sys.executable, "-m", "signing_gateway.cli", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        env=_environment(data_dir),
    )
    assert done.returncode == 0, f"{args[:2]}: {done.stdout}\n{done.stderr}"
    return done


def _secret_file(path: Path, text: str) -> Path:
    path.write_text(text + "\n", "utf-8")
    path.chmod(0o600)
    return path


class Serving:
    """``signing-gateway serve`` on ``data_dir`` and a free port, its output in
    ``log``."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        port = _free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "signing_gateway.cli", "serve"]
                + ["--data-dir", str(data_dir), "--port", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_environment(data_dir),
            )
        try:
            wait_until_up(self.base_url)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture
def ca(tmp_path: Path) -> Iterator[DemoPki]:
    """An outside CA (root, issuing CA, OCSP, CRLs, TSA) answering on loopback."""
    pki = DemoPki(tmp_path / "ca", f"http://127.0.0.1:{_free_port()}")
    pki.ensure(dt.datetime.now(dt.UTC))
    service = start_pki_service(pki)
    try:
        yield pki
    finally:
        service.shutdown()


def _document() -> bytes:
    if CORPUS_PDF.exists():
        return CORPUS_PDF.read_bytes()
    return sample_pdf(["Công văn số 1/STC", "Văn bản ký số đầu tiên của Sở Tài chính"])


def _install(data_dir: Path, ca: DemoPki) -> None:
    """``init``, then the CA's root as the trust anchor and its TSA for timestamps."""
    _run(data_dir, "init")
    (data_dir / "trust-anchors.pem").write_bytes(ca.root_path.read_bytes())
    with (data_dir / "gateway.toml").open("a", encoding="utf-8") as settings:
        settings.write(f'tsa_url = "{ca.tsa_url()}"\n')


def _token_key_and_certificate(data_dir: Path, ca: DemoPki, work: Path) -> x509.Certificate:
    """A new token, a user ``an``, a key generated on the token for them, the CA's
    certificate for it imported with the chain; the certificate."""
    made = _run(
        data_dir, "tokens", "init", "--label", "an-token",
        "--so-pin-file", str(_secret_file(work / "so.pin", secrets.token_hex(8))),
        "--pin-file", str(_secret_file(work / "user.pin", secrets.token_hex(6))),
    )  # fmt: skip
    serial = re.search(r"serial (\S+)", made.stdout).group(1)
    _run(data_dir, "credentials", "generate", "an", "--token", serial,
         "--algorithm", "rsa2048", "--out", str(work / "an.csr"))  # fmt: skip
    request = x509.load_pem_x509_csr((work / "an.csr").read_bytes())
    assert request.is_signature_valid
    certificate = ca.certify(request.public_key(), HOLDER, dt.datetime.now(dt.UTC))
    (work / "an.pem").write_bytes(certificate.public_bytes(Encoding.PEM))
    (work / "chain.pem").write_bytes(ca.issuing_path.read_bytes() + ca.root_path.read_bytes())
    imported = _run(
        data_dir, "credentials", "import-certificate", "an", "--token", serial,
        "--certificate", str(work / "an.pem"), "--chain", str(work / "chain.pem"),
    )  # fmt: skip
    assert "credential" in imported.stdout and "registered for an" in imported.stdout
    return certificate


def _enrol_totp(base_url: str, password: str, enrolment_code: str) -> pyotp.TOTP:
    """The signer on the tablet: signs in, changes the one-time password, enrols an
    authenticator with the administrator's code and confirms it with a first code (the
    previous step's, so that the current one is left for the approval)."""
    with httpx.Client(base_url=base_url, timeout=60) as http:
        session = http.post("/mobile/v1/sessions", json={"username": "an", "password": password})
        assert session.status_code == 201, session.text
        assert session.json()["password_change_required"] is True
        http.headers["Authorization"] = f"Bearer {session.json()['access_token']}"
        changed = http.post(
            "/mobile/v1/password",
            json={"current_password": password, "new_password": NEW_PASSWORD},
        )
        assert changed.status_code == 204, changed.text
        secret = pyotp.random_base32(32)
        code_id, _, code_secret = enrolment_code.partition(".")
        proof = hmac.new(
            code_secret.encode(),
            b"signing-gateway/totp-enrolment/1\x00" + secret.encode(),
            "sha256",
        ).digest()
        started = http.post(
            "/mobile/v1/totp",
            json={
                "secret": secret,
                "enrolment_code_id": code_id,
                "enrolment_proof": base64.b64encode(proof).decode(),
            },
        )
        assert started.status_code == 201, started.text
        totp = pyotp.TOTP(secret)
        confirmed = http.post(
            "/mobile/v1/totp/confirmation", json={"otp": totp.at(time.time() - 30)}
        )
        assert confirmed.status_code == 200 and confirmed.json()["confirmed"], confirmed.text
        assert http.get("/mobile/v1/me").json()["totp_enrolled"] is True
    return totp


def _submit_and_approve(base_url: str, api_key: str, totp: pyotp.TOTP) -> tuple[str, bytes]:
    """The document system submits a PDF for ``an``; ``an`` approves it with a TOTP
    code on the tablet; the request's id and the signed PDF the document system
    downloads."""
    document = _document()
    integrator = httpx.Client(
        base_url=base_url, timeout=120, headers={"Authorization": f"Bearer {api_key}"}
    )
    with integrator:
        submitted = integrator.post(
            "/api/v1/signing-requests",
            files={"document": ("cong-van-1.pdf", document, "application/pdf")},
            data={
                "signer": "an",
                "title": "Công văn số 1/STC",
                "reason": "Phê duyệt",
                "page": "1",
                "box": "320,90,520,170",
            },
            headers={"Idempotency-Key": "cv-1"},
        )
        assert submitted.status_code == 201, submitted.text
        request_id = submitted.json()["id"]
        with httpx.Client(base_url=base_url, timeout=120) as tablet:
            session = tablet.post(
                "/mobile/v1/sessions", json={"username": "an", "password": NEW_PASSWORD}
            )
            tablet.headers["Authorization"] = f"Bearer {session.json()['access_token']}"
            decision = tablet.post(
                f"/mobile/v1/signing-requests/{request_id}/approval",
                json={"otp": totp.now(), "document_sha256": hashlib.sha256(document).hexdigest()},
            )
        assert decision.status_code == 200 and decision.json()["status"] == "signed", decision.text
        status = integrator.get(f"/api/v1/signing-requests/{request_id}").json()
        assert status["status"] == "signed"
        signed = integrator.get(f"/api/v1/signing-requests/{request_id}/signed-document")
    assert signed.status_code == 200, signed.text
    assert signed.content.startswith(document)  # an incremental update of what was sent
    return request_id, signed.content


def _check_signature(signed: bytes, ca: DemoPki, certificate: x509.Certificate) -> None:
    """pyHanko, trusting only the CA's root: intact, valid, trusted, whole document,
    signed by the imported certificate; B-LT (timestamped by the CA's TSA, with the
    revocation answers the bridge checked)."""
    (verdict,) = validate_with_pyhanko(signed, ca.root_path)
    assert verdict.ok and verdict.covers_document, verdict
    assert newest_signature_level(signed, [ca.chain_der()[-1]]) == "B-LT"
    signature = PdfFileReader(io.BytesIO(signed)).embedded_signatures[0]
    assert signature.signer_cert.dump() == certificate.public_bytes(Encoding.DER)


def test_day_one_from_init_to_a_restored_installation(ca: DemoPki, tmp_path: Path) -> None:
    data_dir, work = tmp_path / "gateway", tmp_path / "admin"
    work.mkdir()
    _install(data_dir, ca)
    added = _run(data_dir, "users", "add", "an", "--display-name", HOLDER.common_name,
                 "--role", "leader")  # fmt: skip
    password = re.search(r"initial password \(shown once\): (\S+)", added.stdout).group(1)
    certificate = _token_key_and_certificate(data_dir, ca, work)
    client = _run(data_dir, "clients", "add", "Hệ thống văn bản",
                  "--scope", "requests:submit", "--scope", "requests:read")  # fmt: skip
    api_key = re.search(r"API key \(shown once.*\): (\S+)", client.stdout).group(1)
    enrolment = _run(data_dir, "devices", "enrolment-code", "an")
    code = re.search(r"enrolment code: (\S+)", enrolment.stdout).group(1)

    server = Serving(data_dir, tmp_path / "serve.log")
    try:
        totp = _enrol_totp(server.base_url, password, code)
        request_id, signed = _submit_and_approve(server.base_url, api_key, totp)
        _check_signature(signed, ca, certificate)
        passphrase = _secret_file(work / "backup.pass", secrets.token_urlsafe(24))
        backup = tmp_path / "gateway.sgwb"
        _run(data_dir, "backup", "--to", str(backup), "--passphrase-file", str(passphrase))
    finally:
        server.stop()

    restored = tmp_path / "restored"
    _run(restored, "restore", "--from", str(backup), "--passphrase-file", str(passphrase))
    keys = json.loads(_run(restored, "credentials", "list", "--tokens", "--json").stdout)
    assert [k["status"] for k in keys] == ["ok"]
    again = Serving(restored, tmp_path / "serve-restored.log")
    try:
        with httpx.Client(
            base_url=again.base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=60
        ) as integrator:
            served = integrator.get(f"/api/v1/signing-requests/{request_id}/signed-document")
            assert served.status_code == 200 and served.content == signed
    finally:
        again.stop()
    verified = _run(restored, "audit", "verify")  # exits 0, else _run fails
    assert "audit chain intact" in verified.stdout
    assert '"backup.restored"' in _run(restored, "audit", "show", "--action", "backup.").stdout
