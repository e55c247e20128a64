"""The web page of a hub in a network of rollups, in headless Chromium: the
network panel lists the rollups with the heights the hub verified and the
global snapshot's age; a chain on its own hides the panel (test_web_page)."""

from __future__ import annotations

import pytest

from focusflow.testing.rollups import RollupNet

UI_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    net = RollupNet(tmp_path_factory.mktemp("web-rollups") / "net", rollups=2)
    yield net
    net.stop()


def test_the_hubs_page_shows_the_rollups_and_the_snapshots_age(browser, net, tmp_path):
    page = browser.new_page()
    try:
        page.goto(net.hub[0] + "/")
        page.wait_for_selector("#network:not([hidden])", timeout=UI_TIMEOUT_MS)
        page.wait_for_function(
            "document.querySelector('#network-summary').textContent.startsWith('global snapshot')",
            timeout=UI_TIMEOUT_MS,
        )
        rows = page.locator("#network-rollups tr")
        assert rows.count() == 2
        assert [rows.nth(i).get_attribute("data-bucket") for i in range(2)] == ["0", "1"]
        heights = [int(rows.nth(i).locator(".height").text_content() or "0") for i in range(2)]
        assert all(h > 0 for h in heights)
        assert page.locator("#network-age").text_content().endswith(" s")
        page.screenshot(path=str(tmp_path / "network.png"))
        # A rollup's page names its bucket and its hub.
        page.goto(net.rollups[1][0] + "/")
        summary = "document.querySelector('#network-summary').textContent"
        page.wait_for_function(f"{summary}.startsWith('rollup of bucket 1')", timeout=UI_TIMEOUT_MS)
        assert page.locator("#network-table").is_hidden()
    finally:
        page.close()
