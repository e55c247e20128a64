"""Index-driven evaluation for link-walking programs, in numpy over the CSR.

DuckDB's floor is about a millisecond a statement (a hash-join pipeline is set
up however small its input), which is all of the cost of the queries users ask
most: a neighbourhood of one particle, a closure from one source. Those
programs only walk links, and the source already holds the link graph as
compressed rows both ways. Here a rule runs as index lookups: bindings are
columns of integers, a ``link`` atom with one end bound expands through the
out- or in-CSR (cost: the links it touches), with both ends bound it is a
membership test on sorted pair keys, and variables no later literal needs
are projected away with duplicates after every step, so a three-hop walk
from a hub costs its frontier, not its paths. Recursion is semi-naive over
the same steps.

Aggregates (``count``, and ``sum``/``min``/``max`` of a variable) run per
distinct binding of their shared variables: the group's rows start a join of
the aggregate's body with nothing made distinct (a correlated subquery's
instances, as DuckDB counts them), then one ``bincount`` or sort per
aggregate.

The planner (:func:`eligible`) accepts positive programs over ``link`` and
``particle`` whose rules have at most one derived atom each, compare
variables and constants with ``=`` and ``!=`` only and aggregate such bodies,
and (:func:`preferred`) picks them when every relation starts from named
particles or counts over one relation per binding of another (the degree
histogram); everything else (a closure of the whole graph, a join of two
unanchored atoms: bulk work), and every proving or incremental view
evaluation, goes to DuckDB. The two must agree: tests/query run the language
tests through both, and the aggregates against both and plain Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from focusflow.query.analysis import Analysis, aggregate_shared, outside_names
from focusflow.query.errors import QueryInvalidError
from focusflow.query.limits import Budget, Limits
from focusflow.query.symbols import QuerySymbols
from focusflow.query.syntax import Aggregate, Atom, Compare, Const, Expr, Rule, Var, Wildcard

INDEXED_BASE = frozenset({"link", "particle"})


def eligible(analysis: Analysis) -> bool:
    """Whether every rule of the plan can run as index lookups."""
    if not analysis.base_used <= INDEXED_BASE:
        return False
    for name in analysis.rules:
        if any(t == "float" for t in analysis.types.get(name, ())):
            return False
    return all(
        _rule_eligible(rule, analysis) for rules in analysis.rules.values() for rule in rules
    )


def _rule_eligible(rule: Rule, analysis: Analysis) -> bool:
    """A rule runs as index lookups: a head of variables and symbols, a body of
    positive atoms over the indexed base (at most one derived relation),
    (in)equalities of variables and symbols, and aggregates of such bodies,
    all connected."""
    if not rule.head.args or not all(_symbolic(a) for a in rule.head.args):
        return False
    if not all(_literal_eligible(lit, analysis) for lit in rule.body):
        return False
    derived = sum(1 for lit in rule.body if isinstance(lit, Atom) and lit.name in analysis.rules)
    if derived > 1 or not _connected(rule, analysis):
        return False
    outside = outside_names(rule.body, rule.head.args)
    return all(
        _atoms_connected(
            [a for a in lit.body if isinstance(a, Atom)], set(aggregate_shared(lit, outside))
        )
        for lit in rule.body
        if isinstance(lit, Aggregate)
    )


def _literal_eligible(lit: object, analysis: Analysis, inner: bool = False) -> bool:
    """A body literal an index lookup can evaluate; ``inner``: in an aggregate."""
    if isinstance(lit, Atom):
        if lit.negated:
            return False
        if lit.name not in analysis.rules and lit.name not in INDEXED_BASE:
            return False
        return all(_symbolic(a) or isinstance(a, Wildcard) for a in lit.args)
    if isinstance(lit, Compare):
        return lit.op in ("=", "!=") and all(_symbolic(s) for s in (lit.left, lit.right))
    if isinstance(lit, Aggregate) and not inner:
        # sum/min/max of a variable: its values are symbols (a type error the
        # analysis reports) or integers of derived relations, never floats here.
        if lit.func != "count" and not isinstance(lit.expr, Var):
            return False
        return all(_literal_eligible(sub, analysis, inner=True) for sub in lit.body)
    return False


def preferred(analysis: Analysis) -> bool:
    """Eligible, and every relation anchored or counted in one scan: where index
    lookups beat DuckDB's bulk joins (and its millisecond a statement)."""
    if not eligible(analysis):
        return False
    anchored = _anchored(analysis)
    return all(
        anchored[name] or (name not in analysis.recursive and all(_counting_scan(r) for r in rules))
        for name, rules in analysis.rules.items()
    )


