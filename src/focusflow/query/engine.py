"""Evaluation: strata in order, recursion semi-naively, all joins in DuckDB.

Each stratum's relations are temporary tables of the query's own DuckDB
cursor (so concurrent queries never see each other's work). A non-recursive
stratum is one ``INSERT ... SELECT DISTINCT`` over the union of its rules. A
recursive one starts from its exit rules and then, until nothing is new,
evaluates every recursive rule once per recursive atom with that atom reading
only the last round's delta, and keeps what is not yet known (``EXCEPT``).
The loop is ours; each step is one vectorised, multithreaded SQL statement.

Every query runs under a time limit (DuckDB is interrupted from a timer and
the loop checks the clock between statements), a row bound over everything it
derives, and the database's memory limit; past any of them it stops with
:class:`QueryLimitError` and its temporary tables go with its cursor.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from focusflow.query.analysis import (
    FLOAT,
    SYM,
    Analysis,
    Schema,
    assigned,
    literal_vars,
)
from focusflow.query.errors import QueryInvalidError, QueryLimitError
from focusflow.query.indexed import IndexedEvaluation, LinkAdjacency
from focusflow.query.limits import Budget, Limits
from focusflow.query.operators import BOUNDED, OPERATORS, Operator, anchored_run
from focusflow.query.plans import PLANS, make_plan
from focusflow.query.provenance import Fact, check_provable, explain
from focusflow.query.sources import BASE_COLUMNS, BASE_SCHEMAS, Source, load
from focusflow.query.sqlgen import Compiler, create_table, data_columns, quote
from focusflow.query.symbols import QuerySymbols
from focusflow.query.syntax import (
    Aggregate,
    Atom,
    Compare,
    Const,
    Literal,
    Program,
    Rule,
    Var,
)

if TYPE_CHECKING:
    import duckdb

ENGINES = ("auto", "duckdb", "indexed")


@dataclass
class Answer:
    """An output relation: its rows (symbols decoded) and where they came from."""

    relation: str
    columns: list[str]
    types: Schema
    rows: list[list[Any]]
    total: int
    height: int | None = None
    state_root: str | None = None
    elapsed_s: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)
    # With ``prove``: per row, the base facts of one derivation, as
    # ``(relation, values)`` spelled out and as the source's raw ids.
    facts: list[list[tuple[str, list[Any]]]] | None = None
    raw_facts: list[list[Fact]] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "relation": self.relation,
            "columns": self.columns,
            "rows": self.rows,
            "total": self.total,
        }
        if self.height is not None:
            out["height"] = self.height
            out["state_root"] = self.state_root
        return out


class BuiltinSchemas:
    """Built-in relation schemas as the analyser asks for them."""

    def __init__(self, source: Source) -> None:
        self.source = source

    def __call__(self, name: str) -> Schema | None:
        op = OPERATORS.get(name)
        if op is not None:
            return op.schema
        return self.source.schema(name)

    def names(self) -> list[str]:
        return list(BASE_SCHEMAS) + list(OPERATORS)


def _bound_of(rule: Rule, atom: Atom) -> float | None:
    """The tightest constant bound a rule puts on an operator's third column."""
    target = atom.args[2]
    if isinstance(target, Const) and not isinstance(target.value, str):
        return float(target.value)
    if not isinstance(target, Var):
        return None
    best: float | None = None
    flip = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "=", "!=": "!="}
    for lit in rule.body:
        if not isinstance(lit, Compare):
            continue
        op, left, right = lit.op, lit.left, lit.right
        if isinstance(right, Var) and right.name == target.name:
            op, left, right = flip[op], right, left
        if not (isinstance(left, Var) and left.name == target.name):
            continue
        if not isinstance(right, Const) or isinstance(right.value, str):
            continue
        value = float(right.value)
        if op in ("<=", "="):
            limit = value
        elif op == "<":
            limit = np.nextafter(value, -np.inf) if atom.name != "khop" else np.ceil(value) - 1
        else:
            continue
        best = limit if best is None else min(best, limit)
    return best


