"""The node's web page in a real headless Chromium against a real devnet process.

The test starts ``focusflow devnet`` on a free loopback port, opens ``/`` in
Debian's Chromium (driven by Playwright through the system browser: nothing is
downloaded), submits signed link transactions through the REST API and checks
that the page, without a reload, shows the new top particle and the height and
that the validators panel follows the votes and the pools panel shows a new pool;
that search, the link graph and error messages work, and that the page reconnects
when the node restarts. A screenshot
goes to the test's ``tmp_path``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from focusflow.chain import Msg
from focusflow.core.cid import cid_of_text, cid_to_bytes
from focusflow.testing.devnet import Devnet, devnet_home, signed, start_devnet, wait_tx
from focusflow.testing.web import free_port

UI_TIMEOUT_MS = 20_000  # bound of every wait on the page


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
def devnet(tmp_path_factory):
    # the dev key also holds h, so that a pool of two tokens can be opened
    node = Node(devnet_home(tmp_path_factory.mktemp("devnet") / "home", tokens={"h": 10**12}))
    node.start()
    yield node
    node.stop()


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


def wait_height(page, at_least: int) -> None:
    """Until the page shows a height of at least ``at_least``."""
    page.wait_for_function(f"Number(document.querySelector('#height').textContent) >= {at_least}")


GRAPH_NODES = """() => document.querySelector('#graph').cy.nodes().map((n) => ({
    id: n.id(), cid: n.data('cid') || null, label: n.data('label'), more: n.data('more') || 0,
    classes: n.classes(), x: n.renderedPosition().x, y: n.renderedPosition().y,
}))"""


def graph_nodes(page) -> list[dict]:
    """The nodes of the link graph as Cytoscape holds them, positions as drawn."""
    return page.evaluate(GRAPH_NODES)


def wait_graph(page, count: int) -> None:
    page.wait_for_function(f"document.querySelector('#graph').cy?.nodes().length === {count}")


def node_point(page, node_id: str) -> tuple[float, float]:
    """Where a graph node is drawn, in page coordinates."""
    box = page.locator("#graph").bounding_box()
    pos = page.evaluate(
        "(id) => document.querySelector('#graph').cy.getElementById(id).renderedPosition()",
        node_id,
    )
    return box["x"] + pos["x"], box["y"] + pos["y"]


def test_page_shows_new_top_particle_and_height_live(page, devnet, tmp_path):
    page.wait_for_selector('#live[data-state="open"]')
    page.wait_for_function("/^\\d+$/.test(document.querySelector('#height').textContent)")
    assert page.text_content("#chain-id") == devnet.status()["chain_id"]
    assert page.locator("#network").is_hidden()  # a chain on its own: no network panel
    page.evaluate("window.notReloaded = true")  # gone if the page reloads

    # the height follows the blocks without a reload
    h0 = height_on(page)
    wait_height(page, h0 + 1)

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
    wait_height(page, committed["height"])
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
    wait_graph(page, 6)
    nodes = {n["id"]: n for n in graph_nodes(page)}
    assert set(nodes) == {hub, *spokes}
    assert "centre" in nodes[hub]["classes"]
    assert all(n["label"] for n in nodes.values())
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
    x, y = node_point(page, spokes[1])
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 80, y + 40, steps=8)
    page.mouse.up()
    moved = node_point(page, spokes[1])
    assert abs(moved[0] - x - 80) < 10 and abs(moved[1] - y - 40) < 10
    page.wait_for_timeout(300)
    assert page.get_attribute("#particle", "data-cid") == hub

    page.mouse.click(*node_point(page, spokes[0]))
    page.wait_for_selector(f'#particle[data-cid="{spokes[0]}"] #particle-focus')
    wait_graph(page, 2)

    # an API error is shown readably, with its code
    page.select_option("#search-mode", "cid")
    page.fill("#search", "not-a-cid")
    page.click("#search-go")
    page.wait_for_selector("#error:not([hidden])")
    assert page.get_attribute("#error", "data-code") == "invalid_cid"
    assert "not-a-cid" in page.text_content("#error-text")


def linked_hub(devnet: Node, n: int) -> tuple[str, list[str], dict]:
    """A new particle that n new ones link to; (hub, spokes, committed status)."""
    tag = f"web-rows-{os.getpid()}-{time.time_ns()}"
    hub = cid_of_text(f"{tag} hub")
    spokes = [cid_of_text(f"{tag} spoke {i}") for i in range(n)]
    links = [[cid_to_bytes(s), cid_to_bytes(hub)] for s in spokes]
    return hub, spokes, devnet.submit([Msg("link", {"links": links})])


def test_rows_open_wherever_they_are_clicked(page, devnet):
    """A click on any cell of a row opens what the row stands for, not only one on
    its link: the top list, the open particle's links, the recent blocks."""
    hub, spokes, committed = linked_hub(devnet, 3)
    page.wait_for_selector(f'#top-list li[data-cid="{hub}"]')

    page.click(f'#top-list li[data-cid="{hub}"] .focus')  # the focus figure, not the link
    page.wait_for_selector(f'#particle[data-cid="{hub}"] #particle-focus')
    assert page.locator("#links tr[data-direction=in]").count() == 3

    page.click(f'#links tr[data-cid="{spokes[2]}"] td.num >> nth=0')  # its weight
    page.wait_for_selector(f'#particle[data-cid="{spokes[2]}"] #particle-focus')

    # the block of the transaction: a click on its age opens it with its receipt
    height = committed["height"]
    page.click(f'#blocks tr[data-height="{height}"] td.age')
    page.wait_for_selector(f'#block[data-height="{height}"]:not([hidden])')
    assert page.evaluate("location.hash") == f"#/block/{height}"
    receipt = page.locator(f'#block-txs tr[data-hash="{committed["hash"]}"]')
    assert "ok" in receipt.text_content()
    assert "link" in receipt.locator(".events").text_content()
    page.click("#block-close")
    assert page.is_hidden("#block")


