"""Push approval answered by a device-bound key, signed rejection, batch approval, and
device revocation, over HTTP against the real server (invariant 2: a decision is bound to
the exact document and signature parameters the signer was shown)."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import select

from gateway.db.models import AuditEntry, Credential, Device, SigningRequest
from hsm_bridge.sam.statement import (
    ApprovalStatement,
    Decision,
    StatementDocument,
    verify_statement_signature,
)
from tests.conftest import submit
from tests.device_app import DeviceApp, sealed_pin
from tests.factories import add_bare_user, enrolment_code, make_signer


@pytest.fixture
def plain(corpus) -> bytes:
    return (corpus / "pdf" / "plain-libreoffice-writer.pdf").read_bytes()


def _enrolled(server, db, signer) -> DeviceApp:
    app = DeviceApp(server.base_url, signer.username)
    assert app.enrol(enrolment_code(db, signer.username)).status_code == 201
    return app


def _shown(tablet, request_id: str) -> dict[str, str]:
    """What the app shows and signs for one request. Like a careful app, it hashes the
    bytes it shows and the parameters it shows itself (it does not sign the server's
    word for them), and checks them against the request's."""
    view = tablet.get(f"/mobile/v1/signing-requests/{request_id}").json()
    document = tablet.get(f"/mobile/v1/signing-requests/{request_id}/document").content
    parameters = json.dumps(
        view["parameters"], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    shown = {
        "id": view["id"],
        "document_sha256": hashlib.sha256(document).hexdigest(),
        "parameters_sha256": hashlib.sha256(parameters.encode()).hexdigest(),
        "certificate_sha256": view["certificate_sha256"],
        "mechanism": view["mechanism"],
    }
    assert shown["document_sha256"] == view["document_sha256"]
    assert shown["parameters_sha256"] == view["parameters_sha256"]
    return shown


def _nonce(tablet) -> str:
    answer = tablet.post("/mobile/v1/approval-nonces")
    assert answer.status_code == 201, answer.text
    return answer.json()["nonce"]


def _approve(tablet, request_id: str, document: bytes, device_approval) -> object:
    return tablet.post(
        f"/mobile/v1/signing-requests/{request_id}/approval",
        json={
            "document_sha256": hashlib.sha256(document).hexdigest(),
            "device_approval": device_approval,
        },
    )


def _approve_batch(tablet, app: DeviceApp, ids: list[str]) -> object:
    """What the app does for a batch: show each request, sign one statement over all."""
    shown = [_shown(tablet, i) for i in ids]
    return tablet.post(
        "/mobile/v1/approvals",
        json={
            "requests": [{"id": s["id"], "document_sha256": s["document_sha256"]} for s in shown],
            "device_approval": app.answer("approve", _nonce(tablet), shown),
        },
    )


def _status(tablet, request_id: str) -> str:
    return tablet.get(f"/mobile/v1/signing-requests/{request_id}").json()["status"]


def _refused(answer, code: str, status: int = 403) -> None:
    assert answer.status_code == status, answer.text
    assert answer.json()["code"] == code


def test_an_enrolment_code_enrols_one_device_once(server, db, signer):
    with server.tablet(signer.username, signer.password) as tablet:
        created = tablet.post("/mobile/v1/enrolment-codes", json={"otp": signer.otp()})
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["uri"].startswith("signing-gateway:enrol?code=")
        assert base64.b64decode(body["qr_png_base64"]).startswith(b"\x89PNG")
    app = DeviceApp(server.base_url, signer.username)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    app_rsa = DeviceApp(server.base_url, signer.username)
    app_rsa.public_key_b64 = lambda: base64.b64encode(  # type: ignore[method-assign]
        rsa_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    ).decode()
    _refused(app_rsa.enrol(body["code"]), "device_key_invalid", 422)
    assert app.enrol(body["code"]).status_code == 201, "a refused key does not spend the code"
    _refused(
        DeviceApp(server.base_url, signer.username).enrol(body["code"]), "enrolment_code_invalid"
    )
    with server.tablet(signer.username, signer.password) as tablet:
        listed = tablet.get("/mobile/v1/devices").json()
    assert [d["id"] for d in listed] == [app.device_id]
    with db.transaction() as session:
        enrolled = session.scalars(
            select(AuditEntry.detail).where(AuditEntry.action == "device.enrolled")
        ).all()
        refused = session.scalars(
            select(AuditEntry.id).where(AuditEntry.action == "device.enrolment_refused")
        ).all()
    assert any(app.device_id in detail for detail in enrolled) and refused


def test_a_device_signature_approves_and_signs(server, db, signer, plain):
    app = _enrolled(server, db, signer)
    request_id = submit(server, plain, signer.username).json()["id"]
    with server.tablet(signer.username, signer.password) as tablet:
        answer = app.answer("approve", _nonce(tablet), [_shown(tablet, request_id)])
        decision = _approve(tablet, request_id, plain, answer)
        assert decision.status_code == 200, decision.text
        assert decision.json()["status"] == "signed"
        # the same signed answer again: its nonce is spent
        _refused(_approve(tablet, request_id, plain, answer), "request_not_pending", 409)
    with db.transaction() as session:
        detail = session.scalars(
            select(AuditEntry.detail).where(
                AuditEntry.request_id == request_id, AuditEntry.action == "request.approved"
            )
        ).one()
    evidence = json.loads(detail)
    assert evidence["factor"] == "device" and evidence["device"] == app.device_id
    assert evidence["requests"] == [request_id] and evidence["nonce"] == answer["nonce"]
    # the signed decision is kept: it verifies again, later, from what is stored
    with db.transaction() as session:
        stored = session.get(SigningRequest, request_id)
        statement = ApprovalStatement(
            signer=signer.username,
            device=app.device_id,
            decision=Decision.APPROVE,
            nonce=evidence["nonce"],
            expires_at=evidence["expires_at"],
            documents=(
                StatementDocument(
                    stored.id,
                    stored.document_sha256,
                    stored.parameters_sha256,
                    stored.certificate_sha256,
                    stored.mechanism,
                ),
            ),
        )
        device = session.get(Device, app.device_id)
        verify_statement_signature(
            statement, device.public_key_der, base64.b64decode(evidence["signature"])
        )


def test_a_signed_rejection_rejects_at_once(server, db, signer, plain):
    app = _enrolled(server, db, signer)
    request_id = submit(server, plain, signer.username).json()["id"]
    with server.tablet(signer.username, signer.password) as tablet:
        shown = _shown(tablet, request_id)
        # an approval statement does not serve as a rejection, nor the other way round
        wrong = app.answer("approve", _nonce(tablet), [shown])
        refused = tablet.post(
            f"/mobile/v1/signing-requests/{request_id}/rejection",
            json={"reason": "Sai số văn bản", "device_approval": wrong},
        )
        _refused(refused, "approval_signature_invalid")
        answer = app.answer("reject", _nonce(tablet), [shown])
        rejected = tablet.post(
            f"/mobile/v1/signing-requests/{request_id}/rejection",
            json={"reason": "Sai số văn bản", "device_approval": answer},
        )
        assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
        no_factor = tablet.post(
            f"/mobile/v1/signing-requests/{request_id}/rejection", json={"reason": "x"}
        )
        _refused(no_factor, "parameter_invalid", 422)
    with server.client() as http:
        assert http.get(f"/api/v1/signing-requests/{request_id}").json()["status"] == "rejected"


def test_a_batch_is_approved_with_one_device_signature(server, db, signer, plain):
    app = _enrolled(server, db, signer)
    ids = [submit(server, plain, signer.username).json()["id"] for _ in range(3)]
    with server.tablet(signer.username, signer.password) as tablet:
        batch = _approve_batch(tablet, app, ids)
    assert batch.status_code == 200, batch.text
    outcomes = batch.json()["outcomes"]
    assert [o["id"] for o in outcomes] == ids
    assert {o["status"] for o in outcomes} == {"signed"}


def test_a_batch_with_totp_signs_each_on_its_own(server, signer, plain):
    ids = [submit(server, plain, signer.username).json()["id"] for _ in range(2)]
    digest = hashlib.sha256(plain).hexdigest()
    with server.tablet(signer.username, signer.password) as tablet:
        # cancel one: it fails on its own, the other is signed
        with server.client() as http:
            assert http.delete(f"/api/v1/signing-requests/{ids[1]}").status_code == 200
        batch = tablet.post(
            "/mobile/v1/approvals",
            json={
                "requests": [{"id": i, "document_sha256": digest} for i in ids],
                "otp": signer.otp(),
            },
        )
    assert batch.status_code == 200, batch.text
    first, second = batch.json()["outcomes"]
    assert first["status"] == "signed"
    assert second["code"] == "request_not_pending" and second["status"] is None


# ---- the attacker's view: each refusal with its code, and nothing signed ----------------


@pytest.mark.invariant(2)
def test_an_answer_for_request_a_does_not_approve_request_b(server, db, signer, plain):
    app = _enrolled(server, db, signer)
    a, b = (submit(server, plain, signer.username).json()["id"] for _ in range(2))
    with server.tablet(signer.username, signer.password) as tablet:
        answer = app.answer("approve", _nonce(tablet), [_shown(tablet, a)])
        _refused(_approve(tablet, b, plain, answer), "approval_signature_invalid")
        assert _status(tablet, b) == "pending_approval"
        # the refused attempt did not spend the nonce: the genuine answer still works
        assert _approve(tablet, a, plain, answer).json()["status"] == "signed"


@pytest.mark.invariant(2)
def test_a_replayed_answer_is_refused(server, db, signer, plain):
    app = _enrolled(server, db, signer)
    a, b = (submit(server, plain, signer.username).json()["id"] for _ in range(2))
    with server.tablet(signer.username, signer.password) as tablet:
        nonce = _nonce(tablet)
        assert (
            _approve(tablet, a, plain, app.answer("approve", nonce, [_shown(tablet, a)])).json()[
                "status"
            ]
            == "signed"
        )
        # a new statement, correctly signed, but with the spent nonce
        replay = app.answer("approve", nonce, [_shown(tablet, b)])
        _refused(_approve(tablet, b, plain, replay), "approval_nonce_invalid")
        assert _status(tablet, b) == "pending_approval"


@pytest.mark.invariant(2)
@pytest.mark.parametrize("expires_in", [-5, 3600])
def test_an_expired_or_far_future_answer_is_refused(server, db, signer, plain, expires_in):
    app = _enrolled(server, db, signer)
    request_id = submit(server, plain, signer.username).json()["id"]
    with server.tablet(signer.username, signer.password) as tablet:
        answer = app.answer(
            "approve", _nonce(tablet), [_shown(tablet, request_id)], expires_in=expires_in
        )
        _refused(_approve(tablet, request_id, plain, answer), "approval_expired")
        assert _status(tablet, request_id) == "pending_approval"


@pytest.mark.invariant(2)
def test_a_revoked_device_and_another_users_device_are_refused(server, db, box, signer, plain):
    app = _enrolled(server, db, signer)
    other = make_signer(db, box)
    stranger = _enrolled(server, db, other)
    request_id = submit(server, plain, signer.username).json()["id"]
    with server.tablet(signer.username, signer.password) as tablet:
        shown = _shown(tablet, request_id)
        # another user's device, even signing this user's statement with its own key
        stranger.username = signer.username
        foreign = stranger.answer("approve", _nonce(tablet), [shown])
        _refused(_approve(tablet, request_id, plain, foreign), "device_unknown")
        # the web tier alone cannot revoke it: the signer's own factor is needed
        _refused(
            tablet.post(f"/mobile/v1/devices/{app.device_id}/revocation", json={}),
            "parameter_invalid",
            422,
        )
        # the lost tablet is revoked (here with its own key, as from a second device):
        # it stops working at once, and every session of the user ends (whoever has the
        # tablet may hold one)
        revocation = app.revocation(_nonce(tablet), app.device_id)
        revoked = tablet.post(
            f"/mobile/v1/devices/{app.device_id}/revocation",
            json={"device_approval": revocation},
        )
        assert revoked.status_code == 204, revoked.text
        _refused(tablet.get("/mobile/v1/devices"), "unauthenticated", 401)
    with server.tablet(signer.username, signer.password) as tablet:
        answer = app.answer("approve", _nonce(tablet), [shown])
        _refused(_approve(tablet, request_id, plain, answer), "device_revoked")
        assert _status(tablet, request_id) == "pending_approval"
        listed = {d["id"]: d for d in tablet.get("/mobile/v1/devices").json()}
        assert listed[app.device_id]["revoked_at"] is not None
    with server.tablet(other.username, other.password) as tablet:
        # nobody revokes someone else's device, not even with a factor of their own
        stranger.username = other.username
        _refused(
            tablet.post(
                f"/mobile/v1/devices/{app.device_id}/revocation",
                json={"device_approval": stranger.revocation(_nonce(tablet), app.device_id)},
            ),
            "not_found",
            404,
        )


@pytest.mark.invariant(2)
def test_parameters_changed_before_the_answer_void_it(server, db, signer, plain):
    app = _enrolled(server, db, signer)
    request_id = submit(server, plain, signer.username, reason="Phê duyệt").json()["id"]
    with server.tablet(signer.username, signer.password) as tablet:
        answer = app.answer("approve", _nonce(tablet), [_shown(tablet, request_id)])
    with db.transaction() as session:  # a compromised web tier rewrites the stored request
        request = session.get(SigningRequest, request_id)
        params = json.loads(request.parameters)
        params["reason"] = "Đồng ý chi 10 tỷ"
        request.parameters = json.dumps(
            params, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        request.parameters_sha256 = hashlib.sha256(request.parameters.encode()).hexdigest()
    with server.tablet(signer.username, signer.password) as tablet:
        _refused(_approve(tablet, request_id, plain, answer), "approval_signature_invalid")
        assert _status(tablet, request_id) == "pending_approval"


@pytest.mark.invariant(2)
def test_a_batch_statement_with_one_id_swapped_is_refused(server, db, signer, plain):
    app = _enrolled(server, db, signer)
    a, b, c = (submit(server, plain, signer.username).json()["id"] for _ in range(3))
    digest = hashlib.sha256(plain).hexdigest()
    with server.tablet(signer.username, signer.password) as tablet:
        answer = app.answer("approve", _nonce(tablet), [_shown(tablet, a), _shown(tablet, b)])
        swapped = tablet.post(
            "/mobile/v1/approvals",
            json={
                "requests": [
                    {"id": a, "document_sha256": digest},
                    {"id": c, "document_sha256": digest},
                ],
                "device_approval": answer,
            },
        )
        _refused(swapped, "approval_signature_invalid")
        assert {_status(tablet, i) for i in (a, b, c)} == {"pending_approval"}


def test_a_batch_larger_than_the_limit_is_refused(server, signer, plain):
    digest = hashlib.sha256(plain).hexdigest()
    with server.tablet(signer.username, signer.password) as tablet:
        answer = tablet.post(
            "/mobile/v1/approvals",
            json={
                "requests": [{"id": f"r{i}", "document_sha256": digest} for i in range(51)],
                "otp": signer.otp(),
            },
        )
    _refused(answer, "batch_too_large", 422)


def test_a_batch_of_fifty_is_signed_and_each_validates(server, db, signer, installation):
    from pathlib import Path

    from gateway.signing.validation import pdfsig_verdicts, validate_with_pyhanko
    from signing_gateway.demo.sample_pdf import sample_pdf

    app = _enrolled(server, db, signer)
    documents = [sample_pdf([f"Công văn số {n}/UBND", "Kính gửi: Sở Tài chính"]) for n in range(50)]
    ids = [submit(server, d, signer.username).json()["id"] for d in documents]
    with server.tablet(signer.username, signer.password) as tablet:
        batch = _approve_batch(tablet, app, ids)
    assert batch.status_code == 200, batch.text
    assert [o["status"] for o in batch.json()["outcomes"]] == ["signed"] * 50
    root = Path(installation.data_dir) / "pki" / "root-ca.pem"
    with server.client() as http:
        for request_id, document in zip(ids, documents, strict=True):
            signed = http.get(f"/api/v1/signing-requests/{request_id}/signed-document").content
            assert signed.startswith(document)
            verdict = validate_with_pyhanko(signed, root)[-1]
            assert verdict.intact and verdict.valid and verdict.trusted, verdict
            assert pdfsig_verdicts(signed)[-1] == "Signature is Valid."


@pytest.mark.parametrize(
    "algorithm",
    [("1.2.3.4.5", None), ("1.2.840.10045.2.1", "1.3.132.0.1")],
    ids=["unknown-algorithm", "unsupported-curve"],
)
def test_a_key_of_an_unknown_kind_is_a_clear_refusal(server, algorithm):
    from asn1crypto import core
    from cryptography.hazmat.primitives.asymmetric import ec

    def tlv(tag: int, body: bytes) -> bytes:
        assert len(body) < 128
        return bytes([tag, len(body)]) + body

    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    )
    oid, curve = algorithm
    identifier = core.ObjectIdentifier(oid).dump()
    if curve:
        identifier += core.ObjectIdentifier(curve).dump()
    spki = tlv(0x30, tlv(0x30, identifier) + tlv(0x03, b"\x00" + point))
    app = DeviceApp(server.base_url, "nobody")
    app.public_key_b64 = lambda: base64.b64encode(spki).decode()  # type: ignore[method-assign]
    _refused(app.enrol("not-a-real-enrolment-code"), "device_key_invalid", 422)


def test_a_wrong_token_pin_is_tried_once_per_batch(
    server, db, box, extra_signers, plain, installation
):
    import httpx

    from gateway.admin.operators import issue_operator_token

    def pin_failures(serial: str) -> float:
        operator = {"Authorization": f"Bearer {issue_operator_token(installation.secrets_dir)}"}
        with httpx.Client(base_url=server.base_url, headers=operator) as http:
            answer = http.get("/metrics")
        assert answer.status_code == 200, answer.text
        lines = answer.text.splitlines()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in lines
            if line.startswith("bridge_errors_total") and serial in line and "pin_incorrect" in line
        )

    serial = extra_signers["pinsigner"]["token_serial"]
    person = make_signer(db, box, like="x-pinsigner")
    ids = [submit(server, plain, person.username).json()["id"] for _ in range(5)]
    digest = hashlib.sha256(plain).hexdigest()
    before = pin_failures(serial)
    with server.tablet(person.username, person.password) as tablet:
        nonce = _nonce(tablet)
        batch = tablet.post(
            "/mobile/v1/approvals",
            json={
                "requests": [{"id": i, "document_sha256": digest} for i in ids],
                "otp": person.otp(),
                "nonce": nonce,
                "pin_envelope": sealed_pin(tablet, ids[0], "00000000", nonce),
            },
        )
        statuses = {_status(tablet, i) for i in ids}
    assert [o["code"] for o in batch.json()["outcomes"]] == ["pin_incorrect"] * 5
    assert pin_failures(serial) - before == 1, "one C_Login with the wrong PIN, not five"
    assert statuses == {"pending_approval"}, "all wait for the right PIN"


