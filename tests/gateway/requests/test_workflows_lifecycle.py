"""Official documents through their life (a fourth review's cases): the organisation's
key revoked while its seal waits, a handover while a seal is being signed, crash
recovery run twice, attachment text the font cannot draw or the corner cannot hold."""

from __future__ import annotations

import hashlib

import pytest

from gateway.context import build_context
from gateway.db.models import SigningRequest
from gateway.requests.document_store import DocumentStore
from gateway.requests.lifecycle import RequestStatus
from signing_gateway.demo.sample_pdf import sample_pdf
from tests.commands import cli
from tests.conftest import submit
from tests.factories import make_organisation
from tests.official import (
    approve_as,
    hand_over,
    request_status,
    second_clerk,
    signed_document,
    submit_fields,
    submit_official,
)

PLACED = {"page": "1", "box": "330,90,530,160"}


def _document(tag: str) -> bytes:
    return sample_pdf(["QUYẾT ĐỊNH", f"Về việc {tag}"])


def _up_to_the_seal(server, org, document: bytes) -> tuple[str, str, bytes]:
    """Step 1 submitted and signed by the leader: (step 1's id, step 2's id, the
    leader's output)."""
    first = submit_official(server, org, document, **PLACED)
    assert first.status_code == 201, first.text
    step1 = first.json()["id"]
    assert approve_as(server, org.leader, step1, document)["status"] == "signed"
    step2 = request_status(server, step1)["workflow"]["steps"][1]["request_id"]
    return step1, step2, signed_document(server, step1)


def _recover(installation) -> None:
    context = build_context(installation)
    try:
        context.service.pipeline.recover_interrupted()
    finally:
        context.close()


def test_revoking_the_organisations_key_ends_its_waiting_seal(server, db, box, installation):
    """The seal waiting for the revoked key fails at once with certificate_revoked (the
    workflow ends, the document system is told); the clerk's other requests in the
    same batch are signed."""
    org = make_organisation(db, box)
    step1, step2, after = _up_to_the_seal(server, org, _document("thu hồi khóa"))
    own = sample_pdf(["CÔNG VĂN riêng"])
    personal = submit(server, own, org.clerk.username).json()["id"]
    revoked = cli(installation, "credentials", "revoke", org.credential_id)
    assert revoked.returncode == 0 and "1 pending request(s) failed" in revoked.stdout
    seen = request_status(server, step1)["workflow"]
    assert seen["status"] == "failed"
    assert seen["steps"][1]["failure_code"] == "certificate_revoked"
    with server.tablet(org.clerk.username, org.clerk.password) as tablet:
        batch = tablet.post(
            "/mobile/v1/approvals",
            json={
                "otp": org.clerk.otp(),
                "requests": [
                    {"id": step2, "document_sha256": hashlib.sha256(after).hexdigest()},
                    {"id": personal, "document_sha256": hashlib.sha256(own).hexdigest()},
                ],
            },
        )
    assert batch.status_code == 200, batch.text
    first, second = batch.json()["outcomes"]
    assert first["code"] == "request_not_pending"
    assert second["status"] == "signed"


def test_a_revoked_key_found_at_approval_fails_its_request_alone(server, db, box):
    """Revoked without the command (e.g. in the database by another tool): approving
    fails that request with certificate_revoked instead of refusing the whole batch."""
    import datetime as dt

    from gateway.db.models import Credential

    org = make_organisation(db, box)
    step1, step2, after = _up_to_the_seal(server, org, _document("thu hồi"))
    with db.transaction() as session:
        session.get(Credential, org.credential_id).revoked_at = dt.datetime.now(dt.UTC)
    decided = approve_as(server, org.clerk, step2, after)
    assert decided["status"] == "failed" and decided["failure_code"] == "certificate_revoked"
    assert request_status(server, step1)["workflow"]["status"] == "failed"


def test_a_seal_caught_mid_signing_by_a_handover_goes_to_the_new_keeper(
    server, db, box, installation
):
    org = make_organisation(db, box)
    step1, step2, after = _up_to_the_seal(server, org, _document("bàn giao"))
    with db.transaction() as session:
        session.get(SigningRequest, step2).status = RequestStatus.SIGNING.value
    successor = second_clerk(db, box, org)
    handed = hand_over(installation, org, successor, "QĐ 9/QĐ-STC")
    assert handed.returncode == 0, handed.stderr
    _recover(installation)  # the crash is over: back to pending, for whoever keeps it now
    with db.transaction() as session:
        request = session.get(SigningRequest, step2)
        assert request.status == "pending_approval"
        assert request.signer_id == successor.user_id
    assert approve_as(server, successor, step2, after)["status"] == "signed"


def test_recovery_run_twice_makes_the_seals_step_once(server, db, box, installation):
    org = make_organisation(db, box)
    document = _document("khôi phục")
    first = submit_official(server, org, document, **PLACED).json()
    # the file first: the server's own recovery sweep may see the request at any moment
    DocumentStore(installation.documents_dir).write_signed(
        first["id"], document + b"\n% the leader's update\n", len(document)
    )
    with db.transaction() as session:
        session.get(SigningRequest, first["id"]).status = RequestStatus.SIGNING.value
    _recover(installation)
    _recover(installation)
    seen = request_status(server, first["id"])["workflow"]
    assert [s["status"] for s in seen["steps"]] == ["signed", "pending_approval"], seen


@pytest.mark.parametrize(
    ("number", "words"),
    [
        ("第15号/QĐ", "cannot draw"),  # the reader would see "15/QĐ"
        ("15/QĐ 😀", "cannot draw"),
        ("W" * 100, "points wide"),  # would shrink to an unreadable size
    ],
)
def test_attachment_text_is_drawn_as_approved_or_refused(server, db, box, number, words):
    org = make_organisation(db, box)
    answer = submit_fields(
        server,
        sample_pdf(["PHỤ LỤC"]),
        workflow="organisation_only",
        organisation=org.name,
        document_number=number,
    )
    assert answer.status_code == 422, answer.text
    assert words in answer.json()["detail"]


def test_audit_show_refuses_an_absurd_count(installation):
    shown = cli(installation, "audit", "show", "--last", "99999999999999999999")
    assert shown.returncode == 2 and "Traceback" not in shown.stderr + shown.stdout