# Where to press an element: its middle, after scrolling it to the middle.
PRESS_POINT = """(sel) => {
    const el = document.querySelector(sel);
    el.scrollIntoView({ block: "center" });
    const r = el.getBoundingClientRect();
    return [r.x + r.width / 2, r.y + r.height / 2];
}"""
# Whether the element at a point is (inside) the one a selector names.
PRESSED_ON = """([x, y, sel]) =>
    !!document.querySelector(sel)?.contains(document.elementFromPoint(x, y))"""


def press(page, selector: str) -> None:
    """Hold the mouse button down on the middle of what ``selector`` names. The
    element may move or be rebuilt between its measure and the press: press again
    until the press is on it (once down, the page holds the part it is in)."""
    for _ in range(10):
        x, y = page.evaluate(PRESS_POINT, selector)  # one task: no rebuild in between
        page.mouse.move(x, y)
        page.mouse.down()
        if page.evaluate(PRESSED_ON, [x, y, selector]):
            return
        page.mouse.move(0, 0)
        page.mouse.up()
    pytest.fail(f"could not press {selector}")


def test_a_row_pressed_while_a_block_arrives_still_opens(page, devnet):
    """A click is a press and a release on one element. The recent blocks and the
    top list are built again for every block; a row replaced between the press and
    the release would swallow the click. The page holds a list's new rows while a
    button is down inside it and puts them in after the click."""
    hub, _, committed = linked_hub(devnet, 2)
    height = committed["height"]

    def press_through_a_block(selector: str) -> None:
        press(page, selector)
        h0 = height_on(page)
        wait_height(page, h0 + 1)
        # the block's message has been handled (the height shows it); one more turn
        # of the page's loop for the lists it refreshes
        page.wait_for_timeout(300)
        page.mouse.up()

    page.wait_for_selector(f'#top-list li[data-cid="{hub}"]')
    press_through_a_block(f'#top-list li[data-cid="{hub}"] .focus')
    page.wait_for_selector(f'#particle[data-cid="{hub}"] #particle-focus')

    page.wait_for_selector(f'#blocks tr[data-height="{height}"]')
    press_through_a_block(f'#blocks tr[data-height="{height}"] td.age')
    page.wait_for_selector(f'#block[data-height="{height}"]:not([hidden])')
    # after the release the table has caught up with the blocks that came meanwhile
    page.wait_for_function(
        "Number(document.querySelector('#height').textContent) <="
        " Math.max(...[...document.querySelectorAll('#blocks tr')].map("
        "(r) => Number(r.dataset.height ?? r.dataset.to)))"
    )


