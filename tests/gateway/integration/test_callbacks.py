"""Status callbacks to the document system: written with the state change (outbox),
signed with the client's secret, retried until the receiver takes them, and sent for
signing, rejection, cancellation and expiry (the expiry sweep runs in the server)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from gateway.db.models import CallbackDelivery, SigningRequest
from gateway.integration.callbacks import SIGNATURE_HEADER
from tests.conftest import approve, submit
from tests.factories import make_client, make_client_with_callbacks


class Receiver:
    """A document system's callback endpoint: answers the given statuses in turn (then
    200) and keeps every request it got."""

    def __init__(self, answers: list[int]) -> None:
        self.answers = list(answers)
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver.answers.pop(0) if receiver.answers else 200
                with receiver.arrived:
                    receiver.received.append((dict(self.headers), body))
                    receiver.arrived.notify_all()
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/signing"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, seconds: float = 20) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + seconds
        with self.arrived:
            while len(self.received) < count and time.monotonic() < deadline:
                self.arrived.wait(0.1)
        assert len(self.received) >= count, f"{len(self.received)} of {count} callbacks came"
        return self.received


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made: list[Receiver] = []

    def make(answers: list[int] | None = None) -> Receiver:
        made.append(Receiver(answers or []))
        return made[-1]

    yield make  # type: ignore[misc]
    for one in made:
        one.server.shutdown()


def _verified(headers: dict[str, str], body: bytes, secret: str) -> dict[str, object]:
    """What the document system does: check the signature and its freshness."""
    fields = dict(part.split("=", 1) for part in headers[SIGNATURE_HEADER].split(","))
    expected = hmac.new(
        secret.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(expected, fields["v1"])
    assert abs(time.time() - int(fields["t"])) < 300
    return json.loads(body)


def test_a_signed_request_is_called_back_with_a_valid_signature(
    server, db, box, signer, corpus, receiver
):
    api_key, secret = make_client_with_callbacks(db, box)
    hook = receiver()
    document = (corpus / "pdf" / "plain-libreoffice-writer.pdf").read_bytes()
    created = submit(
        server,
        document,
        signer.username,
        api_key=api_key,
        callback_url=hook.url,
        title="Báo cáo quý IV",
    )
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    with server.tablet(signer.username, signer.password) as tablet:
        signed = approve(tablet, request_id, signer.otp(), document).json()
    assert signed["status"] == "signed"
    headers, body = hook.wait_for(1)[0]
    event = _verified(headers, body, secret)
    assert event["id"] == request_id and event["status"] == "signed"
    assert event["title"] == "Báo cáo quý IV"
    assert event["signed_document_sha256"] == signed["signed_document_sha256"]
    time.sleep(0.5)
    assert len(hook.received) == 1, "one callback per final status"


def test_a_receiver_that_fails_gets_the_callback_again_until_it_takes_it(
    server, db, box, signer, corpus, receiver
):
    api_key, secret = make_client_with_callbacks(db, box)
    hook = receiver([500, 503])
    document = (corpus / "pdf" / "plain-libreoffice-writer.pdf").read_bytes()
    request_id = submit(
        server, document, signer.username, api_key=api_key, callback_url=hook.url
    ).json()["id"]
    with server.tablet(signer.username, signer.password) as tablet:
        rejected = tablet.post(
            f"/mobile/v1/signing-requests/{request_id}/rejection",
            json={"reason": "Sai số", "otp": signer.otp()},
        )
    assert rejected.json()["status"] == "rejected"
    received = hook.wait_for(3)
    events = [_verified(h, b, secret) for h, b in received]
    assert {e["status"] for e in events} == {"rejected"}
    assert len({e["event_id"] for e in events}) == 1, "a retry repeats the same event"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with db.transaction() as session:
            delivery = session.scalars(
                select(CallbackDelivery).where(CallbackDelivery.request_id == request_id)
            ).one()
        if delivery.delivered_at is not None:
            break
        time.sleep(0.1)
    assert delivery.delivered_at is not None and delivery.attempts == 3


def test_cancellation_and_expiry_are_called_back(server, db, box, signer, corpus, receiver):
    api_key, secret = make_client_with_callbacks(db, box)
    hook = receiver()
    document = (corpus / "pdf" / "plain-libreoffice-writer.pdf").read_bytes()
    cancelled, expiring = (
        submit(server, document, signer.username, api_key=api_key, callback_url=hook.url).json()[
            "id"
        ]
        for _ in range(2)
    )
    with server.client(api_key) as http:
        assert http.delete(f"/api/v1/signing-requests/{cancelled}").status_code == 200
    with db.transaction() as session:  # the request's time runs out; nobody looks at it
        stored = session.get(SigningRequest, expiring)
        stored.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    events = {e["id"]: e["status"] for e in (_verified(h, b, secret) for h, b in hook.wait_for(2))}
    assert events == {cancelled: "cancelled", expiring: "expired"}
    with server.client(api_key) as http:
        assert http.get(f"/api/v1/signing-requests/{expiring}").json()["status"] == "expired"


def test_bad_callback_urls_and_clients_without_a_secret_are_refused(server, db, box, signer):
    from signing_gateway.demo.sample_pdf import sample_pdf

    api_key, _ = make_client_with_callbacks(db, box)
    document = sample_pdf(["x"])
    for url in ("ftp://example.org/x", "not a url", "http:///no-host"):
        answer = submit(server, document, signer.username, api_key=api_key, callback_url=url)
        assert answer.status_code == 422 and answer.json()["code"] == "parameter_invalid", url
    # a client made without a callback secret cannot ask for callbacks
    plain_client = make_client(db)
    answer = submit(
        server, document, signer.username, api_key=plain_client, callback_url="https://x.org/h"
    )
    assert answer.status_code == 422 and answer.json()["code"] == "parameter_invalid"


def test_each_step_of_an_official_document_is_called_back_with_the_workflows_status(
    server, db, box, receiver
):
    from signing_gateway.demo.sample_pdf import sample_pdf
    from tests.factories import make_organisation

    org = make_organisation(db, box)
    api_key, secret = make_client_with_callbacks(db, box)
    hook = receiver()
    document = sample_pdf(["QUYẾT ĐỊNH"])
    step1 = submit(
        server,
        document,
        org.leader.username,
        api_key=api_key,
        callback_url=hook.url,
        workflow="official_document",
        organisation=org.name,
        page="1",
        box="330,90,530,160",
    ).json()
    with server.tablet(org.leader.username, org.leader.password) as tablet:
        assert approve(tablet, step1["id"], org.leader.otp(), document).json()["status"] == "signed"
    first = _verified(*hook.wait_for(1)[0], secret)
    assert (first["id"], first["step"], first["status"]) == (step1["id"], 1, "signed")
    assert first["workflow_id"] == step1["id"] and first["workflow_status"] == "pending"
    with server.client(api_key) as http:
        steps = http.get(f"/api/v1/signing-requests/{step1['id']}").json()["workflow"]["steps"]
        after_leader = http.get(f"/api/v1/signing-requests/{step1['id']}/signed-document").content
    with server.tablet(org.clerk.username, org.clerk.password) as tablet:
        sealed = approve(tablet, steps[1]["request_id"], org.clerk.otp(), after_leader).json()
    assert sealed["status"] == "signed"
    last = _verified(*hook.wait_for(2)[1], secret)
    assert (last["id"], last["step"], last["status"]) == (steps[1]["request_id"], 2, "signed")
    assert last["workflow_id"] == step1["id"] and last["workflow_status"] == "signed"
