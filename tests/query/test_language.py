"""The Datalog language against independent references: networkx for recursion
and graph operators, plain Python for joins, negation and aggregates; and every
bad program refused with its code, line and column."""

from __future__ import annotations

import sys
from collections import Counter

import networkx as nx
import numpy as np
import pytest

from focusflow.graph.cybergraph import Cybergraph
from focusflow.graph.generators import random_graph
from focusflow.query import (
    GraphFileSource,
    Limits,
    QueryInvalidError,
    QueryLimitError,
    QuerySyntaxError,
    QueryTypeError,
    UnstratifiableError,
)
from focusflow.query import run as _run

ENGINE = "auto"


@pytest.fixture(autouse=True, params=["auto", "duckdb"])
def engine(request, monkeypatch):
    """Every test twice: with index-driven evaluation where the program allows
    it (auto), and with DuckDB for everything; both must give the same rows."""
    monkeypatch.setattr(sys.modules[__name__], "ENGINE", request.param)
    return request.param


def run(program, source, **kw):
    return _run(program, source, engine=kw.pop("engine", ENGINE), **kw)


def _graph(n: int, m: int, seed: int) -> tuple[GraphFileSource, nx.DiGraph]:
    src, dst, w = random_graph(n, m, seed=seed)
    keep = src != dst
    src, dst, w = src[keep], dst[keep], w[keep]
    g = Cybergraph(require_cids=False)
    g.add_links([f"p{i}" for i in src], [f"p{i}" for i in dst], None, w)
    ref = nx.DiGraph()
    ref.add_nodes_from(g.particles.keys())
    for a, b, x in zip(src.tolist(), dst.tolist(), w.tolist(), strict=True):
        key = (f"p{a}", f"p{b}")
        prev = ref.get_edge_data(*key, {"weight": 0.0})["weight"]
        ref.add_edge(*key, weight=prev + x)
    return GraphFileSource(g), ref


@pytest.fixture(scope="module", params=[0, 1, 2, 3])
def graph(request):
    return _graph(40 + 10 * request.param, 90 + 40 * request.param, seed=request.param)


def _set(program: str, source, output: str) -> set[tuple]:
    return {tuple(r) for r in run(program, source, output=output).rows}


def _reachable(ref: nx.DiGraph, a: str) -> set[str]:
    """Particles at the end of a path of one link or more from ``a`` (``a`` itself
    when it lies on a cycle, which nx.descendants leaves out)."""
    out = set(nx.descendants(ref, a))
    if any(s == a or a in nx.descendants(ref, s) for s in ref.successors(a)):
        out.add(a)
    return out


def test_transitive_closure_equals_networkx(graph):
    source, ref = graph
    got = _set("tc(x, y) :- link(x, y).\ntc(x, y) :- tc(x, z), link(z, y).", source, "tc")
    want = {(a, b) for a in ref for b in _reachable(ref, a)}
    assert got == want
    # the same closure written right-recursive, and from one source
    right = _set("tc(x, y) :- link(x, y).\ntc(x, y) :- link(x, z), tc(z, y).", source, "tc")
    assert right == want
    one = _set('r(y) :- link("p0", y).\nr(y) :- r(x), link(x, y).', source, "r")
    assert one == ({(b,) for b in _reachable(ref, "p0")} if "p0" in ref else set())


def test_mutual_recursion_counts_path_parity(graph):
    source, ref = graph
    program = """
    even(x, x) :- particle(x).
    odd(x, y) :- even(x, z), link(z, y).
    even(x, y) :- odd(x, z), link(z, y).
    """
    got = _set(program, source, "odd")
    adj = nx.to_numpy_array(ref, nodelist=list(ref), weight=None) > 0
    nodes = list(ref)
    n = len(nodes)
    even = np.eye(n, dtype=bool)
    odd = np.zeros((n, n), dtype=bool)
    for _ in range(2 * n + 2):
        odd = odd | ((even.astype(int) @ adj.astype(int)) > 0)
        even = even | ((odd.astype(int) @ adj.astype(int)) > 0)
    want = {(nodes[i], nodes[j]) for i, j in zip(*np.nonzero(odd), strict=True)}
    assert got == want


