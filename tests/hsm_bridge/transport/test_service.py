"""The bridge service over mutual TLS, with real components: two bridge services in child
processes (uvicorn, each with its own SoftHSM2 token and SOFTHSM2_CONF), reached only
through :class:`~hsm_bridge.transport.remote.RemoteBridge`, plain httpx and
:class:`~hsm_bridge.transport.router.BridgeRouter`. Each bridge builds the signatures itself: the
signed PDFs are validated with pyHanko against the service's test CA, and the link refuses
anything but an approved document under a SAD."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyotp
import pytest
from asgi_correlation_id import correlation_id
from prometheus_client.parser import text_string_to_metric_families
from pyhanko.pdf_utils.reader import PdfFileReader

from gateway.signing.validation import validate_with_pyhanko
from hsm_bridge import CredentialRef, SignRequest
from hsm_bridge.clock import utcnow
from hsm_bridge.credentials import SignatureMechanism
from hsm_bridge.errors import (
    ActivationInvalid,
    AuthorizationRefused,
    BridgeError,
    BridgeUnavailable,
    CredentialNotFound,
    TokenNotPresent,
)
from hsm_bridge.pades import SignatureParameters
from hsm_bridge.pkcs11.provisioning import KeySpec
from hsm_bridge.pkcs11.softhsm import find_softhsm_module
from hsm_bridge.sam.activation import ActivationIssuer
from hsm_bridge.sam.authorization import AuthorizationItem, AuthorizationRequest, TotpFactor
from hsm_bridge.sam.signers import CodeIssuer, enrolment_proof
from hsm_bridge.transport.link_tls import LinkFiles, create_link_credentials
from hsm_bridge.transport.remote import RemoteBridge
from hsm_bridge.transport.router import BridgeRouter
from hsm_bridge.transport.wire import MAX_BODY_BYTES, SignItemWire
from signing_gateway.demo.sample_pdf import sample_pdf
from tests.bridge_fixtures import (
    BridgeService,
    PlannedKey,
    free_port,
    start_bridge_service,
    tls_client,
)
from tests.phone import Phone
from tests.sads import request_for

RSA_ID = b"\x0a\x01"
EC_ID = b"\x0e\xc1"
B_EC_ID = b"\x0b\xec"
TLS12 = ssl.TLSVersion.TLSv1_2


@dataclass
class Services:
    """Two bridge services (``a``: RSA-2048 and EC P-256 keys; ``b``: an EC P-256 key),
    the activation issuer they both trust, and the link files of an unrelated link."""

    a: BridgeService
    b: BridgeService
    issuer: ActivationIssuer
    stranger: LinkFiles


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    module = find_softhsm_module()
    if module is None:
        pytest.fail("SoftHSM2 is not installed: run scripts/system-deps.sh --test")
    root = tmp_path_factory.mktemp("bridge-services")
    activation_key = os.urandom(32)
    started: list[BridgeService] = []
    try:
        for name, label, keys in (
            (
                "bridge-a",
                "svc-a",
                [
                    PlannedKey(RSA_ID, KeySpec.RSA_2048, "a-rsa"),
                    PlannedKey(EC_ID, KeySpec.EC_P256, "a-ec"),
                ],
            ),
            ("bridge-b", "svc-b", [PlannedKey(B_EC_ID, KeySpec.EC_P256, "b-ec")]),
        ):
            started.append(
                start_bridge_service(
                    root / name,
                    name,
                    token_label=label,
                    keys=keys,
                    activation_key=activation_key,
                    module=module,
                )
            )
        for service in started:
            service.wait_ready()
        stranger = create_link_credentials(
            root / "stranger", ["127.0.0.1"], now=dt.datetime.now(dt.UTC)
        )
        yield Services(started[0], started[1], ActivationIssuer(activation_key), stranger)
    finally:
        for service in started:
            service.stop()


@pytest.fixture(scope="module")
def remote_a(services: Services) -> RemoteBridge:
    return services.a.remote()


@pytest.fixture(scope="module")
def remote_b(services: Services) -> RemoteBridge:
    return services.b.remote()


def _request(
    services: Services,
    ref: CredentialRef,
    mechanism: SignatureMechanism,
    text: bytes,
) -> SignRequest:
    """A fresh document ``text`` under a SAD minted with the services' key."""
    document = sample_pdf([text.decode("utf-8", "replace")])
    service = services.a if ref.token_serial == services.a.serial else services.b
    return request_for(services.issuer, ref, mechanism, document, service.certificates[ref.key_id])