def _counting_scan(rule: Rule) -> bool:
    """A rule that aggregates over one relation per binding of another, each
    read once: ``deg(x, c) :- particle(x), c = count : { link(x, _) }.`` costs
    a pass over each relation here, while a join of two unanchored atoms can
    build every path through a hub, which DuckDB does better."""
    aggregates = [lit for lit in rule.body if isinstance(lit, Aggregate)]
    atoms = [lit for lit in rule.body if isinstance(lit, Atom)]
    return (
        bool(aggregates)
        and len(atoms) <= 1
        and all(sum(isinstance(x, Atom) for x in agg.body) <= 1 for agg in aggregates)
    )


def _anchored(analysis: Analysis) -> dict[str, bool]:
    """Which relations start from named particles: every rule has a constant or
    reads an anchored relation (greatest fixpoint). Index lookups win when the
    frontier is small; a closure of the whole graph is bulk work for DuckDB."""
    anchored = {name: True for name in analysis.rules}
    changed = True
    while changed:
        changed = False
        for name, rules in analysis.rules.items():
            if not anchored[name]:
                continue
            for rule in rules:
                has_const = any(
                    isinstance(t, Const)
                    for lit in rule.body
                    for t in (
                        lit.args
                        if isinstance(lit, Atom)
                        else (lit.left, lit.right)
                        if isinstance(lit, Compare)
                        else ()  # an aggregate's constants filter, they start nothing
                    )
                )
                reads = any(
                    isinstance(lit, Atom) and anchored.get(lit.name, False) for lit in rule.body
                )
                if not (has_const or reads):
                    anchored[name] = False
                    changed = True
                    break
    return anchored


def _symbolic(term: Expr) -> bool:
    """A variable or a string constant: every column here holds symbols."""
    return isinstance(term, Var) or (isinstance(term, Const) and isinstance(term.value, str))


def _connected(rule: Rule, analysis: Analysis) -> bool:
    """Atoms reachable from a start through shared variables (no cross products)."""
    atoms = [lit for lit in rule.body if isinstance(lit, Atom)]
    if not atoms:
        return True
    return _atoms_connected(atoms[1:], {v.name for v in atoms[0].args if isinstance(v, Var)})


def _atoms_connected(atoms: list[Atom], seen: set[str]) -> bool:
    """Whether every atom is reached from the variables ``seen`` through shared
    variables (an atom without variables is a test, reached by any); with no
    variables seen, the first atom starts."""
    seen = set(seen)
    if not seen and atoms:
        seen = {v.name for v in atoms[0].args if isinstance(v, Var)}
        atoms = atoms[1:]
    left = list(atoms)
    grew = True
    while left and grew:
        grew = False
        for atom in list(left):
            names = {v.name for v in atom.args if isinstance(v, Var)}
            if names & seen or not names:
                seen |= names
                left.remove(atom)
                grew = True
    return not left


@dataclass
class LinkAdjacency:
    """Out- and in-CSR and sorted pair keys of the distinct links.

    What the indexed evaluation walks: each (source, target) pair once,
    neighbours by particle, membership by pair key. Not the node's link index
    (``graph.link_index.LinkIndex``), which finds the ids of every link (one
    per neuron and message) of a particle and grows block by block; this one
    is built once from a snapshot's CSR."""

    n: int
    out_ptr: np.ndarray
    out_idx: np.ndarray
    in_ptr: np.ndarray
    in_idx: np.ndarray
    keys: np.ndarray

    @classmethod
    def of(cls, n: int, indptr: np.ndarray, indices: np.ndarray) -> LinkAdjacency:
        src = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
        dst = np.asarray(indices, dtype=np.int64)
        order = np.argsort(dst, kind="stable")
        in_ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(dst, minlength=n), out=in_ptr[1:])
        keys = src * n + dst  # rows ascending, columns ascending within: already sorted
        return cls(n, np.asarray(indptr, np.int64), dst, in_ptr, src[order], keys)


