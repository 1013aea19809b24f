"""Secure-host mode end to end with the real commands: ``bridge init-tls`` and ``bridge
serve`` on the host with the tokens, and a gateway configured with only a remote bridge
(no PKCS#11 module in its process). A real PDF is signed through the mutual-TLS link and
validated; health on both sides lists the tokens."""

from __future__ import annotations

import hashlib
import json
import os
import re
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gateway.signing.validation import pdfsig_verdicts, validate_with_pyhanko
from hsm_bridge.transport.link_tls import link_files
from signing_gateway.demo.driver import wait_until_up
from tests.commands import cli
from tests.conftest import _free_port
from tests.device_app import DeviceApp
from tests.factories import make_signer


def _mtls(files, *, with_certificate: bool = True) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(files.ca))
    if with_certificate:
        context.load_cert_chain(str(files.gateway_certificate), str(files.gateway_key))
    return httpx.Client(verify=context)


def _wait_for_tls(port: int, files, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with _mtls(files) as http:
                http.get(f"https://127.0.0.1:{port}/health")
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError("the bridge service did not come up")


@pytest.fixture(scope="module")
def remote_gateway(installation, tmp_path_factory):
    cli = [sys.executable, "-m", "signing_gateway.cli"]
    data = str(installation.data_dir)
    subprocess.run(
        [*cli, "bridge", "init-tls", "--data-dir", data, "--host", "127.0.0.1"],
        check=True,
        timeout=60,
        capture_output=True,
    )
    files = link_files(installation.bridge_tls_dir)
    logs = tmp_path_factory.mktemp("secure-host")
    bridge_port, gateway_port = _free_port(), _free_port()
    with (logs / "bridge.log").open("wb") as bridge_log:
        bridge = subprocess.Popen(
            [*cli, "bridge", "serve", "--data-dir", data, "--port", str(bridge_port)],
            stdout=bridge_log,
            stderr=subprocess.STDOUT,
        )
    remote = [
        {
            "name": "secure-host-1",
            "url": f"https://127.0.0.1:{bridge_port}",
            "client_certificate": str(files.gateway_certificate),
            "client_key": str(files.gateway_key),
            "ca_certificate": str(files.ca),
        }
    ]
    env = dict(
        os.environ,
        GATEWAY_IN_PROCESS_BRIDGE="false",
        GATEWAY_REMOTE_BRIDGES=json.dumps(remote),
        # a PKCS#11 module that does not exist: proves the gateway never loads one
        GATEWAY_PKCS11_MODULES=json.dumps([{"path": "/nonexistent/libpkcs11.so"}]),
    )
    with (logs / "gateway.log").open("wb") as gateway_log:
        gateway = subprocess.Popen(
            [*cli, "serve", "--data-dir", data, "--port", str(gateway_port)],
            stdout=gateway_log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        _wait_for_tls(bridge_port, files)
        wait_until_up(f"http://127.0.0.1:{gateway_port}")
        yield f"http://127.0.0.1:{gateway_port}", bridge_port, files, logs
    finally:
        for process in (gateway, bridge):
            process.terminate()
            process.wait(timeout=30)


def test_a_pdf_is_signed_through_a_bridge_on_a_secure_host(
    remote_gateway, corpus: Path, db, box, demo_credentials, installation
):
    base_url, _, _, logs = remote_gateway
    document = (corpus / "pdf" / "vn-word-text-hybrid-xref.pdf").read_bytes()
    person = make_signer(db, box, like="clerk1")
    auth = {"Authorization": f"Bearer {demo_credentials['api_key']}"}
    with httpx.Client(base_url=base_url, timeout=120, headers=auth) as http:
        answer = http.post(
            "/api/v1/signing-requests",
            files={"document": ("d.pdf", document, "application/pdf")},
            data={"signer": person.username},
        )
        assert answer.status_code == 201, answer.text
        request_id = answer.json()["id"]
    # the bridge's administrator issues an enrolment code on the secure host; the
    # signer's device enrols with it through the gateway (the bridge keeps the key)
    issued = subprocess.run(
        [
            sys.executable,
            "-m",
            "signing_gateway.cli",
            "bridge",
            "enrolment-code",
            person.username,
            "--data-dir",
            str(installation.data_dir),
        ],
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    )
    code = re.search(r"enrolment code: (\S+)", issued.stdout).group(1)
    device = DeviceApp(base_url, person.username)
    assert device.enrol(code).status_code == 201
    with httpx.Client(base_url=base_url, timeout=120) as http:
        login = http.post(
            "/mobile/v1/sessions", json={"username": person.username, "password": person.password}
        )
        bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
        approval = f"/mobile/v1/signing-requests/{request_id}/approval"
        digest = hashlib.sha256(document).hexdigest()
        # a TOTP code approves nothing on a secure host
        totp = http.post(
            approval, headers=bearer, json={"otp": person.otp(), "document_sha256": digest}
        )
        assert totp.status_code == 403 and totp.json()["code"] == "totp_not_accepted", totp.text
        shown = http.get(f"/mobile/v1/signing-requests/{request_id}", headers=bearer).json()
        nonce = http.post("/mobile/v1/approval-nonces", headers=bearer).json()["nonce"]
        decision = http.post(
            approval,
            headers=bearer,
            json={
                "document_sha256": digest,
                "device_approval": device.answer("approve", nonce, [shown]),
            },
        )
    assert decision.status_code == 200, decision.text + (logs / "gateway.log").read_text()
    assert decision.json()["status"] == "signed"
    with httpx.Client(base_url=base_url, timeout=120, headers=auth) as http:
        data = http.get(f"/api/v1/signing-requests/{request_id}/signed-document").content
    verdict = validate_with_pyhanko(data, Path(demo_credentials["trust_anchor"]))[-1]
    assert verdict.ok and verdict.covers_document
    assert pdfsig_verdicts(data)[-1] == "Signature is Valid."  # pdfsig is a test dependency
    # the signature was made on the secure host: its metrics counted it
    assert "libpkcs11" not in (logs / "gateway.log").read_text()


def test_health_on_both_sides_lists_the_tokens(remote_gateway, db, installation):
    base_url, bridge_port, files, _ = remote_gateway
    token = cli(installation, "operator-token").stdout.strip()
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}) as http:
        health = http.get("/operator/health").json()
    labels = {t["label"]: t["state"] for t in health["tokens"]}
    assert labels["leader1"] == "ok" and labels["org1"] == "ok"
    assert health["unreachable_bridges"] == []
    from sqlalchemy import select

    from gateway.db.models import Credential, User

    with db.transaction() as session:
        user = session.scalar(select(User).where(User.username == "leader1"))
        cred = session.scalar(select(Credential).where(Credential.user_id == user.id))
    with _mtls(files) as http:
        bridge_health = http.get(f"https://127.0.0.1:{bridge_port}/health").json()
        read = http.post(
            f"https://127.0.0.1:{bridge_port}/v1/certificate",
            json={"token_serial": cred.token_serial, "key_id": cred.key_id},
        )
        assert read.status_code == 200, read.text
        metrics = http.get(f"https://127.0.0.1:{bridge_port}/metrics").text
    assert {t["label"] for t in bridge_health["tokens"]} >= {"leader1", "clerk1", "org1"}
    assert "bridge_operations_total" in metrics
    assert f'token="{cred.token_serial}"' in metrics and 'operation="certificate"' in metrics


def test_the_bridge_refuses_a_client_without_the_gateway_certificate(remote_gateway):
    _, bridge_port, files, _ = remote_gateway
    with _mtls(files, with_certificate=False) as http, pytest.raises(httpx.HTTPError):
        http.get(f"https://127.0.0.1:{bridge_port}/health")