class Evaluation:
    """One query's evaluation on one cursor."""

    def __init__(
        self, source: Source, analysis: Analysis, limits: Limits, *, rounds: bool = False
    ) -> None:
        self.source = source
        self.analysis = analysis
        self.limits = limits
        self.symbols = QuerySymbols(source.symbols)
        self.compiler = Compiler(analysis.types, self.symbols)
        self.cursor = source.connection().cursor()
        self.budget = Budget(limits)
        self.derived: dict[str, str] = {}
        self.ops: dict[int, str] = {}
        self.delta: dict[int, str] = {}
        self.n_temp = 0
        self.stats: dict[str, Any] = {"iterations": 0, "statements": 0}
        # With ``rounds`` every derived fact records the semi-naive round that
        # first derived it, which is what a proof of it walks back along.
        self.rounds = rounds
        self.round = 0

    # --- plumbing ------------------------------------------------------------
    def _sql(self, sql: str) -> duckdb.DuckDBPyConnection:
        self.budget.check_time()
        self.stats["statements"] += 1
        return self.cursor.execute(sql)

    def _count(self, table: str) -> int:
        row = self._sql(f"SELECT count(*) FROM {quote(table)}").fetchone()
        assert row is not None  # an aggregate gives one row
        return int(row[0])

    def _temp(self, prefix: str) -> str:
        self.n_temp += 1
        return f"{prefix}{self.n_temp}"

    def table_of(self, atom: Atom) -> str:
        got = self.delta.get(id(atom)) or self.ops.get(id(atom))
        if got is not None:
            return got
        name = atom.name
        if name in self.derived:
            return self.derived[name]
        op = OPERATORS.get(name)
        if op is not None:
            if op.anchored:
                raise QueryInvalidError(
                    f"line {atom.pos.line}, column {atom.pos.column}: {name} needs its first "
                    "argument bound by a constant or by a positive atom of the same rule"
                )
            return self._global_op(op)
        return self.source.table(name)

    def _global_op(self, op: Operator) -> str:
        return self.source.cached(f"o_{op.name}", op.schema, lambda: op.run(self.source.view()))

    # --- operators -----------------------------------------------------------
    def _anchor(self, rule: Rule, skip: set[str]) -> None:
        """Materialise the anchored operator atoms of ``rule`` as temp tables.

        ``skip`` holds relations the sources may not come from (the rule's own
        recursive component, whose contents are not known yet).
        """
        pending = [
            lit
            for lit in rule.body
            if isinstance(lit, Atom)
            and not lit.negated
            and lit.name in OPERATORS
            and OPERATORS[lit.name].anchored
        ]
        while pending:
            progress = False
            for atom in list(pending):
                sources = self._sources_for(rule, atom, pending, skip)
                if sources is None:
                    continue
                op = OPERATORS[atom.name]
                bound = _bound_of(rule, atom) if atom.name in BOUNDED else None
                cols = anchored_run(op, self.source.view(), sources, bound)
                self.budget.charge(len(cols[0]))
                table = self._temp("o")
                load(self.cursor, table, op.schema, cols, temp=True)
                self.ops[id(atom)] = table
                pending.remove(atom)
                progress = True
            if not progress:
                atom = pending[0]
                raise QueryInvalidError(
                    f"line {atom.pos.line}, column {atom.pos.column}: the first argument of "
                    f"{atom.name} must be a constant or bound by a positive atom of the rule"
                    + (" outside its recursion" if skip else "")
                )

    def _sources_for(
        self, rule: Rule, atom: Atom, pending: list[Atom], skip: set[str]
    ) -> np.ndarray | None:
        first = atom.args[0]
        if isinstance(first, Const):
            if not isinstance(first.value, str):
                return np.empty(0, dtype=np.int64)
            return np.array([self.symbols.id_of(first.value)], dtype=np.int64)
        if not isinstance(first, Var):
            return None
        body, bound = _bindable(
            [
                lit
                for lit in rule.body
                if not any(lit is p for p in pending)
                and not (isinstance(lit, Atom) and lit.name in skip)
            ]
        )
        if first.name not in bound:
            return None
        sql = self.compiler.select((first,), (SYM,), tuple(body), self.table_of)
        got = self._sql(sql).fetchnumpy()
        return np.asarray(got["c0"], dtype=np.int64)

    # --- strata --------------------------------------------------------------
    def run_stratum(self, comp: list[str], persist: str | None = None) -> None:
        """Evaluate one stratum from scratch; ``persist`` names its tables
        ``persist + relation`` as ordinary tables that outlive the cursor."""
        types = self.analysis.types
        for rel in comp:
            table = self._temp("d") if persist is None else persist + rel
            self._sql(create_table(table, types[rel], temp=persist is None, rounds=self.rounds))
            self.derived[rel] = table
        members = set(comp)
        recursive = bool(members & self.analysis.recursive)
        for rel in comp:
            for rule in self.analysis.rules[rel]:
                self._anchor(rule, members if recursive else set())
        if not recursive:
            for rel in comp:
                selects = [self._select(rule) for rule in self.analysis.rules[rel]]
                self._insert(self.derived[rel], selects)
            return
        for rel in comp:
            exits = [
                self._select(r)
                for r in self.analysis.rules[rel]
                if not any(
                    isinstance(lit, Atom) and not lit.negated and lit.name in members
                    for lit in r.body
                )
            ]
            self._insert(self.derived[rel], exits)
        self._propagate(comp, {rel: self.derived[rel] for rel in comp}, None)

    def _select(self, rule: Rule) -> str:
        schema = self.analysis.types[rule.head.name]
        return self.compiler.select(rule.head.args, schema, rule.body, self.table_of)

    def _insert(self, table: str, selects: list[str]) -> int:
        if not selects:
            return 0
        union = " UNION ".join(f"({s})" for s in selects)
        if self.rounds:
            union = f"SELECT *, {self.round} FROM ({union})"
        got = self._sql(f"INSERT INTO {quote(table)} {union}").fetchone()
        n = int(got[0]) if got else self._count(table)
        self.budget.charge(n)
        return n

    def _fresh(self, rel: str, selects: list[str]) -> tuple[str, int]:
        """A temp table of the rows ``selects`` derive for ``rel`` that it lacks,
        added to ``rel`` too; returns the table and its row count."""
        table = self._temp("n")
        self._sql(create_table(table, self.analysis.types[rel]))
        if not selects:
            return table, 0
        union = " UNION ".join(f"({s})" for s in selects)
        cols = data_columns(self.analysis.types[rel])
        got = self._sql(
            f"INSERT INTO {quote(table)} SELECT * FROM ({union}) "
            f"EXCEPT SELECT {cols} FROM {quote(self.derived[rel])}"
        ).fetchone()
        assert got is not None  # an INSERT reports its count in one row
        n = int(got[0])
        if n:
            stamp = f", {self.round}" if self.rounds else ""
            self._sql(f"INSERT INTO {quote(self.derived[rel])} SELECT *{stamp} FROM {quote(table)}")
        return table, n

    def _with_delta(self, rule: Rule, deltas: dict[str, str]) -> list[str]:
        """The rule once per positive atom that has a delta, that atom reading it."""
        out = []
        for lit in rule.body:
            if isinstance(lit, Atom) and not lit.negated and lit.name in deltas:
                self.delta = {id(lit): deltas[lit.name]}
                try:
                    out.append(self._select(rule))
                finally:
                    self.delta = {}
        return out

    def _propagate(
        self, comp: list[str], deltas: dict[str, str], added: dict[str, str] | None
    ) -> None:
        """Semi-naive rounds of a recursive stratum from ``deltas`` until nothing
        is new; rows found are appended to ``added[rel]`` when it is given."""
        members = set(comp)
        first = True
        while True:
            self.stats["iterations"] += 1
            self.round += 1
            fresh: dict[str, str] = {}
            total = 0
            for rel in comp:
                selects = [
                    sql
                    for rule in self.analysis.rules[rel]
                    for sql in self._with_delta(
                        rule, {k: v for k, v in deltas.items() if k in members}
                    )
                ]
                fresh[rel], n = self._fresh(rel, selects)
                total += n
                if n and added is not None:
                    self._sql(f"INSERT INTO {quote(added[rel])} SELECT * FROM {quote(fresh[rel])}")
            self.budget.charge(total)
            if not first:
                for rel in comp:
                    self._sql(f"DROP TABLE {quote(deltas[rel])}")
            first = False
            deltas = fresh
            if total == 0:
                return

    def apply_deltas(self, base: dict[str, str], persist: str) -> dict[str, str]:
        """Extend persisted relations by what ``base``'s new rows derive.

        Valid for monotone programs (no negation, aggregates or operators) over
        relations that only grow: every new fact uses at least one new row, so
        each rule runs once per atom with a delta, then recursion continues
        semi-naively. Returns, per relation, a temp table of its new rows.
        """
        added: dict[str, str] = {}
        deltas = dict(base)
        for comp in self.analysis.strata:
            for rel in comp:
                self.derived[rel] = persist + rel
                added[rel] = self._temp("a")
                self._sql(create_table(added[rel], self.analysis.types[rel]))
            for rel in comp:
                selects = [
                    sql
                    for rule in self.analysis.rules[rel]
                    for sql in self._with_delta(rule, deltas)
                ]
                table, n = self._fresh(rel, selects)
                self.budget.charge(n)
                self._sql(f"INSERT INTO {quote(added[rel])} SELECT * FROM {quote(table)}")
            if set(comp) & self.analysis.recursive:
                self._propagate(comp, {rel: added[rel] for rel in comp}, added)
            deltas.update({rel: added[rel] for rel in comp})
        return added

    # --- the answer ----------------------------------------------------------
    def answer(self, output: str, limit: int | None) -> tuple[list[np.ndarray], int]:
        if output in self.derived:
            table = self.derived[output]
        else:
            op = OPERATORS.get(output)
            if op is not None and op.anchored:
                raise QueryInvalidError(
                    f"{output} needs a source: define a relation with a rule such as "
                    f'r(p, x) :- {output}("<particle>", p, x). and ask for it'
                )
            table = self._global_op(op) if op is not None else self.source.table(output)
        total = self._count(table)
        schema = self.analysis.types[output]
        order = ", ".join(f"c{k}" for k in range(len(schema))) or "1"
        cap = self.limits.max_output if limit is None else min(limit, self.limits.max_output)
        cols = data_columns(schema)
        got = self._sql(f"SELECT {cols} FROM {quote(table)} ORDER BY {order} LIMIT {int(cap)}")
        data = got.fetchnumpy()
        return [np.asarray(data[f"c{k}"]) for k in range(len(schema))], total

    def close(self) -> None:
        import duckdb

        with contextlib.suppress(duckdb.Error):
            self.cursor.close()