def _expand(
    ptr: np.ndarray, idx: np.ndarray, n: int, at: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each ``at[i]``, its neighbours: ``(row of at, neighbour)``."""
    if len(at) == 1:  # one particle (a named one): its neighbours are one slice
        one = int(at[0])
        if not 0 <= one < n:
            return _EMPTY, _EMPTY
        lo, hi = int(ptr[one]), int(ptr[one + 1])
        return np.zeros(hi - lo, dtype=np.int64), idx[lo:hi]
    inside = (at >= 0) & (at < n)
    rows = np.flatnonzero(inside)
    a = at[rows]
    lo, hi = ptr[a], ptr[a + 1]
    cnt = hi - lo
    total = int(cnt.sum())
    rep = np.repeat(rows, cnt)
    offsets = np.repeat(lo - np.cumsum(cnt) + cnt, cnt) + np.arange(total, dtype=np.int64)
    return rep, idx[offsets]


_PAIR = 1 << 31
_SMALL_N = 1 << 16
_EMPTY = np.empty(0, dtype=np.int64)
_EMPTY.flags.writeable = False  # shared: every empty result may be this one


def _pair_keys(cols: list[np.ndarray]) -> np.ndarray | None:
    """One sortable int64 per row of two columns of small ids, else None."""
    if len(cols) != 2 or not len(cols[0]):
        return None
    a, b = cols
    if a.min() < 0 or b.min() < 0 or a.max() >= _PAIR or b.max() >= _PAIR:
        return None
    keys: np.ndarray = (a << 32) | b
    return keys


def _bitmap_ok(values: np.ndarray, n: int) -> bool:
    """Whether a mark array of ``n`` flags beats sorting ``values`` (ids in range,
    and enough of them that touching ``n`` flags is cheap)."""
    return n > 0 and len(values) * 16 >= n and int(values.min()) >= 0 and int(values.max()) < n


def _unique_ids(values: np.ndarray, n: int) -> np.ndarray:
    """Distinct ids, ascending: marking flags is linear, sorting is not."""
    if len(values) < 2:
        return values
    if _bitmap_ok(values, n):
        mark = np.zeros(n, dtype=bool)
        mark[values] = True
        return np.flatnonzero(mark)
    ordered = np.sort(values)
    first = np.empty(len(ordered), dtype=bool)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    return ordered[first]


def _unique_rows(cols: list[np.ndarray], n: int = 0) -> list[np.ndarray]:
    if not cols or len(cols[0]) < 2:
        return cols
    if len(cols) == 1:
        return [_unique_ids(cols[0], n)]
    keys = _pair_keys(cols)
    if keys is not None:
        u = np.unique(keys)
        return [u >> 32, u & (_PAIR * 2 - 1)]
    table = np.unique(np.stack(cols, 1), axis=0)
    return [table[:, k].copy() for k in range(len(cols))]


class _Bindings:
    """Columns of integers, one per bound variable, of equal length."""

    def __init__(self, cols: dict[str, np.ndarray], length: int, n: int = 0) -> None:
        self.cols = cols
        self.length = length
        self.n = n

    def take(self, rows: np.ndarray) -> _Bindings:
        return _Bindings({k: v[rows] for k, v in self.cols.items()}, len(rows), self.n)

    def keep(self, names: AbstractSet[str]) -> _Bindings:
        kept = {k: v for k, v in self.cols.items() if k in names}
        if not kept:
            return _Bindings({}, min(self.length, 1), self.n)
        if self.length < 2:  # one row or none: distinct already
            return _Bindings(kept, self.length, self.n)
        order = sorted(kept)
        uniq = _unique_rows([kept[k] for k in order], self.n)
        return _Bindings(dict(zip(order, uniq, strict=True)), len(uniq[0]), self.n)


def _vars(atom: Atom) -> set[str]:
    return {v.name for v in atom.args if isinstance(v, Var)}


@dataclass(frozen=True)
class _Steps:
    """How one rule runs, fixed by its text: the derived atom it starts from,
    then each base atom to join with the variables to keep after it (those a
    later literal or the head needs), its comparisons and its aggregates
    (each with its shared variables)."""

    first: Atom | None
    joins: tuple[tuple[Atom, frozenset[str]], ...]
    compares: tuple[Compare, ...]
    aggregates: tuple[tuple[Aggregate, tuple[str, ...]], ...]
    need: frozenset[str]

    @classmethod
    def of(cls, rule: Rule, analysis: Analysis) -> _Steps:
        atoms = [lit for lit in rule.body if isinstance(lit, Atom)]
        compares = tuple(lit for lit in rule.body if isinstance(lit, Compare))
        outside = outside_names(rule.body, rule.head.args)
        aggregates = tuple(
            (lit, tuple(aggregate_shared(lit, outside)))
            for lit in rule.body
            if isinstance(lit, Aggregate)
        )
        need = {v.name for v in rule.head.args if isinstance(v, Var)}
        for c in compares:
            need |= {s.name for s in (c.left, c.right) if isinstance(s, Var)}
        for _, shared in aggregates:
            need |= set(shared)
        first = next((a for a in atoms if a.name in analysis.rules), None)
        pending = [a for a in atoms if a is not first]
        bound = _bind_pass(_vars(first) if first is not None else set(), compares)
        joins = []
        while pending:
            nxt = next(
                (a for a in pending if _vars(a) & bound),
                max(pending, key=lambda a: sum(isinstance(x, Const) for x in a.args)),
            )
            pending.remove(nxt)
            later = set(need)
            for atom in pending:
                later |= _vars(atom)
            bound = _bind_pass(bound | _vars(nxt), compares) & later
            joins.append((nxt, frozenset(later)))
        return cls(first, tuple(joins), compares, aggregates, frozenset(need))


def _bind_pass(bound: set[str], compares: tuple[Compare, ...]) -> set[str]:
    """The variables bound after one pass of ``_filters``: ``x = <constant or
    bound>`` binds ``x``."""
    bound = set(bound)
    for c in compares:
        if c.op != "=":
            continue
        for side, other in ((c.left, c.right), (c.right, c.left)):
            known = isinstance(other, Const) or (isinstance(other, Var) and other.name in bound)
            if isinstance(side, Var) and side.name not in bound and known:
                bound.add(side.name)
    return bound


class IndexedEvaluation:
    """Evaluates an eligible plan; relations are tuples of int64 columns."""

    def __init__(
        self, analysis: Analysis, index: LinkAdjacency, symbols: QuerySymbols, limits: Limits
    ) -> None:
        self.analysis = analysis
        self.index = index
        self.symbols = symbols
        self.limits = limits
        self.budget = Budget(limits)
        self.rel: dict[str, list[np.ndarray]] = {}
        self.stats: dict[str, Any] = {"iterations": 0, "statements": 0, "engine": "indexed"}

    def _value(self, term: Expr) -> int | None:
        return self._id(term) if isinstance(term, Const) else None

    def _id(self, const: Const) -> int:
        """The symbol id of a constant (eligible(): every constant is a symbol)."""
        assert isinstance(const.value, str)
        return self.symbols.id_of(const.value)

    def rule(self, rule: Rule, derived_rows: dict[str, list[np.ndarray]]) -> list[np.ndarray]:
        """The head rows one rule derives, reading derived atoms from ``derived_rows``."""
        steps = self._steps(rule)
        n = self.index.n
        b = _Bindings({}, 1, n)
        if steps.first is not None:
            b = self._start(steps.first, derived_rows)
        compares = steps.compares
        if compares:
            b = self._filters(b, compares)
        for atom, need in steps.joins:
            b = self._join(b, atom)
            if compares:
                b = self._filters(b, compares)
            b = b.keep(need)
        if steps.aggregates:
            # an aggregate is a function of its shared variables: one row per
            # distinct binding of what is left to use is all it needs to see
            b = b.keep(steps.need)
            b = self._aggregates(b, steps, derived_rows)
        head = []
        for arg in rule.head.args:
            if isinstance(arg, Var):
                head.append(b.cols[arg.name])
            else:
                assert isinstance(arg, Const)  # eligible(): head arguments are symbolic
                head.append(np.full(b.length, self._id(arg), dtype=np.int64))
        return _unique_rows(head, n)

    def _steps(self, rule: Rule) -> _Steps:
        """The rule's join order and projections, made once per kept plan."""
        key = ("indexed-steps", id(rule))
        got = self.analysis.memo.get(key)
        if got is None:
            got = self.analysis.memo[key] = _Steps.of(rule, self.analysis)
        assert isinstance(got, _Steps)
        return got

    @staticmethod
    def _next_atom(pending: list[Atom], b: _Bindings) -> Atom:
        """An atom sharing a bound variable, else the one with most constants."""
        bound = b.cols
        for atom in pending:
            if any(isinstance(v, Var) and v.name in bound for v in atom.args):
                return atom
        return max(pending, key=lambda a: sum(isinstance(x, Const) for x in a.args))

    # --- aggregates ------------------------------------------------------------
    def _aggregates(
        self, b: _Bindings, steps: _Steps, derived_rows: dict[str, list[np.ndarray]]
    ) -> _Bindings:
        """Bind each aggregate's target once its shared variables are bound (an
        ``=`` may bind one only after another aggregate), filtering as they come."""
        left = list(steps.aggregates)
        while left:
            ready = [(agg, shared) for agg, shared in left if all(v in b.cols for v in shared)]
            assert ready, "the analysis orders every aggregate after its shared variables"
            for agg, shared in ready:
                b = self._aggregate(b, agg, shared, derived_rows)
                b = self._filters(b, steps.compares)
            left = [item for item in left if item not in ready]
        return b

    def _aggregate(
        self,
        b: _Bindings,
        agg: Aggregate,
        shared: Sequence[str],
        derived_rows: dict[str, list[np.ndarray]],
    ) -> _Bindings:
        """``target = func expr : { body }`` per binding of the shared variables.

        As DuckDB's correlated subquery does: the body's instances are the rows
        of the join of its atoms (a multiset over all its columns, wildcards
        too, no duplicates removed), ``count`` counts them, ``sum`` adds the
        expression over them, both 0 when there are none; ``min``/``max`` of
        none drop the binding."""
        groups, inverse = _groups([b.cols[v] for v in shared], b.length, self.index.n)
        k = len(groups[0]) if shared else int(b.length > 0)
        inner = _Bindings(dict(zip(shared, groups, strict=True)), k, self.index.n)
        degree = self._degree(agg, inner)
        if degree is not None:
            self.budget.charge(k)
            out = b
            out.cols[agg.target.name] = degree[inverse]
            return out
        inner.cols[_GROUP] = np.arange(k, dtype=np.int64)
        atoms = [lit for lit in agg.body if isinstance(lit, Atom)]
        compares = [lit for lit in agg.body if isinstance(lit, Compare)]
        inner = self._filters(inner, compares)
        while atoms:
            nxt = self._next_atom(atoms, inner)
            atoms.remove(nxt)
            if nxt.name in self.analysis.rules:
                inner = self._join_derived(inner, nxt, derived_rows[nxt.name])
            else:
                inner = self._join(inner, nxt, multiset=True)
            inner = self._filters(inner, compares)
        self.budget.charge(inner.length)
        group = inner.cols[_GROUP]
        if agg.func == "count":
            value = np.bincount(group, minlength=k).astype(np.int64)
            found = None
        else:
            assert isinstance(agg.expr, Var)  # eligible(): a variable's values
            values = inner.cols[agg.expr.name]
            if agg.func == "sum":
                value, found = _group_sum(group, values, k), None
            else:
                value, found = _group_extreme(group, values, k, agg.func)
        out = b
        if found is not None:
            keep = found[inverse]
            if not keep.all():
                rows = np.flatnonzero(keep)
                out, inverse = b.take(rows), inverse[rows]
        out.cols[agg.target.name] = value[inverse]
        return out

    def _degree(self, agg: Aggregate, groups: _Bindings) -> np.ndarray | None:
        """``count : { link(x, _) }`` (or ``link(_, x)``, or a variable of its
        own for ``_``) per group: the degree of each ``x``, read off the CSR's
        row pointers without listing the links; None for any other aggregate."""
        if agg.func != "count" or len(agg.body) != 1:
            return None
        (atom,) = agg.body
        if not isinstance(atom, Atom) or atom.name != "link":
            return None
        ix = self.index
        a, c = atom.args
        for end, other, ptr in ((a, c, ix.out_ptr), (c, a, ix.in_ptr)):
            free = isinstance(other, Wildcard) or (
                isinstance(other, Var) and other.name not in groups.cols
            )
            if isinstance(end, Var) and end.name in groups.cols and free:
                at = groups.cols[end.name]
                inside = (at >= 0) & (at < ix.n)
                degree = np.zeros(len(at), dtype=np.int64)
                ok = at[inside]
                degree[inside] = ptr[ok + 1] - ptr[ok]
                return degree
        return None

    def _join_derived(self, b: _Bindings, atom: Atom, cols: list[np.ndarray]) -> _Bindings:
        """Every row of a derived relation matching each binding (an equi-join
        on the bound columns, all matches kept)."""
        length = len(cols[0]) if cols else 0
        mask = np.ones(length, dtype=bool)
        first: dict[str, int] = {}
        for k, arg in enumerate(atom.args):
            if isinstance(arg, Const):
                mask &= cols[k] == self._value(arg)
            elif isinstance(arg, Var) and arg.name not in b.cols:
                if arg.name in first:
                    mask &= cols[first[arg.name]] == cols[k]
                else:
                    first[arg.name] = k
        if not mask.all():
            at = np.flatnonzero(mask)
            cols = [c[at] for c in cols]
            length = len(at)
        on = [
            (k, arg.name)
            for k, arg in enumerate(atom.args)
            if isinstance(arg, Var) and arg.name in b.cols
        ]
        if not on:
            rows = np.repeat(np.arange(b.length), length)
            picked = np.tile(np.arange(length), b.length)
        else:
            left, right = _join_keys([b.cols[v] for _, v in on], [cols[k] for k, _ in on])
            rows, picked = _equi_join(left, right)
        self.budget.charge(len(rows))
        out = b.take(rows)
        for name, k in first.items():
            out.cols[name] = cols[k][picked]
        return out

    def _start(self, atom: Atom, derived_rows: dict[str, list[np.ndarray]]) -> _Bindings:
        """Bindings from the rows of a derived atom (the delta in a recursive round)."""
        cols = derived_rows[atom.name]
        length = len(cols[0]) if cols else 0
        b = _Bindings({}, length, self.index.n)
        mask: np.ndarray | None = None
        for k, arg in enumerate(atom.args):
            test = None
            if isinstance(arg, Const):
                test = cols[k] == self._value(arg)
            elif isinstance(arg, Var):
                if arg.name in b.cols:
                    test = b.cols[arg.name] == cols[k]
                else:
                    b.cols[arg.name] = cols[k]
            if test is not None:
                mask = test if mask is None else mask & test
        return b if mask is None or mask.all() else b.take(np.flatnonzero(mask))

    def _join(self, b: _Bindings, atom: Atom, multiset: bool = False) -> _Bindings:
        """``b`` joined with a base atom; ``multiset`` keeps one row per matching
        fact where a wildcard would otherwise only test that one exists (an
        aggregate counts them)."""
        if atom.name == "particle":
            return self._join_particle(b, atom.args[0], multiset)
        ix = self.index
        a, c = atom.args
        known: dict[int, np.ndarray] = {}
        for pos, arg in ((0, a), (1, c)):
            if isinstance(arg, Const):
                known[pos] = np.full(b.length, self._value(arg), dtype=np.int64)
            elif isinstance(arg, Var) and arg.name in b.cols:
                known[pos] = b.cols[arg.name]
        if 0 in known and 1 in known:
            s, t = known[0], known[1]
            ok = (s >= 0) & (s < ix.n) & (t >= 0) & (t < ix.n)
            key = np.where(ok, s * ix.n + t, -1)
            at = np.searchsorted(ix.keys, key)
            hit = ok & (at < len(ix.keys))
            hit[hit] = ix.keys[at[hit]] == key[hit]
            return b.take(np.flatnonzero(hit))
        if 0 in known:
            rows, other = _expand(ix.out_ptr, ix.out_idx, ix.n, known[0])
            out_var = c
        elif 1 in known:
            rows, other = _expand(ix.in_ptr, ix.in_idx, ix.n, known[1])
            out_var = a
        else:
            # neither end bound: every link, crossed with the bindings (a start atom)
            src = np.repeat(np.arange(ix.n, dtype=np.int64), np.diff(ix.out_ptr))
            self.budget.charge(b.length * len(src))
            rows = np.repeat(np.arange(b.length), len(src))
            out = b.take(rows)
            if isinstance(a, Var):
                out.cols[a.name] = np.tile(src, b.length)
            if isinstance(c, Var):
                if isinstance(a, Var) and c.name == a.name:
                    keep = np.flatnonzero(out.cols[a.name] == np.tile(ix.out_idx, b.length))
                    return out.take(keep)
                out.cols[c.name] = np.tile(ix.out_idx, b.length)
            return out
        self.budget.charge(len(rows))
        out = b.take(rows)
        if isinstance(out_var, Var):
            out.cols[out_var.name] = other
        return out

    def _join_particle(self, b: _Bindings, arg: Expr, multiset: bool) -> _Bindings:
        ix = self.index
        if isinstance(arg, Var) and arg.name in b.cols:
            at = b.cols[arg.name]
            return b.take(np.flatnonzero((at >= 0) & (at < ix.n)))
        if isinstance(arg, Const):
            v = self._value(arg)
            return b if v is not None and 0 <= v < ix.n else b.take(np.empty(0, np.int64))
        if isinstance(arg, Wildcard) and not multiset:
            return b if ix.n else b.take(np.empty(0, np.int64))
        if isinstance(arg, Wildcard):
            self.budget.charge(b.length * ix.n)
            return b.take(np.repeat(np.arange(b.length), ix.n))
        assert isinstance(arg, Var)  # a body atom's arguments are terms (syntax.term)
        self.budget.charge(b.length * ix.n)
        out = b.take(np.repeat(np.arange(b.length), ix.n))
        out.cols[arg.name] = np.tile(np.arange(ix.n, dtype=np.int64), b.length)
        return out

    def _filters(self, b: _Bindings, compares: Sequence[Compare]) -> _Bindings:
        for cmp in compares:
            sides: list[np.ndarray | np.int64] = []
            for s in (cmp.left, cmp.right):
                if isinstance(s, Const):
                    sides.append(np.int64(self._id(s)))
                elif isinstance(s, Var) and s.name in b.cols:  # eligible(): symbolic sides
                    sides.append(b.cols[s.name])
                else:
                    sides = []
                    break
            if len(sides) != 2:
                # ``x = <bound>`` binds x
                if cmp.op == "=":
                    for s, o in ((cmp.left, cmp.right), (cmp.right, cmp.left)):
                        if isinstance(s, Var) and s.name not in b.cols:
                            if isinstance(o, Const):
                                b.cols[s.name] = np.full(b.length, self._value(o), np.int64)
                            elif isinstance(o, Var) and o.name in b.cols:
                                b.cols[s.name] = b.cols[o.name]
                continue
            mask = sides[0] == sides[1] if cmp.op == "=" else sides[0] != sides[1]
            mask = np.broadcast_to(mask, (b.length,))
            if not mask.all():
                b = b.take(np.flatnonzero(mask))
        return b

    def _partition(self, comp: list[str]) -> tuple[dict[str, list[Rule]], dict[str, list[Rule]]]:
        """Per relation of a stratum, its exit rules (reading none of the
        stratum) and its recursive ones; made once per kept plan."""
        key = ("indexed-partition", tuple(comp))
        got = self.analysis.memo.get(key)
        if got is None:
            members = set(comp)
            exits: dict[str, list[Rule]] = {rel: [] for rel in comp}
            loops: dict[str, list[Rule]] = {rel: [] for rel in comp}
            for rel in comp:
                for r in self.analysis.rules[rel]:
                    inside = any(isinstance(lit, Atom) and lit.name in members for lit in r.body)
                    (loops if inside else exits)[rel].append(r)
            got = self.analysis.memo[key] = (exits, loops)
        return cast(tuple[dict[str, list[Rule]], dict[str, list[Rule]]], got)

    def run(self) -> None:
        for comp in self.analysis.strata:
            members = set(comp)
            for rel in comp:
                self.rel[rel] = [np.empty(0, np.int64) for _ in self.analysis.types[rel]]
            recursive = bool(members & self.analysis.recursive)
            exits, loops = self._partition(comp)
            for rel in comp:
                parts = [self.rule(r, self.rel) for r in exits[rel]]
                self.rel[rel] = _union(parts, len(self.analysis.types[rel]), self.index.n)
                self.budget.charge(len(self.rel[rel][0]) if self.rel[rel] else 0)
            if not recursive:
                continue
            delta = dict(self.rel)
            while True:
                self.stats["iterations"] += 1
                fresh = {}
                for rel in comp:
                    parts = [self.rule(r, delta) for r in loops[rel]]
                    new = _union(parts, len(self.analysis.types[rel]), self.index.n)
                    fresh[rel] = _minus(new, self.rel[rel], self.index.n)
                total = sum(len(c[0]) if c else 0 for c in fresh.values())
                self.budget.charge(total)
                if total == 0:
                    break
                for rel in comp:  # fresh rows are new: appending keeps the set distinct
                    self.rel[rel] = [
                        np.concatenate([a, b])
                        for a, b in zip(self.rel[rel], fresh[rel], strict=True)
                    ]
                delta = {**self.rel, **fresh}


def _union(parts: list[list[np.ndarray]], arity: int, n: int = 0) -> list[np.ndarray]:
    """Distinct rows of the parts, each distinct already (a rule's rows)."""
    parts = [p for p in parts if p and len(p[0])]
    if not parts:
        return [np.empty(0, np.int64) for _ in range(arity)]
    if len(parts) == 1:
        return parts[0]
    cols = [np.concatenate([p[k] for p in parts]) for k in range(arity)]
    return _unique_rows(cols, n)


def _minus(new: list[np.ndarray], old: list[np.ndarray], n: int = 0) -> list[np.ndarray]:
    """Rows of ``new`` (distinct) that ``old`` lacks."""
    if not new or not len(new[0]) or not len(old[0]):
        return new
    if len(new) == 1:
        a, b = new[0], old[0]
        # marking ``old``'s flags costs them and ``n`` zeroed bytes: cheap when
        # ``n`` is small or ``old`` large, and then it beats a sort
        small = 0 < n <= _SMALL_N and int(b.min()) >= 0 and int(b.max()) < n
        if (small or _bitmap_ok(b, n)) and int(a.min()) >= 0 and int(a.max()) < n:
            mark = np.zeros(n, dtype=bool)
            mark[b] = True
            return [a[~mark[a]]]
        return [a[~np.isin(a, b, assume_unique=True)]]
    nk, ok = _pair_keys(new), _pair_keys(old)
    if nk is not None and ok is not None:
        keep = ~np.isin(nk, ok, assume_unique=True)
        return [new[0][keep], new[1][keep]]
    a = np.stack(new, 1)
    b = np.stack(old, 1)
    both = np.concatenate([b, a])
    _, first = np.unique(both, axis=0, return_index=True)
    rows = np.sort(first[first >= len(b)]) - len(b)
    return [a[rows, k].copy() for k in range(a.shape[1])]


_GROUP = "#group"  # an aggregate's group number: no variable is spelled so


def _groups(cols: list[np.ndarray], length: int, n: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Distinct rows of ``cols`` and each row's number among them."""
    if not cols:
        return [], np.zeros(length, dtype=np.int64)
    if len(cols) == 1:
        col = cols[0]
        if len(col) < 2 or bool((col[1:] > col[:-1]).all()):  # distinct already
            return [col], np.arange(len(col), dtype=np.int64)
        uniq, inverse = np.unique(cols[0], return_inverse=True)
        return [uniq], inverse.astype(np.int64)
    table, inverse = np.unique(np.stack(cols, 1), axis=0, return_inverse=True)
    return [table[:, k].copy() for k in range(len(cols))], inverse.reshape(-1).astype(np.int64)


def _join_keys(left: list[np.ndarray], right: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """One int64 per row of each side, equal exactly when the rows are."""
    if len(left) == 1:
        return left[0], right[0]
    both = np.concatenate([np.stack(left, 1), np.stack(right, 1)])
    _, inverse = np.unique(both, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1).astype(np.int64)
    return inverse[: len(left[0])], inverse[len(left[0]) :]


def _equi_join(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pair ``(i, j)`` with ``left[i] == right[j]``, by sorting the
    smaller side and searching the larger one in it."""
    flip = len(left) > len(right)
    small, large = (right, left) if flip else (left, right)
    order = np.argsort(small, kind="stable")
    keys = small[order]
    lo = np.searchsorted(keys, large, "left")
    cnt = np.searchsorted(keys, large, "right") - lo
    at_large = np.repeat(np.arange(len(large), dtype=np.int64), cnt)
    starts = np.repeat(lo - np.cumsum(cnt) + cnt, cnt)
    at_small = order[starts + np.arange(len(at_large), dtype=np.int64)]
    return (at_large, at_small) if flip else (at_small, at_large)


_EXACT = float(1 << 62)


def _group_sum(group: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """Per group the sum of ``values`` (0 for none), exact in 64 bits.

    Integer addition wraps, so the int64 sums are right whenever the true sums
    fit; a float sum finds the groups that may not, which are added again in
    Python's integers and refused past 64 bits, as DuckDB refuses them."""
    out = np.zeros(k, dtype=np.int64)
    np.add.at(out, group, values)
    rough = np.bincount(group, weights=values.astype(np.float64), minlength=k)
    for g in np.flatnonzero(np.abs(rough) >= _EXACT).tolist():
        exact = sum(values[group == g].tolist())
        if not -(1 << 63) <= exact < 1 << 63:
            raise QueryInvalidError(f"arithmetic out of range: a sum is {exact}, past 64 bits")
        out[g] = exact
    return out


def _group_extreme(
    group: np.ndarray, values: np.ndarray, k: int, func: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per group the ``min`` or ``max`` of ``values`` and whether it has any."""
    found = np.bincount(group, minlength=k) > 0
    out = np.zeros(k, dtype=np.int64)
    if len(group):
        order = np.lexsort((values, group))
        g, v = group[order], values[order]
        last = np.flatnonzero(np.append(g[1:] != g[:-1], True))
        first = np.append(0, last[:-1] + 1)
        out[g[last]] = v[first] if func == "min" else v[last]
    return out, found
