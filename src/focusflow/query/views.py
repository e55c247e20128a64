"""Views: named programs a node keeps up to date block by block.

A view whose program is monotone (no negation, aggregates or graph
operators) and reads only relations that grow (``particle``, ``link``,
``neuron_link``) is maintained incrementally: its relations live as tables
in one DuckDB next to growing copies of those base relations, and each
block's new rows are pushed through the rules semi-naively
(:meth:`Evaluation.apply_deltas`), so a block costs work in proportion to
what it adds, not to the graph. Any other view (one that reads focus, stakes
or balances, which change in place, or uses negation) is evaluated afresh
at every block it is updated at. Either way reading a view is a table scan.

An integrity view is a rule whose result must stay empty; after each block
the rows it holds are its violations, counted and reported.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Unpack

import numpy as np

from focusflow.chain.focus_view import FocusView
from focusflow.query.analysis import Analysis, analyse
from focusflow.query.engine import (
    Answer,
    BuiltinSchemas,
    Evaluation,
    column_names,
    decode_rows,
    evaluate,
)
from focusflow.query.errors import QueryInvalidError, UnknownViewError
from focusflow.query.limits import Limits
from focusflow.query.node_source import (
    NEURONS,
    ChainReader,
    NodeSource,
    NodeSourceOptions,
    StoreSnapshot,
)
from focusflow.query.operators import OPERATORS
from focusflow.query.sources import load
from focusflow.query.sqlgen import quote
from focusflow.query.symbols import QuerySymbols
from focusflow.query.syntax import Aggregate, Atom, parse

GROWING = frozenset({"particle", "link", "neuron_link"})
VIEW_NAME = re.compile(r"[a-z][a-z0-9_]{0,47}")


def incremental(analysis: Analysis) -> bool:
    """Whether block deltas alone keep this program's answer exact."""
    if not analysis.base_used <= GROWING:
        return False
    for rules in analysis.rules.values():
        for rule in rules:
            for lit in rule.body:
                if isinstance(lit, Aggregate):
                    return False
                if isinstance(lit, Atom) and (lit.negated or lit.name in OPERATORS):
                    return False
    return True


class LiveSource(NodeSource):
    """A NodeSource whose growing relations are extended block by block."""

    def __init__(
        self, view: FocusView, chain: ChainReader, **options: Unpack[NodeSourceOptions]
    ) -> None:
        super().__init__(view, chain, **options)
        self._seen = (view.n_particles, view.n_links)

    def advance(self, view: FocusView, snapshot: StoreSnapshot | None = None) -> dict[str, str]:
        """Move to ``view`` (``snapshot``: the store at its height, if taken);
        returns tables of the new rows of each growing relation."""
        old_p, old_l = self._seen
        self.fview = view
        self.height = view.height
        self._p, self._n = view.n_particles, view.n_neurons
        self._view = None
        self._link_adjacency = None
        self._seen = (view.n_particles, view.n_links)
        self.state_root = self.state_root_at(view.height)
        con = self.connection()
        with self._lock:
            self.hold(snapshot)
            for key in [k for k in self._tables if not k.startswith("b_") or k[2:] not in GROWING]:
                con.execute(f"DROP TABLE IF EXISTS {quote(key)}")
                del self._tables[key]
            src = view.src[old_l:].astype(np.int64)
            dst = view.dst[old_l:].astype(np.int64)
            neuron = view.neuron[old_l:].astype(np.int64)
            named = neuron >= 0
            fresh = {
                "particle": [np.arange(old_p, view.n_particles, dtype=np.int64)],
                "link": [src, dst],
                "neuron_link": [neuron[named] + NEURONS, src[named], dst[named]],
            }
            out: dict[str, str] = {}
            for name, cols in fresh.items():
                table = f"b_{name}"
                if table not in self._tables:
                    continue
                delta = f"delta_{name}"
                staged = f"staged_{name}"
                con.execute(f"DROP TABLE IF EXISTS {quote(delta)}")
                con.execute(f"DROP TABLE IF EXISTS {quote(staged)}")
                # A base relation's schema: never None.
                load(con, staged, self.schema(name), cols, temp=False)  # type: ignore[arg-type]
                con.execute(
                    f"CREATE TABLE {quote(delta)} AS SELECT DISTINCT * FROM {quote(staged)} "
                    f"EXCEPT SELECT * FROM {quote(table)}"
                )
                con.execute(f"DROP TABLE {quote(staged)}")
                con.execute(f"INSERT INTO {quote(table)} SELECT * FROM {quote(delta)}")
                out[name] = delta
            return out


@dataclass
class MaintainedView:
    """One registered view and what the last update left."""

    name: str
    program: str
    output: str
    integrity: bool
    incremental: bool
    height: int = 0
    rows: int = 0
    violations: int = 0
    update_ms: float = 0.0
    error: str | None = None
    columns: list[str] = field(default_factory=list)
    answer: Answer | None = None
    analysis: Analysis | None = field(default=None, repr=False)

    def status(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name,
            "output": self.output,
            "integrity": self.integrity,
            "maintenance": "incremental" if self.incremental else "recompute",
            "height": self.height,
            "rows": self.rows,
            "update_ms": round(self.update_ms, 3),
            "error": self.error,
        }
        if self.integrity:
            doc["violations"] = self.violations
        return doc


