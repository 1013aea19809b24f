"""Web Push to the installed app, through the real pywebpush, py_vapid and http_ece: the
only stand-in is the push service, a local HTTPS receiver that does what Apple's and
Google's do with a message: it checks the VAPID JWT (RFC 8292) against the key the app
subscribed with, and the test decrypts the payload (RFC 8291, aes128gcm) with the
subscription's own private key and auth secret, as the browser would."""

from __future__ import annotations

import base64
import datetime as dt
import json
import ssl
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

from gateway.config import Settings
from gateway.db.database import Database
from gateway.db.models import ApprovalNonce, Base, Device
from gateway.integration.destinations import DestinationPolicy
from gateway.secrets_at_rest import vapid_key
from mobile_api.push import PushNotifier, PushOutcome, WebPushProvider
from signing_gateway.app import web_push_provider
from tests.factories import add_bare_user


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PushService(ThreadingHTTPServer):
    """A push service on https://localhost:PORT: records each message it gets and
    answers 201 Created (accepted), or 410 Gone (the subscription expired) for the
    paths in ``gone``."""

    def __init__(self, certificate: tuple[bytes, bytes]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[dict] = []
        self.gone: set[str] = set()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert_pem, key_pem = certificate
        cert_file, key_file = _write_temp(cert_pem), _write_temp(key_pem)
        context.load_cert_chain(cert_file, key_file)
        self.socket = context.wrap_socket(self.socket, server_side=True)

    @property
    def origin(self) -> str:
        return f"https://localhost:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(
            {
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body,
            }
        )
        self.send_response(410 if self.path in self.server.gone else 201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _write_temp(data: bytes) -> str:
    handle = tempfile.NamedTemporaryFile(suffix=".pem", delete=False)  # noqa: SIM115
    handle.write(data)
    handle.close()
    return handle.name


def _localhost_certificate() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


@pytest.fixture
def push_service(monkeypatch):
    certificate = _localhost_certificate()
    service = PushService(certificate)
    thread = threading.Thread(target=service.serve_forever, daemon=True)
    thread.start()
    # requests (under pywebpush) trusts the receiver's certificate, and only it
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", _write_temp(certificate[0]))
    yield service
    service.shutdown()
    service.server_close()


class Browser:
    """What a browser keeps for one push subscription: its ECDH key (P-256) and auth
    secret (16 bytes); the subscription JSON it hands to the app."""

    def __init__(self, endpoint: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = b"sixteen-byte-key"
        public = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.subscription = {
            "endpoint": endpoint,
            "keys": {"p256dh": _b64url(public), "auth": _b64url(self.auth)},
        }

    def decrypt(self, body: bytes) -> dict:
        return json.loads(
            http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth, version="aes128gcm")
        )


def _check_vapid(headers: dict, audience: str, vapid_public: bytes, subject: str) -> None:
    """RFC 8292: ``Authorization: vapid t=<JWT>, k=<public key>`` (``headers`` with
    lower-case names); the JWT is ES256
    over the push service's origin, not expired beyond a day, with a contact."""
    scheme, _, params = headers["authorization"].partition(" ")
    assert scheme == "vapid"
    fields = dict(p.strip().split("=", 1) for p in params.split(","))
    assert _unb64url(fields["k"]) == vapid_public
    head, claims, signature = fields["t"].split(".")
    assert json.loads(_unb64url(head)) == {"typ": "JWT", "alg": "ES256"}
    raw = _unb64url(signature)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), vapid_public)
    public.verify(der, f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))  # raises if forged
    body = json.loads(_unb64url(claims))
    assert body["aud"] == audience and body["sub"] == subject
    assert time.time() < body["exp"] <= time.time() + 24 * 3600 + 60
    assert headers["content-encoding"] == "aes128gcm"
    assert int(headers["ttl"]) > 0


@pytest.fixture
def settings(tmp_path):
    (tmp_path / "secrets").mkdir(mode=0o700)  # as `signing-gateway init` makes it
    return Settings(
        data_dir=tmp_path,
        web_push_hosts=["localhost"],
        web_push_allowed_networks=["127.0.0.0/8", "::1/128"],
    )


