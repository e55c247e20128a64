"""Each proved row's facts are one derivation of it: they derive the row alone,
and for reachability they form a path; unprovable programs are refused."""

from __future__ import annotations

import pytest

from focusflow.query import FactSource, QueryInvalidError, QueryLimitError, run
from tests.query.test_language import _graph

TC = "tc(x, y) :- link(x, y).\ntc(x, y) :- tc(x, z), link(z, y)."


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_row_follows_from_its_own_facts(seed):
    source, _ = _graph(30, 70, seed=seed)
    answer = run(TC, source, output="tc", limit=100, prove=True)
    assert answer.facts is not None and len(answer.facts) == len(answer.rows) > 0
    for row, facts in zip(answer.rows, answer.facts, strict=True):
        assert {rel for rel, _ in facts} == {"link"}
        edges = [tuple(v) for _, v in facts]
        # the links form a path from row[0] to row[1] (each one used once)
        starts = {a for a, _ in edges}
        ends = {b for _, b in edges}
        assert row[0] in starts and row[1] in ends and len(starts) == len(edges)
        alone = FactSource({"link": [list(e) for e in edges]})
        assert tuple(row) in {tuple(r) for r in run(TC, alone, output="tc").rows}
        alone.close()


def test_joins_of_several_relations_cite_each():
    source, _ = _graph(20, 50, seed=5)
    program = "two(x, z) :- link(x, y), link(y, z), particle(z)."
    answer = run(program, source, output="two", limit=10, prove=True)
    for row, facts in zip(answer.rows, answer.facts, strict=True):
        rels = sorted(rel for rel, _ in facts)
        assert rels in (["link", "link", "particle"], ["link", "particle"])
        assert ("particle", [row[1]]) in facts


def test_unprovable_programs_are_refused_before_any_work():
    source, _ = _graph(10, 20, seed=1)
    for program in (
        "r(x) :- particle(x), !link(x, _).",
        "r(x, c) :- particle(x), c = count : { link(x, _) }.",
        "r(p, f) :- focus(p, f).",
        'r(y) :- khop("p1", y, 1).',
    ):
        with pytest.raises(QueryInvalidError, match="prove"):
            run(program, source, output="r", prove=True)
    with pytest.raises(QueryLimitError, match="at most 100 rows"):
        run("r(x, y) :- link(x, y).", _graph(60, 200, seed=2)[0], output="r", prove=True)