class ViewSet:
    """The views of one node over one :class:`LiveSource`, updated in block order."""

    def __init__(self, live: LiveSource, limits: Limits | None = None) -> None:
        self.live = live
        self.limits = limits or Limits(timeout_s=30.0)
        self.views: dict[str, MaintainedView] = {}

    def register(
        self, name: str, program: str, output: str, *, integrity: bool = False
    ) -> MaintainedView:
        if not isinstance(name, str) or not VIEW_NAME.fullmatch(name):
            raise QueryInvalidError(
                "a view name is 1 to 48 characters: a lowercase letter, then a-z, 0-9 or _"
            )
        if name in self.views:
            raise QueryInvalidError(f"a view named {name} exists; drop it first")
        schemas = BuiltinSchemas(self.live)
        analysis = analyse(parse(program), output, schemas, schemas.names())
        view = MaintainedView(name, program, output, integrity, incremental(analysis))
        view.analysis = analysis
        view.columns = column_names(analysis, output)
        self._full(view, None)
        self.views[name] = view
        return view

    def drop(self, name: str) -> None:
        view = self.views.pop(name, None)
        if view is None:
            raise UnknownViewError(f"no view named {name}")
        if view.incremental and view.analysis is not None:
            con = self.live.connection()
            for rel in view.analysis.types:
                if rel in view.analysis.rules:
                    con.execute(f"DROP TABLE IF EXISTS {quote(_prefix(name) + rel)}")

    def _full(self, view: MaintainedView, source: NodeSource | None) -> None:
        t0 = time.perf_counter()
        if view.incremental:
            analysis = view.analysis
            assert analysis is not None
            for name in analysis.base_used:
                self.live.table(name)
            run = Evaluation(self.live, analysis, self.limits)
            try:
                for comp in analysis.strata:
                    run.run_stratum(comp, persist=_prefix(view.name))
            finally:
                run.close()
            view.rows = self._count(view)
        else:
            view.answer = evaluate(
                view.program, source or self.live, view.output, limits=self.limits
            )
            view.rows = view.answer.total
        view.height = self.live.height or 0
        view.violations = view.rows if view.integrity else 0
        view.update_ms = (time.perf_counter() - t0) * 1e3

    def _count(self, view: MaintainedView) -> int:
        table = _prefix(view.name) + view.output
        cur = self.live.connection().cursor()
        try:
            row = cur.execute(f"SELECT count(*) FROM {quote(table)}").fetchone()
            assert row is not None  # an aggregate gives one row
            return int(row[0])
        finally:
            cur.close()

    def advance(
        self, fview: FocusView, snapshot: StoreSnapshot | None = None
    ) -> dict[str, list[list[Any]]]:
        """Bring every view to block ``fview`` (``snapshot``: the store at its
        height, if taken); returns each view's added rows."""
        deltas = self.live.advance(fview, snapshot)
        added: dict[str, list[list[Any]]] = {}
        fresh_source: NodeSource | None = None
        for view in list(self.views.values()):
            t0 = time.perf_counter()
            try:
                if view.incremental:
                    added[view.name] = self._apply(view, deltas)
                else:
                    if fresh_source is None:
                        fresh_source = NodeSource(
                            fview,
                            self.live.chain,
                            head_relations=self.live.head_relations,
                            snapshot=snapshot,
                            texts=self.live.texts,
                        )
                    before = view.answer
                    self._full(view, fresh_source)
                    added[view.name] = _added(before, view.answer)
                view.error = None
            except Exception as exc:  # noqa: BLE001 - a failing view must not stop the others
                view.error = f"{type(exc).__name__}: {exc}"
            view.height = fview.height
            view.violations = view.rows if view.integrity else 0
            view.update_ms = (time.perf_counter() - t0) * 1e3
        if fresh_source is not None:
            fresh_source.close()
        return added

    def _apply(self, view: MaintainedView, deltas: dict[str, str]) -> list[list[Any]]:
        analysis = view.analysis
        assert analysis is not None
        run = Evaluation(self.live, analysis, self.limits)
        try:
            added = run.apply_deltas(deltas, _prefix(view.name))
            table = added[view.output]
            schema = analysis.types[view.output]
            data = run.cursor.execute(f"SELECT * FROM {quote(table)}").fetchnumpy()
            cols = [np.asarray(data[f"c{k}"]) for k in range(len(schema))]
            rows = decode_rows(run.symbols, cols, schema)
        finally:
            run.close()
        view.rows = self._count(view)
        return rows

    def read(self, name: str, limit: int | None = None) -> Answer:
        view = self.views.get(name)
        if view is None:
            raise UnknownViewError(f"no view named {name}")
        if not view.incremental:
            assert view.answer is not None
            rows = view.answer.rows if limit is None else view.answer.rows[:limit]
            return Answer(
                view.output,
                view.columns,
                view.answer.types,
                rows,
                view.answer.total,
                view.height,
                view.answer.state_root,
            )
        assert view.analysis is not None
        return read_table(self.live, view.analysis, view, limit)


def read_table(
    live: LiveSource, analysis: Analysis, view: MaintainedView, limit: int | None
) -> Answer:
    schema = analysis.types[view.output]
    table = _prefix(view.name) + view.output
    order = ", ".join(f"c{k}" for k in range(len(schema))) or "1"
    cap = "" if limit is None else f" LIMIT {int(limit)}"
    cur = live.connection().cursor()
    try:
        data = cur.execute(f"SELECT * FROM {quote(table)} ORDER BY {order}{cap}").fetchnumpy()
    finally:
        cur.close()
    cols = [np.asarray(data[f"c{k}"]) for k in range(len(schema))]
    rows = decode_rows(QuerySymbols(live.symbols), cols, schema)
    return Answer(view.output, view.columns, schema, rows, view.rows, view.height, live.state_root)


def _prefix(name: str) -> str:
    return f"view_{name}__"


def _added(before: Answer | None, after: Answer | None) -> list[list[Any]]:
    if after is None:
        return []
    old = {tuple(r) for r in before.rows} if before is not None else set()
    return [r for r in after.rows if tuple(r) not in old]
