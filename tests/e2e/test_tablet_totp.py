"""The tablet app in Chromium: a new leader without a passkey enrols a first authenticator
app (TOTP) on the app's screens with the enrolment code the administrator made with the
command line, scanning the QR code or typing the key the screen shows, confirms it with
a first code, and then signs a document with a 6-digit code. Each new screen is
photographed at an iPad's viewport both ways and a phone's (tests/browser.py) and checked
for labels, visible focus and contrast; the secret stays on its screen (neither the
browser's storage nor the server's log keeps it)."""

from __future__ import annotations

import base64
import io
import re
import secrets
import time

import pyotp
import pytest
import segno
from cryptography import x509
from cryptography.x509.oid import NameOID

from signing_gateway.demo.sample_pdf import sample_pdf
from tests.browser import checked, open_tablet
from tests.commands import cli
from tests.factories import demo_credential

pytestmark = pytest.mark.browser

NEW_PASSWORD = "Lanh-dao-2026!"


def _new_leader(installation, db) -> tuple[str, str, str]:
    """A leader added with the command line, signing with the demo leader's key, and
    the enrolment code the administrator gives them: (username, password, code)."""
    username = f"binh-{secrets.token_hex(3)}"
    added = cli(
        installation, "users", "add", username, "--display-name", "Trần Văn Bình",
        "--role", "leader",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    password = re.search(r"initial password \(shown once\): (\S+)", added.stdout).group(1)
    with db.transaction() as session:
        template = demo_credential(session, "leader1")
        token, key_id = template.token_serial, template.key_id
        certificate = x509.load_der_x509_certificate(template.certificate_der)
    holder = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    registered = cli(
        installation, "credentials", "register", username, "--token", token,
        "--key-id", key_id, "--confirm-holder", str(holder),
    )  # fmt: skip
    assert registered.returncode == 0, registered.stderr
    issued = cli(installation, "devices", "enrolment-code", username)
    assert issued.returncode == 0, issued.stderr
    code = re.search(r"enrolment code: (\S+)", issued.stdout).group(1)
    return username, password, code


def _wrong_code(totp: pyotp.TOTP) -> str:
    now = time.time()
    valid = {totp.at(now + 30 * step) for step in (-2, -1, 0, 1, 2)}
    return next(c for c in (f"{n:06d}" for n in range(1, 100)) if c not in valid)


@pytest.mark.parametrize("viewport", ["ipad-portrait", "ipad-landscape", "phone"])
def test_a_new_leader_enrols_an_authenticator_app_and_signs_with_its_code(
    browser, app_url, server, installation, db, viewport
):
    username, password, code = _new_leader(installation, db)
    tablet = open_tablet(browser, app_url, viewport, passkeys=False)
    page = tablet.page

    # first sign-in: the one-time password is replaced, then the app asks for a factor
    page.goto(f"{app_url}/app/")
    page.get_by_label("Tên đăng nhập").fill(username)
    page.get_by_label("Mật khẩu", exact=True).fill(password)
    page.get_by_role("button", name="Đăng nhập").click()
    page.get_by_role("heading", name="Đổi mật khẩu").wait_for()
    page.get_by_label("Mật khẩu hiện tại").fill(password)
    page.get_by_label("Mật khẩu mới", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Nhập lại mật khẩu mới").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Lưu").click()
    page.get_by_role("heading", name="Đăng ký khóa xác thực").wait_for()
    checked(tablet, "totp-01-enrol-choice", focus="#use-totp")

    # the authenticator app, with the administrator's code
    page.get_by_role("link", name="Dùng ứng dụng tạo mã (Google Authenticator").click()
    page.get_by_role("heading", name="Đăng ký ứng dụng tạo mã").wait_for()
    page.get_by_label("Mã đăng ký").fill("ABCD.not-the-code")
    page.get_by_role("button", name="Tiếp tục").click()
    page.get_by_role("alert").filter(has_text="Mã đăng ký không đúng").wait_for()
    page.get_by_label("Mã đăng ký").fill(code)
    checked(tablet, "totp-02-code")
    page.get_by_role("button", name="Tiếp tục").click()
    page.get_by_role("heading", name="Thêm vào ứng dụng tạo mã").wait_for()
    shown = page.locator("#totp-secret").inner_text()
    assert re.fullmatch(r"([A-Z2-7]{4} ){7}[A-Z2-7]{4}", shown), shown  # 160 bits, in 4s
    secret = shown.replace(" ", "")
    # the QR code is the otpauth URI of the very key shown as text
    uri = pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name="Signing Gateway")
    expected = io.BytesIO()
    segno.make(uri, error="m").save(expected, kind="png", scale=6)
    src = page.locator("img.qr").get_attribute("src")
    assert src == "data:image/png;base64," + base64.b64encode(expected.getvalue()).decode()
    assert page.locator("img.qr").evaluate("img => img.naturalWidth") > 0
    # on a phone, the authenticator app on the same phone opens the same URI
    assert page.locator("#totp-open").get_attribute("href") == uri
    assert page.locator("#totp-open").is_visible() == (viewport == "phone")
    checked(tablet, "totp-03-scan")

    # in English, the same key (the language switch keeps the screen)
    page.get_by_role("button", name="English").click()
    page.get_by_role("heading", name="Add it to the authenticator app").wait_for()
    assert page.locator("#totp-secret").inner_text() == shown
    checked(tablet, "totp-03-scan-en")
    page.get_by_role("button", name="Tiếng Việt").click()
    page.get_by_role("heading", name="Thêm vào ứng dụng tạo mã").wait_for()

    totp = pyotp.TOTP(secret)
    page.get_by_label("Mã 6 số ứng dụng đang hiển thị").fill(_wrong_code(totp))
    page.get_by_role("button", name="Xác nhận").click()
    page.get_by_role("alert").filter(has_text="Mã xác thực không đúng.").wait_for()
    assert page.locator("#totp-secret").inner_text() == shown  # still there to retry
    # the previous step's code, leaving the current one for the approval
    previous = totp.at(time.time() - 30)
    page.get_by_label("Mã 6 số ứng dụng đang hiển thị").fill(f"{previous[:3]} {previous[3:]}")
    page.get_by_role("button", name="Xác nhận").click()
    page.get_by_role("heading", name="Đã đăng ký ứng dụng tạo mã").wait_for()
    page.get_by_text("mỗi lần ký hoặc từ chối văn bản, màn hình sẽ hỏi mã 6 số").wait_for()
    checked(tablet, "totp-04-done")
    kept = page.evaluate("JSON.stringify([{...localStorage}, {...sessionStorage}])")
    assert secret not in kept and shown not in kept
    with server.tablet(username, NEW_PASSWORD) as http:
        assert http.get("/mobile/v1/me").json()["totp_enrolled"] is True

    # a document for the new leader, signed with a 6-digit code in the app
    with server.client() as http:
        submitted = http.post(
            "/api/v1/signing-requests",
            files={"document": ("cv.pdf", sample_pdf(["CONG VAN so 21"]), "application/pdf")},
            data={"signer": username, "title": "Công văn số 21/STC", "reason": "Phê duyệt"},
        )
    assert submitted.status_code == 201, submitted.text
    request_id = submitted.json()["id"]
    page.get_by_role("link", name="Xem văn bản chờ ký").click()
    page.get_by_role("link", name="Công văn số 21/STC").click()
    page.get_by_role("heading", name="Nội dung sẽ được ký").wait_for()
    page.locator(".page img[src]").first.wait_for()
    page.get_by_label("Mã xác thực 6 số").fill(totp.now())
    checked(tablet, "totp-05-approve", focus="#approve")
    page.locator("#approve").click()
    page.get_by_role("status").filter(has_text="Đã ký").wait_for(timeout=60_000)
    with server.client() as http:
        assert http.get(f"/api/v1/signing-requests/{request_id}").json()["status"] == "signed"
        signed = http.get(f"/api/v1/signing-requests/{request_id}/signed-document")
    assert signed.status_code == 200 and signed.content.startswith(b"%PDF")
    assert secret not in server.log_path.read_text(encoding="utf-8", errors="replace")
    tablet.page.context.close()
