"""The node's web page in a real headless Chromium against a real devnet process.

The test starts ``focusflow devnet`` on a free loopback port, opens ``/`` in
Debian's Chromium (driven by Playwright through the system browser: nothing is
downloaded), submits signed link transactions through the REST API and checks
that the page, without a reload, shows the new top particle and the height and
that the validators panel follows the votes; that search, the link graph and error
messages work, and that the page reconnects when the node restarts. A screenshot
goes to the test's ``tmp_path``.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

import httpx
import pytest

from focusflow.chain import Msg
from focusflow.core.cid import cid_of_text, cid_to_bytes
from tests.node.devnet_process import Devnet, signed, start_devnet, wait_tx

UI_TIMEOUT_MS = 20_000  # bound of every wait on the page

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """A Chromium on this machine: $CHROMIUM, then the usual names on PATH."""
    explicit = os.environ.get("CHROMIUM")
    if explicit and Path(explicit).is_file():
        return explicit
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """A devnet that can be stopped and started again on the same home and port,
    so that a page left open can reconnect to it."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.net: Devnet | None = None

    def start(self) -> None:
        # start_devnet passes --port 0; a later --port wins (click keeps the last value)
        self.net = start_devnet(self.home, port=self.port)
        assert self.net.api.rstrip("/") == self.url, (self.net.api, self.url)

    def stop(self) -> None:
        if self.net is not None:
            self.net.stop()

    def status(self) -> dict:
        return httpx.get(f"{self.url}/v1/status", timeout=10).json()

    def submit(self, msgs: list[Msg]) -> dict:
        """One transaction of ``msgs`` from the dev key; its committed status."""
        assert self.net is not None
        tx = signed(self.net, self.net.dev_key(), msgs)
        r = httpx.post(f"{self.url}/v1/txs", json={"tx": tx.encoded.hex()}, timeout=10)
        assert r.status_code == 202, r.text
        assert r.json()["hash"] == tx.hash.hex()
        committed = wait_tx(self.net, tx.hash.hex())
        assert committed["code"] == "ok", committed
        return committed


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
def devnet(tmp_path_factory):
    node = Node(tmp_path_factory.mktemp("devnet") / "home")
    node.start()
    yield node
    node.stop()


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


@pytest.fixture
def page(browser, devnet):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{devnet.url}/", wait_until="domcontentloaded")
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def height_on(page) -> int:
    text = page.text_content("#height") or ""
    return int(text) if text.isdigit() else -1


def test_page_shows_new_top_particle_and_height_live(page, devnet, tmp_path):
    page.wait_for_selector('#live[data-state="open"]')
    page.wait_for_function("/^\\d+$/.test(document.querySelector('#height').textContent)")
    assert page.text_content("#chain-id") == devnet.status()["chain_id"]
    page.evaluate("window.notReloaded = true")  # gone if the page reloads

    # the height follows the blocks without a reload
    h0 = height_on(page)
    page.wait_for_function(f"Number(document.querySelector('#height').textContent) > {h0}")

    # a new particle that everyone links to becomes the top one
    tag = f"web-test-{os.getpid()}-{time.time_ns()}"
    hub = cid_of_text(f"{tag} hub")
    spokes = [cid_of_text(f"{tag} spoke {i}") for i in range(5)]
    links = [[cid_to_bytes(s), cid_to_bytes(hub)] for s in spokes]
    committed = devnet.submit(
        [
            Msg("link", {"links": links}),
            Msg("name.register", {"name": "webpage-hub", "cid": cid_to_bytes(hub)}),
        ]
    )
    page.wait_for_selector(f'#top-list li:first-child[data-cid="{hub}"]')
    page.wait_for_function(
        f"Number(document.querySelector('#height').textContent) >= {committed['height']}"
    )
    shown = height_on(page)
    assert committed["height"] <= shown <= devnet.status()["height"]
    assert page.locator(f'#blocks tr[data-height="{committed["height"]}"]').count() == 1
    assert page.evaluate("window.notReloaded === true")

    # the validators panel: the devnet's one validator proposes, and its last vote
    # follows the heights live (at least the height of the transaction's block)
    me = devnet.status()["validator"]
    row = f'#validators tr[data-address="{me}"]'
    page.wait_for_function(
        f"Number(document.querySelector('{row}')?.dataset.voteHeight) >= {committed['height']}"
    )
    assert page.locator("#validators tr").count() == 1
    assert page.get_attribute(row, "data-proposer") == "true"
    assert page.get_attribute(row, "data-vote-type") in ("prevote", "precommit")
    assert "this node" in page.text_content(row)
    assert page.evaluate("window.notReloaded === true")

    # search by text opens the hub and its links as a graph; a click opens a neighbour
    page.fill("#search", f"{tag} hub")
    page.click("#search-go")
    page.wait_for_selector(f'#particle[data-cid="{hub}"] #particle-focus')
    assert page.text_content("#particle-rank") == "1"
    assert page.text_content("#particle-links-in") == "5"
    page.wait_for_function("document.querySelectorAll('#graph .node').length === 6")
    page.wait_for_timeout(1000)  # let the layout settle for the picture
    shot = tmp_path / "web-page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")

    # search by name opens the particle it names, shown by that name
    page.fill("#search", "webpage-hub")
    page.click("#search-go")
    page.wait_for_selector('#particle-label:text-is("webpage-hub")')
    assert page.get_attribute("#particle", "data-cid") == hub

    # dragging a node moves it and opens nothing
    node = page.locator(f'#graph .node[data-cid="{spokes[1]}"]')
    box = node.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 80, y + 40, steps=8)
    page.mouse.up()
    moved = node.bounding_box()
    assert abs(moved["x"] - box["x"] - 80) < 10 and abs(moved["y"] - box["y"] - 40) < 10
    assert page.get_attribute("#particle", "data-cid") == hub

    page.locator(f'#graph .node[data-cid="{spokes[0]}"]').click()
    page.wait_for_selector(f'#particle[data-cid="{spokes[0]}"] #particle-focus')
    page.wait_for_function("document.querySelectorAll('#graph .node').length === 2")

    # an API error is shown readably, with its code
    page.select_option("#search-mode", "cid")
    page.fill("#search", "not-a-cid")
    page.click("#search-go")
    page.wait_for_selector("#error:not([hidden])")
    assert page.get_attribute("#error", "data-code") == "invalid_cid"
    assert "not-a-cid" in page.text_content("#error-text")


def test_page_reconnects_after_node_restart(page, devnet):
    page.wait_for_selector('#live[data-state="open"]')
    devnet.stop()
    page.wait_for_selector('#live[data-state="down"]')
    h0 = height_on(page)
    devnet.start()
    page.wait_for_selector('#live[data-state="open"]')
    page.wait_for_function(f"Number(document.querySelector('#height').textContent) > {h0}")
