"""Kept plans: a repeated program skips parsing and planning, never reads stale data.

A plan is kept by its text and output and reused only under the same built-in
schemas; what depends on the data (symbol ids of constants, tables, the link
index) is resolved at every evaluation, so the same text on another graph, or
on a node a block later, answers from that graph.
"""

from __future__ import annotations

import gc
import sys
import threading
import types

import networkx as nx
import pytest

from focusflow.graph.cybergraph import Cybergraph
from focusflow.query import GraphFileSource, QueryInvalidError, QuerySyntaxError, run
from focusflow.query.engine import evaluate
from focusflow.query.node_source import NodeSource
from focusflow.query.plans import (
    MAX_CACHED_TEXT,
    PLANS,
    PlanCache,
    make_plan,
    plan_bytes,
)
from focusflow.query.service import QueryService
from focusflow.query.syntax import parse
from focusflow.query.views import LiveSource, ViewSet
from tests.query.test_views import _chain_of_blocks, _Event, _Node

CLOSURE = 'r(y) :- link("{s}", y).\nr(y) :- r(x), link(x, y).'
TWO_HOP = 'r(y) :- link("{s}", x), link(x, y).'


def _source(edges: list[tuple[str, str]]) -> tuple[GraphFileSource, nx.DiGraph]:
    g = Cybergraph(require_cids=False)
    g.add_links([a for a, _ in edges], [b for _, b in edges])
    return GraphFileSource(g), nx.DiGraph(edges)


def _reach(ref: nx.DiGraph, s: str) -> set[str]:
    out = set(nx.descendants(ref, s))
    if any(s in nx.descendants(ref, t) or t == s for t in ref.successors(s)):
        out.add(s)
    return out


def test_a_repeated_program_is_planned_once():
    source, ref = _source([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])
    program = CLOSURE.format(s="a") + "\n// once"
    hits = PLANS.hits
    first = run(program, source, output="r")
    again = run(program, source, output="r")
    assert PLANS.hits == hits + 1
    assert first.rows == again.rows == [[x] for x in ["a", "b", "c", "d"]]
    assert {r[0] for r in again.rows} == _reach(ref, "a")


@pytest.mark.parametrize("engine", ["auto", "indexed", "duckdb"])
def test_the_same_text_on_two_graphs_reads_each(engine):
    """A constant's symbol id differs between the graphs ("s" is particle 0 in
    one and 3 in the other): a plan holding it would answer the wrong graph."""
    one, ref_one = _source([("s", "x"), ("x", "y"), ("y", "z")])
    two, ref_two = _source([("u", "v"), ("v", "w"), ("w", "s"), ("s", "u"), ("s", "q")])
    for program, want in (
        (CLOSURE.format(s="s"), _reach),
        (
            TWO_HOP.format(s="s"),
            lambda ref, s: {y for x in ref.successors(s) for y in ref.successors(x)},
        ),
    ):
        for _ in range(2):
            for source, ref in ((one, ref_one), (two, ref_two), (one, ref_one)):
                got = run(program, source, output="r", engine=engine)
                assert {r[0] for r in got.rows} == want(ref, "s")


def test_a_graph_changed_by_a_block_gives_the_new_answer():
    """The node's service answers the same text block after block (the plan is
    kept); each answer equals a plan made afresh over that block's graph."""
    views, _ = _chain_of_blocks(3, blocks=8)
    node = _Node(views[0])
    service = QueryService(node)
    programs = [
        ("r(x, y) :- link(x, y).", "r"),
        ("d(x, c) :- particle(x), c = count : { link(x, _) }.", "d"),
    ]
    totals = set()
    try:
        for fview in views:
            node.view = fview
            node.chain.height = fview.height
            service.on_block(_Event(fview))
            fresh = NodeSource(fview, node.chain)
            for text, output in programs:
                got = service.query(text, output)
                want = evaluate(parse(text), fresh, output)  # planned afresh
                assert got.rows == want.rows and got.total == want.total
                assert got.height == fview.height
            totals.add(got.total)
            fresh.close()
    finally:
        service.close()
    assert len(totals) > 1  # the graph did change under the kept plans


def test_a_recomputed_view_counts_each_block_s_links():
    """A histogram view is recomputed at every block by the index engine over
    the node's live source, whose link index must follow the blocks."""
    views, _ = _chain_of_blocks(4, blocks=6)
    chain = _Node(views[0]).chain
    live = LiveSource(views[0], chain)
    kept = ViewSet(live)
    text = (
        "deg(x, c) :- particle(x), c = count : { link(x, _) }.\n"
        "hist(c, n) :- deg(_, c), n = count : { deg(_, c) }."
    )
    kept.register("hist", text, "hist")
    seen = set()
    try:
        for fview in views[1:]:
            kept.advance(fview)
            got = kept.read("hist")
            fresh = NodeSource(fview, chain)
            want = evaluate(parse(text), fresh, "hist", engine="duckdb")
            fresh.close()
            assert got.rows == want.rows and got.height == fview.height
            assert kept.views["hist"].answer.stats["engine"] == "indexed"
            seen.add(tuple(map(tuple, got.rows)))
    finally:
        live.close()
    assert len(seen) > 1


