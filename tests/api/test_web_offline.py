"""The node's pages with nothing but the node to load from, in headless Chromium.

A real devnet process on loopback; every request the browser makes to any other
host is refused and recorded. ``/docs`` must render the API's operations from
the copies of Swagger UI the package vendors; the main page must spell link
weights for people (the raw number on hover) and fit a phone's width (375 px)
without scrolling sideways.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx
import pytest

from focusflow.chain import Msg
from focusflow.core.cid import cid_of_text, cid_to_bytes
from focusflow.testing.devnet import devnet_home
from tests.api.test_web_page import Node

UI_TIMEOUT_MS = 20_000
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}


@pytest.fixture(scope="module")
def devnet(tmp_path_factory):
    node = Node(devnet_home(tmp_path_factory.mktemp("devnet") / "home"))
    node.start()
    yield node
    node.stop()


def offline_page(browser, width: int, height: int):
    """A page whose requests to any host but loopback are refused; (context,
    page, the refused URLs, the page's JavaScript errors)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    refused: list[str] = []

    def only_loopback(route) -> None:
        url = route.request.url
        if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).hostname in LOOPBACK:
            route.continue_()
        else:
            refused.append(url)
            route.abort()

    context.route("**/*", only_loopback)
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return context, page, refused, errors


def test_docs_renders_from_the_node_alone(browser, devnet):
    context, page, refused, errors = offline_page(browser, 1280, 900)
    try:
        html = httpx.get(f"{devnet.url}/docs", timeout=10).text
        assert "/static/vendor/swagger-ui-bundle.js" in html
        assert "cdn" not in html.lower() and "https://" not in html
        page.goto(f"{devnet.url}/docs", wait_until="domcontentloaded")
        page.wait_for_selector(".swagger-ui .opblock")
        paths = page.locator(".opblock-summary-path").all_text_contents()
        assert "/v1/status" in [p.replace("\u200b", "") for p in paths], paths
        assert len(paths) > 20
        assert refused == [], refused
        assert errors == [], errors
    finally:
        context.close()
    # ReDoc would load from a CDN too: not served
    assert httpx.get(f"{devnet.url}/redoc", timeout=10).status_code == 404
    # the vendored files come with their licence
    lic = httpx.get(f"{devnet.url}/static/vendor/swagger-ui.LICENSE", timeout=10)
    assert lic.status_code == 200 and "Apache License" in lic.text


def heavy_link(devnet: Node) -> tuple[str, str]:
    """A new particle linked from another by the dev key, the source with a long
    text (a label that must not widen the page); (from, to)."""
    tag = f"offline-{id(devnet)}"
    long_text = f"{tag} from " + "a-very-long-label-without-spaces-" * 6
    src, dst = cid_of_text(long_text), cid_of_text(f"{tag} to")
    devnet.submit([Msg("link", {"links": [[cid_to_bytes(src), cid_to_bytes(dst)]]})])
    r = httpx.post(f"{devnet.url}/v1/particles/texts", json={"texts": [long_text]}, timeout=10)
    assert r.status_code == 200 and r.json()["unknown"] == [], r.text
    return src, dst


def test_link_weights_read_for_people_and_phone_width_fits(browser, devnet, tmp_path):
    src, dst = heavy_link(devnet)
    links = httpx.get(f"{devnet.url}/v1/particles/{dst}/links?direction=in", timeout=10).json()
    weight = links["links"][0]["weight"]
    assert weight >= 1e6  # a stake-sized number: the case the page must spell

    context, page, refused, errors = offline_page(browser, 375, 800)
    try:
        page.goto(f"{devnet.url}/#/particle/{dst}", wait_until="domcontentloaded")
        row = page.locator(f'#links tr[data-cid="{src}"]')
        row.wait_for()
        cell = row.locator("td.num").first
        shown = cell.text_content() or ""
        assert not re.search(r"\de", shown), shown  # no exponent
        assert any(unit in shown for unit in "KMBT"), shown
        # the exact raw weight is on hover
        assert str(int(weight)) in (cell.get_attribute("title") or ""), cell.get_attribute("title")

        # nothing on the page at 375 px is wider than the window
        page.wait_for_selector("#top-list li")
        sizes = page.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        page.screenshot(path=tmp_path / "narrow.png", full_page=True)
        assert sizes[0] <= sizes[1], sizes
        assert refused == [], refused
        assert errors == [], errors
    finally:
        context.close()