def _mechanism(key_id: bytes) -> SignatureMechanism:
    return (
        SignatureMechanism.RSA_PKCS_SHA256 if key_id == RSA_ID else SignatureMechanism.ECDSA_SHA256
    )


def _verify(service: BridgeService, request: SignRequest, signed: bytes) -> str:
    """The signed PDF holds one signature over the request's whole document, valid and
    trusted under the service's CA, by the credential's certificate; its algorithm."""
    assert signed.startswith(request.document) and len(signed) > len(request.document)
    (verdict,) = validate_with_pyhanko(signed, service.ca_certificate)
    assert verdict.intact and verdict.valid and verdict.trusted, verdict
    assert verdict.covers_document
    (embedded,) = PdfFileReader(io.BytesIO(signed)).embedded_signatures
    assert embedded.signer_cert.dump() == service.certificates[request.credential.key_id]
    return str(embedded.signer_info["signature_algorithm"]["algorithm"].native)


# ---- signing over mutual TLS ------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_id", "mechanism", "algorithm"),
    [
        (RSA_ID, SignatureMechanism.RSA_PKCS_SHA256, "sha256_rsa"),
        (RSA_ID, SignatureMechanism.RSA_PSS_SHA256, "rsassa_pss"),
        (EC_ID, SignatureMechanism.ECDSA_SHA256, "sha256_ecdsa"),
    ],
    ids=["rsa-pkcs1", "rsa-pss", "ecdsa"],
)
def test_builds_and_signs_over_mtls(
    services: Services,
    remote_a: RemoteBridge,
    key_id: bytes,
    mechanism: SignatureMechanism,
    algorithm: str,
) -> None:
    request = _request(services, services.a.ref(key_id), mechanism, b"over the link " + key_id)
    assert _verify(services.a, request, remote_a.sign(request)) == algorithm


def test_the_gateway_request_id_is_logged_by_the_bridge_and_returned(
    services: Services, remote_a: RemoteBridge
) -> None:
    request = _request(
        services, services.a.ref(EC_ID), SignatureMechanism.ECDSA_SHA256, b"request id"
    )
    token = correlation_id.set("req-0042.gateway")  # as the gateway's middleware does
    try:
        remote_a.sign(request)
    finally:
        correlation_id.reset(token)
    lines = [json.loads(line) for line in services.a.log().splitlines() if line.startswith("{")]
    signed = [line for line in lines if "with credential" in line["message"]]
    assert signed and signed[-1]["request_id"] == "req-0042.gateway"
    link = services.a.link
    with tls_client(services.a.url, link.ca, link.gateway_certificate, link.gateway_key) as http:
        echoed = http.get("/health", headers={"X-Request-ID": "req-0043"})
        assert echoed.headers["X-Request-ID"] == "req-0043"
        forged = http.get("/health", headers={"X-Request-ID": 'x" injected=1'})
        assert forged.headers["X-Request-ID"] not in ("", 'x" injected=1')


def test_sign_many_batch_of_40_all_validate(services: Services, remote_a: RemoteBridge) -> None:
    key_ids = [RSA_ID if i % 2 else EC_ID for i in range(40)]
    requests = [
        _request(services, services.a.ref(k), _mechanism(k), b"batch item %d" % i)
        for i, k in enumerate(key_ids)
    ]
    outcomes = remote_a.sign_many(requests)
    assert len(outcomes) == 40
    for request, outcome in zip(requests, outcomes, strict=True):
        assert isinstance(outcome, bytes), outcome
        _verify(services.a, request, outcome)


