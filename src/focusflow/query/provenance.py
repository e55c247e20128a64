"""Why a row is in the answer: the base facts of one derivation of it.

A proving evaluation records, with every derived fact, the semi-naive round
that first derived it. A fact of round ``r`` has a rule instance whose atoms
of its own recursive component all come from rounds before ``r`` (that is how
semi-naive evaluation found it), so asking DuckDB for one such instance
(``Compiler.witness``) and walking down the rounds always ends at base facts,
without cycles. Proofs cover positive programs over the relations the chain
commits fact by fact (``PROVABLE``): a negation or an aggregate would need a
proof of absence, which the state's layout cannot give for links.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from focusflow.query.analysis import FLOAT, Analysis
from focusflow.query.errors import QueryInvalidError, QueryLimitError
from focusflow.query.operators import OPERATORS
from focusflow.query.sqlgen import quote
from focusflow.query.syntax import Aggregate, Atom

if TYPE_CHECKING:
    from focusflow.query.engine import Evaluation

PROVABLE = frozenset({"link", "neuron_link", "particle", "name", "balance"})
MAX_PROVE_ROWS = 100
MAX_FACTS = 10_000

#: A column's value in the source's own numbering: a symbol id or an int, or a float.
Value = int | float
#: A base fact: its relation and its values.
Fact = tuple[str, tuple[Value, ...]]


def check_provable(analysis: Analysis) -> None:
    """Refuse, before any work, a program whose rows cannot be proven."""
    other = sorted(analysis.base_used - PROVABLE)
    if other:
        raise QueryInvalidError(
            f"--prove covers rules over {', '.join(sorted(PROVABLE))}; "
            f"{other[0]} is not committed fact by fact"
        )
    for rules in analysis.rules.values():
        for rule in rules:
            for lit in rule.body:
                if isinstance(lit, Aggregate) or (isinstance(lit, Atom) and lit.negated):
                    raise QueryInvalidError(
                        f"line {lit.pos.line}, column {lit.pos.column}: --prove covers "
                        "positive rules only (a negation or aggregate needs a proof of absence)"
                    )
                if isinstance(lit, Atom) and lit.name in OPERATORS:
                    raise QueryInvalidError(f"--prove does not cover the operator {lit.name}")


def _literal(value: Value, t: str) -> str:
    if t == FLOAT:
        return f"CAST({float(value)!r} AS DOUBLE)"
    return str(int(value))


def explain(run: Evaluation, output: str, rows: list[tuple[Value, ...]]) -> list[list[Fact]]:
    """Base facts (raw ids) behind each of ``rows`` of ``output``, one derivation each."""
    analysis: Analysis = run.analysis
    if len(rows) > MAX_PROVE_ROWS:
        raise QueryLimitError(f"--prove covers at most {MAX_PROVE_ROWS} rows: give --limit", "rows")
    component = {rel: set(comp) for comp in analysis.strata for rel in comp}
    budget = [MAX_FACTS]
    out = []
    for row in rows:
        facts: dict[Fact, None] = {}
        _walk(run, analysis, component, output, tuple(row), None, facts, budget)
        out.append(list(facts))
    return out


def _round_of(run: Evaluation, analysis: Analysis, rel: str, values: tuple[Value, ...]) -> int:
    schema = analysis.types[rel]
    cond = " AND ".join(
        f"c{k} = {_literal(v, t)}" for k, (v, t) in enumerate(zip(values, schema, strict=True))
    )
    where = f" WHERE {cond}" if cond else ""
    got = run.cursor.execute(f"SELECT min(_round) FROM {quote(run.derived[rel])}{where}").fetchone()
    if got is None or got[0] is None:
        raise AssertionError(f"{rel}{values} is not derived")
    return int(got[0])


def _walk(
    run: Evaluation,
    analysis: Analysis,
    component: dict[str, set[str]],
    rel: str,
    values: tuple[Value, ...],
    rnd: int | None,
    facts: dict[Fact, None],
    budget: list[int],
) -> None:
    todo: list[tuple[str, tuple[Value, ...], int | None]] = [(rel, values, rnd)]
    seen: set[Fact] = set()
    while todo:
        rel, values, rnd = todo.pop()
        if rel not in analysis.rules:
            if (rel, values) not in facts:
                budget[0] -= 1
                if budget[0] < 0:
                    raise QueryLimitError(
                        f"the proofs would cite more than {MAX_FACTS} facts: "
                        "give a smaller --limit",
                        "rows",
                    )
                facts[(rel, values)] = None
            continue
        if (rel, values) in seen:
            continue
        seen.add((rel, values))
        if rnd is None:
            rnd = _round_of(run, analysis, rel, values)
        members = component[rel]
        schema = analysis.types[rel]
        literals = [_literal(v, t) for v, t in zip(values, schema, strict=True)]

        def before(atom: Atom, r: int = rnd, m: set[str] = members) -> int | None:
            """The round an atom of this component must come from before."""
            return r if atom.name in m else None

        for rule in analysis.rules[rel]:
            sql, aliases = run.compiler.witness(
                rule.head.args, literals, rule.body, run.table_of, before
            )
            found = run.cursor.execute(sql).fetchone()
            if found is None:
                continue
            i = 0
            for atom, _alias in aliases:
                n = len(analysis.types[atom.name])
                part = tuple(found[i : i + n])
                i += n
                sub = None
                if atom.name in members:
                    sub = int(found[i])
                    i += 1
                todo.append((atom.name, part, sub))
            break
        else:
            raise AssertionError(f"no derivation of {rel}{values} found")
