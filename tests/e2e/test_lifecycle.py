"""Life-cycle paths over HTTP: TOTP enrolment, expiry, tampering after approval, push
after commit, previews; and crash recovery with the service in process."""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.parse
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import select

from gateway.context import build_context
from gateway.db.models import AuditEntry, SigningRequest
from gateway.requests.document_store import DocumentStore
from gateway.requests.lifecycle import RequestStatus
from tests.conftest import approve, submit


@pytest.fixture
def plain(corpus: Path) -> bytes:
    return (corpus / "pdf" / "plain-libreoffice-writer.pdf").read_bytes()


def test_totp_enrolment_replaces_the_authenticator(server, signer, plain):
    with server.tablet(signer.username, signer.password) as tablet:
        refused = tablet.post("/mobile/v1/totp", json={})
        assert refused.status_code == 403 and refused.json()["code"] == "otp_invalid"
        started = tablet.post("/mobile/v1/totp", json={"otp": signer.otp()})
        assert started.status_code == 201, started.text
        body = started.json()
        assert body["qr_png_base64"].startswith("iVBORw0KGgo")  # a PNG
        uri = urllib.parse.urlparse(body["otpauth_uri"])
        assert uri.scheme == "otpauth" and uri.netloc == "totp"
        new_secret = urllib.parse.parse_qs(uri.query)["secret"][0]
        new = pyotp.TOTP(new_secret)
        wrong = tablet.post("/mobile/v1/totp/confirmation", json={"otp": signer.otp()})
        assert wrong.json()["code"] == "otp_invalid"
        first_code = new.now()
        confirmed = tablet.post("/mobile/v1/totp/confirmation", json={"otp": first_code})
        assert confirmed.json()["confirmed"] is True

        request_id = submit(server, plain, signer.username).json()["id"]
        # the old authenticator no longer works; the confirming code cannot be replayed
        assert approve(tablet, request_id, signer.otp(), plain).json()["code"] in (
            "otp_invalid",
            "otp_reused",
        )
        assert approve(tablet, request_id, first_code, plain).json()["code"] == "otp_reused"
        # future steps are refused: only the current and the previous one are accepted
        future = new.at(time.time() + 90)
        assert approve(tablet, request_id, future, plain).json()["code"] == "otp_invalid"


def test_expired_request_cannot_be_approved(server, db, signer, plain):
    request_id = submit(server, plain, signer.username).json()["id"]
    with db.transaction() as session:
        session.get(SigningRequest, request_id).expires_at = dt.datetime.now(dt.UTC)
    with server.tablet(signer.username, signer.password) as tablet:
        answer = approve(tablet, request_id, signer.otp(), plain)
        assert answer.status_code == 409 and answer.json()["code"] == "request_expired"
    with server.client() as http:
        assert http.get(f"/api/v1/signing-requests/{request_id}").json()["status"] == "expired"


@pytest.mark.invariant(2)
def test_stored_document_changed_after_submission_is_not_signed(
    server, installation, signer, plain
):
    request_id = submit(server, plain, signer.username).json()["id"]
    store = DocumentStore(installation.documents_dir)
    store.write(request_id, DocumentStore.ORIGINAL, plain.replace(b"%%EOF", b"%%EOF\n%x"))
    with server.tablet(signer.username, signer.password) as tablet:
        decision = approve(tablet, request_id, signer.otp(), plain).json()
    assert decision["status"] == "failed" and decision["failure_code"] == "document_changed"
    assert not store.has_signed(request_id)


@pytest.mark.invariant(2)
def test_parameters_changed_after_submission_void_the_approval(server, db, signer, plain):
    request_id = submit(server, plain, signer.username, reason="Phê duyệt").json()["id"]
    with db.transaction() as session:
        request = session.get(SigningRequest, request_id)
        params = json.loads(request.parameters)
        params["reason"] = "Đồng ý chi 10 tỷ"
        request.parameters = json.dumps(params)
    with server.tablet(signer.username, signer.password) as tablet:
        decision = approve(tablet, request_id, signer.otp(), plain).json()
    assert decision["status"] == "failed" and decision["failure_code"] == "document_changed"


def test_new_request_is_pushed_after_commit(server, db, signer, plain):
    from tests.device_app import DeviceApp
    from tests.factories import enrolment_code

    device = DeviceApp(server.base_url, signer.username)
    assert (
        device.enrol(enrolment_code(db, signer.username), push_token="apns-token-xyz").status_code
        == 201
    )
    with server.tablet(signer.username, signer.password) as tablet:
        bad = tablet.post("/mobile/v1/devices", json={"platform": "nokia", "push_token": "x"})
        assert bad.status_code == 422 and bad.json()["code"] == "parameter_invalid"
    request_id = submit(server, plain, signer.username).json()["id"]
    deadline = time.monotonic() + 10
    needle = f"push (log provider): new signing request {request_id}"
    while needle not in server.log_path.read_text("utf-8") and time.monotonic() < deadline:
        time.sleep(0.1)
    log = server.log_path.read_text("utf-8")
    assert needle in log
    assert "apns-token-xyz" not in log


def test_page_preview_bounds(server, signer, corpus):
    document = (corpus / "pdf" / "rotate-90-180-270-360-arabic.pdf").read_bytes()
    request_id = submit(server, document, signer.username).json()["id"]
    with server.tablet(signer.username, signer.password) as tablet:
        base = f"/mobile/v1/signing-requests/{request_id}/pages"
        rotated = tablet.get(f"{base}/2.png", params={"width": 400})
        assert rotated.status_code == 200 and rotated.headers["content-type"] == "image/png"
        import io

        from PIL import Image

        image = Image.open(io.BytesIO(rotated.content))
        assert image.width == 400
        assert tablet.get(f"{base}/5.png").json()["code"] == "not_found"
        assert tablet.get(f"{base}/0.png").json()["code"] == "not_found"
        assert tablet.get(f"{base}/1.png", params={"width": 99999}).json()["code"] == (
            "parameter_invalid"
        )


def test_crash_while_signing_is_recovered(installation, db, signer, plain, server):
    """A request left in ``signing`` by a process whose lease ran out returns to
    ``pending_approval``; one whose signed file was written becomes ``signed`` (no
    silent signatures). Whichever process recovers them first (the running server's
    sweep, or one started now), the outcome is the same."""
    interrupted = submit(server, plain, signer.username).json()["id"]
    finished = submit(server, plain, signer.username).json()["id"]
    store = DocumentStore(installation.documents_dir)
    store.write_signed(finished, plain + b"\n% signed part\n", len(plain))
    expired = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    with db.transaction() as session:
        for request_id in (interrupted, finished):
            request = session.get(SigningRequest, request_id)
            request.status = RequestStatus.SIGNING.value
            request.signing_owner, request.signing_lease_until = "a-crashed-process", expired
    context = build_context(installation)
    try:
        context.service.pipeline.recover_interrupted()
    finally:
        context.close()
    with db.transaction() as session:
        assert session.get(SigningRequest, interrupted).status == "pending_approval"
        assert session.get(SigningRequest, finished).status == "signed"
        actions = session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.request_id == interrupted)
            .order_by(AuditEntry.id)
        ).all()
        assert actions[-1] == "request.pending_approval"
    with server.tablet(signer.username, signer.password) as tablet:
        assert approve(tablet, interrupted, signer.otp(), plain).json()["status"] == "signed"
