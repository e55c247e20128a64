"""The web page's search box over the node's text index, in headless Chromium
against a real devnet process whose texts came in a link transaction.

Typing "cats" finds the particle whose text is "Cats" (the index ignores case)
and opens it; "cat" lists both texts it begins; "ats" finds "Cats" by substring;
a text no particle has is still hashed and opened as before.
"""

from __future__ import annotations

import httpx
import pytest

from focusflow.chain import Msg
from focusflow.core.cid import cid_of_text, cid_to_bytes
from focusflow.testing.devnet import signed, start_devnet, wait_tx

UI_TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def devnet(tmp_path_factory):
    net = start_devnet(tmp_path_factory.mktemp("websearch") / "home")
    words = [("Cats", "Catalogue"), ("Cats", "mammals")]
    cids = {w: cid_to_bytes(cid_of_text(w)) for pair in words for w in pair}
    body = {
        "links": [[cids[a], cids[b]] for a, b in words],
        "texts": [[cid, w] for w, cid in cids.items()],
    }
    tx = signed(net, net.dev_key(), [Msg("link", body)])
    r = httpx.post(f"{net.api}/v1/txs", json={"tx": tx.encoded.hex()}, timeout=10)
    assert r.status_code == 202, r.text
    assert wait_tx(net, tx.hash.hex())["code"] == "ok"
    yield net
    net.stop()


@pytest.fixture
def page(browser, devnet):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{devnet.api.rstrip('/')}/", wait_until="domcontentloaded")
    page.wait_for_selector('#live[data-state="open"]')
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def _search(page, words: str) -> None:
    page.fill("#search", words)
    page.click("#search-go")


def test_search_finds_cats_for_cats_and_lists_the_matches(page):
    cats = cid_of_text("Cats")
    _search(page, "cats")
    page.wait_for_selector(f'#particle[data-cid="{cats}"] #particle-focus')
    items = page.locator("#search-results li")
    assert items.count() == 1
    assert items.nth(0).get_attribute("data-cid") == cats
    assert items.nth(0).get_attribute("data-match") == "exact"
    assert "Cats" in (items.nth(0).text_content() or "")
    # "cat" begins both texts: the shorter opens, both are listed, a click opens the other.
    _search(page, "cat")
    page.wait_for_function(
        "document.querySelectorAll('#search-results li[data-match=\"prefix\"]').length === 2"
    )
    assert items.nth(0).get_attribute("data-cid") == cats
    items.nth(1).click()
    page.wait_for_selector(f'#particle[data-cid="{cid_of_text("Catalogue")}"] #particle-focus')


def test_search_by_substring_and_a_text_no_particle_has(page):
    _search(page, "ats")
    page.wait_for_selector(f'#particle[data-cid="{cid_of_text("Cats")}"] #particle-focus')
    assert page.get_attribute("#search-results li", "data-match") == "substring"
    # Words no text holds are hashed and opened as a particle not in the graph yet.
    unknown = cid_of_text("no particle says this")
    _search(page, "no particle says this")
    page.wait_for_selector(f'#particle[data-cid="{unknown}"] #particle-unknown')
    assert page.is_hidden("#search-results")