class _NoTexts(GraphFileSource):
    """A source without the ``text`` relation: a plan made where it exists
    must not be reused here."""

    def schema(self, name: str):
        return None if name == "text" else super().schema(name)


def test_a_plan_is_reused_only_under_the_schemas_it_was_made_for():
    program = 'r(p) :- text(p, "cats").'
    g = Cybergraph(require_cids=False)
    g.add_links(["a"], ["b"])
    assert run(program, GraphFileSource(g), output="r").rows == []
    with pytest.raises(QueryInvalidError, match="unknown relation text"):
        run(program, _NoTexts(g), output="r")
    assert run(program, GraphFileSource(g), output="r").rows == []


def test_bad_programs_are_refused_every_time_and_never_kept():
    source, _ = _source([("a", "b")])
    size = len(PLANS)
    for _ in range(2):
        with pytest.raises(QuerySyntaxError, match="line 1"):
            run("r(x :- link(x, _).", source, output="r")
        with pytest.raises(QueryInvalidError, match="unknown relation"):
            run("r(x) :- lnk(x, _).", source, output="r")
    assert len(PLANS) == size


def _schemas(name: str):
    from focusflow.query.sources import BASE_SCHEMAS

    return BASE_SCHEMAS.get(name)


def test_the_cache_is_bounded_by_count_and_by_bytes_least_recent_first():
    cache = PlanCache(max_plans=3, max_bytes=10**6)
    texts = [f"r{k}(x) :- link(x, _)." for k in range(4)]
    for t in texts:
        cache.plan(t, t.split("(")[0], _schemas, [])
    assert len(cache) == 3
    cache.plan(texts[1], "r1", _schemas, [])  # used: now the most recent
    misses = cache.misses
    cache.plan(texts[0], "r0", _schemas, [])  # was evicted: planned again
    assert cache.misses == misses + 1
    cache.plan(texts[1], "r1", _schemas, [])  # kept through that
    assert cache.misses == misses + 1

    room = 2 * plan_bytes(texts[0]) + 1
    small = PlanCache(max_plans=100, max_bytes=room)
    for t in texts:
        small.plan(t, t.split("(")[0], _schemas, [])
    assert small.bytes_held <= room and len(small) == 2

    long_text = "r(x) :- link(x, _).\n" + "// padding\n" * (MAX_CACHED_TEXT // 10)
    cache.plan(long_text, "r", _schemas, [])
    cache.plan(long_text, "r", _schemas, [])
    assert cache.misses == misses + 3  # too long to keep: planned each time


def _deep_size(obj: object) -> int:
    """Bytes of ``obj`` and of every object it reaches, each counted once (code,
    classes and modules are the program's, not the plan's)."""
    seen: set[int] = set()
    todo = [obj]
    total = 0
    while todo:
        o = todo.pop()
        if id(o) in seen or isinstance(o, (type, types.ModuleType, types.FunctionType)):
            continue
        seen.add(id(o))
        total += sys.getsizeof(o)
        todo.extend(gc.get_referents(o))
    return total


def test_a_plan_holds_at_most_the_bytes_the_cache_counts_for_it():
    """Dense programs: short names, long chains, deep arithmetic."""
    chain = ",".join(f"link(a{i},a{i + 1})" for i in range(200))
    rules = "\n".join(f"r{i}(x):-link(x,y),r{i + 1}(y)." for i in range(100))
    for program, output in (
        (CLOSURE.format(s="QmHub" * 9), "r"),
        (
            "deg(x, c) :- particle(x), c = count : { link(x, _) }.\n"
            "hist(c, n) :- deg(_, c), n = count : { deg(_, c) }.",
            "hist",
        ),
        ("r(x, y, z) :- link(x, y), link(y, z), !link(z, x), x != z.", "r"),
        ("r(x):-x=y,y=z,z=1.", "r"),
        ("r(x):-x=" + "+".join(["1"] * 300) + ".", "r"),
        ("r(x):-x=" + "*".join(["-1"] * 300) + ".", "r"),
        (f"r(a0,a200):-{chain}.", "r"),
        (rules + "\nr100(x):-particle(x).", "r0"),
    ):
        plan = make_plan(program, output, _schemas, [])
        size = _deep_size(plan)
        assert size > 40 * len(program)  # the measure sees the tree
        assert size <= plan_bytes(program), program[:40]


def test_threads_share_the_cache_and_each_gets_its_own_answer():
    sources = [_source([(f"n{k}", f"n{k + 1}") for k in range(j, j + 6)]) for j in range(3)]
    cache_texts = [CLOSURE.format(s=f"n{k}") for k in range(8)]
    errors: list[Exception] = []

    def work(seed: int) -> None:
        try:
            for i in range(60):
                source, ref = sources[(seed + i) % 3]
                text = cache_texts[(seed * 7 + i) % len(cache_texts)]
                s = text.split('"')[1]
                got = {r[0] for r in run(text, source, output="r").rows}
                assert got == (_reach(ref, s) if s in ref else set())
        except (AssertionError, QueryInvalidError) as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
