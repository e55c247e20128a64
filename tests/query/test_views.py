"""Views kept block by block equal a fresh evaluation after every block of a
random chain, whether they are maintained incrementally or recomputed; an
integrity view reports its violations; a node's older heights answer as of then."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest

from focusflow.chain.focus_view import build_view
from focusflow.core.cid import cid_of_text, cid_to_bytes
from focusflow.core.keys import KeyPair
from focusflow.graph.cybergraph import Cybergraph
from focusflow.query import HeightUnavailableError, run
from focusflow.query.node_source import NodeSource
from focusflow.query.service import QueryService
from focusflow.query.views import LiveSource, ViewSet

PROGRAMS = {
    "reach": ('reach(y) :- link(x, y), x = "{p0}".\nreach(y) :- reach(x), link(x, y).', "reach"),
    "tc": ("tc(x, y) :- link(x, y).\ntc(x, y) :- tc(x, z), link(z, y).", "tc"),
    "two": ("two(x, z) :- link(x, y), link(y, z), x != z.", "two"),
    "parity": (
        'even(x) :- particle(x), x = "{p0}".\nodd(y) :- even(x), link(x, y).\n'
        "even(y) :- odd(x), link(x, y).",
        "odd",
    ),
    "authored": ("a(n, y) :- neuron_link(n, x, y), link(y, x).", "a"),
    "lonely": ("r(x) :- particle(x), !link(x, _).", "r"),
    "hubs": ("h(x, c) :- particle(x), c = count : { link(x, _) }, c >= 3.", "h"),
    "heavy": ("h(x, y) :- weight(x, y, w), w > 0.5.", "h"),
}


class _Chain:
    """What a NodeSource reads of a chain: no stored blocks or accounts here."""

    height = 0

    def block_record(self, height: int):
        return None

    @contextmanager
    def reader(self):
        yield _Reader(self.height)


class _Reader:
    def __init__(self, height: int) -> None:
        self.height = height

    def items(self, prefix: bytes):
        return iter(())


def _keys(n: int) -> list[bytes]:
    return [cid_to_bytes(cid_of_text(f"particle {i}")) for i in range(n)]


def _chain_of_blocks(seed: int, blocks: int = 8):
    """A random growing graph and the FocusView after each block."""
    rng = np.random.default_rng(seed)
    keys = _keys(30)
    neurons = [KeyPair.generate().address_raw for _ in range(4)]
    g = Cybergraph(require_cids=False)
    views = []
    previous = None
    for h in range(1, blocks + 1):
        m = int(rng.integers(3, 12))
        a = rng.integers(0, 12 + 2 * h, m)
        b = rng.integers(0, 12 + 2 * h, m)
        keep = a != b
        who = rng.integers(0, len(neurons), m)[keep]
        g.add_links(
            np.array([keys[i] for i in a[keep]], dtype=object),
            np.array([keys[i] for i in b[keep]], dtype=object),
            np.array([neurons[i] for i in who], dtype=object),
        )
        if h % 3 == 0:
            g.set_stakes(np.array([h % len(neurons)]), np.array([float(h)]))
        q = rng.integers(1, 1000, g.n_particles).astype(np.int64)
        previous = build_view(h, 1000, q, g, 1, 0.0, previous)
        views.append(previous)
    return views, keys


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_views_equal_a_fresh_evaluation_after_every_block(seed):
    views, _keys_made = _chain_of_blocks(seed)
    chain = _Chain()
    p0 = cid_of_text("particle 0")
    live = LiveSource(views[0], chain)
    maintained = ViewSet(live)
    for name, (program, output) in PROGRAMS.items():
        maintained.register(name, program.replace("{p0}", p0), output, integrity=name == "lonely")
    kinds = {n: v.incremental for n, v in maintained.views.items()}
    assert kinds == {
        "reach": True,
        "tc": True,
        "two": True,
        "parity": True,
        "authored": True,
        "lonely": False,
        "hubs": False,
        "heavy": False,
    }
    for fview in views[1:]:
        before = {n: {tuple(r) for r in maintained.read(n).rows} for n in PROGRAMS}
        added = maintained.advance(fview)
        fresh = NodeSource(fview, chain)
        for name, (program, output) in PROGRAMS.items():
            view = maintained.views[name]
            assert view.error is None, view.error
            got = maintained.read(name)
            want = run(program.replace("{p0}", p0), fresh, output=output)
            assert sorted(map(tuple, got.rows)) == sorted(map(tuple, want.rows)), name
            assert got.height == fview.height and got.total == want.total
            now = {tuple(r) for r in got.rows}
            if view.incremental:
                assert {tuple(r) for r in added[name]} == now - before[name]
        assert maintained.views["lonely"].violations == maintained.read("lonely").total > 0
        fresh.close()
    live.close()


def test_a_view_name_and_program_are_checked_before_it_is_kept():
    views, _ = _chain_of_blocks(5, blocks=2)
    maintained = ViewSet(LiveSource(views[0], _Chain()))
    maintained.register("ok", "r(x) :- link(x, _).", "r")
    with pytest.raises(Exception, match="exists"):
        maintained.register("ok", "r(x) :- link(x, _).", "r")
    with pytest.raises(Exception, match="view name"):
        maintained.register("Bad Name", "r(x) :- link(x, _).", "r")
    with pytest.raises(Exception, match="line 1"):
        maintained.register("broken", "r(x :- link(x, _).", "r")
    assert list(maintained.views) == ["ok"]


class _Node:
    def __init__(self, view) -> None:
        self.view = view
        self.chain = _Chain()


class _Event:
    def __init__(self, view) -> None:
        self.view = view


def test_the_service_answers_the_heights_it_keeps():
    views, _ = _chain_of_blocks(7, blocks=7)
    node = _Node(views[0])
    service = QueryService(node)
    program = "r(x, y) :- link(x, y)."
    counts = {}
    for fview in views:
        node.view = fview
        node.chain.height = fview.height
        service.on_block(_Event(fview))
        counts[fview.height] = service.query(program, "r").total
    for h in range(4, 8):  # the last four heights
        assert service.query(program, "r", height=h).total == counts[h]
    with pytest.raises(HeightUnavailableError, match="heights 4 to 7"):
        service.query(program, "r", height=2)
    # the store's snapshot at each kept height answers its head-only relations
    assert service.query("r(a, b) :- balance(a, b).", "r", height=5).total == 0
    assert service.query("r(a, b) :- balance(a, b).", "r").total == 0
    service.close()


def test_an_answer_outlives_its_height_falling_out_of_the_kept_ones():
    """Blocks go on while a slow answer runs: its source stays open under it
    and its proof is built from the view it was evaluated on."""
    import threading

    views, _ = _chain_of_blocks(11, blocks=8)
    started, release = threading.Event(), threading.Event()

    def slow_balances(reader):
        started.set()
        assert release.wait(30)
        return [("alice", 5), ("bob", 7)]

    node = _Node(views[0])
    node.chain.height = views[0].height
    service = QueryService(node, head_relations={"balance": slow_balances})
    service.on_block(_Event(views[0]))
    got = {}

    def slow_query():
        got["answer"] = service.query_with_view("r(a, b) :- balance(a, b).", "r")

    worker = threading.Thread(target=slow_query)
    worker.start()
    assert started.wait(30)
    slow_source = service.source_at(views[0].height)
    for fview in views[1:]:  # more heights than the service keeps
        node.view = fview
        node.chain.height = fview.height
        service.on_block(_Event(fview))
        service.query("r(x, y) :- link(x, y).", "r")
    release.set()
    worker.join(30)
    assert not slow_source.holds_connection  # closed by its last reader, not leaked
    answer, fview = got["answer"]
    assert answer.total == 2
    assert answer.height == fview.height == views[0].height
    with pytest.raises(HeightUnavailableError):
        service.query("r(x, y) :- link(x, y).", "r", height=views[0].height)
    service.close()


class _SnapshotChain(_Chain):
    """A chain whose readers see the accounts as of the height they were
    opened at, as the store's LMDB read transactions do."""

    def __init__(self) -> None:
        self.balances: dict[int, list[tuple[str, int]]] = {}
        self.open_readers = 0

    @contextmanager
    def reader(self):
        self.open_readers += 1
        try:
            yield _BalanceReader(self.height, self.balances.get(self.height, []))
        finally:
            self.open_readers -= 1


