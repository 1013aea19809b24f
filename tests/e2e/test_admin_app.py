"""The administrator's screens of the web app in Chromium, at an iPad's viewport both ways
and a phone's: an administrator made with the CLI signs in with the one-time password and
chooses their own, adds a user and sees the user's one-time password once (which then
opens a session), disables the user (who can then no longer sign in), adds a document
system and sees its API key once (which then submits and reads a document), looks at the
certificates and organisations, and finds those actions in the audit log. A leader sees
none of it, and the API refuses them. Every screen is photographed (tests/browser.py) and
checked for labels, visible focus and contrast."""

from __future__ import annotations

import json
import re
import secrets

import httpx
import pytest
from PIL import Image, ImageDraw
from sqlalchemy import select

from gateway.db.models import AuditEntry
from signing_gateway.demo.sample_pdf import sample_pdf
from tests.browser import Tablet, checked, open_tablet
from tests.commands import cli
from tests.factories import make_signer
from tests.token_keys import loose_key

pytestmark = pytest.mark.browser

VIEWPORTS = ["ipad-portrait", "ipad-landscape", "phone"]


def _new_admin(installation) -> tuple[str, str]:
    """An administrator added with the CLI, and the one-time password it printed."""
    username = f"qt{secrets.token_hex(4)}"
    added = cli(
        installation, "users", "add", username, "--display-name", "Quản trị thử", "--role", "admin"
    )
    assert added.returncode == 0, added.stderr
    found = re.search(r"initial password \(shown once\): (\S+)", added.stdout)
    assert found, added.stdout
    return username, found.group(1)


def _sign_in(tablet: Tablet, username: str, password: str) -> None:
    page = tablet.page
    page.goto(f"{tablet.base_url}/app/")
    page.get_by_label("Tên đăng nhập").fill(username)
    page.get_by_label("Mật khẩu", exact=True).fill(password)
    page.get_by_role("button", name="Đăng nhập").click()


def _admin_signs_in_first_time(tablet: Tablet, username: str, password: str) -> None:
    page = tablet.page
    _sign_in(tablet, username, password)
    page.get_by_role("heading", name="Đổi mật khẩu").wait_for()
    page.get_by_label("Mật khẩu hiện tại").fill(password)
    page.get_by_label("Mật khẩu mới", exact=True).fill("Quan-tri-2026!")
    page.get_by_label("Nhập lại mật khẩu mới").fill("Quan-tri-2026!")
    page.get_by_role("button", name="Lưu").click()
    page.get_by_role("heading", name="Người dùng").wait_for()
    page.wait_for_url("**/#/admin/users")


def _add_user(tablet: Tablet, username: str) -> str:
    """Add a leader from the screen; the one-time password it shows."""
    page = tablet.page
    page.locator("#add-user").click()
    page.get_by_label("Tên đăng nhập").fill(username)
    page.get_by_label("Họ và tên").fill("Nguyễn Văn Mới")
    page.get_by_label("Vai trò").select_option("leader")
    checked(tablet, "admin-02-add-user")
    page.get_by_role("button", name="Thêm người dùng").click()
    page.get_by_text("sẽ không được hiển thị lại").wait_for()
    checked(tablet, "admin-03-one-time-password")
    password = page.locator("#secret-0").inner_text().strip()
    assert len(password) >= 10
    page.locator("#secret-done").click()
    page.locator(f"#user-{username}").wait_for()
    assert password not in page.content()  # shown once: gone with its screen
    return password


