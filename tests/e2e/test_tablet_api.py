"""What the tablet app relies on, over HTTP against the running server: the app itself
served locally with a strict policy, a document's title from submission to the signer's
list, views and download, the warning for a signer nobody can reach, the one-time
password's replacement and its rules, and the refusals of the push subscription and
passkey endpoints."""

from __future__ import annotations

import re
from urllib.parse import unquote

import httpx
from sqlalchemy import update

from gateway.db.models import User
from signing_gateway.demo.sample_pdf import sample_pdf
from tests.conftest import approve, submit
from tests.factories import make_signer


def test_the_app_is_served_with_its_assets_from_the_gateway(server):
    with httpx.Client(base_url=server.base_url, follow_redirects=False) as http:
        assert http.get("/").headers["location"].endswith("/app/")
        page = http.get("/app/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "default-src 'self'" in policy
        # no script, style, font or image from anywhere else
        assert not re.search(r"(src|href)=\"(https?:)?//", page.text)
        for asset in re.findall(r"(?:src|href)=\"([^\"]+)\"", page.text):
            url = asset if asset.startswith("/") else f"/app/{asset.removeprefix('./')}"
            assert http.get(url).status_code == 200, asset
        manifest = http.get("/app/manifest.webmanifest").json()
        assert manifest["lang"] == "vi" and manifest["start_url"].startswith("/app/")
        assert {icon["sizes"] for icon in manifest["icons"]} >= {"192x192", "512x512"}
        worker = http.get("/app/sw.js").text
        assert "/mobile/" in worker  # named, so as never to be cached (see sw.js)


def test_the_title_goes_from_submission_to_the_signers_list_and_download(server, db, box):
    signer = make_signer(db, box)
    title = "Công văn số 15/STC-NS về nhân sự"
    document = sample_pdf(["CONG VAN 15"])
    answer = submit(server, document, signer.username, title=title)
    assert answer.status_code == 201, answer.text
    request_id = answer.json()["id"]
    with server.tablet(signer.username, signer.password) as tablet:
        (listed,) = [
            v for v in tablet.get("/mobile/v1/signing-requests").json() if v["id"] == request_id
        ]
        assert listed["title"] == title and listed["step_kind"] == "sign"
        assert listed["sender"] and listed["certificate"]["holder"]
        assert listed["page_sizes"] == [[595.0, 842.0]]
        early = tablet.get(f"/mobile/v1/signing-requests/{request_id}/signed-document")
        assert early.status_code == 409 and early.json()["code"] == "request_not_signed"
        assert approve(tablet, request_id, signer.otp(), document).status_code == 200
        signed = tablet.get(f"/mobile/v1/signing-requests/{request_id}/signed-document")
        assert signed.status_code == 200 and signed.content.startswith(b"%PDF")
        disposition = signed.headers["content-disposition"]
        assert "Công văn số 15" in unquote(disposition.split("filename*=UTF-8''")[1])
    with server.client() as http:
        assert http.get(f"/api/v1/signing-requests/{request_id}").json()["title"] == title


def test_a_title_with_control_characters_is_refused_in_words(server, db, box):
    signer = make_signer(db, box)
    answer = submit(server, sample_pdf(["X"]), signer.username, title="Quyết định\x1b[31m")
    assert answer.status_code == 422
    assert answer.json()["code"] == "parameter_invalid" and "title" in answer.json()["detail"]


def test_a_signer_nobody_can_reach_is_named_in_a_warning_and_led_to_enrolment(server, db, box):
    signer = make_signer(db, box)
    with db.transaction() as session:
        session.execute(update(User).where(User.id == signer.user_id).values(totp_enrolled_at=None))
    answer = submit(server, sample_pdf(["Y"]), signer.username)
    assert answer.status_code == 201
    assert "signer_unreachable" in answer.json()["warnings"]
    with server.tablet(signer.username, signer.password) as tablet:
        me = tablet.get("/mobile/v1/me").json()
        assert me["totp_enrolled"] is False and me["devices"] == 0  # the app opens enrolment
    reachable = make_signer(db, box)
    assert (
        "signer_unreachable"
        not in submit(server, sample_pdf(["Z"]), reachable.username).json()["warnings"]
    )


def test_a_one_time_password_must_be_replaced_by_one_that_keeps_the_rules(server, db, box):
    signer = make_signer(db, box)
    with db.transaction() as session:
        session.execute(
            update(User).where(User.id == signer.user_id).values(password_must_change=True)
        )
    with server.tablet(signer.username, signer.password) as tablet:
        assert tablet.get("/mobile/v1/me").json()["password_change_required"] is True
        blocked = tablet.get("/mobile/v1/signing-requests")
        assert blocked.status_code == 403 and blocked.json()["code"] == "password_change_required"

        def change(current: str, new: str) -> httpx.Response:
            return tablet.post(
                "/mobile/v1/password", json={"current_password": current, "new_password": new}
            )

        for weak in ("short1!", signer.username + "-2026!", signer.password, "aaaaaaaaaaaa"):
            refused = change(signer.password, weak)
            assert refused.status_code == 422, weak
            assert refused.json()["code"] == "password_too_weak" and refused.json()["detail"]
        wrong = change("not-the-password", "Mot-mat-khau-2026!")
        assert wrong.status_code == 401 and wrong.json()["code"] == "credentials_invalid"
        assert change(signer.password, "Mot-mat-khau-2026!").status_code == 204
        assert tablet.get("/mobile/v1/signing-requests").status_code == 200
    with server.tablet(signer.username, "Mot-mat-khau-2026!") as again:
        assert again.get("/mobile/v1/me").json()["password_change_required"] is False


def test_push_subscriptions_and_passkeys_refuse_what_they_cannot_use(server, db, box):
    signer = make_signer(db, box)
    with server.tablet(signer.username, signer.password) as tablet:
        foreign = tablet.put(
            "/mobile/v1/devices/not-mine/push-subscription",
            json={
                "subscription": {
                    "endpoint": "https://intranet.example/steal",
                    "keys": {"p256dh": "AAAA", "auth": "AAAA"},
                }
            },
        )
        assert foreign.status_code == 422 and foreign.json()["code"] == "parameter_invalid"
        assert "not a Web Push service" in foreign.json()["detail"]
        key = tablet.get("/mobile/v1/push/vapid-key").json()["public_key"]
        assert len(key) == 87  # an uncompressed P-256 point, base64url (RFC 8292)
        options = tablet.post("/mobile/v1/passkeys/options").json()
        assert options["options"]["authenticatorSelection"]["userVerification"] == "required"
        assert options["options"]["rp"]["id"] == "localhost"
        garbage = tablet.post(
            "/mobile/v1/passkeys",
            json={
                "challenge_id": options["challenge_id"],
                "credential": {"id": "x", "rawId": "x", "type": "public-key", "response": {}},
                "otp": signer.otp(),
            },
        )
        assert garbage.status_code == 422, garbage.text
        assert garbage.json()["code"] == "passkey_refused"
        assert garbage.json()["reason"] == "passkey_invalid" and garbage.json()["detail"]
    with httpx.Client(base_url=server.base_url) as anonymous:
        assert anonymous.post("/mobile/v1/passkeys/options").status_code == 401


def test_a_lone_surrogate_in_any_text_is_a_clear_refusal(server, db, box):
    """JSON may escape half of a UTF-16 pair (``"\\ud800"``); no text of ours can hold
    one, and the answer names the parameter instead of failing to encode it (500)."""
    signer = make_signer(db, box)
    request_id = submit(server, sample_pdf(["S"]), signer.username).json()["id"]
    lone = '"x\\ud800y"'
    with server.tablet(signer.username, signer.password) as tablet:
        calls = [
            ("POST", "/mobile/v1/sessions", f'{{"username": {lone}, "password": "x"}}'),
            (
                "POST",
                "/mobile/v1/password",
                f'{{"current_password": {lone}, "new_password": {lone}}}',
            ),
            (
                "POST",
                f"/mobile/v1/signing-requests/{request_id}/rejection",
                f'{{"reason": {lone}}}',
            ),
            (
                "PUT",
                "/mobile/v1/devices/x/push-subscription",
                '{"subscription": {"endpoint": "https://fcm.googleapis.com\\ud800/x",'
                ' "keys": {"p256dh": "AAAA", "auth": "AAAA"}}}',
            ),
            (
                "POST",
                "/mobile/v1/passkeys",
                f'{{"challenge_id": {lone}, "credential": {{"id": {lone}}}, "name": {lone},'
                f' "otp": {lone}}}',
            ),
            (
                "POST",
                "/mobile/v1/devices",
                f'{{"enrolment_code_id": {lone}, "enrolment_proof": {lone}, "public_key": "AA",'
                f' "push_token": {lone}, "platform": "web", "name": {lone}}}',
            ),
            ("POST", "/mobile/v1/enrolment-codes", f'{{"otp": {lone}}}'),
            ("POST", "/mobile/v1/totp", f'{{"secret": {lone}, "otp": {lone}}}'),
            ("POST", f"/mobile/v1/signing-requests/{request_id}/approval", f'{{"otp": {lone}}}'),
        ]
        for method, path, body in calls:
            answer = tablet.request(
                method, path, content=body.encode(), headers={"Content-Type": "application/json"}
            )
            assert 400 <= answer.status_code < 500, (path, answer.status_code, answer.text)
            assert answer.json()["code"], path
        assert tablet.get(f"/mobile/v1/signing-requests/{request_id}").json()["status"] == (
            "pending_approval"
        )