def _bindable(body: list[Literal]) -> tuple[list[Literal], set[str]]:
    """The literals usable in a query for an operator's sources, and the
    variables they bind: positive atoms, then comparisons and negations whose
    variables those atoms (or '=' from them) bind. Dropping a filter only
    widens the set of sources."""
    keep: list[Literal] = [lit for lit in body if isinstance(lit, Atom) and not lit.negated]
    bound = {
        a.name for atom in keep if isinstance(atom, Atom) for a in atom.args if isinstance(a, Var)
    }
    rest = [lit for lit in body if lit not in keep and not isinstance(lit, Aggregate)]
    changed = True
    while changed:
        changed = False
        for lit in list(rest):
            target = assigned(lit, bound) if isinstance(lit, Compare) else None
            if target is not None:
                bound.add(target)
            elif not all(v.name in bound for v in literal_vars(lit)):
                continue
            keep.append(lit)
            rest.remove(lit)
            changed = True
    return keep, bound


def column_names(analysis: Analysis, output: str) -> list[str]:
    if output not in analysis.rules:
        op = OPERATORS.get(output)
        return list(op.columns if op is not None else BASE_COLUMNS[output])
    names = []
    head = analysis.rules[output][0].head
    for k, arg in enumerate(head.args):
        name = arg.name if isinstance(arg, Var) else f"c{k}"
        names.append(name if name not in names else f"{name}_{k}")
    return names