def test_khop_and_shortest_equal_networkx(graph):
    source, ref = graph
    for s in ["p0", "p3", "p7"]:
        if s not in ref:
            continue
        hops = _set(f'r(y, k) :- khop("{s}", y, k), k <= 2.', source, "r")
        want = nx.single_source_shortest_path_length(ref, s, cutoff=2)
        assert hops == {(y, k) for y, k in want.items()}
        lengths = ref.copy()
        for _a, _b, d in lengths.edges(data=True):
            d["length"] = 1.0 / d["weight"]
        dist = run(f'r(y, d) :- shortest("{s}", y, d).', source, output="r").rows
        want_d = nx.single_source_dijkstra_path_length(lengths, s, weight="length")
        assert {y for y, _ in dist} == set(want_d)
        for y, d in dist:
            assert d == pytest.approx(want_d[y], rel=1e-12)


def test_sources_bound_by_other_atoms(graph):
    source, ref = graph
    # every particle two hops from the successors of p1
    got = _set('r(s, y) :- link("p1", s), khop(s, y, k), k = 1.', source, "r")
    want = (
        {(s, y) for s in ref.successors("p1") for y in ref.successors(s)} if "p1" in ref else set()
    )
    assert got == want


def test_components_communities_and_pagerank_equal_networkx(graph):
    source, ref = graph
    comp = dict(run("r(p, c) :- component(p, c).", source, output="r").rows)
    parts = list(nx.weakly_connected_components(ref))
    for part in parts:
        labels = {comp[p] for p in part}
        assert len(labels) == 1 and labels <= part  # labelled by one of its members
    assert len(set(comp.values())) == len(parts)
    rank = dict(run("r(p, x) :- pagerank(p, x).", source, output="r").rows)
    want = nx.pagerank(ref, alpha=0.85, tol=1e-13, max_iter=10_000, weight="weight")
    for p, r in want.items():
        assert rank[p] == pytest.approx(r, abs=1e-6)
    community = dict(run("r(p, c) :- community(p, c).", source, output="r").rows)
    for part in nx.weakly_connected_components(ref):
        # a community never spans two components
        assert {community[p] for p in part}.isdisjoint({community[q] for q in ref if q not in part})


def test_joins_negation_and_aggregates_equal_python(graph):
    source, ref = graph
    edges = set(ref.edges())
    weights = {(a, b): d["weight"] for a, b, d in ref.edges(data=True)}
    nodes = set(ref)
    assert _set("r(x) :- particle(x), !link(x, _).", source, "r") == {
        (x,) for x in nodes if ref.out_degree(x) == 0
    }
    assert _set("r(x, y) :- link(x, y), !link(y, x).", source, "r") == {
        (a, b) for a, b in edges if (b, a) not in edges
    }
    deg = dict(run("d(x, c) :- particle(x), c = count : { link(x, _) }.", source, output="d").rows)
    assert deg == {x: ref.out_degree(x) for x in nodes}
    hist = _set(
        "d(x, c) :- particle(x), c = count : { link(x, _) }.\n"
        "h(c, n) :- d(_, c), n = count : { d(_, c) }.",
        source,
        "h",
    )
    assert hist == set(Counter(ref.out_degree(x) for x in nodes).items())
    total = dict(
        run("s(x, t) :- particle(x), t = sum w : { weight(x, _, w) }.", source, output="s").rows
    )
    for x in nodes:
        assert total[x] == pytest.approx(sum(weights[e] for e in edges if e[0] == x), rel=1e-12)
    low = dict(
        run("m(x, v) :- particle(x), v = min w : { weight(x, _, w) }.", source, output="m").rows
    )
    assert set(low) == {x for x in nodes if ref.out_degree(x)}
    for x, v in low.items():
        assert v == min(weights[e] for e in edges if e[0] == x)
    everything = run("c(n) :- n = count : { link(_, _) }.", source, output="c").rows
    assert everything == [[len(edges)]]
    heavy = _set("r(x, y) :- weight(x, y, w), w * 2 > 1.", source, "r")
    assert heavy == {e for e in edges if weights[e] * 2 > 1}
    arithmetic = run('r(x, a, b) :- x = "k", a = 7 / 2, b = 7 % 3 + 2 * -1.', source, output="r")
    assert arithmetic.rows == [["k", 3.5, -1]]


