"""The demo through the tablet app: headless Chromium (Debian's, driven by Playwright; never
a downloaded browser) at an iPad's viewport plays the leader, who signs in, enrols a
passkey (a CDP virtual authenticator stands in for Face ID) with a one-time code from the
bridge, reads the official document and approves it; a second tablet plays the clerk, who
sees the leader's signature on the page and seals with a TOTP code. Screenshots of each
screen are left next to the signed PDF."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyotp

__all__ = [
    "IMAGES_IN_VIEW_LOADED",
    "TabletRun",
    "add_virtual_passkey",
    "chromium_path",
    "run_tablet_flow",
    "submit_official_document",
]

IPAD_PORTRAIT = {"width": 820, "height": 1180}


def chromium_path() -> Path | None:
    """The Chromium the demo drives: ``$GATEWAY_CHROMIUM``, else Debian's
    ``/usr/bin/chromium``; None when neither is installed."""
    candidate = os.environ.get("GATEWAY_CHROMIUM", "/usr/bin/chromium")
    found = shutil.which(candidate)
    return Path(found) if found else None


# True once every image the viewport shows has loaded (those above or below it may be
# lazily left unloaded).
IMAGES_IN_VIEW_LOADED = """() => [...document.images].every((i) => {
  const box = i.getBoundingClientRect();
  return box.bottom < 0 || box.top > innerHeight || !i.getAttribute('src')
    || (i.complete && i.naturalWidth > 0);
})"""


def add_virtual_passkey(cdp: Any) -> str:
    """Give the page of CDP session ``cdp`` a platform authenticator as a tablet has
    (CTAP2, internal transport, resident keys, user verification that succeeds): a
    Chrome DevTools Protocol virtual authenticator. Its id."""
    cdp.send("WebAuthn.enable", {"enableUI": False})
    answer = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return str(answer["authenticatorId"])


@dataclass(frozen=True, slots=True)
class TabletRun:
    """Where the screenshots went (in the order taken) and the seal step's id."""

    screenshots: list[Path]
    seal_request_id: str


@dataclass(frozen=True, slots=True)
class Signer:
    """A demo signer from ``demo-credentials.json``."""

    username: str
    password: str
    totp_secret: str


def run_tablet_flow(
    app_url: str,
    step1_id: str,
    seal_step_id: Callable[[], str],
    leader: Signer,
    clerk: Signer,
    enrolment_code: Callable[[], str],
    out_dir: Path,
    *,
    log: Callable[[str], object],
) -> TabletRun:
    """Approve ``step1_id`` as ``leader`` in the app at ``app_url`` (``http://localhost:
    PORT``: the passkeys' relying party) after enrolling a passkey with the code
    ``enrolment_code()`` issues; then seal the step ``seal_step_id()`` names as ``clerk``
    with TOTP. Screenshots (PNG, 820×1180 CSS pixels) go to ``out_dir``.

    Raises RuntimeError when Chromium is missing or a screen does not show what it
    should (Playwright's TimeoutError, after 60 seconds at most per step)."""
    from playwright.sync_api import sync_playwright  # only the demo needs a browser

    executable = chromium_path()
    if executable is None:
        raise RuntimeError("Chromium is not installed (apt-get install chromium)")
    out_dir.mkdir(parents=True, exist_ok=True)
    shots: list[Path] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(executable), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            tablet = _Tablet(browser, app_url, out_dir, shots, passkey=True)
            tablet.sign_in(leader)
            tablet.enrol_passkey(enrolment_code())
            log(f"2. {leader.username} signed in on the tablet and enrolled a passkey")
            tablet.approve(step1_id, "demo-tablet-3-document")
            log(f"3. {leader.username} read the document and approved it with the passkey")
            seal = seal_step_id()
            desk = _Tablet(browser, app_url, out_dir, shots, passkey=False)
            desk.sign_in(clerk)
            desk.seal_with_totp(seal, clerk.totp_secret, log)
            log(f"4. {clerk.username} saw the leader's signature and sealed with TOTP")
        finally:
            browser.close()
    return TabletRun(screenshots=shots, seal_request_id=seal)


