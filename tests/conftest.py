"""Shared fixtures: one demo installation made by the real CLI, one real uvicorn server
on a free loopback port, and helpers that drive it over HTTP like a document system and
a tablet would. With GATEWAY_TEST_DATABASE_URL set, everything runs on that database."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from gateway.config import Settings, load_settings
from gateway.context import open_database
from gateway.db.database import Database
from gateway.secrets_at_rest import InstallationKeys, SecretBox
from hsm_bridge import CredentialRef
from hsm_bridge.credentials import SignatureMechanism
from hsm_bridge.sam.activation import ActivationIssuer
from signing_gateway.demo.driver import wait_until_up
from signing_gateway.demo.pki import DemoPki
from signing_gateway.demo.pki_service import start_pki_service
from tests.factories import INSTALLATION_ENV, TestSigner, demo_credential, make_signer

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CORPUS = PROJECT_ROOT.parent / "shared" / "corpus"


def _reset_database(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not (CORPUS / "MANIFEST.tsv").exists():
        pytest.skip(f"the real-world corpus is absent ({CORPUS})")
    return CORPUS


@pytest.fixture(scope="session")
def manifest(corpus: Path) -> dict[str, dict[str, str]]:
    with (corpus / "MANIFEST.tsv").open(encoding="utf-8") as handle:
        return {row["file"]: row for row in csv.DictReader(handle, delimiter="\t")}


@pytest.fixture(scope="session")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The demo installation, whose PKI services (OCSP, CRL, TSA) this test process
    serves on a free port for the whole session (servers started by the tests do not:
    ``GATEWAY_DEMO_PKI_SERVE=false``)."""
    data_dir = tmp_path_factory.mktemp("installation")
    os.environ["GATEWAY_DEMO_PKI_URL"] = f"http://127.0.0.1:{_free_port()}"
    os.environ["GATEWAY_DEMO_PKI_SERVE"] = "false"
    env = dict(os.environ)
    url = os.environ.get("GATEWAY_TEST_DATABASE_URL")
    if url:
        _reset_database(url)
        env["GATEWAY_DATABASE_URL"] = url
        os.environ["GATEWAY_DATABASE_URL"] = url
    subprocess.run(
        [
            sys.executable,
            "-m",
            "signing_gateway.cli",
            "init",
            "--demo",
            "--data-dir",
            str(data_dir),
        ],
        check=True,
        env=env,
        timeout=300,
    )
    subprocess.run(
        [sys.executable, "-m", "tests.provision_extra", str(data_dir)],
        check=True,
        env=env,
        timeout=300,
        cwd=PROJECT_ROOT,
    )
    os.environ[INSTALLATION_ENV] = str(data_dir)
    service = start_pki_service(DemoPki(data_dir / "pki"))
    try:
        yield load_settings(data_dir)
    finally:
        service.shutdown()


@pytest.fixture(scope="session")
def extra_signers(installation: Settings) -> dict[str, dict[str, str]]:
    """Signers on the extra tokens (RSA-PSS, P-384, signer PIN, always-authenticate)."""
    return json.loads((installation.data_dir / "extra-signers.json").read_text("utf-8"))


@pytest.fixture(scope="session")
def demo_credentials(installation: Settings) -> dict:
    return json.loads((installation.data_dir / "demo-credentials.json").read_text("utf-8"))


@pytest.fixture(scope="session")
def db(installation: Settings) -> Iterator[Database]:
    database = open_database(installation)  # with the audit checkpoint signer, as in production
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def box(installation: Settings) -> SecretBox:
    return SecretBox(InstallationKeys.load(installation.secrets_dir).fernet_key)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    base_url: str
    log_path: Path
    api_key: str

    def client(self, api_key: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            timeout=120,
            headers={"Authorization": f"Bearer {api_key or self.api_key}"},
        )

    def tablet(self, username: str, password: str) -> httpx.Client:
        with httpx.Client(base_url=self.base_url, timeout=30) as http:
            answer = http.post(
                "/mobile/v1/sessions", json={"username": username, "password": password}
            )
        assert answer.status_code == 201, answer.text
        token = answer.json()["access_token"]
        return httpx.Client(
            base_url=self.base_url, timeout=120, headers={"Authorization": f"Bearer {token}"}
        )


def start_server(
    installation: Settings, log_path: Path, **env: str
) -> tuple[subprocess.Popen[bytes], str]:
    """``signing-gateway serve`` on the test installation, on a free port, its output in
    ``log_path``, ``env`` added to its environment; the process and its base URL once
    it answers."""
    port = _free_port()
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "signing_gateway.cli", "serve"]
            + ["--data-dir", str(installation.data_dir), "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            # every test logs in from 127.0.0.1: lift the per-address login rate
            # fast callback rounds and retries, so that tests see them in a second
            env={
                **os.environ,
                "GATEWAY_LOG_LEVEL": "DEBUG",
                "GATEWAY_LOGIN_RATE_LIMIT": "100/second",
                "GATEWAY_CALLBACK_POLL_SECONDS": "0.1",
                "GATEWAY_CALLBACK_RETRY_SECONDS": "0.2",
                # the tests' document system listens on loopback
                "GATEWAY_CALLBACK_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
                **env,
            },
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base_url)
    except BaseException:
        process.kill()
        raise
    return process, base_url


@pytest.fixture(scope="session")
def server(
    installation: Settings, demo_credentials: dict, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    process, base_url = start_server(installation, log_path)
    try:
        yield Server(base_url, log_path, demo_credentials["api_key"])
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="session")
def json_server(
    installation: Settings, demo_credentials: dict, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A second server on the test installation that logs in JSON
    (``GATEWAY_LOG_FORMAT=json``), started only by the tests that ask for it."""
    log_path = tmp_path_factory.mktemp("json-server") / "server.log"
    process, base_url = start_server(installation, log_path, GATEWAY_LOG_FORMAT="json")
    try:
        yield Server(base_url, log_path, demo_credentials["api_key"])
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def signer(db: Database, box: SecretBox) -> TestSigner:
    """A fresh signer (own TOTP secret) using leader1's RSA key."""
    return make_signer(db, box)


def submit(
    server: Server, document: bytes, signer: str, api_key: str | None = None, **fields: str
) -> httpx.Response:
    with server.client(api_key) as http:
        return http.post(
            "/api/v1/signing-requests",
            files={"document": ("document.pdf", document, "application/pdf")},
            data={"signer": signer, **fields},
        )


def approve(tablet: httpx.Client, request_id: str, otp: str, document: bytes) -> httpx.Response:
    return tablet.post(
        f"/mobile/v1/signing-requests/{request_id}/approval",
        json={"otp": otp, "document_sha256": hashlib.sha256(document).hexdigest()},
    )


@pytest.fixture(scope="session")
def demo_keys(db) -> dict[str, tuple[CredentialRef, SignatureMechanism]]:
    found = {}
    with db.transaction() as session:
        for username in ("leader1", "clerk1", "org1"):
            cred = demo_credential(session, username)
            found[username] = (
                CredentialRef(cred.token_serial, bytes.fromhex(cred.key_id)),
                SignatureMechanism(cred.mechanism),
            )
    return found


@pytest.fixture(scope="session")
def issuer(installation) -> ActivationIssuer:
    return ActivationIssuer(InstallationKeys.load(installation.secrets_dir).activation_key)