def test_the_pager_pressed_while_its_particle_refreshes_still_turns(page, devnet):
    """The open particle's links and their pager are built again when a block with
    transactions arrives; a press on the next-page button held through such a
    refresh still turns the page on release."""
    hub, _, _ = linked_hub(devnet, 13)
    page.evaluate("(cid) => { location.hash = `#/particle/${cid}`; }", hub)
    page.wait_for_selector('#pager-in[data-total="13"][data-offset="0"]')

    press(page, "#in-next")
    more = cid_of_text(f"{hub} one more spoke")
    committed = devnet.submit([Msg("link", {"links": [[cid_to_bytes(more), cid_to_bytes(hub)]]})])
    wait_height(page, committed["height"])
    # the refresh of the particle has rendered (its count of links in shows it)
    page.wait_for_selector('#particle-links-in:text-is("14")')
    page.mouse.up()
    page.wait_for_selector('#pager-in[data-total="14"][data-offset="12"]')


def test_a_graph_node_pressed_while_its_graph_is_redrawn_still_opens(page, devnet):
    """The link graph is drawn again when the open particle's set of neighbours
    changes (a block with a new link to it). A tap is a press and a release on
    one node; Cytoscape still taps the node pressed when the graph was redrawn
    between the two (the lists need the page's hold for this, the graph not)."""
    hub, spokes, _ = linked_hub(devnet, 3)
    page.evaluate("(cid) => { location.hash = `#/particle/${cid}`; }", hub)
    wait_graph(page, 4)
    page.locator("#graph").scroll_into_view_if_needed()
    page.wait_for_function(
        "(cid) => document.querySelector('#graph').cy.getElementById(cid).nonempty()",
        arg=spokes[1],
    )
    page.mouse.move(*node_point(page, spokes[1]))
    page.mouse.down()
    more = cid_of_text(f"{hub} a fourth spoke")
    committed = devnet.submit([Msg("link", {"links": [[cid_to_bytes(more), cid_to_bytes(hub)]]})])
    wait_height(page, committed["height"])
    # the particle's refresh has rendered (its count of links in shows it)
    page.wait_for_selector('#particle-links-in:text-is("4")')
    # redrawn under the press: the new spoke is in
    assert page.evaluate("document.querySelector('#graph').cy.nodes().length") == 5
    page.mouse.up()
    page.wait_for_selector(f'#particle[data-cid="{spokes[1]}"] #particle-focus')


def test_empty_blocks_fold(page, devnet):
    """Runs of empty blocks are one row by default; the toggle shows them, and the
    choice is kept in the browser."""
    _, _, committed = linked_hub(devnet, 1)
    height = committed["height"]
    page.wait_for_selector(f'#blocks tr[data-height="{height}"]')
    page.wait_for_selector("#blocks tr.folded")
    assert page.is_checked("#fold-empty")
    assert page.locator('#blocks tr[data-txs="0"]').count() == 0
    run = page.locator("#blocks tr.folded").first
    # one read of the row: a block arriving between separate reads re-renders the
    # table, and the attributes would come from two different rows
    first, last, count, text = run.evaluate(
        "e => [+e.dataset.from, +e.dataset.to, +e.dataset.count, e.textContent]"
    )
    assert last - first + 1 == count
    assert "empty block" in text

    run.locator("td").click()  # a folded run unfolds on a click
    page.wait_for_selector('#blocks tr[data-txs="0"]')
    assert not page.is_checked("#fold-empty")
    assert page.locator("#blocks tr.folded").count() == 0
    assert page.locator(f'#blocks tr[data-height="{height}"]').count() == 1

    page.reload()
    page.wait_for_selector('#blocks tr[data-txs="0"]')
    assert not page.is_checked("#fold-empty")
    page.check("#fold-empty")
    page.wait_for_selector("#blocks tr.folded")
    assert page.locator('#blocks tr[data-txs="0"]').count() == 0