def _disable_user(tablet: Tablet, username: str) -> None:
    page = tablet.page
    page.locator(f"#user-{username} a").click()
    page.get_by_role("heading", name="Thiết bị và khóa xác thực").wait_for()
    page.get_by_text("Người này chưa đăng ký thiết bị nào.").wait_for()
    assert page.get_by_text("signing-gateway devices revoke").count() == 1
    checked(tablet, "admin-04-user")
    page.locator("#toggle-user").click()
    page.get_by_role("dialog").get_by_text("Khóa tài khoản của Nguyễn Văn Mới?").wait_for()
    tablet.shot("admin-05-confirm")
    page.locator("#confirm-yes").click()
    page.get_by_text("Đã khóa tài khoản.").wait_for()
    assert page.locator("#toggle-user").inner_text() == "Mở lại tài khoản"


def _add_client(tablet: Tablet, name: str) -> tuple[str, str]:
    """Add a document system that may submit and read (not validate); its API key and
    callback secret as shown once."""
    page = tablet.page
    page.get_by_role("link", name="Phần mềm kết nối").click()
    page.locator("#add-client").click()
    page.get_by_label("Tên phần mềm").fill(name)
    page.get_by_label("Kiểm tra chữ ký của văn bản").uncheck()
    checked(tablet, "admin-06-add-client")
    page.get_by_role("button", name="Thêm phần mềm kết nối").click()
    page.get_by_text("sẽ không được hiển thị lại").wait_for()
    checked(tablet, "admin-07-client-key")
    api_key = page.locator("#secret-0").inner_text().strip()
    callback_secret = page.locator("#secret-1").inner_text().strip()
    page.locator("#secret-done").click()
    page.get_by_role("cell", name=name).wait_for()
    assert api_key not in page.content() and callback_secret not in page.content()
    checked(tablet, "admin-08-clients")
    return api_key, callback_secret


def _rotate_and_revoke(tablet: Tablet, name: str) -> str:
    """Give the client a new key (confirmed), and the key shown once; then revoke it."""
    page = tablet.page
    row = page.locator("tr", has=page.get_by_role("cell", name=name))
    row.locator("button.rotate-key").click()
    page.get_by_role("dialog").get_by_text(f"Đổi khóa API của {name}?").wait_for()
    page.locator("#confirm-yes").click()
    page.get_by_text("sẽ không được hiển thị lại").wait_for()
    new_key = page.locator("#secret-0").inner_text().strip()
    page.locator("#secret-done").click()
    row.locator("button.revoke").click()
    page.locator("#confirm-yes").click()
    page.get_by_text(f"Đã thu hồi quyền kết nối của {name}.").wait_for()
    assert row.locator("button").count() == 0
    return new_key