def test_facts_constants_and_new_symbols():
    source, _ = _graph(10, 20, seed=9)
    program = 'seed("p1"). seed("nobody"). r(x, y) :- seed(x), link(x, y). s(x) :- seed(x).'
    assert {r[0] for r in run(program, source, output="s").rows} == {"p1", "nobody"}
    assert all(r[0] == "p1" for r in run(program, source, output="r").rows)
    assert run("z() :- link(_, _).", source, output="z").rows == [[]]


@pytest.mark.parametrize(
    ("program", "where", "text"),
    [
        ("r(x) :- link(x, y)", (1, 19), "expected ',' or '.'"),
        ("r(x) :- link(x, y).\nr(x :- link(x, y).", (2, 5), "expected ',' or ')'"),
        ('r(x) :- link(x, "y).', (1, 17), "unterminated string"),
        ("r(x) :- link(x, y) & z.", (1, 20), "unexpected character '&'"),
        ("r(x) :- link(x, y). /* open", (1, 21), "unterminated comment"),
        (".decl r(x: symbol)\nr(x) :- link(x, _).", (1, 1), "directives"),
        ("r(x) :- c = count : link(x, _), count(x).", (1, 33), "reserved word"),
        ("r(x) :- link(x, 99999999999999999999).", (1, 17), "64 bits"),
    ],
)
def test_syntax_errors_name_line_and_column(program, where, text):
    source, _ = _graph(5, 5, seed=1)
    with pytest.raises(QuerySyntaxError) as err:
        run(program, source, output="r")
    assert (err.value.line, err.value.column) == where, str(err.value)
    assert text in str(err.value)
    assert err.value.code == "query_syntax"


@pytest.mark.parametrize(
    ("program", "error", "text"),
    [
        ("r(x, z) :- link(x, y).", QueryInvalidError, "variable z in the head"),
        ("r(x) :- link(x, y), !link(y, z), z = z.", QueryInvalidError, "not bound"),
        ("r(x) :- linkk(x, y).", QueryInvalidError, "did you mean link"),
        ("r(x) :- link(x).", QueryInvalidError, "has 2 columns"),
        ("link(x, y) :- link(y, x).", QueryInvalidError, "built-in relation"),
        ("r(x) :- link(x, _), x < 3.", QueryTypeError, "compares a symbol with a number"),
        ("r(x) :- link(x, y), x < y.", QueryTypeError, "= and != only"),
        ("r(x) :- stake(n, x), link(x, _).", QueryTypeError, "variable x"),
        ("r(x) :- link(x, _), !r(x).", UnstratifiableError, "cycle r -> r"),
        (
            "p(x) :- link(x, _), !q(x).\nq(x) :- p(x).",
            UnstratifiableError,
            "cycle p -> q -> p",
        ),
        (
            "p(x, c) :- link(x, _), c = count : { p(x, _) }.",
            UnstratifiableError,
            "through an aggregate",
        ),
        ("r(y) :- khop(x, y, 1).", QueryInvalidError, "first argument of khop"),
        ("r(x) :- link(x, _), _ > 1.", QueryInvalidError, "'_' cannot"),
    ],
)
def test_meaningless_programs_are_refused(program, error, text):
    source, _ = _graph(5, 5, seed=1)
    with pytest.raises(error) as err:
        run(program, source, output="r" if program.startswith("r(") else program[0])
    assert text in str(err.value)


def test_unknown_output_is_named():
    source, _ = _graph(5, 5, seed=1)
    with pytest.raises(QueryInvalidError, match="output relation reech"):
        run("reach(x) :- link(x, _).", source, output="reech")


def test_limits_cancel_a_runaway_query_cleanly():
    source, _ = _graph(20, 40, seed=2)
    counting = "n(0).\nn(x + 1) :- n(x), x < 1000000000."
    with pytest.raises(QueryLimitError) as err:
        run(counting, source, output="n", limits=Limits(timeout_s=0.3))
    assert err.value.limit == "time"
    with pytest.raises(QueryLimitError) as err:
        run(counting, source, output="n", limits=Limits(max_rows=500))
    assert err.value.limit == "rows"
    wide, _ = _graph(100, 300, seed=3)
    with pytest.raises(QueryLimitError) as err:
        run("r(s, y) :- particle(s), personalized(s, y, _).", wide, output="r")
    assert err.value.limit == "sources"
    # the source is untouched and answers the next query
    assert run("r(x) :- particle(x).", source, output="r").total == 20