def test_expected_misses_log_no_console_error(page, devnet):
    """A word that names nothing and a text nobody linked are answers, not
    errors: the page shows their CID as not in the graph yet, and the browser's
    console gets no error (Chromium logs every 4xx answer as one)."""
    linked_hub(devnet, 1)  # a graph with a top list, whatever ran before
    page.wait_for_selector('#live[data-state="open"]')
    page.wait_for_selector("#top-list li")
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    tag = f"{os.getpid()}-{time.time_ns()}"
    unlinked = cid_of_text(f"nobody linked this {tag}")
    for query, cid in [
        ("no-such-name", cid_of_text("no-such-name")),  # name-shaped: tried as a name
        (f"nobody linked this {tag}", unlinked),  # text
        (unlinked, unlinked),  # a CID
    ]:
        page.fill("#search", query)
        page.click("#search-go")
        page.wait_for_selector(f'#particle[data-cid="{cid}"] #particle-unknown')
        assert page.text_content("#particle-cid") == cid
        assert page.is_hidden("#error")
    page.goto(f"{devnet.url}/#/particle/{unlinked}")  # a bookmark of it
    page.wait_for_selector(f'#particle[data-cid="{unlinked}"] #particle-unknown')
    page.wait_for_timeout(500)
    assert [m for m in console if m.startswith("error")] == []


def test_pools_panel_shows_a_new_pool_live(page, devnet):
    """The pools panel lists each pool from GET /v1/pools with its reserves, price
    and TWAP, and follows the chain without a reload."""
    page.wait_for_selector('#live[data-state="open"]')
    page.wait_for_function("document.querySelector('#pools-height').textContent !== ''")
    page.evaluate("window.notReloaded = true")
    if page.locator('#pools tr[data-pair="cyb/h"]').count() == 0:
        assert page.is_visible("#pools-empty") and page.is_hidden("#pools-table")
    # h is the second denom in byte order: one cyb is priced in h
    create = {"a": "h", "b": "cyb", "amount_a": 3 * 10**6, "amount_b": 10**6}
    committed = devnet.submit([Msg("dex.create", create)])
    row = page.locator('#pools tr[data-pair="cyb/h"]')
    row.wait_for()
    assert page.is_hidden("#pools-empty") and page.is_visible("#pools-table")
    assert row.get_attribute("data-halted") == "-1"
    assert row.locator("td.pair").text_content() == "cyb/h"
    assert row.locator("td.reserve-a").text_content() == "1000000 cyb"
    assert row.locator("td.reserve-b").text_content() == "3000000 h"
    assert row.locator("td.price").text_content() == "1 cyb = 3 h"
    assert row.locator("td.twap").text_content() == "1 cyb = 3 h"
    assert "lp/cyb/h" in (row.locator("td.pair").get_attribute("title") or "")
    page.wait_for_function(
        "Number(document.querySelector('#pools-height').textContent.split(' ').pop())"
        f" >= {committed['height']}"
    )
    assert page.evaluate("window.notReloaded === true")


def test_page_reconnects_after_node_restart(page, devnet):
    page.wait_for_selector('#live[data-state="open"]')
    devnet.stop()
    page.wait_for_selector('#live[data-state="down"]')
    h0 = height_on(page)
    devnet.start()
    page.wait_for_selector('#live[data-state="open"]')
    wait_height(page, h0 + 1)