class _BalanceReader(_Reader):
    def __init__(self, height: int, rows: list[tuple[str, int]]) -> None:
        super().__init__(height)
        self.rows = rows


def test_names_and_balances_are_answered_as_of_each_kept_height_while_blocks_commit():
    """A block commits to the store before its view is published, and more
    commit while a query runs: head-only relations are still read as of the
    query's height, from the snapshot taken when that height was announced."""
    views, _ = _chain_of_blocks(5, blocks=4)
    node = _Node(views[0])
    chain = node.chain = _SnapshotChain()
    chain.balances = {v.height: [("alice", 5 + v.height)] for v in views}
    service = QueryService(node, head_relations={"balance": lambda r: r.rows})
    balance = "r(a, b) :- balance(a, b)."
    for fview in views[:3]:
        chain.height = fview.height
        node.view = fview
        service.on_block(_Event(fview))
    head = views[2].height
    chain.height = views[3].height  # committed; its view is not published yet
    answer = service.query(balance, "r")
    assert (answer.height, answer.rows) == (head, [["alice", 5 + head]])
    older = service.query(balance, "r", height=views[1].height)
    assert older.rows == [["alice", 5 + views[1].height]]
    # a height announced after the store moved past it has no snapshot: refused
    node.view = views[3]
    chain.height = views[3].height + 1
    service.on_block(_Event(views[3]))
    with pytest.raises(HeightUnavailableError, match="newest height only"):
        service.query(balance, "r")
    assert chain.open_readers == 3  # the snapshots of the three heights that have one
    service.close()
    assert chain.open_readers == 0