def test_batch_refuses_only_the_items_with_a_forged_reused_or_swapped_activation(
    services: Services, remote_a: RemoteBridge
) -> None:
    ref = services.a.ref(RSA_ID)
    mechanism = SignatureMechanism.RSA_PKCS_SHA256
    used = _request(services, ref, mechanism, b"signed once")
    remote_a.sign(used)
    forged = request_for(
        ActivationIssuer(os.urandom(32)),
        ref,
        mechanism,
        sample_pdf(["nobody approved this"]),
        services.a.certificates[RSA_ID],
    )
    twice = _request(services, ref, mechanism, b"twice in one batch")
    swapped = _request(services, ref, mechanism, b"approved")
    batch = [
        _request(services, ref, mechanism, b"good 1"),
        used,  # reused: spent by the call above
        forged,  # another key's MAC
        twice,
        dataclasses.replace(swapped, document=sample_pdf(["5.000.000.000 đồng"])),
        _request(services, ref, mechanism, b"good 2"),
        twice,  # reused within the same batch
    ]
    outcomes = remote_a.sign_many(batch)
    refused = {1: "reused", 2: "forged", 4: "wrong_document", 6: "reused"}
    for index, (request, outcome) in enumerate(zip(batch, outcomes, strict=True)):
        if index in refused:
            assert isinstance(outcome, ActivationInvalid), (index, outcome)
            assert outcome.reason == refused[index], (index, outcome.reason)
        else:
            assert isinstance(outcome, bytes), (index, outcome)
            _verify(services.a, request, outcome)
    with pytest.raises(ActivationInvalid):
        remote_a.sign(used)


@pytest.mark.invariant(1)
@pytest.mark.parametrize(
    "extra",
    [
        {"prepared_pdf": "JVBERi0xLjcK"},
        {"signed_attributes": "MYIBCg=="},
        {"digest": "A" * 44},
        {"signing_time": "2025-01-01T00:00:00Z"},
        {"parameters": {"reason": "khác"}},
    ],
    ids=["prepared-pdf", "signed-attributes", "digest", "signing-time", "parameters"],
)
def test_the_link_takes_no_bytes_to_sign_nor_anything_that_shapes_them(
    services: Services, extra: dict
) -> None:
    """Breaks 1 to 3: the web tier prepared the update, the signed attributes and the
    time. Now a sign item is a SAD, the approved document, images and a sealed PIN:
    anything else is refused before the bridge reads it."""
    request = _request(services, services.a.ref(RSA_ID), SignatureMechanism.RSA_PKCS_SHA256, b"x")
    item = SignItemWire.of(request).model_dump(mode="json") | extra
    with tls_client(services.a.url, services.a.link.ca, *_gateway_credential(services.a)) as http:
        answer = http.post("/v1/sign", json={"items": [item]})
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "invalid_request"
    # the SAD was not read, let alone spent: the plain item still signs
    assert isinstance(services.a.remote().sign(request), bytes)


# ---- who may connect ----------------------------------------------------------------------


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


def _assert_refused(service: BridgeService, certificate: Path | None, key: Path | None) -> None:
    """The service refuses this client credential: with TLS 1.2 the handshake itself
    fails (httpx.ConnectError from an ssl.SSLError); with TLS 1.3 (the default) the
    server drops the connection right after it, before any HTTP answer."""
    ca = service.link.ca
    with (
        tls_client(service.url, ca, certificate, key, maximum_version=TLS12) as http,
        pytest.raises(httpx.ConnectError) as refused,
    ):
        http.get("/health")
    assert any(isinstance(e, ssl.SSLError) for e in _chain(refused.value)), refused.value
    with (
        tls_client(service.url, ca, certificate, key) as http,
        pytest.raises(httpx.TransportError),
    ):
        http.get("/health")


def test_client_without_certificate_is_refused(services: Services) -> None:
    _assert_refused(services.a, None, None)
    # The same client with the gateway's certificate gets in, over both TLS versions.
    for version in (TLS12, None):
        with tls_client(
            services.a.url,
            services.a.link.ca,
            *_gateway_credential(services.a),
            maximum_version=version,
        ) as http:
            assert http.get("/health").status_code == 200


def test_client_certificate_from_another_ca_is_refused(services: Services) -> None:
    stranger = services.stranger
    _assert_refused(services.a, stranger.gateway_certificate, stranger.gateway_key)
    remote = services.a.remote(
        name="stranger", certificate=stranger.gateway_certificate, key=stranger.gateway_key
    )
    with pytest.raises(BridgeUnavailable) as refused:
        remote.health()
    assert refused.value.code == "bridge_unavailable"


