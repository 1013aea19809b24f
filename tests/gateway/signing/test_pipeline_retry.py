"""A token that is not there when the signer approves: the tablet gets a clear,
retryable problem, the request stays pending (nothing accepted is lost), and the
document system sees it pending too."""

from __future__ import annotations

from gateway.db.models import Credential
from hsm_bridge.credentials import CredentialRef
from tests.conftest import approve, submit
from tests.factories import bridge_registry, make_signer


def test_approval_while_the_token_is_unplugged_keeps_the_request_pending(server, corpus, db, box):
    document = (corpus / "pdf" / "plain-libreoffice-writer.pdf").read_bytes()
    person = make_signer(db, box, like="leader1")
    with db.transaction() as session:
        credential = session.get(Credential, person.credential_id)
        real_serial, credential.token_serial = credential.token_serial, "unplugged-0042"
        # the bridge's administrator bound the signer to it; the token is just not there
        bridge_registry().bind_credential(
            person.username, CredentialRef("unplugged-0042", bytes.fromhex(credential.key_id))
        )
    answer = submit(server, document, person.username)
    assert answer.status_code == 201, answer.text
    request_id = answer.json()["id"]
    with server.tablet(person.username, person.password) as tablet:
        # the previous step's code (still accepted), so that a newer one is left for later
        decision = approve(tablet, request_id, person.otp(-1), document)
        assert decision.status_code == 503, decision.text
        problem = decision.json()
        assert problem["code"] == "token_not_present"
        assert decision.headers["content-type"].startswith("application/problem+json")
        pending = tablet.get("/mobile/v1/signing-requests", params={"status": "pending_approval"})
        assert request_id in {r["id"] for r in pending.json()}
    with server.client() as http:
        assert http.get(f"/api/v1/signing-requests/{request_id}").json()["status"] == (
            "pending_approval"
        )
    # plugged back in: the same request is signed on the next approval
    with db.transaction() as session:
        session.get(Credential, person.credential_id).token_serial = real_serial
    with server.tablet(person.username, person.password) as tablet:
        decision = approve(tablet, request_id, person.otp(), document)
    assert decision.status_code == 200, decision.text
    assert decision.json()["status"] == "signed"
