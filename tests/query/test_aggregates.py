"""Aggregates in the index engine equal DuckDB's and plain Python's.

``count``, ``sum``, ``min`` and ``max`` run as index lookups when the rest of
the program does: each program below is evaluated by both engines and by an
independent reference written over networkx's graph, on random graphs.
"""

from __future__ import annotations

from collections import Counter

import networkx as nx
import numpy as np
import pytest

from focusflow.graph.cybergraph import Cybergraph
from focusflow.graph.generators import random_graph
from focusflow.query import GraphFileSource, Limits, QueryInvalidError, QueryLimitError, run
from focusflow.query.indexed import _group_extreme, _group_sum

DEG = "deg(x, c) :- particle(x), c = count : { link(x, _) }.\n"
HIST = DEG + "hist(c, n) :- deg(_, c), n = count : { deg(_, c) }."


def _graph(n: int, m: int, seed: int) -> tuple[GraphFileSource, nx.DiGraph]:
    src, dst, w = random_graph(n, m, seed=seed)
    keep = src != dst
    a = [f"p{i}" for i in src[keep]]
    b = [f"p{i}" for i in dst[keep]]
    g = Cybergraph(require_cids=False)
    g.add_links(a, b, None, w[keep])
    ref = nx.DiGraph()
    ref.add_nodes_from(g.particles.keys())
    ref.add_edges_from(zip(a, b, strict=True))
    return GraphFileSource(g), ref


@pytest.fixture(scope="module", params=[0, 1, 2, 3, 4])
def graph(request):
    seed = request.param
    return _graph(30 + 20 * seed, 60 + 90 * seed, seed)


def _references(ref: nx.DiGraph) -> dict[str, set[tuple]]:
    out = dict(ref.out_degree())
    succ = {x: set(ref.successors(x)) for x in ref}
    pred = {x: set(ref.predecessors(x)) for x in ref}
    two = {x: sum(out[y] for y in succ[x]) for x in ref}
    return {
        "deg": {(x, out[x]) for x in ref},
        "indeg": {(x, len(pred[x])) for x in ref},
        "deg_var": {(x, out[x]) for x in ref},
        "loops": {(x, int(x in succ[x])) for x in ref},
        "hist": set(Counter(out.values()).items()),
        "links": {(ref.number_of_edges(),)},
        "particles": {(ref.number_of_nodes(),)},
        "paths2": {(x, two[x]) for x in ref if succ[x]},
        "total": {(sum(out.values()),)},
        "succ_sum": {(x, sum(out[y] for y in succ[x])) for x in ref},
        "succ_max": {(x, max(out[y] for y in succ[x])) for x in ref if succ[x]},
        "succ_min": {(x, min(out[y] for y in succ[x])) for x in ref if succ[x]},
        "not_p0": {(x, len(succ[x] - {"p0"})) for x in ref},
        "mutual": {(x, sum(1 for y in succ[x] if x in succ[y])) for x in ref},
        "hub_kin": {(y, len(succ[y])) for y in succ.get("p1", ())},
    }


PROGRAMS = {
    "deg": (DEG, "deg"),
    "indeg": ("d(x, c) :- particle(x), c = count : { link(_, x) }.", "d"),
    "deg_var": ("d(x, c) :- particle(x), c = count : { link(x, y) }.", "d"),
    "loops": ("d(x, c) :- particle(x), c = count : { link(x, x) }.", "d"),
    "hist": (HIST, "hist"),
    "links": ("c(n) :- n = count : { link(_, _) }.", "c"),
    "particles": ("c(n) :- n = count : particle(_).", "c"),
    "paths2": ("c(x, n) :- link(x, _), n = count : { link(x, y), link(y, _) }.", "c"),
    "total": (DEG + "s(t) :- t = sum c : { deg(_, c) }.", "s"),
    "succ_sum": (DEG + "s(y, t) :- particle(y), t = sum c : { link(y, x), deg(x, c) }.", "s"),
    "succ_max": (DEG + "s(y, t) :- particle(y), t = max c : { link(y, x), deg(x, c) }.", "s"),
    "succ_min": (DEG + "s(y, t) :- particle(y), t = min c : { link(y, x), deg(x, c) }.", "s"),
    "not_p0": ('r(x, n) :- particle(x), n = count : { link(x, y), y != "p0" }.', "r"),
    "mutual": ("r(x, n) :- particle(x), n = count : { link(x, y), link(y, x) }.", "r"),
    "hub_kin": ('r(y, n) :- link("p1", y), n = count : { link(y, _) }.', "r"),
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_aggregates_equal_duckdb_and_python(graph, name):
    source, ref = graph
    program, output = PROGRAMS[name]
    fast = run(program, source, output=output, engine="indexed")
    slow = run(program, source, output=output, engine="duckdb")
    assert fast.stats["engine"] == "indexed"
    assert fast.rows == slow.rows and fast.total == slow.total
    assert fast.types == slow.types
    assert {tuple(r) for r in fast.rows} == _references(ref)[name]


@pytest.mark.parametrize(
    "name", ["deg", "indeg", "deg_var", "hist", "links", "particles", "hub_kin"]
)
def test_counting_scans_are_planned_as_index_lookups(graph, name):
    """One relation counted per binding of another runs here, not in DuckDB."""
    source, _ = graph
    program, output = PROGRAMS[name]
    assert run(program, source, output=output).stats["engine"] == "indexed"


def test_joins_of_unanchored_atoms_stay_in_duckdb(graph):
    """A count over a two-atom body of the whole graph builds every path through
    a hub here; DuckDB's hash joins do that better."""
    source, _ = graph
    program, output = PROGRAMS["paths2"]
    assert run(program, source, output=output).stats.get("engine") != "indexed"


def test_an_aggregate_body_too_large_stops_at_the_row_bound():
    source, _ = _graph(200, 2000, seed=9)
    program = "c(n) :- n = count : { link(_, _), particle(_), particle(_) }."
    with pytest.raises(QueryLimitError) as err:
        run(program, source, output="c", engine="indexed", limits=Limits(max_rows=10**6))
    assert err.value.limit == "rows"


def test_group_sums_are_exact_in_64_bits_and_refused_past_them():
    rng = np.random.default_rng(0)
    big = (1 << 62) + rng.integers(0, 1 << 20, 6)
    group = np.array([0, 0, 1, 1, 2, 2])
    values = np.array([big[0], -big[1], big[2], big[3] // 2, 5, -7], dtype=np.int64)
    got = _group_sum(group, values, 4)
    want = [int(big[0]) - int(big[1]), int(big[2]) + int(big[3]) // 2, -2, 0]
    assert got.tolist() == want
    over = np.array([big[0], big[1]], dtype=np.int64)
    with pytest.raises(QueryInvalidError, match="out of range"):
        _group_sum(np.array([0, 0]), over, 1)


def test_group_extremes_skip_empty_groups():
    group = np.array([2, 0, 2, 2, 0])
    values = np.array([5, -1, 3, 9, 4], dtype=np.int64)
    low, found = _group_extreme(group, values, 4, "min")
    high, _ = _group_extreme(group, values, 4, "max")
    assert found.tolist() == [True, False, True, False]
    assert low[found].tolist() == [-1, 3] and high[found].tolist() == [4, 9]