def test_bridge_server_certificate_is_refused_as_a_client_certificate(
    services: Services, remote_a: RemoteBridge
) -> None:
    link = services.a.link  # chains to the right CA, but has no clientAuth EKU
    _assert_refused(services.a, link.bridge_certificate, link.bridge_key)
    remote = services.a.remote(
        name="impostor", certificate=link.bridge_certificate, key=link.bridge_key
    )
    with pytest.raises(BridgeUnavailable):
        remote.certificate(services.a.ref(RSA_ID))
    # The refusals did not harm the service.
    assert any(t.state == "ok" for t in remote_a.health())


# ---- health, metrics, errors --------------------------------------------------------------


def test_health_lists_the_token_ok(services: Services, remote_a: RemoteBridge) -> None:
    tokens = {t.serial: t for t in remote_a.health()}
    assert tokens[services.a.serial].state == "ok"
    assert tokens[services.a.serial].label == "svc-a"
    with tls_client(services.a.url, services.a.link.ca, *_gateway_credential(services.a)) as http:
        answer = http.get("/health")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok"
    assert body["bridge"] == "bridge-a"
    assert [t["state"] for t in body["tokens"] if t["serial"] == services.a.serial] == ["ok"]


def test_the_link_names_one_credential_and_lists_no_token(
    services: Services, remote_a: RemoteBridge
) -> None:
    """Break 8: the link listed every token, key and certificate to the web tier. It
    answers about a credential the gateway names, and whether a token is present."""
    assert remote_a.holds(services.a.serial)
    for key_id, bits, kind in ((RSA_ID, 2048, "rsa"), (EC_ID, 256, "ec")):
        entry = remote_a.credential_status(services.a.ref(key_id))
        assert (entry.status, entry.key_type, entry.key_bits) == ("ok", kind, bits), entry
        der = remote_a.certificate(services.a.ref(key_id))
        assert entry.certificate_sha256 == hashlib.sha256(der).hexdigest()
    with pytest.raises(BridgeUnavailable):
        remote_a.inventory()
    with pytest.raises(BridgeUnavailable):
        remote_a.credentials(services.a.serial)
    with tls_client(services.a.url, services.a.link.ca, *_gateway_credential(services.a)) as http:
        assert http.get("/v1/tokens").status_code == 404
        assert http.get(f"/v1/tokens/{services.a.serial}/credentials").status_code == 404


def _gateway_credential(service: BridgeService) -> tuple[Path, Path]:
    return service.link.gateway_certificate, service.link.gateway_key


def _sign_count(service: BridgeService) -> float:
    with tls_client(service.url, service.link.ca, *_gateway_credential(service)) as http:
        answer = http.get("/metrics")
    assert answer.status_code == 200
    total = 0.0
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            if (
                sample.name == "bridge_operations_total"
                and sample.labels.get("token") == service.serial
                and sample.labels.get("operation") == "sign"
                and sample.labels.get("outcome") == "ok"
            ):
                total += sample.value
    return total


def test_metrics_count_signatures_by_token(services: Services, remote_a: RemoteBridge) -> None:
    before = _sign_count(services.a)
    ref = services.a.ref(EC_ID)
    remote_a.sign_many(
        [_request(services, ref, SignatureMechanism.ECDSA_SHA256, b"m%d" % i) for i in range(3)]
    )
    assert _sign_count(services.a) == before + 3
    with tls_client(services.a.url, services.a.link.ca, *_gateway_credential(services.a)) as http:
        text = http.get("/metrics").text
    assert "bridge_operations_total" in text
    assert f'token="{services.a.serial}"' in text


def test_unknown_token_serial_is_token_not_present(remote_a: RemoteBridge) -> None:
    with pytest.raises(TokenNotPresent) as missing:
        remote_a.certificate(CredentialRef("0000000000000000", b"\x01"))
    assert missing.value.code == "token_not_present"
    assert missing.value.retryable
    assert not remote_a.holds("0000000000000000")


def test_unknown_key_id_is_credential_not_found(services: Services, remote_a: RemoteBridge) -> None:
    with pytest.raises(CredentialNotFound) as missing:
        remote_a.certificate(services.a.ref(b"\x99\x99"))
    assert missing.value.code == "credential_not_found"