def _browse_audit(tablet: Tablet, admin: str, user: str, client: str) -> None:
    page = tablet.page
    page.get_by_role("link", name="Nhật ký").click()
    page.get_by_role("heading", name="Lọc").wait_for()
    page.locator(".audit-entry").first.wait_for()
    page.get_by_label("Người thực hiện").fill(admin)  # a bare username: user:<admin>
    page.locator("#search-audit").click()
    page.wait_for_function(
        "(actor) => { const rows = [...document.querySelectorAll('.audit-entry')];"
        " return rows.length > 0 && rows.every((r) => r.cells[1].textContent === actor); }",
        arg=f"user:{admin}",
    )
    rows = page.locator(".audit-entry")
    actions = [rows.nth(i).locator("td").nth(2).inner_text() for i in range(rows.count())]
    # newest first: the client's revocation, new key and addition, the user's disabling,
    # new password and addition
    assert [a.split(" (")[1].rstrip(")") for a in actions[:6]] == [
        "client.revoked",
        "client.key_rotated",
        "client.added",
        "user.disabled",
        "user.password_reset",
        "user.added",
    ], actions
    assert client in rows.nth(2).inner_text() and user in rows.nth(3).inner_text()
    page.get_by_label("Người thực hiện").focus()  # Tab from there: the next filter
    checked(tablet, "admin-11-audit")

    # the whole log, a page (50) at a time: more than a page of changes first
    headers = {"Authorization": f"Bearer {tablet.token()}"}
    with httpx.Client(base_url=tablet.base_url, timeout=30, headers=headers) as http:
        for n in range(51):
            changed = http.patch(f"/admin/v1/users/{user}", json={"display_name": f"Tên {n}"})
            assert changed.status_code == 200, changed.text
    page.get_by_label("Người thực hiện").fill("")
    page.locator("#search-audit").click()
    page.locator("#load-more").wait_for()
    assert rows.count() == 50
    page.locator("#load-more").click()
    page.wait_for_function("() => document.querySelectorAll('.audit-entry').length > 50")


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_an_administrator_runs_the_installation_from_the_app(
    browser, app_url, server, installation, db, box, viewport
):
    admin, one_time = _new_admin(installation)
    tablet = open_tablet(browser, app_url, viewport, passkeys=False)
    page = tablet.page
    _admin_signs_in_first_time(tablet, admin, one_time)
    checked(tablet, "admin-01-users")

    # a user, with a one-time password that opens a session (and asks for a new one)
    username = f"nv{secrets.token_hex(4)}"
    password = _add_user(tablet, username)
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        first = http.post("/mobile/v1/sessions", json={"username": username, "password": password})
    assert first.status_code == 201 and first.json()["password_change_required"], first.text

    # a new one-time password: the first one stops working
    page.locator(f"#user-{username} a").click()
    page.locator("#reset-password").click()
    page.get_by_role("dialog").get_by_text("Cấp lại mật khẩu cho Nguyễn Văn Mới?").wait_for()
    page.locator("#confirm-yes").click()
    page.get_by_text("sẽ không được hiển thị lại").wait_for()
    renewed = page.locator("#secret-0").inner_text().strip()
    page.locator("#secret-done").click()
    page.locator("#toggle-user").wait_for()
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        old = http.post("/mobile/v1/sessions", json={"username": username, "password": password})
        new = http.post("/mobile/v1/sessions", json={"username": username, "password": renewed})
    assert old.status_code == 401 and new.status_code == 201, (old.text, new.text)
    password = renewed
    page.get_by_role("link", name="Người dùng").click()
    page.locator(f"#user-{username}").wait_for()

    # disabled: no more sign-in
    _disable_user(tablet, username)
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        refused = http.post(
            "/mobile/v1/sessions", json={"username": username, "password": password}
        )
    assert refused.status_code == 403 and refused.json()["code"] == "user_disabled", refused.text

    # a document system: its key submits and reads, and is refused what it was not given
    client_name = f"VBQL thử {secrets.token_hex(3)}"
    api_key, callback_secret = _add_client(tablet, client_name)
    assert api_key and callback_secret and api_key != callback_secret
    signer = make_signer(db, box)
    with server.client(api_key) as http:
        submitted = http.post(
            "/api/v1/signing-requests",
            files={"document": ("document.pdf", sample_pdf(["CONG VAN"]), "application/pdf")},
            data={"signer": signer.username, "title": "Công văn thử", "reason": "Ban hành"},
        )
        assert submitted.status_code == 201, submitted.text
        read = http.get(f"/api/v1/signing-requests/{submitted.json()['id']}")
        assert read.status_code == 200 and read.json()["title"] == "Công văn thử", read.text
        validation = http.post(
            "/api/v1/validations",
            files={"document": ("document.pdf", sample_pdf(["X"]), "application/pdf")},
        )
        assert validation.status_code == 403, validation.text

    # a new key: the old one stops; revoked: the new one stops too
    new_key = _rotate_and_revoke(tablet, client_name)
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        for key, status in ((api_key, 401), (new_key, 401)):
            answer = http.get(
                f"/api/v1/signing-requests/{submitted.json()['id']}",
                headers={"Authorization": f"Bearer {key}"},
            )
            assert answer.status_code == status, (key == new_key, answer.text)

    # certificates, with their holders and expiry; organisations
    page.get_by_role("link", name="Chứng thư số").click()
    page.get_by_role("heading", name="Chứng thư số").wait_for()
    page.locator("table .mono").first.wait_for()
    checked(tablet, "admin-09-credentials")
    page.get_by_role("link", name="Cơ quan").click()
    page.get_by_role("heading", name="Cơ quan").wait_for()
    page.locator("table td").first.wait_for()
    checked(tablet, "admin-10-organisations")

    _browse_audit(tablet, admin, username, client_name)

    # the same screens in English
    page.locator("#lang").click()
    page.get_by_role("heading", name="Audit log").wait_for()
    page.get_by_role("link", name="Connected systems").click()
    page.get_by_role("heading", name="Connected document systems").wait_for()
    page.get_by_role("cell", name=client_name).wait_for()
    checked(tablet, "admin-12-english")
    page.locator("#lang").click()
    page.get_by_role("heading", name="Phần mềm quản lý văn bản kết nối").wait_for()
    page.context.close()


