"""One Datalog rule as one SQL ``SELECT`` for DuckDB.

Positive atoms become the ``FROM`` list (DuckDB picks the join order and runs
hash joins over columnar tables, on every core), shared variables and
constants become equalities, negated atoms ``NOT EXISTS`` (an anti-join once
DuckDB decorrelates it), and aggregates ``LATERAL`` subqueries correlated on
the variables they share with the rule. The caller says which table each atom
reads, which is how semi-naive evaluation swaps one recursive atom for its
delta. Symbols are integers by the time they reach SQL (``symbols.py``), so
every join compares 64-bit integers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from focusflow.query.analysis import FLOAT, SYM, Schema, binding, expr_type
from focusflow.query.syntax import (
    Aggregate,
    Atom,
    BinOp,
    Compare,
    Const,
    Expr,
    Literal,
    Neg,
    Var,
    Wildcard,
)

TableOf = Callable[[Atom], str]
SQL_TYPES = {SYM: "BIGINT", "int": "BIGINT", FLOAT: "DOUBLE"}


class SymbolIds(Protocol):
    """What the compiler needs from a symbol table: the id of a string constant."""

    def id_of(self, text: str) -> int: ...


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class _Scope:
    """Variables bound so far: name -> SQL expression and type."""

    exprs: dict[str, str] = field(default_factory=dict)
    types: dict[str, str | None] = field(default_factory=dict)


@dataclass
class Compiler:
    """Compiles rules; ``table_of(atom)`` names the table an atom of a body reads
    (semi-naive evaluation answers a delta for one recursive atom)."""

    types: dict[str, Schema]
    symbols: SymbolIds
    counter: int = 0

    def _alias(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def const(self, c: Const) -> str:
        if isinstance(c.value, str):
            return str(int(self.symbols.id_of(c.value)))
        if isinstance(c.value, float):
            return f"CAST({c.value!r} AS DOUBLE)"
        return f"CAST({c.value} AS BIGINT)"

    def expr(self, e: Expr, scope: _Scope) -> str:
        if isinstance(e, Const):
            return self.const(e)
        if isinstance(e, Var):
            return scope.exprs[e.name]
        if isinstance(e, Neg):
            return f"(-{self.expr(e.arg, scope)})"
        if isinstance(e, BinOp):
            left = self.expr(e.left, scope)
            right = self.expr(e.right, scope)
            if e.op == "/":
                return f"(CAST({left} AS DOUBLE) / NULLIF(CAST({right} AS DOUBLE), 0))"
            if e.op == "%":
                return f"({left} % NULLIF({right}, 0))"
            return f"({left} {e.op} {right})"
        raise AssertionError(f"not an expression: {e!r}")

    def select(
        self,
        head: tuple[Expr, ...],
        head_types: Schema,
        body: tuple[Literal, ...],
        table_of: TableOf,
    ) -> str:
        """``SELECT head FROM body``; ``head_types`` casts each column to its type."""
        scope = _Scope()
        from_items, where, _ = self._body(body, table_of, scope, outer=set(), head=head)
        cols = []
        for k, (e, t) in enumerate(zip(head, head_types, strict=True)):
            sql = self.expr(e, scope)
            cols.append(f"CAST({sql} AS {SQL_TYPES[t]}) AS c{k}")
            if not isinstance(e, (Var, Const)):
                where.append(f"({sql}) IS NOT NULL")
        if not cols:
            cols = ["1 AS c_unit"]
        sql = f"SELECT DISTINCT {', '.join(cols)}"
        if from_items:
            sql += " FROM " + ", ".join(from_items)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return sql

    def witness(
        self,
        rule_head: tuple[Expr, ...],
        values: list[str],
        body: tuple[Literal, ...],
        table_of: TableOf,
        before: Callable[[Atom], int | None],
    ) -> tuple[str, list[tuple[Atom, str]]]:
        """One body instance deriving the head ``values`` (SQL literals): selects
        every positive atom's columns (and ``_round`` where ``before(atom)``
        gives the round it must precede), LIMIT 1."""
        scope = _Scope()
        from_items, where, aliases = self._body(body, table_of, scope, outer=set(), head=rule_head)
        for e, v in zip(rule_head, values, strict=True):
            where.append(f"({self.expr(e, scope)}) = {v}")
        cols: list[str] = []
        for atom, alias in aliases:
            n = len(self.types.get(atom.name, ()))
            cols.extend(f"{alias}.c{j}" for j in range(n))
            bound = before(atom)
            if bound is not None:
                cols.append(f"{alias}._round")
                where.append(f"{alias}._round < {bound}")
        sql = f"SELECT {', '.join(cols) or '1'}"
        if from_items:
            sql += " FROM " + ", ".join(from_items)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return sql + " LIMIT 1", aliases

    def _body(
        self,
        body: tuple[Literal, ...],
        table_of: TableOf,
        scope: _Scope,
        outer: set[str],
        head: tuple[Expr, ...] = (),
    ) -> tuple[list[str], list[str], list[tuple[Atom, str]]]:
        """FROM items and WHERE conditions of a body, and the alias of each of
        its positive atoms (which a witness query selects)."""
        from_items: list[str] = []
        where: list[str] = []
        aliases: list[tuple[Atom, str]] = []
        order = binding(body, outer, "the rule", head)
        positives = [lit for lit in body if isinstance(lit, Atom) and not lit.negated]
        for atom in positives:
            alias = self._alias("t")
            from_items.append(f"{quote(table_of(atom))} AS {alias}")
            aliases.append((atom, alias))
            cols = self.types.get(atom.name, ())
            for j, arg in enumerate(atom.args):
                col = f"{alias}.c{j}"
                if isinstance(arg, Wildcard):
                    continue
                if isinstance(arg, Const):
                    where.append(f"{col} = {self.const(arg)}")
                    continue
                assert isinstance(arg, Var)  # a body atom's arguments are terms (syntax.term)
                if arg.name in scope.exprs:
                    where.append(f"{col} = {scope.exprs[arg.name]}")
                else:
                    scope.exprs[arg.name] = col
                    scope.types[arg.name] = cols[j] if j < len(cols) else None
        for lit in order:
            if isinstance(lit, Atom) and not lit.negated:
                continue
            if isinstance(lit, Compare):
                assigned = self._assignment(lit, scope)
                if assigned is not None:
                    name, sql = assigned
                    scope.exprs[name] = sql
                    continue
                op = "<>" if lit.op == "!=" else lit.op
                where.append(f"({self.expr(lit.left, scope)} {op} {self.expr(lit.right, scope)})")
            elif isinstance(lit, Atom):
                where.append(self._negation(lit, scope, table_of))
            else:
                item, cond = self._aggregate(lit, scope, table_of)
                from_items.append(item)
                where.extend(cond)
        return from_items, where, aliases

    def _assignment(self, lit: Compare, scope: _Scope) -> tuple[str, str] | None:
        if lit.op != "=":
            return None
        for side, other in ((lit.left, lit.right), (lit.right, lit.left)):
            if isinstance(side, Var) and side.name not in scope.exprs:
                sql = self.expr(other, scope)
                scope.types[side.name] = expr_type(other, scope.types)
                return side.name, f"({sql})"
        return None

    def _negation(self, atom: Atom, scope: _Scope, table_of: TableOf) -> str:
        alias = self._alias("n")
        conds = []
        for j, arg in enumerate(atom.args):
            if isinstance(arg, Wildcard):
                continue
            conds.append(f"{alias}.c{j} = {self.expr(arg, scope)}")
        where = f" WHERE {' AND '.join(conds)}" if conds else ""
        return f"NOT EXISTS (SELECT 1 FROM {quote(table_of(atom))} AS {alias}{where})"

    def _aggregate(self, agg: Aggregate, scope: _Scope, table_of: TableOf) -> tuple[str, list[str]]:
        inner = _Scope(dict(scope.exprs), dict(scope.types))
        items, where, _ = self._body(agg.body, table_of, inner, outer=set(scope.exprs))
        if agg.func == "count":
            value = "count(*)"
        else:
            # The parser gives every aggregate but count an expression.
            arg = self.expr(agg.expr, inner)  # type: ignore[arg-type]
            value = f"{agg.func}({arg})"
            if agg.func == "sum":
                value = f"coalesce({value}, 0)"
        sql = f"SELECT {value} AS v"
        if items:
            sql += " FROM " + ", ".join(items)
        if where:
            sql += " WHERE " + " AND ".join(where)
        alias = self._alias("g")
        scope.exprs[agg.target.name] = f"{alias}.v"
        scope.types[agg.target.name] = None
        cond = [f"{alias}.v IS NOT NULL"] if agg.func in ("min", "max") else []
        return f"LATERAL ({sql}) AS {alias}", cond


def create_table(name: str, schema: Schema, temp: bool = True, rounds: bool = False) -> str:
    """``CREATE TABLE`` for a relation; ``rounds`` adds the ``_round`` column in
    which a proving evaluation records when each fact was first derived."""
    cols = ", ".join(f"c{k} {SQL_TYPES[t]}" for k, t in enumerate(schema)) or "c_unit INTEGER"
    if rounds:
        cols += ", _round BIGINT"
    return f"CREATE {'TEMP ' if temp else ''}TABLE {quote(name)} ({cols})"


def data_columns(schema: Schema) -> str:
    """The column list of a relation's facts (without ``_round``)."""
    return ", ".join(f"c{k}" for k in range(len(schema))) or "c_unit"
