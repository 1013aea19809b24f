"""Recovery with several processes on one database (SQLite in the first CI run,
PostgreSQL in the second): real ``signing-gateway serve`` processes, one of them
signing through the fault-injection shim (tests/shim.py) over the installation's own
tokens so that its C_Sign takes seconds.

Before signing leases, every process start moved every ``signing`` request back to
``pending_approval``, including one another live process was signing: after a new
approval the token signed it twice."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time

import httpx
import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from sqlalchemy import select

from gateway.db.models import AuditEntry, SigningRequest
from signing_gateway.demo.sample_pdf import sample_pdf
from tests.conftest import approve, start_server, submit
from tests.device_app import DeviceApp
from tests.factories import enrolment_code
from tests.shim import FaultShim, ShimUnavailable


@pytest.fixture
def shim(installation, tmp_path):
    """The shim in front of a private SoftHSM2 that opens the installation's tokens."""
    try:
        built = FaultShim(tmp_path / "shim")
    except ShimUnavailable as exc:  # gcc is a test dependency (make system-deps-test)
        pytest.fail(str(exc))
    return built


def _slow_server(installation, shim, log_path, **env):
    """A second gateway process on the installation, its tokens reached through the
    shim, whose C_Sign waits as the shim's control file says."""
    variables = {
        **shim.env(),
        "FAULTSHIM_SOFTHSM2_CONF": str(installation.effective_softhsm2_conf),
        "GATEWAY_PKCS11_MODULES": json.dumps([{"path": str(shim.module_path)}]),
        **env,
    }
    return start_server(installation, log_path, **variables)


def _tablet(base_url: str, signer) -> httpx.Client:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        answer = http.post(
            "/mobile/v1/sessions", json={"username": signer.username, "password": signer.password}
        )
    assert answer.status_code == 201, answer.text
    return httpx.Client(
        base_url=base_url,
        timeout=120,
        headers={"Authorization": f"Bearer {answer.json()['access_token']}"},
    )


def _approve_in_background(base_url: str, signer, request_id: str, document: bytes) -> dict:
    """Start the approval on ``base_url`` in a thread; its answer lands in the dict."""
    outcome: dict = {}

    def run() -> None:
        try:
            with _tablet(base_url, signer) as tablet:
                outcome["answer"] = approve(tablet, request_id, signer.otp(), document)
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    outcome["thread"] = thread
    return outcome


def _wait_for(db, request_id: str, status: str, seconds: float) -> SigningRequest:
    deadline = time.monotonic() + seconds
    while True:
        with db.transaction() as session:
            request = session.get(SigningRequest, request_id)
            if request.status == status or time.monotonic() > deadline:
                session.expunge(request)
                assert request.status == status, f"{request_id} is {request.status}"
                return request
        time.sleep(0.05)


def _actions(db, request_id: str) -> list[str]:
    with db.transaction() as session:
        return list(
            session.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.request_id == request_id)
                .order_by(AuditEntry.id)
            )
        )


def _signatures(server, request_id: str) -> int:
    with server.client() as http:
        answer = http.get(f"/api/v1/signing-requests/{request_id}/signed-document")
    assert answer.status_code == 200, answer.text
    return len(PdfFileReader(io.BytesIO(answer.content)).embedded_signatures)


def test_a_process_starting_leaves_another_ones_signing_alone(
    installation, db, server, signer, shim, tmp_path
):
    """Process A signs (its token takes 12 s); process B starts meanwhile (its start-up
    recovery and its sweeps run): the request is still A's, A records it signed, the
    token signed once and the audit never sends it back."""
    document = sample_pdf(["Hai tiến trình", "ký song song"])
    request_id = submit(server, document, signer.username).json()["id"]
    shim.set(sign_delay_ms=12_000)
    a, a_url = _slow_server(installation, shim, tmp_path / "a.log")
    b = None
    try:
        outcome = _approve_in_background(a_url, signer, request_id, document)
        signing = _wait_for(db, request_id, "signing", 30)
        b, _ = start_server(installation, tmp_path / "b.log")
        time.sleep(0.5)  # B's sweep runs every 0.1 s
        with db.transaction() as session:
            still = session.get(SigningRequest, request_id)
            assert still.status == "signing"
            assert still.signing_owner == signing.signing_owner
        outcome["thread"].join(timeout=60)
        assert outcome["answer"].status_code == 200, outcome["answer"].text
        assert outcome["answer"].json()["status"] == "signed"
    finally:
        for process in (a, b):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
    actions = _actions(db, request_id)
    assert actions.count("request.signed") == 1
    assert "request.pending_approval" not in actions, actions
    assert shim.calls().count("sign") == 1
    assert _signatures(server, request_id) == 1


def test_a_crashed_process_s_signing_is_taken_over_once_its_lease_runs_out(
    installation, db, server, signer, shim, tmp_path
):
    """Process A is killed while its token signs (nothing written): the running server
    leaves the request alone while A's 3 s lease lasts, then sends it back for a new
    approval, which the other process signs: one signature in the end."""
    document = sample_pdf(["Tiến trình bị dừng", "giữa chừng"])
    digest = hashlib.sha256(document).hexdigest()
    request_id = submit(server, document, signer.username).json()["id"]
    shim.set(sign_delay_ms=20_000)
    a, a_url = _slow_server(
        installation, shim, tmp_path / "a.log", GATEWAY_SIGNING_LEASE_SECONDS="3"
    )
    try:
        _approve_in_background(a_url, signer, request_id, document)
        signing = _wait_for(db, request_id, "signing", 30)
        a.kill()
        a.wait(timeout=30)
    finally:
        if a.poll() is None:
            a.kill()
    with db.transaction() as session:  # the lease is still A's: nobody takes it yet
        assert session.get(SigningRequest, request_id).status == "signing"
    assert signing.signing_lease_until is not None
    _wait_for(db, request_id, "pending_approval", 15)
    # the new approval from the signer's tablet (a TOTP code is spent once per step)
    app = DeviceApp(server.base_url, signer.username)
    assert app.enrol(enrolment_code(db, signer.username)).status_code == 201
    with server.tablet(signer.username, signer.password) as tablet:
        view = tablet.get(f"/mobile/v1/signing-requests/{request_id}").json()
        nonce = tablet.post("/mobile/v1/approval-nonces").json()["nonce"]
        answer = tablet.post(
            f"/mobile/v1/signing-requests/{request_id}/approval",
            json={
                "document_sha256": digest,
                "device_approval": app.answer("approve", nonce, [view]),
            },
        )
    assert answer.status_code == 200 and answer.json()["status"] == "signed", answer.text
    actions = _actions(db, request_id)
    assert actions.count("request.signed") == 1
    assert actions.count("request.pending_approval") == 1
    assert shim.calls().count("sign") == 0  # A never finished its C_Sign
    assert _signatures(server, request_id) == 1
    with server.client() as http:
        status = http.get(f"/api/v1/signing-requests/{request_id}").json()
    assert status["document_sha256"] == digest