def test_nonces_are_capped_per_user_and_expired_ones_purged(tmp_path):
    import datetime as dt

    from gateway.approvals.statements import MAX_OPEN_NONCES, issue_nonce, purge_nonces
    from gateway.db.database import Database
    from gateway.db.models import ApprovalNonce, Base

    db = Database(f"sqlite:///{tmp_path / 'n.db'}")
    Base.metadata.create_all(db.engine)
    now = dt.datetime(2026, 12, 1, 7, 0, tzinfo=dt.UTC)
    with db.transaction() as session:
        add_bare_user(session, "u1", now)
        first = issue_nonce(session, "u1", now=now, ttl_seconds=60).nonce
        for n in range(MAX_OPEN_NONCES + 20):
            issue_nonce(session, "u1", now=now + dt.timedelta(seconds=n + 1), ttl_seconds=60)
    with db.transaction() as session:
        held = session.scalars(select(ApprovalNonce.nonce)).all()
        assert len(held) == MAX_OPEN_NONCES and first not in held, "the oldest went first"
        assert purge_nonces(session, now=now + dt.timedelta(hours=1)) == MAX_OPEN_NONCES
    db.dispose()


def test_when_the_bridge_refuses_the_nonce_stays_usable(server, db, signer, plain):
    """The gateway accepted the statement, the bridge did not (here: the bridge's
    administrator had not bound the signer to the key yet): nothing is signed, and the
    same answer works once the cause is fixed."""
    from hsm_bridge.credentials import CredentialRef
    from tests.factories import bridge_registry

    app = _enrolled(server, db, signer)
    with db.transaction() as session:
        credential = session.get(Credential, signer.credential_id)
        ref = CredentialRef(credential.token_serial, bytes.fromhex(credential.key_id))
    registry = bridge_registry()
    assert registry.unbind_credential(signer.username, ref)
    request_id = submit(server, plain, signer.username).json()["id"]
    with server.tablet(signer.username, signer.password) as tablet:
        answer = app.answer("approve", _nonce(tablet), [_shown(tablet, request_id)])
        refused = _approve(tablet, request_id, plain, answer)
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "authorization_refused"
        assert refused.json()["reason"] == "credential_not_bound"
        assert _status(tablet, request_id) == "pending_approval"
        registry.bind_credential(signer.username, ref)
        again = _approve(tablet, request_id, plain, answer)
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "signed"
