"""Fixtures of the browser tests: one Chromium per test module (Debian's, driven by
Playwright, never downloaded), and the app's address at ``localhost`` (the passkeys'
relying party id)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from tests.browser import chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium()), args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def app_url(server: Any) -> str:
    return str(server.base_url).replace("127.0.0.1", "localhost")