def test_limit_returns_the_first_rows_and_the_total():
    source, ref = _graph(30, 60, seed=4)
    full = run("r(x, y) :- link(x, y).", source, output="r")
    some = run("r(x, y) :- link(x, y).", source, output="r", limit=5)
    assert some.total == full.total == ref.number_of_edges()
    assert some.rows == full.rows[:5]
    assert run("r(x, y) :- link(x, y).", source, output="r", limit=0).rows == []


def test_a_query_past_the_memory_bound_fails_cleanly():
    src, dst, _ = random_graph(3000, 10_000, seed=1)
    keep = src != dst
    g = Cybergraph(require_cids=False)
    g.add_links(src[keep].astype(str), dst[keep].astype(str))
    source = GraphFileSource(g, memory_limit="100MB")
    cube = "r(a, b, c) :- particle(a), particle(b), particle(c)."  # 2.7e10 rows
    with pytest.raises(QueryLimitError) as err:
        run(cube, source, output="r", limits=Limits(timeout_s=30))
    assert err.value.limit in ("memory", "time")
    assert run("r(x) :- particle(x).", source, output="r").total == g.n_particles


INDEXED_PROGRAMS = [
    ("tc(x, y) :- link(x, y).\ntc(x, y) :- tc(x, z), link(z, y).", "tc"),
    ("tc(x, y) :- link(x, y).\ntc(x, y) :- link(x, z), tc(z, y).", "tc"),
    ('r(y) :- link("p0", y).\nr(y) :- r(x), link(x, y).', "r"),
    ('r(y) :- link("p1", a), link(a, b), link(b, y).', "r"),
    ('r(x) :- link(x, "p2").\nr(x) :- link(x, y), r(y), x != y.', "r"),
    ("r(x, y) :- link(x, y), link(y, x), x != y.", "r"),
    ('r(x, y) :- x = "p3", link(x, y).', "r"),
    ('r(y, x) :- link(x, y), y = "p4".', "r"),
    ("r(x) :- link(x, x).", "r"),
    ('r(x, "tag") :- particle(x), link(x, _).', "r"),
    (
        "e(x, x) :- particle(x).\no(x, y) :- e(x, z), link(z, y).\ne(x, y) :- o(x, z), link(z, y).",
        "o",
    ),
    ('r(y) :- link("nobody", y).', "r"),
]


@pytest.mark.parametrize(("program", "output"), INDEXED_PROGRAMS)
def test_index_driven_evaluation_equals_duckdb(graph, program, output):
    source, _ = graph
    fast = _run(program, source, output=output, engine="indexed")
    slow = _run(program, source, output=output, engine="duckdb")
    auto = _run(program, source, output=output)
    assert fast.stats["engine"] == "indexed"
    # auto picks index lookups only for programs that start from named particles
    assert (auto.stats.get("engine") == "indexed") == ('"p' in program or "nobody" in program)
    assert auto.rows == slow.rows
    assert fast.rows == slow.rows and fast.total == slow.total
    limited = _run(program, source, output=output, engine="indexed", limit=3)
    assert limited.rows == slow.rows[:3]


def test_the_indexed_engine_refuses_what_it_cannot_run():
    source, _ = _graph(5, 5, seed=1)
    with pytest.raises(QueryInvalidError, match="DuckDB"):
        _run("r(x) :- particle(x), !link(x, _).", source, output="r", engine="indexed")
    with pytest.raises(QueryInvalidError, match="engine must be"):
        _run("r(x) :- particle(x).", source, output="r", engine="fast")


def test_an_aggregate_shares_variables_bound_after_it_in_the_text(graph):
    """The order of literals is not the meaning: an aggregate correlated on a
    variable that a later '=' binds still counts per binding."""
    source, ref = graph
    want = {(x, ref.out_degree(x)) for x in ref}
    for program in (
        "r(x, c) :- particle(x), c = count : { link(y, _) }, y = x.",
        "r(x, c) :- particle(x), y = x, c = count : { link(y, _) }.",
    ):
        assert _set(program, source, "r") == want


def test_an_operator_source_bound_by_equality(graph):
    source, _ = graph
    direct = _set('r(y, k) :- khop("p0", y, k), k <= 2.', source, "r")
    assert _set('r(y, k) :- s = "p0", khop(s, y, k), k <= 2.', source, "r") == direct