def evaluate(  # noqa: C901, PLR0912 - one branch per evaluation option and plan
    program: str | Program,
    source: Source,
    output: str,
    *,
    limit: int | None = None,
    limits: Limits | None = None,
    prove: bool = False,
    engine: str = "auto",
) -> Answer:
    """Evaluate ``program`` over ``source`` and return relation ``output``;
    ``prove`` also finds, per row, the base facts of one derivation of it.

    ``engine``: ``auto`` runs programs that only walk links as index lookups
    (``indexed.py``) and everything else in DuckDB; ``duckdb`` and ``indexed``
    force one (``indexed`` refuses a program it cannot run)."""
    import duckdb  # loaded with the first query, not with every node

    t0 = time.perf_counter()
    limits = limits or Limits()
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise QueryInvalidError(f"limit must be a non-negative integer, got {limit!r}")
    schemas = BuiltinSchemas(source)
    if isinstance(program, str):
        plan = PLANS.plan(program, output, schemas, schemas.names())
    else:
        plan = make_plan(program, output, schemas, schemas.names())
    analysis = plan.analysis
    if prove:
        check_provable(analysis)
    if engine not in ENGINES:
        raise QueryInvalidError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    fits = plan.indexed_eligible if engine == "indexed" else plan.indexed_preferred
    if engine != "duckdb" and not prove and output in analysis.rules and fits:
        index = source.link_adjacency()
        if index is not None:
            return _indexed(source, analysis, output, index, limit, limits, t0)
    if engine == "indexed":
        raise QueryInvalidError("this program needs the DuckDB engine (docs/query.md, Engine)")
    for name in sorted(analysis.base_used):
        if name not in OPERATORS:
            source.table(name)
    run = Evaluation(source, analysis, limits, rounds=prove)
    timer = threading.Timer(limits.timeout_s, run.cursor.interrupt)
    timer.daemon = True
    timer.start()
    try:
        for comp in analysis.strata:
            run.run_stratum(comp)
        cols, total = run.answer(output, limit)
        raw_facts = None
        if prove:
            raw_rows = list(zip(*[c.tolist() for c in cols], strict=True)) if cols else []
            raw_facts = explain(run, output, raw_rows)
    except duckdb.InterruptException:
        raise run.budget.timeout() from None
    except duckdb.OutOfMemoryException as exc:
        raise QueryLimitError(f"the query ran out of its memory bound: {exc}", "memory") from None
    except (duckdb.OutOfRangeException, duckdb.ConversionException) as exc:
        raise QueryInvalidError(f"arithmetic out of range: {exc}") from None
    finally:
        timer.cancel()
        run.close()
    schema = analysis.types[output]
    rows = decode_rows(run.symbols, cols, schema)
    if not schema:
        rows = [[] for _ in range(min(total, 1))]
    stats = dict(run.stats, derived_rows=run.budget.rows)
    facts = None
    if raw_facts is not None:
        facts = [[_spell_fact(run.symbols, source, f) for f in row] for row in raw_facts]
    return Answer(
        output,
        column_names(analysis, output),
        schema,
        rows,
        total,
        source.height,
        source.state_root,
        time.perf_counter() - t0,
        stats,
        facts,
        raw_facts,
    )