class _Tablet:
    """One browser context at an iPad's portrait viewport, in Vietnamese."""

    def __init__(
        self, browser: Any, app_url: str, out_dir: Path, shots: list[Path], *, passkey: bool
    ) -> None:
        self.context = browser.new_context(viewport=IPAD_PORTRAIT, locale="vi-VN")
        self.page = self.context.new_page()
        self.page.set_default_timeout(60_000)
        self.app_url, self.out_dir, self.shots = app_url, out_dir, shots
        if passkey:
            add_virtual_passkey(self.context.new_cdp_session(self.page))

    def shot(self, name: str) -> None:
        """Photograph the viewport once the page images in view have loaded."""
        self.page.wait_for_function(IMAGES_IN_VIEW_LOADED)
        self.page.wait_for_timeout(300)
        path = self.out_dir / f"{name}.png"
        self.page.screenshot(path=str(path))
        self.shots.append(path)

    def sign_in(self, signer: Signer) -> None:
        page = self.page
        page.goto(f"{self.app_url}/app/")
        page.get_by_label("Tên đăng nhập").fill(signer.username)
        page.get_by_label("Mật khẩu", exact=True).fill(signer.password)
        page.get_by_role("button", name="Đăng nhập").click()
        page.get_by_role("heading", name="Văn bản chờ ký").wait_for()

    def enrol_passkey(self, code: str) -> None:
        page = self.page
        page.goto(f"{self.app_url}/app/#/enrol")
        page.get_by_label("Mã đăng ký").fill(code)
        self.shot("demo-tablet-1-enrol")
        page.get_by_role("button", name="Tạo khóa xác thực").click()
        page.wait_for_url("**/#/list")
        page.locator(".list .item").first.wait_for()
        self.shot("demo-tablet-2-waiting")

    def approve(self, request_id: str, shot: str) -> None:
        page = self.page
        page.goto(f"{self.app_url}/app/#/doc/{request_id}")
        page.locator(".box.signature").first.scroll_into_view_if_needed()
        page.locator(".box.signature").first.locator("xpath=..").locator("img[src]").wait_for()
        self.shot(shot)
        page.locator("#approve").click()
        page.get_by_role("status").filter(has_text="Đã ký").wait_for()
        self.shot("demo-tablet-4-signed")

    def seal_with_totp(self, request_id: str, secret: str, log: Callable[[str], object]) -> None:
        """Seal with the current TOTP code; a code is good once per 30-second step, so
        when an earlier run spent this step's, wait for the next."""
        page = self.page
        page.goto(f"{self.app_url}/app/#/doc/{request_id}")
        page.get_by_text("Chữ ký của lãnh đạo đã có trên trang").wait_for()
        page.locator(".box.seal").first.scroll_into_view_if_needed()
        page.locator(".box.seal").first.locator("xpath=..").locator("img[src]").wait_for()
        for attempt in range(2):
            page.get_by_label("Mã xác thực 6 số").fill(pyotp.TOTP(secret).now())
            if attempt == 0:
                self.shot("demo-tablet-5-seal")
            page.locator("#approve").click()
            outcome = (
                page.get_by_role("status").filter(has_text="Đã ký").or_(page.get_by_role("alert"))
            )
            outcome.first.wait_for()
            if page.get_by_role("alert").count() == 0:
                self.shot("demo-tablet-6-sealed")
                return
            wait = 30 - time.time() % 30 + 1
            log(f"   this TOTP step was already used; waiting {wait:.0f} s for a new code")
            time.sleep(wait)
        raise RuntimeError("the clerk's TOTP code was refused twice")


def submit_official_document(
    http: httpx.Client, api_key: str, fields: dict[str, str], document: bytes
) -> str:
    """Submit ``document`` through the integration API; its request id."""
    answer = http.post(
        "/api/v1/signing-requests",
        headers={"Authorization": f"Bearer {api_key}"},
        files={"document": ("document.pdf", document, "application/pdf")},
        data=fields,
    )
    answer.raise_for_status()
    return str(answer.json()["id"])
