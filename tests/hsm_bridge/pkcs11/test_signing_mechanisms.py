"""Each signature mechanism end to end over HTTP (RSA PKCS#1 v1.5 is covered by the
corpus test): RSA-PSS, ECDSA on P-384, a key with CKA_ALWAYS_AUTHENTICATE, and PIN
policy ``signer``. Every result is checked with pyHanko's validator and pdfsig."""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path

import pyotp
import pytest
from pyhanko.pdf_utils.reader import PdfFileReader

from gateway.signing.validation import pdfsig_verdicts, validate_with_pyhanko
from tests.conftest import submit
from tests.device_app import sealed_pin
from tests.factories import make_signer

DOCUMENT = "plain-libreoffice-writer.pdf"


def _sign_over_http(server, corpus: Path, person: dict, pin: str | None = None) -> tuple[str, dict]:
    """Submit the document for ``person`` and approve it with a TOTP code; with ``pin``,
    the app seals the token PIN to the bridge for this approval."""
    document = (corpus / "pdf" / DOCUMENT).read_bytes()
    answer = submit(server, document, person["username"], reason="Phê duyệt")
    assert answer.status_code == 201, answer.text
    request_id = answer.json()["id"]
    with server.tablet(person["username"], person["password"]) as tablet:
        approval: dict[str, object] = {}
        if pin is not None:
            nonce = tablet.post("/mobile/v1/approval-nonces").json()["nonce"]
            approval = {"nonce": nonce, "pin_envelope": sealed_pin(tablet, request_id, pin, nonce)}
        decision = tablet.post(
            f"/mobile/v1/signing-requests/{request_id}/approval",
            json={
                "otp": pyotp.TOTP(person["totp_secret"]).now(),
                "document_sha256": hashlib.sha256(document).hexdigest(),
                **approval,
            },
        )
    return request_id, {"status_code": decision.status_code, **decision.json()}


def _signed(server, request_id: str) -> bytes:
    with server.client() as http:
        answer = http.get(f"/api/v1/signing-requests/{request_id}/signed-document")
    assert answer.status_code == 200, answer.text
    return answer.content


def _assert_valid(data: bytes, trust_anchor: str, name: str) -> None:
    verdict = validate_with_pyhanko(data, Path(trust_anchor))[-1]
    assert verdict.intact and verdict.valid and verdict.trusted, verdict
    assert verdict.covers_document
    assert name in verdict.signer
    assert pdfsig_verdicts(data)[-1] == "Signature is Valid."  # pdfsig is a test dependency


def _signer_info(data: bytes) -> tuple[str, object]:
    reader = PdfFileReader(__import__("io").BytesIO(data))
    embedded = reader.embedded_signatures[-1]
    info = embedded.signer_info
    return info["signature_algorithm"]["algorithm"].native, embedded.signer_cert.public_key


@pytest.mark.parametrize(
    ("label", "algorithm", "key"),
    [
        ("pss1", "rsassa_pss", ("rsa", 2048)),
        ("p384", "sha256_ecdsa", ("ec", 384)),
        ("alwaysauth", "sha256_rsa", ("rsa", 2048)),
    ],
)
def test_mechanism_signs_a_valid_pades_signature(
    label, algorithm, key, server, corpus, extra_signers, demo_credentials
):
    person = extra_signers[label]
    request_id, decision = _sign_over_http(server, corpus, person)
    assert decision["status"] == "signed", decision
    data = _signed(server, request_id)
    _assert_valid(data, demo_credentials["trust_anchor"], person["display_name"])
    used, public = _signer_info(data)
    assert used == algorithm
    assert (public.algorithm, public.bit_size) == key
    if algorithm == "rsassa_pss":
        reader = PdfFileReader(__import__("io").BytesIO(data))
        params = reader.embedded_signatures[-1].signer_info["signature_algorithm"]["parameters"]
        assert params["hash_algorithm"]["algorithm"].native == "sha256"
        assert params["salt_length"].native == 32


def test_signer_pin_policy_needs_the_pin_each_time_and_never_retries(
    server, corpus, extra_signers, demo_credentials, db, box
):
    person = extra_signers["pinsigner"]
    # no PIN: refused before the TOTP code is spent, the request stays pending
    request_id, decision = _sign_over_http(server, corpus, person)
    assert decision["status_code"] == 422 and decision["code"] == "pin_required", decision
    with server.client() as http:
        assert http.get(f"/api/v1/signing-requests/{request_id}").json()["status"] == (
            "pending_approval"
        )
    # a wrong PIN: reported, not retried, the request stays pending for another try
    request_id, decision = _sign_over_http(server, corpus, person, pin="00000000")
    assert decision["code"] == "pin_incorrect", decision
    with server.client() as http:
        state = http.get(f"/api/v1/signing-requests/{request_id}").json()
    assert state["status"] == "pending_approval"
    # the right PIN signs (a second signer of that credential: no wait for a new TOTP
    # step), and the PIN appears in no log line
    other = make_signer(db, box, like=person["username"])
    request_id, decision = _sign_over_http(server, corpus, asdict(other), pin=person["token_pin"])
    assert decision["status"] == "signed", decision
    _assert_valid(
        _signed(server, request_id), demo_credentials["trust_anchor"], person["display_name"]
    )
    assert person["token_pin"] not in server.log_path.read_text("utf-8", "replace")


def test_a_token_pin_for_a_stored_pin_credential_is_refused_before_the_totp_is_spent(
    server, corpus, db, box, demo_credentials
):
    person = asdict(make_signer(db, box, like="org1"))
    person["display_name"] = "Sở Tài chính"
    request_id, decision = _sign_over_http(server, corpus, person, pin="0000")
    assert decision["status_code"] == 422 and decision["code"] == "parameter_invalid"
    document = (corpus / "pdf" / DOCUMENT).read_bytes()
    with server.tablet(person["username"], person["password"]) as tablet:
        signed = tablet.post(
            f"/mobile/v1/signing-requests/{request_id}/approval",
            json={
                "otp": pyotp.TOTP(person["totp_secret"]).now(),  # the same code still works
                "document_sha256": hashlib.sha256(document).hexdigest(),
            },
        )
    assert signed.status_code == 200 and signed.json()["status"] == "signed", signed.text