def _indexed(
    source: Source,
    analysis: Analysis,
    output: str,
    index: LinkAdjacency,
    limit: int | None,
    limits: Limits,
    t0: float,
) -> Answer:
    symbols = QuerySymbols(source.symbols)
    run = IndexedEvaluation(analysis, index, symbols, limits)
    run.run()
    cols = run.rel[output]
    total = len(cols[0])
    order = np.lexsort(cols[::-1])
    cap = limits.max_output if limit is None else min(limit, limits.max_output)
    picked = [c[order[:cap]] for c in cols]
    schema = analysis.types[output]
    return Answer(
        output,
        column_names(analysis, output),
        schema,
        decode_rows(symbols, picked, schema),
        total,
        source.height,
        source.state_root,
        time.perf_counter() - t0,
        dict(run.stats, derived_rows=run.budget.rows),
    )


def decode_rows(symbols: QuerySymbols, cols: list[np.ndarray], schema: Schema) -> list[list[Any]]:
    """Rows of Python values: symbols spelled, numbers as int or float."""
    decoded = [
        symbols.decode(c) if t == SYM else _plain(c, t) for c, t in zip(cols, schema, strict=True)
    ]
    return [list(r) for r in zip(*decoded, strict=True)] if decoded else []


def _spell_fact(symbols: QuerySymbols, source: Source, fact: Fact) -> tuple[str, list[Any]]:
    rel, values = fact
    schema = source.schema(rel) or ()
    cols = [np.array([v]) for v in values]
    return rel, decode_rows(symbols, cols, schema)[0]


def _plain(col: np.ndarray, t: str) -> list[float] | list[int]:
    if t == FLOAT:
        floats: list[float] = np.asarray(col, dtype=np.float64).tolist()
        return floats
    ints: list[int] = np.asarray(col, dtype=np.int64).tolist()
    return ints
