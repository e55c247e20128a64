"""Fixtures of the web page's tests: Debian's Chromium, driven by Playwright."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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
def playwright_api() -> Iterator[Any]:
    """One Playwright driver per module: a second one in the same thread is refused."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(chromium_path, playwright_api):
    browser = playwright_api.chromium.launch(
        executable_path=chromium_path,
        headless=True,
        # --no-sandbox: Chromium's sandbox refuses to start as root (CI runs as root)
        args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        timeout=60_000,
    )
    yield browser
    browser.close()


#: Every module of the page's light client, as ``window.L`` holds them in ``module_page``.
LIGHT_MODULES = {
    "V": "/static/verify.js",
    "client": "/static/light/client.js",
    "store": "/static/light/store.js",
    "da": "/static/light/da.js",
    "leopard": "/static/light/leopard.js",
    "focus": "/static/light/focus.js",
    "links": "/static/light/links.js",
    "gpu": "/static/light/gpu.js",
}


@contextmanager
def scripted_page(
    browser: Any, url: str, timeout_ms: int, script: str, arg: Any = None
) -> Iterator[Any]:
    """A page of ``url``'s origin that has run ``script`` (a JavaScript function
    of ``arg``, e.g. importing modules into ``window``); a JavaScript error on
    it fails the test when the page closes."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(timeout_ms)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{url}/static/style.css")
    page.evaluate(script, arg)
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


IMPORT_LIGHT = """async (mods) => {
  window.L = {};
  for (const [name, path] of Object.entries(mods)) window.L[name] = await import(path);
}"""


@contextmanager
def module_page(browser: Any, url: str, timeout_ms: int) -> Iterator[Any]:
    """A page of ``url``'s origin with the light modules imported as ``window.L``."""
    with scripted_page(browser, url, timeout_ms, IMPORT_LIGHT, LIGHT_MODULES) as page:
        yield page
