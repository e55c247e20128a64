"""The web page's link graph and particle texts, in a real headless Chromium.

A real devnet holds a hub that 300 particles link to and that links to 3: the
graph (Cytoscape.js, shipped in the package) must draw one readable page of it,
not 303 nodes, and page on from there; the page must ask nothing of any host but
the node. A proxy in front of the devnet adds a ``text`` to every particle the
API names, hostile markup among them, to show that the page prints texts as text.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from focusflow.chain import Msg
from focusflow.core.cid import cid_of_text, cid_to_bytes
from focusflow.testing.devnet import signed, start_devnet, wait_tx
from focusflow.testing.web import serve
from tests.api.test_web_page import (
    GRAPH_NODES,
    UI_TIMEOUT_MS,
    node_point,
    wait_graph,
)
from tests.api.test_web_verified import LyingProxy

SPOKES = 300
TARGETS = 3
PAGE = 12  # links a way on one page of the graph (app.js LINKS_PAGE)
HOSTILE = '<img src=x onerror="window.pwned=1"> & <b>bold</b> '

VENDOR = Path(__file__).resolve().parents[2] / "src/focusflow/api/static/vendor"
LOCK = Path(__file__).resolve().parents[2] / "web/package-lock.json"


@pytest.fixture(scope="module")
def hub_node(tmp_path_factory):
    """A devnet with a hub: SPOKES particles link to it, it links to TARGETS."""
    net = start_devnet(tmp_path_factory.mktemp("graph") / "home")
    tag = f"graph-{time.time_ns()}"
    hub = cid_of_text(f"{tag} hub")
    spokes = [cid_of_text(f"{tag} spoke {i}") for i in range(SPOKES)]
    targets = [cid_of_text(f"{tag} target {i}") for i in range(TARGETS)]
    links = [[cid_to_bytes(s), cid_to_bytes(hub)] for s in spokes]
    links += [[cid_to_bytes(hub), cid_to_bytes(t)] for t in targets]
    tx = signed(net, net.dev_key(), [Msg("link", {"links": links})], fee=100_000)
    with net.client() as c:
        r = c.post("/v1/txs", json={"tx": tx.encoded.hex()})
        assert r.status_code == 202, r.text
    assert wait_tx(net, tx.hash.hex())["code"] == "ok"
    net.hub, net.spokes, net.targets = hub, spokes, targets
    yield net
    net.stop()


def text_for(cid: str) -> str | None:
    """What the proxy says a particle's text is: hostile markup for about one
    CID in two (by a hash of it: a CID's last letters are far from uniform),
    none for the others."""
    if hashlib.sha256(cid.encode()).digest()[0] % 2:
        return None
    return f"{HOSTILE}{cid[-6:]} " + "long " * 60


class TextProxy(LyingProxy):
    """Forwards everything to the devnet and adds a ``text`` to every particle
    of the top list, the particle answer and link lists."""

    def tamper(self, path: str, doc: dict) -> dict:
        if path == "/v1/focus/top":
            entries = doc["particles"]
        elif path.startswith("/v1/focus/particles/"):
            entries = [doc]
        elif path.startswith("/v1/particles/") and path.endswith("/links"):
            entries = doc["links"]
        else:
            return doc
        for p in entries:
            p["text"] = text_for(p["cid"])
        return doc


@pytest.fixture(scope="module")
def text_proxy(hub_node):
    proxy = TextProxy(hub_node.api.rstrip("/"))
    proxy.lie = "text"  # the proxy rewrites JSON answers only while it has a lie
    with serve(proxy.app()) as url:
        yield url


@pytest.fixture
def open_page(browser):
    """Opens a page in a fresh context; yields (opener, requests seen)."""
    contexts, errors, requests = [], [], []

    def opener(url: str):
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        contexts.append(context)
        context.on("request", lambda r: requests.append(r.url))
        page = context.new_page()
        page.set_default_timeout(UI_TIMEOUT_MS)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url, wait_until="domcontentloaded")
        return page

    yield opener, requests
    for c in contexts:
        c.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def short(cid: str) -> str:
    return f"{cid[:6]}…{cid[-6:]}"


def shown(text: str) -> str:
    """A text as the page prints it: one line, at most 200 characters."""
    line = " ".join(text.split())
    return line if len(line) <= 200 else line[:199] + "…"


def label_overlaps(page) -> list[tuple[str, str]]:
    """Pairs of graph nodes whose drawn labels intersect."""
    return page.evaluate(
        """() => {
        const boxes = document.querySelector('#graph').cy.nodes().map((n) => [n.id(),
          n.boundingBox({ includeNodes: false, includeEdges: false, includeLabels: true })]);
        const hit = [];
        for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
          const [a, p] = boxes[i]; const [b, q] = boxes[j];
          if (p.x1 < q.x2 && q.x1 < p.x2 && p.y1 < q.y2 && q.y1 < p.y2) hit.push([a, b]);
        }
        return hit;
      }"""
    )


def in_column(page) -> list[dict]:
    return [n for n in page.evaluate(GRAPH_NODES) if "in" in n["classes"]]


def test_graph_pages_a_hub_with_readable_labels_and_stays_on_host(hub_node, open_page):
    opener, requests = open_page
    url = hub_node.api.rstrip("/")
    page = opener(f"{url}/#/particle/{hub_node.hub}")
    # the centre, one page of in-links and its "+N more", the 3 out-links
    wait_graph(page, 1 + PAGE + 1 + TARGETS)
    nodes = {n["id"]: n for n in page.evaluate(GRAPH_NODES)}
    assert "centre" in nodes[hub_node.hub]["classes"]
    assert {n for n in nodes if n in hub_node.targets} == set(hub_node.targets)
    first = [n["cid"] for n in in_column(page) if n["cid"]]
    assert len(first) == PAGE and set(first) <= set(hub_node.spokes)
    more = nodes["more:in"]
    assert more["more"] == SPOKES - PAGE and more["label"] == f"+{SPOKES - PAGE} more"
    assert "more:out" not in nodes
    # labels: set (a shortened CID, the node knows no text here), apart, and drawn
    # at a readable size
    for n in nodes.values():
        if n["cid"]:
            assert n["label"] == short(n["cid"])
    assert label_overlaps(page) == []
    assert page.evaluate("document.querySelector('#graph').cy.zoom()") * 12 >= 9
    assert page.locator("#links tr[data-direction=in]").count() == PAGE
    assert page.get_attribute("#pager-in", "data-total") == str(SPOKES)

    # "+N more" shows the next page, in the graph and in the list
    page.mouse.click(*node_point(page, "more:in"))
    page.wait_for_selector(f'#pager-in[data-offset="{PAGE}"]')
    wait_graph(page, 1 + PAGE + 1 + TARGETS)
    second = [n["cid"] for n in in_column(page) if n["cid"]]
    assert len(second) == PAGE and not set(second) & set(first)
    assert (
        page.evaluate("document.querySelector('#graph').cy.getElementById('more:in').data('more')")
        == SPOKES - 2 * PAGE
    )
    assert label_overlaps(page) == []
    listed = page.eval_on_selector_all(
        "#links tr[data-direction=in]", "(rows) => rows.map((r) => r.dataset.cid)"
    )
    assert listed == second
    page.click("#in-prev")
    page.wait_for_selector('#pager-in[data-offset="0"]')
    page.wait_for_function(
        f"document.querySelector('#links tr[data-direction=in]')?.dataset.cid === '{first[0]}'"
    )
    assert page.is_disabled("#in-prev") and page.is_disabled("#out-next")
    # The list shows page 0 before the graph does: wait for the graph's first
    # page too, or the tap below aims where a node was before the graph re-fit.
    page.wait_for_function(
        "(cid) => document.querySelector('#graph').cy.getElementById(cid).nonempty()",
        arg=first[0],
    )

    # a tap on a neighbour opens it, still without leaving the node
    page.mouse.click(*node_point(page, hub_node.targets[0]))
    page.wait_for_selector(f'#particle[data-cid="{hub_node.targets[0]}"] #particle-focus')
    wait_graph(page, 2)
    assert requests
    off_host = [r for r in requests if not r.startswith((f"{url}/", "data:"))]
    assert off_host == [], off_host


def test_a_tap_lands_after_the_page_above_the_graph_moved(hub_node, open_page):
    """Content above the graph can change height without a resize or a scroll
    (an error shown, the status line wrapping as its numbers grow): a tap must
    still land on the node drawn under the pointer, not where it was before."""
    opener, _ = open_page
    page = opener(f"{hub_node.api.rstrip('/')}/#/particle/{hub_node.hub}")
    wait_graph(page, 1 + PAGE + 1 + TARGETS)
    # the pointer over the graph, so the graph has measured where it is
    page.mouse.move(*node_point(page, hub_node.hub))
    page.mouse.move(*node_point(page, hub_node.targets[1]))
    top = page.locator("#graph").bounding_box()["y"]
    page.evaluate(
        """() => {
        const shim = document.createElement('div');
        shim.style.height = '150px';
        document.body.insertBefore(shim, document.querySelector('main'));
      }"""
    )
    assert page.locator("#graph").bounding_box()["y"] == pytest.approx(top + 150)
    page.mouse.click(*node_point(page, hub_node.targets[0]))
    page.wait_for_selector(f'#particle[data-cid="{hub_node.targets[0]}"] #particle-focus')


def test_particle_texts_are_shown_as_text(hub_node, text_proxy, open_page):
    opener, _ = open_page
    page = opener(f"{text_proxy}/#/particle/{hub_node.hub}")
    wait_graph(page, 1 + PAGE + 1 + TARGETS)
    page.wait_for_selector("#top-list li")

    # every list and label prints the text the node gives, markup and all, as
    # characters; a particle without one keeps its shortened CID
    def expected(cid: str) -> str:
        text = text_for(cid)
        return short(cid) if text is None else shown(text)

    entries = page.locator("#top-list li").all()
    for li in entries:
        cid = li.get_attribute("data-cid")
        assert li.locator("button").text_content() == expected(cid)
    assert {text_for(li.get_attribute("data-cid")) is None for li in entries} == {True, False}
    for row in page.locator("#links tr").all():
        assert row.locator("button").text_content() == expected(row.get_attribute("data-cid"))
    for n in page.evaluate(GRAPH_NODES):
        if n["cid"]:
            assert n["label"] == expected(n["cid"])
    hub_text = text_for(hub_node.hub)
    if hub_text is None:
        assert page.locator("#particle-text").count() == 0
    else:
        assert page.text_content("#particle-text") == shown(hub_text)
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    assert page.locator("#top-list b, #particle b, #links b").count() == 0
    assert page.evaluate("window.pwned") is None


def test_vendored_library_is_the_pinned_one():
    """The committed copy of Cytoscape.js is the version web/package-lock.json pins."""
    lock = json.loads(LOCK.read_text())
    version = lock["packages"]["node_modules/cytoscape"]["version"]
    code = (VENDOR / "cytoscape.esm.min.mjs").read_text()
    assert f'.version="{version}"' in code
    assert "Permission is hereby granted" in (VENDOR / "cytoscape.LICENSE").read_text()