def test_a_leader_sees_no_administration(browser, app_url, server, db, box):
    leader = make_signer(db, box)
    tablet = open_tablet(browser, app_url, "ipad-landscape", passkeys=False)
    page = tablet.page
    _sign_in(tablet, leader.username, leader.password)
    page.get_by_role("heading", name="Văn bản chờ ký").wait_for()
    assert page.get_by_role("link", name="Người dùng").count() == 0
    assert page.get_by_role("link", name="Nhật ký").count() == 0

    page.goto(f"{app_url}/app/#/admin/users")
    page.get_by_role("heading", name="Văn bản chờ ký").wait_for()
    assert page.locator("table").count() == 0
    with server.tablet(leader.username, leader.password) as http:
        refused = http.get("/admin/v1/users")
    assert refused.status_code == 403 and refused.json()["code"] == "admin_role_required"
    page.context.close()


def _clerks_of_new_organisation(installation) -> tuple[str, str, str]:
    """An organisation of this test (name, full name) and two of its clerks."""
    name = f"so-{secrets.token_hex(3)}"
    display = "Sở Thử nghiệm tỉnh Hà Nam"
    added = cli(installation, "organisations", "add", name, "--display-name", display)
    assert added.returncode == 0, added.stderr
    clerks = []
    for full_name in ("Lý Thị Một", "Lý Thị Hai"):
        username = f"vt{secrets.token_hex(3)}"
        made = cli(
            installation, "users", "add", username, "--display-name", full_name,
            "--role", "clerk", "--organisation", name,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        clerks.append(username)
    return name, display, *clerks


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_an_administrator_registers_a_key_and_hands_a_seal_over(
    browser, app_url, installation, db, extra_signers, tmp_path, viewport
):
    admin, one_time = _new_admin(installation)
    serial = extra_signers["pss1"]["token_serial"]
    key = loose_key(installation, serial, "Trịnh Văn Mạnh", tmp_path)
    organisation, display, first, second = _clerks_of_new_organisation(installation)
    seal_key = loose_key(installation, serial, display, tmp_path)
    person = f"nv{secrets.token_hex(3)}"
    made = cli(installation, "users", "add", person, "--display-name", "Trần Văn Mới",
               "--role", "leader")  # fmt: skip
    assert made.returncode == 0, made.stderr

    tablet = open_tablet(browser, app_url, viewport, passkeys=False)
    page = tablet.page
    _admin_signs_in_first_time(tablet, admin, one_time)
    page.get_by_role("link", name="Thiết bị ký").click()
    page.get_by_role("heading", name="Thiết bị ký").wait_for()
    row = page.locator(f"#key-{serial}-{key.key_id}")
    row.scroll_into_view_if_needed()
    checked(tablet, "admin-13-tokens")
    assert page.get_by_text("Gia hạn chứng thư").count() == 1

    # a person's name other than the certificate's: refused, then confirmed by typing it
    row.get_by_role("link", name="Đăng ký cho người dùng").click()
    page.get_by_role("heading", name="Đăng ký khóa cho người dùng").wait_for()
    page.get_by_label("Người dùng", exact=True).select_option(person)
    checked(tablet, "admin-14-register")
    page.locator("#register").click()
    page.get_by_role("dialog").get_by_text("Đăng ký khóa này cho Trần Văn Mới").wait_for()
    page.locator("#confirm-yes").click()
    page.get_by_text("Chứng thư này cấp cho “Trịnh Văn Mạnh”").wait_for()
    page.get_by_label("Tên trên chứng thư").fill("Trịnh Văn Mạnh")
    checked(tablet, "admin-15-holder-mismatch")
    page.get_by_role("button", name="Xác nhận và đăng ký").click()
    page.get_by_text("Đã đăng ký chứng thư cho Trần Văn Mới").wait_for()

    # its PIN policy, switched from the certificates' list
    credential = page.locator("tr", has=page.get_by_text(f"({person})"))
    credential.locator("button.pin-policy").click()
    page.get_by_text("Đã đổi cách nhập mã PIN.").wait_for()
    assert "Người ký nhập mã PIN" in credential.inner_text()

    # the organisation's seal key, for its first clerk
    page.get_by_role("link", name="Thiết bị ký").click()
    page.locator(f"#key-{serial}-{seal_key.key_id} a.register-key").click()
    page.get_by_label("Người dùng", exact=True).select_option(first)
    page.get_by_label("Khóa con dấu của cơ quan").select_option(organisation)
    page.locator("#register").click()
    page.locator("#confirm-yes").click()
    page.get_by_text("Đã đăng ký chứng thư cho Lý Thị Một").wait_for()

    # its seal image (previewed before it is saved), then its handover
    page.get_by_role("link", name="Cơ quan").click()
    page.locator(f"#organisation-{organisation}").click()
    page.get_by_role("heading", name="Hình con dấu").wait_for()
    seal = tmp_path / "seal.png"
    _draw_seal(seal)
    page.get_by_label("Tệp ảnh con dấu (PNG)").set_input_files(str(seal))
    page.locator("#seal-preview:not([hidden])").wait_for()
    page.get_by_label("Đường kính (mm)").fill("42")
    checked(tablet, "admin-16-seal")
    page.locator("#save-seal").click()
    page.get_by_text("Đã lưu hình con dấu.").wait_for()

    page.get_by_label("Người nhận").select_option(second)
    permission = "Quyết định số 15/QĐ-STN ngày 03/03/2026"
    page.get_by_label("Văn bản cho phép").fill(permission)
    page.locator("#hand-over").click()
    page.get_by_role("dialog").get_by_text("Bàn giao con dấu của Sở Thử nghiệm").wait_for()
    tablet.shot("admin-17-handover-confirm")
    page.locator("#confirm-yes").click()
    page.get_by_text("Đã bàn giao con dấu cho Lý Thị Hai.").wait_for()
    checked(tablet, "admin-18-handed-over")
    with db.transaction() as session:
        entries = session.scalars(
            select(AuditEntry).where(
                AuditEntry.actor == f"user:{admin}",
                AuditEntry.action.in_(
                    ["credential.registered", "credential.pin_policy", "organisation.seal_set",
                     "organisation.handed_over"]
                ),
            )
        ).all()  # fmt: skip
    assert sorted(e.action for e in entries) == [
        "credential.pin_policy",
        "credential.registered",
        "credential.registered",
        "organisation.handed_over",
        "organisation.seal_set",
    ]
    handed = next(e for e in entries if e.action.endswith("handed_over"))
    assert json.loads(handed.detail)["permission"] == permission
    page.context.close()


def _draw_seal(path) -> None:
    """A red ring on a transparent background, as a seal's PNG."""
    image = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse((8, 8, 192, 192), outline=(200, 30, 30, 255), width=12)
    image.save(path)
