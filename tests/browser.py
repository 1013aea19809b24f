"""The tablet app in a real browser: Debian's Chromium (``/usr/bin/chromium``) driven by
Playwright, never a downloaded browser. A passkey is a CDP virtual authenticator
(``WebAuthn.addVirtualAuthenticator``: internal transport, user verification on), whose
credentials' private keys the attacker tests read back to make assertions of their own.

Screenshots of every screen go to ``SCREENSHOTS`` (``build/screenshots`` in the
checkout), one file per screen and viewport."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from signing_gateway.demo.tablet import IMAGES_IN_VIEW_LOADED, add_virtual_passkey, chromium_path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = PROJECT_ROOT / "build" / "screenshots"
VIEWPORTS = {
    "ipad-portrait": {"width": 820, "height": 1180},
    "ipad-landscape": {"width": 1180, "height": 820},
    "phone": {"width": 390, "height": 844},
}


def chromium() -> Path:
    """Debian's Chromium (or ``$GATEWAY_CHROMIUM``). ``make test`` installs it, so a
    missing browser fails the test rather than skipping what it proves."""
    found = chromium_path()
    if found is None:
        pytest.fail("Chromium is not installed: make system-deps-test (apt-get install chromium)")
    return found


@dataclass
class Tablet:
    """One browser context at one viewport, with a virtual platform authenticator."""

    page: Any
    cdp: Any
    authenticator: str
    viewport: str
    base_url: str

    def shot(self, name: str, *, focus: str | None = None) -> Path:
        """A screenshot of what the viewport shows (after scrolling ``focus``, a CSS
        selector, into view), kept as ``<name>-<viewport>.png``; page images in view are
        waited for."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}-{self.viewport}.png"
        if focus is not None:
            self.page.locator(focus).first.scroll_into_view_if_needed()
        self.page.wait_for_function(IMAGES_IN_VIEW_LOADED, timeout=30_000)
        self.page.wait_for_timeout(300)  # layout settles
        self.page.screenshot(path=str(path))
        return path

    def credentials(self) -> list[dict[str, Any]]:
        """The virtual authenticator's credentials (with their private keys)."""
        answer = self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.authenticator})
        return list(answer["credentials"])

    def token(self) -> str:
        """The app's session token (as the page keeps it)."""
        return str(self.page.evaluate("sessionStorage.getItem('token')"))


def open_tablet(browser: Any, base_url: str, viewport: str, *, passkeys: bool = True) -> Tablet:
    """A new context at ``viewport`` on ``base_url``'s app, with an authenticator."""
    context = browser.new_context(viewport=VIEWPORTS[viewport], locale="vi-VN")
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    authenticator = ""
    if passkeys:
        authenticator = add_virtual_passkey(cdp)
    return Tablet(page, cdp, authenticator, viewport, base_url)


def forged_assertion(
    credential: dict[str, Any],
    statement: bytes,
    *,
    origin: str,
    rp_id: str = "localhost",
    user_verified: bool = True,
    sign_count: int = 1000,
) -> dict[str, Any]:
    """An assertion made outside the browser with the virtual credential's own private
    key, over ``statement``'s SHA-256: what an attacker holding the key (or replaying)
    would send. ``user_verified=False`` leaves the UV flag off."""
    key = serialization.load_der_private_key(base64.b64decode(credential["privateKey"]), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    flags = 0x01 | (0x04 if user_verified else 0)
    authenticator_data = (
        hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + sign_count.to_bytes(4, "big")
    )
    client_data = json.dumps(
        {
            "type": "webauthn.get",
            "challenge": _b64url(hashlib.sha256(statement).digest()),
            "origin": origin,
            "crossOrigin": False,
        }
    ).encode()
    signature = key.sign(
        authenticator_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
    )
    raw_id = _b64url(base64.b64decode(credential["credentialId"]))
    return {
        "id": raw_id,
        "rawId": raw_id,
        "type": "public-key",
        "response": {
            "clientDataJSON": _b64url(client_data),
            "authenticatorData": _b64url(authenticator_data),
            "signature": _b64url(signature),
        },
    }


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# ---- basic accessibility, measured in the page -----------------------------------------

A11Y_SCRIPT = """
() => {
  const problems = [];
  const visible = (el) => el.offsetParent !== null || el.getClientRects().length > 0;
  for (const el of document.querySelectorAll('input, textarea, select, button, a[href]')) {
    if (!visible(el) || el.type === 'hidden') continue;
    const labelled = (el.labels && el.labels.length) || el.getAttribute('aria-label') ||
      (el.textContent || '').trim() || el.getAttribute('title');
    if (!labelled) problems.push('no label: ' + el.outerHTML.slice(0, 80));
  }
  const rgb = (text) => (text.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let node = el; node; node = node.parentElement) {
      const c = rgb(getComputedStyle(node).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.9)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  for (const el of document.querySelectorAll('body *')) {
    if (!visible(el)) continue;
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own) continue;
    const style = getComputedStyle(el);
    const fg = rgb(style.color).slice(0, 3);
    const bg = background(el);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    const large = parseFloat(style.fontSize) >= 24 || (parseFloat(style.fontSize) >= 18.66 && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) problems.push('contrast ' + ratio.toFixed(2) + ': ' + el.textContent.trim().slice(0, 40));
  }
  return problems;
}
"""

FOCUS_SCRIPT = """
() => {
  const el = document.activeElement;
  if (!el || el === document.body) return 'nothing focused';
  const style = getComputedStyle(el);
  return style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2 ? '' : 'no visible focus on ' + el.tagName;
}
"""


def accessibility_problems(tablet: Tablet) -> list[str]:
    """Controls without a label and text under WCAG AA contrast on the current screen,
    and a control that takes the keyboard's focus without showing it."""
    problems = list(tablet.page.evaluate(A11Y_SCRIPT))
    tablet.page.keyboard.press("Tab")
    focus = tablet.page.evaluate(FOCUS_SCRIPT)
    if focus:
        problems.append(focus)
    return problems


def checked(tablet: Tablet, screen: str, focus: str | None = None) -> None:
    """Photograph ``screen`` (``focus``: the element to scroll into view first) and
    check its accessibility."""
    tablet.shot(screen, focus=focus)
    problems = accessibility_problems(tablet)
    assert not problems, (screen, tablet.viewport, problems)
