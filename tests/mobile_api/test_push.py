"""The FCM provider runs the real firebase-admin library; only the HTTP boundary (Google's
OAuth token endpoint and the FCM v1 send endpoint) is intercepted with ``responses``."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.db.database import Database
from gateway.db.models import ApprovalNonce, Base, Device
from mobile_api.push import FcmPushProvider, PushNotifier, PushOutcome
from tests.factories import add_bare_user

TOKEN_URI = "https://oauth2.googleapis.com/token"
SEND_URL = "https://fcm.googleapis.com/v1/projects/demo-project/messages:send"


@pytest.fixture
def service_account(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path = tmp_path / "service-account.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "demo-project",
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": "push@demo-project.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": TOKEN_URI,
            }
        )
    )
    return path


@pytest.fixture
def fcm():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(
            responses.POST,
            TOKEN_URI,
            json={"access_token": "ya29.test", "expires_in": 3600, "token_type": "Bearer"},
        )
        yield mock


def _unregistered():
    return {
        "error": {
            "code": 404,
            "message": "Requested entity was not found.",
            "status": "NOT_FOUND",
            "details": [
                {
                    "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                    "errorCode": "UNREGISTERED",
                }
            ],
        }
    }


def test_fcm_sends_the_exact_v1_message(service_account, fcm):
    fcm.add(responses.POST, SEND_URL, json={"name": "projects/demo-project/messages/1"})
    provider = FcmPushProvider(service_account)
    outcome = provider.send("device-token-1", "req-123", "n0nce", "Văn bản chờ ký số")
    assert outcome is PushOutcome.DELIVERED
    sent = [c for c in fcm.calls if c.request.url == SEND_URL]
    assert len(sent) == 1
    assert sent[0].request.headers["Authorization"] == "Bearer ya29.test"
    assert json.loads(sent[0].request.body) == {
        "message": {
            "token": "device-token-1",
            "data": {"type": "signing_request", "request_id": "req-123", "nonce": "n0nce"},
            "notification": {"title": "Văn bản chờ ký số"},
            "android": {"priority": "high"},
            "apns": {"headers": {"apns-priority": "10"}},
        }
    }


def test_unregistered_answer_marks_only_that_device_stale(service_account, fcm, tmp_path):
    nonces = []

    def answer(request):
        body = json.loads(request.body)
        nonces.append(body["message"]["data"]["nonce"])
        if body["message"]["token"] == "dead-token":
            return (404, {}, json.dumps(_unregistered()))
        return (200, {}, json.dumps({"name": "projects/demo-project/messages/2"}))

    fcm.add_callback(responses.POST, SEND_URL, callback=answer, content_type="application/json")
    db = Database(f"sqlite:///{tmp_path / 'push.db'}")
    Base.metadata.create_all(db.engine)
    now = dt.datetime.now(dt.UTC)
    with db.transaction() as session:
        add_bare_user(session, "u1", now)
        for device_id, token in (
            ("d-dead", "dead-token"),
            ("d-live", "live-token"),
            ("d-lost", "lost-token"),
        ):
            session.add(
                Device(
                    id=device_id,
                    user_id="u1",
                    platform="android",
                    push_token=token,
                    stale=False,
                    created_at=now,
                    revoked_at=now if device_id == "d-lost" else None,
                )
            )
    notifier = PushNotifier(db, FcmPushProvider(service_account), "Văn bản chờ ký số")
    outcomes = notifier.deliver("u1", str(uuid.uuid4()))
    notifier.close()
    assert outcomes == {"d-dead": PushOutcome.TOKEN_STALE, "d-live": PushOutcome.DELIVERED}
    # one server nonce for the signed answer, stored for this signer, unused
    assert len(set(nonces)) == 1 and len(nonces) == 2
    with db.transaction() as session:
        stored = session.get(ApprovalNonce, nonces[0])
        assert stored.user_id == "u1" and stored.used_at is None and stored.expires_at > now
        assert session.get(Device, "d-dead").stale is True
        assert session.get(Device, "d-live").stale is False
    # the stale device is skipped next time
    assert list(PushNotifier(db, FcmPushProvider(service_account), "t").deliver("u1", "r2")) == [
        "d-live"
    ]
    db.dispose()


def test_server_error_is_a_failure_not_an_exception(service_account, fcm):
    fcm.add(
        responses.POST,
        SEND_URL,
        status=503,
        json={"error": {"code": 503, "message": "unavailable", "status": "UNAVAILABLE"}},
    )
    assert FcmPushProvider(service_account).send("t", "r", "n", "x") is PushOutcome.FAILED