@pytest.mark.parametrize(
    "body",
    [
        {"items": "not a list"},
        {},
        {"items": []},
        {
            "items": [
                {
                    "credential": {"token_serial": "x", "key_id": "01"},
                    "document": "!" * 44,  # not base64
                    "mechanism": "rsa_pkcs_sha256",
                    "activation": "a.b",
                }
            ]
        },
        {
            "items": [
                {
                    "credential": {"token_serial": "x", "key_id": "01"},
                    "document": "JVBERi0xLjcK",
                    "mechanism": "md5_with_hope",
                    "activation": "a.b",
                }
            ]
        },
    ],
    ids=["items-not-a-list", "no-items", "empty-batch", "document-not-base64", "mechanism"],
)
def test_malformed_sign_body_is_422_invalid_request(services: Services, body: dict) -> None:
    with tls_client(services.a.url, services.a.link.ca, *_gateway_credential(services.a)) as http:
        answer = http.post("/v1/sign", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "invalid_request"
    assert answer.json()["retryable"] is False


def test_remote_bridge_to_a_closed_port_is_bridge_unavailable(services: Services) -> None:
    dead = services.a.remote(name="dead", url=f"https://127.0.0.1:{free_port()}")
    for call in (
        dead.health,
        lambda: dead.certificate(services.a.ref(RSA_ID)),
        lambda: dead.sign(_request(services, services.a.ref(RSA_ID), _mechanism(RSA_ID), b"never")),
    ):
        with pytest.raises(BridgeUnavailable) as unreachable:
            call()
        assert unreachable.value.code == "bridge_unavailable"
        assert not isinstance(unreachable.value.__cause__, BridgeError)
    # a batch answers one outcome per request, never a raw exception
    outcomes = dead.sign_many(
        [_request(services, services.a.ref(RSA_ID), _mechanism(RSA_ID), b"n") for _ in range(3)]
    )
    assert [o.code for o in outcomes] == ["bridge_unavailable"] * 3  # type: ignore[union-attr]


# ---- routing between two bridge services ------------------------------------------------------


def test_router_sends_each_credential_to_the_bridge_holding_its_token(
    services: Services, remote_a: RemoteBridge, remote_b: RemoteBridge
) -> None:
    assert services.a.serial != services.b.serial
    dead = services.a.remote(name="dead", url=f"https://127.0.0.1:{free_port()}")
    router = BridgeRouter([dead, remote_b, remote_a])  # an unreachable bridge is skipped
    assert router.bridge_for(services.a.serial) is remote_a
    assert router.bridge_for(services.b.serial) is remote_b
    refs = [services.a.ref(RSA_ID), services.a.ref(EC_ID), services.b.ref(B_EC_ID)]
    certificates = {ref: router.certificate(ref) for ref in refs}
    assert certificates[refs[2]] == remote_b.certificate(refs[2])
    assert certificates[refs[0]] == remote_a.certificate(refs[0])
    mixed = [
        _request(services, refs[i % 3], _mechanism(refs[i % 3].key_id), b"routed %d" % i)
        for i in (2, 0, 2, 1, 0, 2, 2, 1)
    ]
    outcomes = router.sign_many(mixed)
    assert len(outcomes) == len(mixed)
    for request, outcome in zip(mixed, outcomes, strict=True):
        assert isinstance(outcome, bytes), outcome
        service = services.a if request.credential.token_serial == services.a.serial else services.b
        _verify(service, request, outcome)
    with pytest.raises(TokenNotPresent):
        router.certificate(CredentialRef("0000000000000000", b"\x01"))


def test_odd_key_id_and_oversized_bodies_are_refused_cleanly(services: Services) -> None:
    with tls_client(services.a.url, services.a.link.ca, *_gateway_credential(services.a)) as http:
        odd = http.post("/v1/certificate", json={"token_serial": "x", "key_id": "abc"})
        assert odd.status_code == 422 and odd.json()["code"] == "invalid_request", odd.text
        huge = http.post(
            "/v1/sign",
            content=b"{" + b" " * (MAX_BODY_BYTES + 1) + b"}",
            headers={"content-type": "application/json"},
        )
        assert huge.status_code == 413 and huge.json()["code"] == "request_too_large"
        # the service still answers afterwards
        assert http.get("/health").status_code in (200, 503)


# ---- the signature activation module over the link ------------------------------------


def _approved_item(
    service: BridgeService, ref: CredentialRef, request_id: str, document: bytes
) -> AuthorizationItem:
    return AuthorizationItem(
        request_id,
        ref,
        _mechanism(ref.key_id),
        hashlib.sha256(document).hexdigest(),
        SignatureParameters().as_json_object(),
        hashlib.sha256(service.certificates[ref.key_id]).hexdigest(),
    )


def _enrol(service: BridgeService, remote: RemoteBridge, phone: Phone, signer: str) -> None:
    code = service.registry().issue_enrolment_code(signer, now=utcnow(), ttl_seconds=60)
    proof = enrolment_proof(code.secret, phone.public_der)
    enrolled = remote.enrol_device(code.code_id, phone.public_der, proof)
    assert enrolled.signer == signer
    phone.device_id = enrolled.device_id


@pytest.mark.invariant(1)
def test_a_device_approval_over_the_link_signs_that_document_once(
    services: Services, remote_a: RemoteBridge
) -> None:
    ref = services.a.ref(RSA_ID)
    services.a.registry().bind_credential("ana", ref)
    phone = Phone()
    _enrol(services.a, remote_a, phone, "ana")
    document = sample_pdf(["Tờ trình số 12/TTr-STC"])
    item = _approved_item(services.a, ref, "req-ana-1", document)
    approval = AuthorizationRequest("ana", (item,), phone.approve("ana", [item]))
    (sad,) = remote_a.authorize(approval)
    assert sad is not None
    request = SignRequest(ref, item.mechanism, sad, document)
    _verify(services.a, request, remote_a.sign(request))
    # the refusals and their reasons travel over the link
    with pytest.raises(AuthorizationRefused) as caught:
        remote_a.authorize(approval)
    assert caught.value.reason == "approval_nonce_reused"
    with pytest.raises(ActivationInvalid) as caught_sad:
        remote_a.sign(request)
    assert caught_sad.value.reason == "reused"
    services.a.registry().set_totp("ana", pyotp.random_base32(32))
    with pytest.raises(AuthorizationRefused) as caught:
        remote_a.check_totp("ana", "abcdef")
    assert caught.value.reason == "totp_invalid"
    # a secure host takes no TOTP approval, nor issues enrolment codes for one
    with pytest.raises(AuthorizationRefused) as caught:
        remote_a.authorize(AuthorizationRequest("ana", (item,), TotpFactor("123456")))
    assert caught.value.reason == "totp_not_accepted"
    with pytest.raises(AuthorizationRefused) as caught:
        remote_a.enrolment_code("ana", TotpFactor("123456"), ttl_seconds=60)
    assert caught.value.reason == "totp_not_accepted"
    # the web tier cannot revoke the signer's phone; the signer can, with it
    with pytest.raises(AuthorizationRefused):
        remote_a.revoke_device("ana", phone.device_id, TotpFactor("123456"))
    (listed,) = remote_a.devices("ana")
    assert listed.device_id == phone.device_id and listed.revoked_at is None
    assert listed.public_key_der == b""  # the link shows no keys
    # the signer's phone has a code issued for a second tablet, which enrols with it
    asked = phone.issue_code("ana")
    issued = remote_a.enrolment_code("ana", asked, ttl_seconds=60, recipient=phone.recipient)
    assert issued.secret == ""  # the link carries it sealed to the phone only
    secret = phone.read_code(issued, asked.nonce).partition(".")[2]
    tablet = Phone()
    tablet.device_id = remote_a.enrol_device(
        issued.code_id, tablet.public_der, enrolment_proof(secret, tablet.public_der)
    ).device_id
    assert services.a.registry().device(tablet.device_id).enrolled_with == CodeIssuer.DEVICE
    with pytest.raises(AuthorizationRefused) as caught:  # the web tier cannot sign for it
        forged = Phone()
        forged.device_id = phone.device_id
        remote_a.enrolment_code(
            "ana", forged.issue_code("ana"), ttl_seconds=60, recipient=forged.recipient
        )
    assert caught.value.reason == "approval_signature_invalid"
    assert remote_a.revoke_device("ana", phone.device_id, phone.revoke("ana", phone.device_id))
    assert remote_a.devices("ana")[0].revoked_at is not None
    with pytest.raises(AuthorizationRefused) as caught:
        remote_a.authorize(AuthorizationRequest("ana", (item,), phone.approve("ana", [item])))
    assert caught.value.reason == "device_revoked"


def test_one_statement_is_checked_by_each_bridge_of_a_batch(
    services: Services, remote_a: RemoteBridge, remote_b: RemoteBridge
) -> None:
    """A batch whose credentials sit on two secure hosts: the phone enrolled with both
    (one code from each host, the same device id), one statement, and each bridge
    issues the SADs for its own tokens."""
    ref_a, ref_b = services.a.ref(EC_ID), services.b.ref(B_EC_ID)
    services.a.registry().bind_credential("bao", ref_a)
    services.b.registry().bind_credential("bao", ref_b)
    phone = Phone()
    _enrol(services.a, remote_a, phone, "bao")
    first_id = phone.device_id
    _enrol(services.b, remote_b, phone, "bao")
    assert phone.device_id == first_id
    documents = [sample_pdf(["Văn bản A"]), sample_pdf(["Văn bản B"])]
    items = [
        _approved_item(services.a, ref_a, "req-bao-a", documents[0]),
        _approved_item(services.b, ref_b, "req-bao-b", documents[1]),
    ]
    router = BridgeRouter([remote_b, remote_a])
    sads = router.authorize(AuthorizationRequest("bao", tuple(items), phone.approve("bao", items)))
    assert all(sads)
    for item, sad, document, service in zip(
        items, sads, documents, (services.a, services.b), strict=True
    ):
        assert sad is not None
        request = SignRequest(item.credential, item.mechanism, sad, document)
        _verify(service, request, router.sign(request))


def test_the_link_offers_no_administration_of_signers() -> None:
    """Binding signers to keys, issuing enrolment codes without a TOTP code, installing
    TOTP secrets, revoking a device on the administrator's word and listing the tokens
    are the bridge host's alone: the service exposes exactly these routes (a new one
    must be added here, on purpose)."""
    from hsm_bridge.transport.routes import router
    from hsm_bridge.transport.service import create_bridge_app

    routes = {(method, route.path) for route in router.routes for method in route.methods}
    served = create_bridge_app(object()).openapi()["paths"]  # type: ignore[arg-type]
    assert {(m.upper(), path) for path, ops in served.items() for m in ops} == routes
    assert routes == {
        ("GET", "/health"),
        ("GET", "/metrics"),
        ("GET", "/v1/tokens/{serial}"),
        ("POST", "/v1/credential-status"),
        ("POST", "/v1/certificate"),
        ("GET", "/v1/pin-key"),
        ("POST", "/v1/authorize"),
        ("POST", "/v1/sign"),
        ("POST", "/v1/devices"),
        ("POST", "/v1/passkeys/options"),
        ("POST", "/v1/passkeys"),
        ("GET", "/v1/signers/{signer}/devices"),
        ("POST", "/v1/devices/{device_id}/revocation"),
        ("POST", "/v1/enrolment-codes"),
        ("POST", "/v1/totp/check"),
        ("POST", "/v1/totp"),
        ("POST", "/v1/totp/confirmation"),
    }


def test_through_the_router_a_device_enrols_at_the_bridge_that_issued_its_code(
    services: Services, remote_a: RemoteBridge, remote_b: RemoteBridge
) -> None:
    """A signer whose key is on the second host gets an enrolment code from that host's
    administrator: the first host does not know the code and passes; the device and its
    approvals are the second host's."""
    ref = services.b.ref(B_EC_ID)
    services.b.registry().bind_credential("cuc", ref)
    code = services.b.registry().issue_enrolment_code("cuc", now=utcnow(), ttl_seconds=60)
    router = BridgeRouter([remote_a, remote_b])
    phone = Phone()
    proof = enrolment_proof(code.secret, phone.public_der)
    phone.device_id = router.enrol_device(code.code_id, phone.public_der, proof).device_id
    document = sample_pdf(["Giấy mời họp"])
    item = _approved_item(services.b, ref, "req-cuc-1", document)
    (sad,) = router.authorize(AuthorizationRequest("cuc", (item,), phone.approve("cuc", [item])))
    assert sad is not None
    request = SignRequest(ref, item.mechanism, sad, document)
    _verify(services.b, request, router.sign(request))
