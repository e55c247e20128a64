"""Reading a node's graph pages: a consistent node rebuilds exactly, and each way a
hostile or broken node can answer is refused with bad_node_answer.

The node is an HTTP server on loopback that pages its lists as the node's
``/v1/graph/*`` routes do, and lies as each test asks; the client is the real one."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi import FastAPI

from focusflow.cli.node_graph import read_node_graph
from focusflow.client import BadNodeAnswerError, NodeClient
from focusflow.core.cid import cid_of_text
from focusflow.testing.lightnode import serve

CIDS = [str(cid_of_text(t)) for t in ("a", "b", "c", "d")]
ADDR = [
    "bostrom1ay267fakkrgfy9lf2m7wsj8uez2dgylhtkdf9k",
    "bostrom1d8754xqa9245pctlfcyv8eah468neqzn3a0y0t",
]


class PagedNode:
    """Serves /v1/graph/* from lists, ``page`` items at a time, like the node does;
    ``tamper(what, doc)`` may rewrite an answer."""

    def __init__(self, page=2, tamper=None):
        self.page = page
        self.tamper = tamper or (lambda what, doc: doc)
        self.data = {
            "links": {"src": [0, 1, 2, 0], "dst": [1, 2, 3, 3], "neuron": [0, 0, 1, 1]},
            "particles": {"cids": list(CIDS)},
            "neurons": {"addresses": list(ADDR), "stakes": [4.0, 1.0]},
        }
        self.calls = 0

    def page_of(self, what: str, start: int, limit: int):
        self.calls += 1
        assert self.calls < 100
        cols = self.data[what]
        total = len(next(iter(cols.values())))
        lo = min(start, total)
        hi = min(total, lo + min(limit, self.page))
        doc = {"height": 7, "total": total, "start": lo}
        doc.update({k: v[lo:hi] for k, v in cols.items()})
        return self.tamper(what, doc)


@pytest.fixture(scope="module")
def server():
    """A loopback server answering with the PagedNode a test puts in ``app.state``."""
    app = FastAPI()

    @app.get("/v1/graph/{what}")
    def page(what: str, start: int, limit: int):
        return app.state.paged.page_of(what, start, limit)

    url, stop = serve(app)
    yield app, url
    stop()


@pytest.fixture
def read(server):
    """Reads the graph of a PagedNode through the real client and server."""
    app, url = server

    def run(paged: PagedNode, progress=None):
        app.state.paged = paged
        with NodeClient(url) as client:
            return read_node_graph(client, progress)

    return run


def test_a_consistent_node_rebuilds_its_graph(read):
    seen = []
    got = read(PagedNode(), lambda what, n, total: seen.append((what, n, total)))
    g = got.graph
    assert g.n_particles == 4 and g.n_links == 4 and g.n_neurons == 2
    links = g.links()
    assert links.src.tolist() == [0, 1, 2, 0] and links.dst.tolist() == [1, 2, 3, 3]
    # Each neuron's stake over its link count: 4 / 2 and 1 / 2.
    np.testing.assert_allclose(g.link_weight(np.arange(4)), [2.0, 2.0, 0.5, 0.5])
    assert ("links", 4, 4) in seen and got.first_height == got.last_height == 7


@pytest.mark.parametrize(
    ("what", "change", "message"),
    [
        ("links", lambda d: {**d, "start": d["start"] + 1}, "asked from"),
        ("links", lambda d: {**d, "src": d["src"][:1]}, "equal lists"),
        ("links", lambda d: {**d, "dst": [-1] * len(d["dst"])}, "outside"),
        ("links", lambda d: {**d, "dst": [9] * len(d["dst"])}, "10 needed"),
        ("links", lambda d: {**d, "src": ["x"] * len(d["src"])}, "integers"),
        ("links", lambda d: {**d, "height": "7"}, "integers"),
        ("links", lambda d: {**d, "src": [], "dst": [], "neuron": []}, "empty page"),
        ("particles", lambda d: {**d, "total": 2}, "needed"),
        ("particles", lambda d: {**d, "cids": [CIDS[0]] * len(d["cids"])}, "twice"),
        ("neurons", lambda d: {**d, "addresses": [ADDR[0]] * len(d["addresses"])}, "twice"),
        ("neurons", lambda d: [], "JSON object"),
    ],
)
def test_a_bad_page_is_refused(read, what, change, message):
    node = PagedNode(tamper=lambda w, d: change(d) if w == what else d)
    with pytest.raises(BadNodeAnswerError, match=message) as exc:
        read(node)
    assert exc.value.code == "bad_node_answer"


def test_a_node_whose_total_shrinks_is_refused(read):
    state = {"n": 0}

    def shrink(what, doc):
        if what == "links":
            state["n"] += 1
            if state["n"] > 1:
                doc = {**doc, "total": 1}
        return doc

    with pytest.raises(BadNodeAnswerError, match="shrank"):
        read(PagedNode(tamper=shrink))
