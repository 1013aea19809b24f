"""The tablet app in Chromium, at an iPad's viewport both ways and a phone's: a leader
signs in with a one-time password and chooses their own, enrols a passkey (a CDP virtual
authenticator), reads an official document with the signature's place drawn, approves
it, signs a batch of ten with its progress, rejects one, finds the signed PDF in the
history; the clerk who keeps the seal sees the leader's signature on the page and
seals. Both signatures validate with pyHanko and poppler's pdfsig. Every screen is
photographed (tests/browser.py) and checked for labels, visible focus and contrast.

And the attacker's view: an assertion made for one statement sent for another, one
without user verification, a revoked passkey, a document changed after it was shown."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from gateway.db.models import Device, SigningRequest, User
from gateway.signing.validation import pdfsig_verdicts, validate_with_pyhanko
from signing_gateway.demo.sample_pdf import sample_pdf
from tests.browser import (
    Tablet,
    checked,
    forged_assertion,
    open_tablet,
)
from tests.commands import cli
from tests.factories import enrolment_code, make_organisation

pytestmark = pytest.mark.browser

BOX = "330,380,530,450"


def _submit(server, signer: str, document: bytes, title: str, **fields: str) -> str:
    with server.client() as http:
        answer = http.post(
            "/api/v1/signing-requests",
            files={"document": ("document.pdf", document, "application/pdf")},
            data={"signer": signer, "title": title, "reason": "Ban hành văn bản", **fields},
        )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _official_document(corpus: Path) -> bytes:
    return (corpus / "pdf" / "vn-word-text-hybrid-xref.pdf").read_bytes()


def _sign_in(tablet: Tablet, username: str, password: str) -> None:
    tablet.page.goto(f"{tablet.base_url}/app/")
    tablet.page.get_by_label("Tên đăng nhập").fill(username)
    tablet.page.get_by_label("Mật khẩu", exact=True).fill(password)
    tablet.page.get_by_role("button", name="Đăng nhập").click()


def _enrol_passkey(tablet: Tablet, code: str, *, shot: bool = True) -> None:
    page = tablet.page
    page.goto(f"{tablet.base_url}/app/#/enrol")
    page.get_by_label("Mã đăng ký").fill(code)
    if shot:
        checked(tablet, "03-enrol")
    page.get_by_role("button", name="Tạo khóa xác thực").click()
    page.get_by_text("Đã đăng ký khóa xác thực.").wait_for()
    page.wait_for_url("**/#/list")


def _approve_here(tablet: Tablet, request_id: str, shot: str | None = None) -> None:
    page = tablet.page
    page.goto(f"{tablet.base_url}/app/#/doc/{request_id}")
    page.get_by_role("heading", name="Nội dung sẽ được ký").wait_for()
    page.locator(".page img[src]").first.wait_for()
    if shot:
        page.locator(".box.signature").first.scroll_into_view_if_needed()
        page.locator(".box.signature").first.locator("xpath=..").locator("img[src]").wait_for()
        checked(tablet, shot, focus=".box.signature")
    page.locator("#approve").click()
    page.get_by_role("status").filter(has_text="Đã ký").wait_for(timeout=60_000)


@pytest.mark.parametrize("viewport", ["ipad-portrait", "ipad-landscape", "phone"])
def test_a_leader_signs_from_the_tablet_and_the_clerk_seals(
    browser, app_url, server, db, box, corpus, demo_credentials, viewport
):
    org = make_organisation(db, box)
    with db.transaction() as session:
        session.get(User, org.leader.user_id).password_must_change = True
    official = _submit(
        server,
        org.leader.username,
        _official_document(corpus),
        "Quyết định số 12/QĐ-STC về việc ban hành quy chế",
        workflow="official_document",
        organisation=org.name,
        page="4",
        box=BOX,
    )
    batch = [
        _submit(
            server, org.leader.username, sample_pdf([f"CONG VAN so {n}"]), f"Công văn số {n}/STC"
        )
        for n in range(10)
    ]
    declined = _submit(server, org.leader.username, sample_pdf(["TO TRINH"]), "Tờ trình số 7/TTr")
    tablet = open_tablet(browser, app_url, viewport)
    page = tablet.page

    # sign in with the one-time password, choose one's own
    page.goto(f"{app_url}/app/")
    checked(tablet, "01-sign-in")
    _sign_in(tablet, org.leader.username, org.leader.password)
    page.get_by_role("heading", name="Đổi mật khẩu").wait_for()
    page.get_by_label("Mật khẩu hiện tại").fill(org.leader.password)
    page.get_by_label("Mật khẩu mới", exact=True).fill("Lanh-dao-2026!")
    page.get_by_label("Nhập lại mật khẩu mới").fill("Lanh-dao-2026!")
    checked(tablet, "02-password")
    page.get_by_role("button", name="Lưu").click()
    page.get_by_role("heading", name="Văn bản chờ ký").wait_for()

    _enrol_passkey(tablet, enrolment_code(db, org.leader.username))
    page.get_by_text("Quyết định số 12/QĐ-STC", exact=False).first.wait_for()
    checked(tablet, "04-waiting")

    # the official document: the signature's place and the seal's are drawn
    page.goto(f"{app_url}/app/#/doc/{official}")
    page.locator(".page img[src]").last.wait_for()
    assert page.locator(".box.signature").count() == 1 and page.locator(".box.seal").count() == 1
    assert page.get_by_text("Nguyễn Văn An", exact=True).count() >= 1  # the certificate holder
    _approve_here(tablet, official, shot="05-document")
    checked(tablet, "06-signed")

    # a batch of ten, with its progress
    page.goto(f"{app_url}/app/#/list")
    for request_id in batch:
        page.locator(f"#pick-{request_id}").check()
    page.get_by_role("button", name="Ký 10 văn bản đã chọn").click()
    page.get_by_role("heading", name="Tiến trình ký").wait_for()
    page.locator("#approve-batch").click()
    page.locator("#batch-done").wait_for(timeout=120_000)
    assert page.locator('.progress .item[data-state="signed"]').count() == 10
    checked(tablet, "07-batch")

    # a rejection with its reason
    page.goto(f"{app_url}/app/#/doc/{declined}")
    page.locator("#reject").click()
    page.get_by_label("Lý do từ chối").fill("Số liệu chưa khớp với báo cáo quý")
    checked(tablet, "08-reject")
    page.get_by_role("button", name="Xác nhận từ chối").click()
    page.wait_for_url("**/#/list")

    # the history, and the signed PDF downloaded
    page.goto(f"{app_url}/app/#/history")
    page.get_by_text("Đã từ chối").first.wait_for()
    checked(tablet, "09-history")
    with page.expect_download() as download:
        page.get_by_role("button", name="Tải bản đã ký").first.click()
    leader_output = Path(download.value.path()).read_bytes()
    assert leader_output.startswith(b"%PDF")
    page.get_by_role("link", name="Kiểm tra chữ ký").first.click()
    page.get_by_role("heading", name="Kiểm tra chữ ký số").wait_for()
    assert page.locator(".card.check .badge.signed").count() >= 1  # "Hợp lệ"
    assert page.get_by_text("B-LT", exact=True).count() >= 1
    checked(tablet, "09b-check")
    page.goto(f"{app_url}/app/#/devices")
    page.get_by_text("Khóa xác thực (passkey)").first.wait_for()
    checked(tablet, "10-devices")

    # this tablet's passkey has a code issued for the leader's second tablet
    page.get_by_role("button", name="Cấp mã cho máy mới").click()
    code = page.locator("#issued-code").inner_text()
    checked(tablet, "10b-code-for-new-device", focus="#issued-code")
    second = open_tablet(browser, app_url, viewport)
    _sign_in(second, org.leader.username, "Lanh-dao-2026!")
    second.page.get_by_role("heading", name="Văn bản chờ ký").wait_for()
    _enrol_passkey(second, code, shot=False)
    with db.transaction() as session:
        kinds = [
            d.kind
            for d in session.scalars(select(Device).where(Device.user_id == org.leader.user_id))
        ]
    assert kinds == ["passkey", "passkey"]

    # the clerk seals: TOTP on a tablet without a passkey
    clerk = open_tablet(browser, app_url, viewport, passkeys=False)
    _sign_in(clerk, org.clerk.username, org.clerk.password)
    clerk.page.get_by_text("Đóng dấu").first.wait_for()
    seal = _seal_step(db, official)
    clerk.page.goto(f"{app_url}/app/#/doc/{seal}")
    clerk.page.get_by_text("Chữ ký của lãnh đạo đã có trên trang").wait_for()
    clerk.page.locator(".page img[src]").last.wait_for()
    assert clerk.page.locator(".box.seal").count() == 1  # where the seal goes
    clerk.page.get_by_label("Mã xác thực 6 số").fill(org.clerk.otp())
    checked(clerk, "11-seal")
    clerk.page.locator("#approve").click()
    clerk.page.get_by_role("status").filter(has_text="Đã ký").wait_for(timeout=60_000)

    with server.client() as http:
        finished = http.get(f"/api/v1/signing-requests/{seal}/signed-document").content
    # pyHanko runs its own event loop: not in the thread where Playwright runs one
    with ThreadPoolExecutor(1) as other:
        verdicts = other.submit(
            validate_with_pyhanko, finished, Path(demo_credentials["trust_anchor"])
        ).result()
    leader, sealed = verdicts[-2:]
    assert leader.ok and sealed.ok, (leader, sealed)
    assert pdfsig_verdicts(finished)[-2:] == ["Signature is Valid."] * 2
    with server.client() as http:
        statuses = [http.get(f"/api/v1/signing-requests/{i}").json()["status"] for i in batch]
    assert statuses == ["signed"] * 10

    # the leader revokes the tablet's passkey: every session ends, sign in again
    page.goto(f"{app_url}/app/#/devices")
    page.get_by_role("button", name="Thu hồi").first.click()
    page.get_by_text("Đã thu hồi thiết bị").wait_for()
    checked(tablet, "12-revoked")


def _seal_step(db, step1: str) -> str:
    with db.transaction() as session:
        return str(
            session.scalar(
                select(SigningRequest.id).where(
                    SigningRequest.workflow_id == step1, SigningRequest.step == 2
                )
            )
        )


# ---- the attacker's view -----------------------------------------------------------------


@pytest.fixture
def leader_tablet(browser, app_url, db, box):
    """A leader signed in on a tablet with a passkey enrolled."""
    org = make_organisation(db, box)
    tablet = open_tablet(browser, app_url, "ipad-portrait")
    _sign_in(tablet, org.leader.username, org.leader.password)
    tablet.page.get_by_role("heading", name="Văn bản chờ ký").wait_for()
    _enrol_passkey(tablet, enrolment_code(db, org.leader.username))
    return org, tablet


def _statement(signer: str, device: str, nonce: str, expires_at: int, views: list[dict]) -> bytes:
    body = {
        "v": 2,
        "type": "signing-decision",
        "signer": signer,
        "device": device,
        "decision": "approve",
        "nonce": nonce,
        "expires_at": expires_at,
        "requests": sorted(
            (
                {
                    "id": v["id"],
                    "document_sha256": v["document_sha256"],
                    "parameters_sha256": v["parameters_sha256"],
                    "certificate_sha256": v["certificate_sha256"],
                    "mechanism": v["mechanism"],
                }
                for v in views
            ),
            key=lambda r: r["id"],
        ),
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def test_an_assertion_is_good_for_its_own_statement_only(leader_tablet, server, app_url):
    org, tablet = leader_tablet
    first = _submit(server, org.leader.username, sample_pdf(["A"]), "Văn bản A")
    second = _submit(server, org.leader.username, sample_pdf(["B"]), "Văn bản B")
    sent: list[dict] = []
    tablet.page.on(
        "request",
        lambda r: (
            sent.append(json.loads(r.post_data)) if r.url.endswith(f"/{first}/approval") else None
        ),
    )
    _approve_here(tablet, first)
    (approval,) = sent
    with httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {tablet.token()}"}
    ) as http:
        view = http.get(f"/mobile/v1/signing-requests/{second}").json()
        replay = http.post(
            f"/mobile/v1/signing-requests/{second}/approval",
            json={"document_sha256": view["document_sha256"], **_factor_of(approval)},
        )
        assert replay.status_code == 403, replay.text
        assert replay.json()["code"] in ("approval_signature_invalid", "approval_nonce_invalid")
        assert http.get(f"/mobile/v1/signing-requests/{second}").json()["status"] == (
            "pending_approval"
        )


def _factor_of(body: dict) -> dict:
    return {"device_approval": body["device_approval"]}


def test_without_user_verification_or_once_revoked_a_passkey_approves_nothing(
    leader_tablet, server, app_url, installation
):
    """Assertions made with the passkey's own key (read from the virtual authenticator):
    with user verification one signs (the control), without it none does; once the
    passkey is revoked, even a verified one is refused."""
    org, tablet = leader_tablet
    (credential,) = tablet.credentials()
    counter = iter(range(int(credential["signCount"]) + 1, 10_000))
    stored = json.loads(tablet.page.evaluate("localStorage.getItem('passkey')"))
    control, target = (
        _submit(server, org.leader.username, sample_pdf([n]), f"Văn bản {n}") for n in "CD"
    )

    def attempt(token: str, request_id: str, user_verified: bool) -> httpx.Response:
        with httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}
        ) as http:
            view = http.get(f"/mobile/v1/signing-requests/{request_id}").json()
            nonce = http.post("/mobile/v1/approval-nonces").json()["nonce"]
            expires_at = int(time.time()) + 100
            statement = _statement(
                org.leader.username, stored["device_id"], nonce, expires_at, [view]
            )
            assertion = forged_assertion(
                credential,
                statement,
                origin=app_url,
                user_verified=user_verified,
                sign_count=next(counter),
            )
            return http.post(
                f"/mobile/v1/signing-requests/{request_id}/approval",
                json={
                    "document_sha256": view["document_sha256"],
                    "device_approval": {
                        "device_id": stored["device_id"],
                        "nonce": nonce,
                        "expires_at": expires_at,
                        "webauthn": assertion,
                    },
                },
            )

    signed = attempt(tablet.token(), control, user_verified=True)
    assert signed.status_code == 200 and signed.json()["status"] == "signed", signed.text
    refused = attempt(tablet.token(), target, user_verified=False)
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "approval_signature_invalid"
    revoked = cli(installation, "devices", "revoke", stored["device_id"])
    assert revoked.returncode == 0, revoked.stderr
    _sign_in(tablet, org.leader.username, org.leader.password)  # revoking ended the session
    tablet.page.get_by_role("heading", name="Văn bản chờ ký").wait_for()
    after = attempt(tablet.token(), target, user_verified=True)
    assert after.status_code == 403 and after.json()["code"] == "device_revoked", after.text
    with server.client() as http:
        assert http.get(f"/api/v1/signing-requests/{target}").json()["status"] == (
            "pending_approval"
        )


def test_a_document_changed_after_it_was_shown_is_not_signed(leader_tablet, server, app_url):
    org, tablet = leader_tablet
    request_id = _submit(server, org.leader.username, sample_pdf(["D"]), "Văn bản D")
    posted: list[str] = []
    tablet.page.on("request", lambda r: posted.append(r.url) if r.method == "POST" else None)

    def tampered(route):
        answer = route.fetch()
        route.fulfill(response=answer, body=answer.body() + b"\n% appended after display\n")

    tablet.page.route(f"**/signing-requests/{request_id}/document", tampered)
    tablet.page.goto(f"{app_url}/app/#/doc/{request_id}")
    tablet.page.locator("#approve").click()
    tablet.page.get_by_text("không khớp với văn bản sẽ ký").wait_for()
    assert not [u for u in posted if u.endswith("/approval")]
    with server.client() as http:
        assert http.get(f"/api/v1/signing-requests/{request_id}").json()["status"] == (
            "pending_approval"
        )