def test_the_push_service_gets_a_vapid_signed_message_only_the_subscription_can_read(
    settings, push_service
):
    browser = Browser(f"{push_service.origin}/push/subscription-1")
    provider = web_push_provider(settings)
    outcome = provider.send(
        json.dumps(browser.subscription), "req-123", "n0nce", "Văn bản chờ ký số"
    )
    assert outcome is PushOutcome.DELIVERED
    (message,) = push_service.received
    assert message["path"] == "/push/subscription-1"
    vapid_public = (
        vapid_key(settings.secrets_dir)
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    _check_vapid(message["headers"], push_service.origin, vapid_public, settings.web_push_subject)
    assert b"req-123" not in message["body"]  # encrypted on the wire
    assert browser.decrypt(message["body"]) == {
        "type": "signing_request",
        "request_id": "req-123",
        "nonce": "n0nce",
        "title": "Văn bản chờ ký số",
    }
    # another browser's keys cannot read it
    with pytest.raises(Exception):  # noqa: B017 - http_ece raises InvalidTag from cryptography
        Browser(browser.subscription["endpoint"]).decrypt(message["body"])


def test_a_gone_subscription_marks_that_device_stale_and_only_it(settings, push_service, tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'push.db'}")
    Base.metadata.create_all(db.engine)
    now = dt.datetime.now(dt.UTC)
    tablets = {name: Browser(f"{push_service.origin}/push/{name}") for name in ("gone", "live")}
    with db.transaction() as session:
        add_bare_user(session, "u1", now)
        for name, browser in tablets.items():
            session.add(
                Device(
                    id=f"d-{name}",
                    user_id="u1",
                    platform="web",
                    push_token=json.dumps(browser.subscription),
                    stale=False,
                    created_at=now,
                )
            )
    push_service.gone.add("/push/gone")
    notifier = PushNotifier(db, provider=_NoNative(), title="t", web=web_push_provider(settings))
    outcomes = notifier.deliver("u1", "req-9")
    notifier.close()
    assert outcomes == {"d-gone": PushOutcome.TOKEN_STALE, "d-live": PushOutcome.DELIVERED}
    live = next(m for m in push_service.received if m["path"].endswith("/live"))
    nonce = tablets["live"].decrypt(live["body"])["nonce"]
    with db.transaction() as session:
        assert session.get(Device, "d-gone").stale is True
        assert session.get(Device, "d-live").stale is False
        assert session.get(ApprovalNonce, nonce).user_id == "u1"  # a real nonce of the signer
    db.dispose()


class _NoNative:
    """No device here is a native app: a call is a failure of the routing."""

    def send(self, push_token: str, request_id: str, nonce: str, title: str) -> PushOutcome:
        raise AssertionError("a web subscription was sent to the native provider")


@pytest.mark.parametrize(
    ("endpoint", "allowed", "why"),
    [
        ("https://evil.example/push/1", ["127.0.0.0/8"], "not a Web Push service"),
        ("http://localhost:{port}/push/1", ["127.0.0.0/8"], "plain https URL"),
        # parsers disagree on these hosts: requests would connect to evil.example
        ("https://evil.example\\@localhost:{port}/push/1", ["127.0.0.0/8"], "plain https URL"),
        ("https://evil.example\\localhost:{port}/push/1", ["127.0.0.0/8"], "plain https URL"),
        ("https://user@localhost:{port}/push/1", ["127.0.0.0/8"], "plain https URL"),
        ("https://localhost:{port}/push/1\u0130", ["127.0.0.0/8"], "plain https URL"),
        ("https://localhost:{port}/push/ 1", ["127.0.0.0/8"], "plain https URL"),
        ("https://localhost:{port}/push/1", [], "must allow that network"),
    ],
)
def test_the_gateway_posts_only_to_push_services_it_knows_at_allowed_addresses(
    settings, push_service, endpoint, allowed, why
):
    """A subscription is the app's (so, for an attacker, the web client's) to choose:
    an unknown host, plain HTTP, or a known name resolving into the gateway's own
    network when that is not allowed gets nothing posted."""
    port = push_service.server_address[1]
    browser = Browser(endpoint.format(port=port))
    settings = settings.model_copy(update={"web_push_allowed_networks": allowed})
    provider = web_push_provider(settings)
    with pytest.raises(ValueError, match=why):
        provider.check_subscription(json.dumps(browser.subscription))
    assert provider.send(json.dumps(browser.subscription), "r", "n", "t") is PushOutcome.FAILED
    assert push_service.received == []


def test_a_malformed_subscription_is_refused_in_words():
    provider = WebPushProvider(
        vapid_key_pem(),
        "mailto:operator@localhost",
        policy=DestinationPolicy(),
        hosts=["fcm.googleapis.com"],
    )
    for token in ("not json", json.dumps({"endpoint": "https://fcm.googleapis.com/x"}), "[]"):
        with pytest.raises(ValueError, match="endpoint and keys"):
            provider.check_subscription(token)


def vapid_key_pem() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
