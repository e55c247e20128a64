"""Fixtures of the web page's tests: Debian's Chromium, driven by Playwright."""

from __future__ import annotations

import os

import pytest

from focusflow.testing.web import find_chromium


@pytest.fixture(scope="module")
def chromium_path() -> str:
    path = find_chromium()
    if path is None:
        if os.geteuid() == 0:
            pytest.fail("no Chromium found; as root this test must run: apt-get install chromium")
        reason = "no Chromium found (install Debian's chromium package, or set $CHROMIUM)"
        print(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium_path,
            headless=True,
            # --no-sandbox: Chromium's sandbox refuses to start as root (CI runs as root)
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
            timeout=60_000,
        )
        yield browser
        browser.close()
