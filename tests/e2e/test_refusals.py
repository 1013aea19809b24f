"""The attacker's and the careless caller's view over HTTP: each case gets its problem
code and no signature is produced."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.conftest import Server, approve, start_server, submit
from tests.factories import make_client, make_signer


@pytest.fixture
def plain(corpus: Path) -> bytes:
    return (corpus / "pdf" / "plain-libreoffice-writer.pdf").read_bytes()


def _problem(answer, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    body = answer.json()
    assert body["code"] == code
    assert body["status"] == status and body["detail"]
    assert "Traceback" not in answer.text


def _not_signed(server, request_id: str, api_key: str | None = None) -> None:
    with server.client(api_key) as http:
        answer = http.get(f"/api/v1/signing-requests/{request_id}/signed-document")
    _problem(answer, 409, "request_not_signed")


@pytest.mark.invariant(3)
def test_wrong_otp_is_refused(server, signer, plain):
    request_id = submit(server, plain, signer.username).json()["id"]
    wrong = f"{(int(signer.otp()) + 1) % 1_000_000:06d}"
    with server.tablet(signer.username, signer.password) as tablet:
        _problem(approve(tablet, request_id, wrong, plain), 403, "otp_invalid")
    _not_signed(server, request_id)


@pytest.mark.invariant(3)
def test_reused_otp_is_refused(server, signer, plain):
    first = submit(server, plain, signer.username).json()["id"]
    second = submit(server, plain, signer.username).json()["id"]
    code = signer.otp()
    with server.tablet(signer.username, signer.password) as tablet:
        assert approve(tablet, first, code, plain).json()["status"] == "signed"
        _problem(approve(tablet, second, code, plain), 403, "otp_reused")
        # an older step inside the window is refused too once a newer one was used
        _problem(approve(tablet, second, signer.otp(-1), plain), 403, "otp_reused")
    _not_signed(server, second)


def test_another_signers_request_is_invisible(server, db, box, plain):
    owner, intruder = make_signer(db, box), make_signer(db, box)
    request_id = submit(server, plain, owner.username).json()["id"]
    with server.tablet(intruder.username, intruder.password) as tablet:
        _problem(tablet.get(f"/mobile/v1/signing-requests/{request_id}"), 404, "not_found")
        _problem(tablet.get(f"/mobile/v1/signing-requests/{request_id}/document"), 404, "not_found")
        _problem(approve(tablet, request_id, intruder.otp(), plain), 404, "not_found")
        listed = tablet.get("/mobile/v1/signing-requests").json()
        assert request_id not in [r["id"] for r in listed]
    _not_signed(server, request_id)


def test_another_clients_request_is_invisible(server, db, signer, plain):
    request_id = submit(server, plain, signer.username).json()["id"]
    other_key = make_client(db)
    with server.client(other_key) as http:
        _problem(http.get(f"/api/v1/signing-requests/{request_id}"), 404, "not_found")
        _problem(http.delete(f"/api/v1/signing-requests/{request_id}"), 404, "not_found")


@pytest.mark.invariant(2)
def test_document_hash_mismatch_voids_the_approval(server, signer, plain):
    request_id = submit(server, plain, signer.username).json()["id"]
    with server.tablet(signer.username, signer.password) as tablet:
        answer = tablet.post(
            f"/mobile/v1/signing-requests/{request_id}/approval",
            json={"otp": signer.otp(), "document_sha256": hashlib.sha256(b"other").hexdigest()},
        )
        _problem(answer, 409, "document_changed")
        state = tablet.get(f"/mobile/v1/signing-requests/{request_id}").json()
    assert state["status"] == "pending_approval"
    _not_signed(server, request_id)


def test_cancelled_request_cannot_be_approved(server, signer, plain):
    request_id = submit(server, plain, signer.username).json()["id"]
    with server.client() as http:
        cancelled = http.delete(f"/api/v1/signing-requests/{request_id}")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        _problem(http.delete(f"/api/v1/signing-requests/{request_id}"), 409, "request_not_pending")
    with server.tablet(signer.username, signer.password) as tablet:
        _problem(approve(tablet, request_id, signer.otp(), plain), 409, "request_not_pending")
    _not_signed(server, request_id)


def test_rejected_request_is_final(server, signer, plain):
    request_id = submit(server, plain, signer.username).json()["id"]
    with server.tablet(signer.username, signer.password) as tablet:
        answer = tablet.post(
            f"/mobile/v1/signing-requests/{request_id}/rejection",
            json={"reason": "Sai số văn bản", "otp": signer.otp()},
        )
        assert answer.json()["status"] == "rejected"
        _problem(approve(tablet, request_id, signer.otp(), plain), 409, "request_not_pending")
    with server.client() as http:
        assert http.get(f"/api/v1/signing-requests/{request_id}").json()["status"] == "rejected"


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("not-a-pdf-text.pdf", 415, "document_not_pdf"),
        ("encrypted-aes128-userpw.pdf", 422, "document_encrypted"),
        ("encrypted-rc4-40-emptypw.pdf", 422, "document_encrypted"),
        ("truncated-cairo.pdf", 422, "document_truncated"),
        ("damaged-xref-offsets-wrong.pdf", 422, "document_unreadable"),
        ("certified-docmdp-p1.pdf", 422, "document_certified_no_changes"),
        ("form-xfa-dynamic.pdf", 422, "document_xfa_unsupported"),
    ],
)
def test_bad_uploads_are_refused_at_submission(server, signer, corpus, name, status, code):
    answer = submit(server, (corpus / "pdf" / name).read_bytes(), signer.username)
    _problem(answer, status, code)
    with server.tablet(signer.username, signer.password) as tablet:
        assert tablet.get("/mobile/v1/signing-requests").json() == []


def test_unknown_signer_and_bad_parameters(server, plain):
    _problem(submit(server, plain, "nobody"), 422, "signer_unknown")
    _problem(submit(server, plain, "leader1", page="1"), 422, "parameter_invalid")
    _problem(submit(server, plain, "leader1", page="1", box="1,2,3"), 422, "parameter_invalid")
    _problem(
        submit(server, plain, "leader1", page="9", box="10,10,50,50"), 422, "parameter_invalid"
    )
    _problem(submit(server, plain, "leader1", pades_level="B-X"), 422, "parameter_invalid")


def test_without_a_tsa_the_timestamped_levels_are_refused_at_submission(
    installation, demo_credentials, plain, tmp_path
):
    """Knowable at submission: no signer's approval is spent on a level nothing can
    reach."""
    process, base_url = start_server(installation, tmp_path / "gateway.log", GATEWAY_TSA_URL="")
    try:
        gateway = Server(base_url, tmp_path / "gateway.log", demo_credentials["api_key"])
        for level in ("B-T", "B-LT", "B-LTA"):
            answer = submit(gateway, plain, "leader1", pades_level=level)
            _problem(answer, 422, "parameter_invalid")
            assert "needs a TSA" in answer.json()["detail"]
        unnamed = submit(gateway, plain, "leader1")
        assert unnamed.status_code == 201, unnamed.text
        assert unnamed.json()["parameters"]["pades_level"] == "B-B"  # the default without one
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_authentication_is_required(server, plain):
    import httpx

    with httpx.Client(base_url=server.base_url) as http:
        _problem(http.get("/api/v1/signing-requests/x"), 401, "unauthenticated")
        _problem(http.get("/mobile/v1/signing-requests"), 401, "unauthenticated")
        _problem(
            http.get("/mobile/v1/signing-requests", headers={"Authorization": "Bearer forged"}),
            401,
            "unauthenticated",
        )
        _problem(
            http.post("/mobile/v1/sessions", json={"username": "leader1", "password": "x"}),
            401,
            "credentials_invalid",
        )
    _problem(submit(server, plain, "leader1", api_key="sgw_wrong"), 401, "unauthenticated")


def test_idempotency_key(server, signer, plain):
    key = {"Idempotency-Key": f"doc-{signer.username}"}
    with server.client() as http:

        def post(body: bytes):
            return http.post(
                "/api/v1/signing-requests",
                headers=key,
                files={"document": ("d.pdf", body, "application/pdf")},
                data={"signer": signer.username},
            )

        first = post(plain)
        again = post(plain)
        assert first.status_code == 201 and again.status_code == 200
        assert first.json()["id"] == again.json()["id"]
        _problem(post(plain + b"\n"), 409, "idempotency_conflict")
    with server.tablet(signer.username, signer.password) as tablet:
        assert len(tablet.get("/mobile/v1/signing-requests").json()) == 1


def test_revoked_certificate_is_never_used(server, db, box, plain):
    revoked = make_signer(db, box, revoked=True)
    # revoked before submission: the signer has no usable credential
    _problem(submit(server, plain, revoked.username), 422, "signer_no_credential")


def test_credential_revoked_after_submission_fails_at_signing(server, db, box, plain):
    import datetime as dt

    from gateway.db.models import Credential

    person = make_signer(db, box)
    request_id = submit(server, plain, person.username).json()["id"]
    with db.transaction() as session:
        session.get(Credential, person.credential_id).revoked_at = dt.datetime.now(dt.UTC)
    with server.tablet(person.username, person.password) as tablet:
        decision = approve(tablet, request_id, person.otp(), plain).json()
    assert decision["status"] == "failed"
    assert decision["failure_code"] == "certificate_revoked"
    _not_signed(server, request_id)


@pytest.mark.invariant(3)
def test_repeated_otp_failures_lock_approval(server, signer, plain):
    request_id = submit(server, plain, signer.username).json()["id"]
    wrong = f"{(int(signer.otp()) + 7) % 1_000_000:06d}"
    with server.tablet(signer.username, signer.password) as tablet:
        codes = [approve(tablet, request_id, wrong, plain).json()["code"] for _ in range(5)]
        assert codes == ["otp_invalid"] * 4 + ["otp_locked"]
        # even the right code is refused while locked
        _problem(approve(tablet, request_id, signer.otp(), plain), 429, "otp_locked")
    _not_signed(server, request_id)


def test_logout_revokes_the_session(server, signer):
    tablet = server.tablet(signer.username, signer.password)
    with tablet:
        assert tablet.get("/mobile/v1/signing-requests").status_code == 200
        assert tablet.delete("/mobile/v1/sessions/current").status_code == 204
        _problem(tablet.get("/mobile/v1/signing-requests"), 401, "unauthenticated")


def test_oversized_upload_is_refused(server, signer, installation, plain):
    big = plain + b"%" * (installation.max_document_bytes + 1)
    _problem(submit(server, big, signer.username), 413, "document_too_large")


@pytest.mark.invariant(1)
def test_concurrent_approvals_sign_once(server, signer, plain):
    """Two tablets approving the same request at once: one signature, one refusal. Two
    requests approved at once with one code: the code is accepted once."""
    from concurrent.futures import ThreadPoolExecutor

    same = submit(server, plain, signer.username).json()["id"]
    other = submit(server, plain, signer.username).json()["id"]
    code = signer.otp()
    tablets = [server.tablet(signer.username, signer.password) for _ in range(3)]
    try:
        with ThreadPoolExecutor(3) as pool:
            answers = list(
                pool.map(
                    lambda job: approve(job[0], job[1], code, plain),
                    [(tablets[0], same), (tablets[1], same), (tablets[2], other)],
                )
            )
    finally:
        for tablet in tablets:
            tablet.close()
    signed = [a for a in answers if a.status_code == 200 and a.json()["status"] == "signed"]
    refused = [a.json()["code"] for a in answers if a.status_code != 200]
    assert len(signed) == 1, [a.text for a in answers]
    assert sorted(refused) in (
        ["otp_reused", "otp_reused"],
        ["otp_reused", "request_not_pending"],
    )


def test_concurrent_submissions_with_one_idempotency_key(server, signer, plain):
    from concurrent.futures import ThreadPoolExecutor

    def post(_):
        with server.client() as http:
            return http.post(
                "/api/v1/signing-requests",
                headers={"Idempotency-Key": f"race-{signer.username}"},
                files={"document": ("d.pdf", plain, "application/pdf")},
                data={"signer": signer.username},
            )

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(post, range(4)))
    assert all(a.status_code in (200, 201) for a in answers), [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1


@pytest.mark.invariant(3)
def test_totp_reenrolment_counts_failures_and_locks(server, signer):
    wrong = f"{(int(signer.otp()) + 3) % 1_000_000:06d}"
    with server.tablet(signer.username, signer.password) as tablet:
        codes = [
            tablet.post("/mobile/v1/totp", json={"otp": wrong}).json()["code"] for _ in range(5)
        ]
        assert codes == ["otp_invalid"] * 4 + ["otp_locked"]
        # the right code is refused while locked: no brute force around the lockout
        _problem(tablet.post("/mobile/v1/totp", json={"otp": signer.otp()}), 429, "otp_locked")


def test_non_ascii_digits_and_odd_boxes_are_4xx(server, signer, plain):
    request_id = submit(server, plain, signer.username).json()["id"]
    with server.tablet(signer.username, signer.password) as tablet:
        for otp in ("١٢٣٤٥٦", "１２３４５６"):
            _problem(approve(tablet, request_id, otp, plain), 403, "otp_invalid")
    for box in ("-inf,0,inf,10", "0,0,1e308,1e308", "nan,0,1,1"):
        _problem(
            submit(server, plain, signer.username, page="1", box=box), 422, "parameter_invalid"
        )


def test_already_signed_field_is_refused_at_submission(server, signer, corpus):
    document = (corpus / "pdf" / "signed-twice-pades.pdf").read_bytes()
    _problem(submit(server, document, signer.username, field_name="Sig1"), 422, "parameter_invalid")
