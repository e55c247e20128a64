"""What a parsed program means: relations, safety, strata and column types.

Checks run before anything is evaluated, so that a wrong program costs a
parse, not a join over a million links: every relation is known and used with
one arity, every variable is bound by a positive atom (or by ``x = expr`` from
bound variables), negation and aggregates only look at relations finished in
an earlier stratum, and every column is a symbol or a number, never both.

Strata are the strongly connected components of the dependency graph in
topological order (Tarjan's algorithm); a negative or aggregate edge inside a
component makes the program unstratifiable, and the error names the cycle.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Protocol

from focusflow.query.errors import QueryInvalidError, QueryTypeError, UnstratifiableError
from focusflow.query.syntax import (
    Aggregate,
    Atom,
    BinOp,
    Compare,
    Const,
    Expr,
    Literal,
    Neg,
    Pos,
    Program,
    Rule,
    Var,
    Wildcard,
    variables,
)

SYM, INT, FLOAT = "sym", "int", "float"
Schema = tuple[str, ...]


class _Located(Protocol):
    """A node of the syntax tree: it knows where it was written."""

    @property
    def pos(self) -> Pos: ...


def _where(node: _Located) -> str:
    return f"line {node.pos.line}, column {node.pos.column}"


@dataclass
class Analysis:
    """The evaluation plan of one program for one output relation."""

    output: str
    rules: dict[str, list[Rule]]
    strata: list[list[str]]
    recursive: set[str]
    types: dict[str, Schema]
    base_used: set[str] = field(default_factory=set)
    # What an engine derives from the plan alone (join orders, rule
    # partitions), kept with it: a kept plan is evaluated many times.
    memo: dict[object, object] = field(default_factory=dict, compare=False, repr=False)


def _positive_atoms(body: Iterable[Literal]) -> list[Atom]:
    return [lit for lit in body if isinstance(lit, Atom) and not lit.negated]


def body_relations(body: Iterable[Literal]) -> list[tuple[str, str, Atom]]:
    """``(name, polarity, atom)`` of every atom of a body, aggregates included;
    polarity is ``+``, ``!`` (negated) or ``agg`` (inside an aggregate)."""
    out: list[tuple[str, str, Atom]] = []
    for lit in body:
        if isinstance(lit, Atom):
            out.append((lit.name, "!" if lit.negated else "+", lit))
        elif isinstance(lit, Aggregate):
            out.extend((name, "agg", atom) for name, _, atom in body_relations(lit.body))
    return out


def literal_vars(lit: Literal) -> list[Var]:
    if isinstance(lit, Atom):
        return [a for a in lit.args if isinstance(a, Var)]
    if isinstance(lit, Compare):
        return variables(lit.left) + variables(lit.right)
    inner = [v for sub in lit.body for v in literal_vars(sub)] + variables(lit.expr)
    return [lit.target, *inner]


def binding(
    body: tuple[Literal, ...], outer: set[str], what: str, head: tuple[Expr, ...] = ()
) -> list[Literal]:
    """The order in which a body's literals can be evaluated, checking safety.

    Positive atoms come first (they bind their variables); then, repeatedly,
    ``x = expr`` with ``expr`` bound binds ``x`` and an aggregate whose shared
    variables (those it has in common with the head and the rest of the body)
    are all bound binds its target; comparisons and negations need all their
    variables bound. ``outer`` holds variables bound outside the body (an
    aggregate's correlated ones). The order is the meaning: an aggregate placed
    before its shared variables are bound would count over all of them.
    """
    outside = outside_names(body, head) | outer
    bound = set(outer)
    order: list[Literal] = []
    for atom in _positive_atoms(body):
        bound.update(v.name for v in atom.args if isinstance(v, Var))
        order.append(atom)
    pending = [lit for lit in body if not (isinstance(lit, Atom) and not lit.negated)]
    for lit in pending:
        for expr in _exprs(lit):
            if _has_wildcard(expr):
                raise QueryInvalidError(f"{_where(lit)}: '_' cannot stand in an expression")
    progress = True
    while pending and progress:
        progress = False
        for lit in list(pending):
            target = assigned(lit, bound, outside)
            if target is not None:
                bound.add(target)
            elif isinstance(lit, Aggregate) or not all(v.name in bound for v in literal_vars(lit)):
                continue
            order.append(lit)
            pending.remove(lit)
            progress = True
    if pending:
        lit = pending[0]
        free = [v for v in literal_vars(lit) if v.name not in bound]
        if isinstance(lit, Aggregate):
            free = [v for v in free if v.name != lit.target.name] or free
        name = free[0].name if free else "?"
        raise QueryInvalidError(
            f"{_where(lit)}: variable {name} in {what} is not bound by a positive atom "
            "(nor by '=' from bound variables)"
        )
    return order


def _exprs(lit: Literal) -> list[Expr]:
    if isinstance(lit, Compare):
        return [lit.left, lit.right]
    if isinstance(lit, Aggregate):
        return [lit.expr] if lit.expr is not None else []
    return []


def _has_wildcard(expr: Expr) -> bool:
    if isinstance(expr, Wildcard):
        return True
    if isinstance(expr, BinOp):
        return _has_wildcard(expr.left) or _has_wildcard(expr.right)
    if isinstance(expr, Neg):
        return _has_wildcard(expr.arg)
    return False


def assigned(lit: Literal, bound: set[str], outside: AbstractSet[str] = frozenset()) -> str | None:
    """The variable that ``lit`` binds, given ``bound``; None when it binds none.
    ``outside``: the variables of the rule outside an aggregate (its shared ones)."""
    if isinstance(lit, Compare) and lit.op == "=":
        for side, other in ((lit.left, lit.right), (lit.right, lit.left)):
            if (
                isinstance(side, Var)
                and side.name not in bound
                and all(v.name in bound for v in variables(other))
            ):
                return side.name
    if isinstance(lit, Aggregate):
        shared = aggregate_shared(lit, outside)
        if lit.target.name not in bound and all(v in bound for v in shared):
            return lit.target.name
    return None


def aggregate_shared(agg: Aggregate, outer_names: AbstractSet[str]) -> list[str]:
    """Variables of an aggregate's body that the enclosing rule binds."""
    names = [v.name for lit in agg.body for v in literal_vars(lit)]
    names += [v.name for v in variables(agg.expr)]
    return sorted({n for n in names if n in outer_names and n != agg.target.name})


def check_rule(rule: Rule) -> None:
    """Safety of one rule: every variable of its head, comparisons, negations and
    aggregates is bound; aggregate bodies are safe given the variables they share."""
    for arg in rule.head.args:
        if _has_wildcard(arg):
            raise QueryInvalidError(f"{_where(rule.head)}: '_' cannot appear in a rule's head")
    order = binding(rule.body, set(), f"the rule for {rule.head.name}", rule.head.args)
    bound: set[str] = set()
    for lit in order:
        bound.update(v.name for v in literal_vars(lit) if not isinstance(lit, Aggregate))
        if isinstance(lit, Aggregate):
            bound.add(lit.target.name)
    for var in (v for a in rule.head.args for v in variables(a)):
        if var.name not in bound:
            raise QueryInvalidError(
                f"{_where(var)}: variable {var.name} in the head of {rule.head.name} "
                "is not bound by the body"
            )
    outer_names = outside_names(rule.body, rule.head.args)
    for lit in rule.body:
        if isinstance(lit, Aggregate):
            _check_aggregate(lit, outer_names, rule.head.name)


def outside_names(body: tuple[Literal, ...], head: tuple[Expr, ...]) -> set[str]:
    """Variables of a head and of a body outside its aggregates (but their targets):
    an aggregate shares with its rule the variables of its own found here."""
    names = {v.name for a in head for v in variables(a)}
    for lit in body:
        if isinstance(lit, Aggregate):
            names.add(lit.target.name)
        else:
            names.update(v.name for v in literal_vars(lit))
    return names


def _check_aggregate(agg: Aggregate, outer_names: set[str], rel: str) -> None:
    shared = set(aggregate_shared(agg, outer_names))
    if agg.target.name in {v.name for lit in agg.body for v in literal_vars(lit)}:
        raise QueryInvalidError(
            f"{_where(agg)}: the aggregate's result {agg.target.name} appears in its own body"
        )
    order = binding(agg.body, shared, f"an aggregate of {rel}")
    inner = set(shared)
    for lit in order:
        if isinstance(lit, Atom) and not lit.negated:
            inner.update(v.name for v in lit.args if isinstance(v, Var))
    for var in variables(agg.expr):
        if var.name not in inner:
            raise QueryInvalidError(
                f"{_where(var)}: variable {var.name} of the {agg.func} is not bound in its body"
            )
    for lit in agg.body:
        if isinstance(lit, Aggregate):
            raise QueryInvalidError(f"{_where(lit)}: aggregates cannot be nested")


def _strongly_connected(nodes: list[str], edges: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's SCCs, iteratively, in reverse topological order of the
    condensation (each component after every component it depends on)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            succ = edges.get(node, [])
            if i < len(succ):
                work.append((node, i + 1))
                nxt = succ[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                out.append(sorted(comp))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return out


def _cycle(start: str, end: str, edges: dict[str, list[str]], comp: set[str]) -> list[str]:
    """A path ``end -> ... -> start`` inside ``comp`` (BFS), to name a cycle."""
    prev: dict[str, str | None] = {end: None}
    queue = [end]
    while queue:
        node = queue.pop(0)
        if node == start:
            break
        for nxt in edges.get(node, []):
            if nxt in comp and nxt not in prev:
                prev[nxt] = node
                queue.append(nxt)
    path = [start]
    step = prev.get(start)
    while step is not None:
        path.append(step)
        step = prev.get(step)
    return path[::-1]


def analyse(  # noqa: C901, PLR0912 - a program's checks, one after another
    program: Program,
    output: str,
    fixed_schema: Callable[[str], Schema | None],
    builtin_names: Iterable[str] = (),
) -> Analysis:
    """Check ``program`` and plan the evaluation of ``output``.

    ``fixed_schema(name)`` gives the column types of a base relation or graph
    operator, or None when no such relation exists.
    """
    rules: dict[str, list[Rule]] = {}
    arity: dict[str, tuple[int, Atom]] = {}
    fixed: dict[str, Schema] = {}
    for rule in program.rules:
        name = rule.head.name
        if fixed_schema(name) is not None:
            raise QueryInvalidError(
                f"{_where(rule.head)}: {name} is a built-in relation; rules cannot add to it"
            )
        rules.setdefault(name, []).append(rule)
    for rule in program.rules:
        for atom in [rule.head] + [a for _, _, a in body_relations(rule.body)]:
            known = arity.get(atom.name)
            if known is None:
                schema = fixed_schema(atom.name)
                if schema is not None:
                    fixed[atom.name] = schema
                    known = (len(schema), atom)
                elif atom.name not in rules:
                    hint = difflib.get_close_matches(atom.name, [*rules, *fixed, *builtin_names], 1)
                    raise QueryInvalidError(
                        f"{_where(atom)}: unknown relation {atom.name}"
                        + (f" (did you mean {hint[0]}?)" if hint else "")
                    )
                else:
                    known = (len(atom.args), atom)
                arity[atom.name] = known
            if len(atom.args) != known[0]:
                raise QueryInvalidError(
                    f"{_where(atom)}: {atom.name} has {known[0]} columns, "
                    f"here it is used with {len(atom.args)}"
                )
    if output not in rules and output not in fixed:
        schema = fixed_schema(output)
        if schema is not None:
            fixed[output] = schema
        else:
            hint = difflib.get_close_matches(output, list(rules), 1)
            raise QueryInvalidError(
                f"the program does not define the output relation {output}"
                + (f" (did you mean {hint[0]}?)" if hint else "")
            )
    for rule in program.rules:
        check_rule(rule)

    needed = _needed(output, rules)
    edges: dict[str, list[str]] = {}
    for name in needed:
        if name in rules:
            deps: list[str] = []
            for rule in rules[name]:
                deps.extend(rel for rel, _, _ in body_relations(rule.body) if rel in rules)
            edges[name] = list(dict.fromkeys(deps))
    derived = sorted(n for n in needed if n in rules)
    comps = _strongly_connected(derived, edges)
    recursive: set[str] = set()
    for comp in comps:
        members = set(comp)
        if len(comp) > 1 or comp[0] in edges.get(comp[0], []):
            recursive.update(comp)
        for name in comp:
            for rule in rules[name]:
                for rel, polarity, atom in body_relations(rule.body):
                    if rel in members and polarity != "+":
                        path = [name, *_cycle(name, rel, edges, members)]
                        how = f"negation of {rel}" if polarity == "!" else "an aggregate"
                        raise UnstratifiableError(
                            f"{_where(atom)}: {name} depends on itself through {how} "
                            f"(cycle {' -> '.join(path)}); negation and aggregates must "
                            "look at relations finished in an earlier stratum"
                        )
    types = infer_types(rules, needed, fixed)
    base_used = {n for n in needed if n in fixed}
    return Analysis(output, rules, comps, recursive, types, base_used)


def _needed(output: str, rules: dict[str, list[Rule]]) -> set[str]:
    seen = {output}
    todo = [output]
    while todo:
        name = todo.pop()
        for rule in rules.get(name, []):
            for rel, _, _ in body_relations(rule.body):
                if rel not in seen:
                    seen.add(rel)
                    todo.append(rel)
    return seen


def _join(a: str | None, b: str | None, what: str) -> str | None:
    if a is None or a == b:
        return b if a is None else a
    if b is None:
        return a
    if SYM in (a, b):
        raise QueryTypeError(f"{what} is a symbol in one place and a number in another")
    return FLOAT


def expr_type(expr: Expr, var_types: dict[str, str | None]) -> str | None:
    if isinstance(expr, Const):
        if isinstance(expr.value, str):
            return SYM
        return INT if isinstance(expr.value, int) else FLOAT
    if isinstance(expr, Var):
        return var_types.get(expr.name)
    if isinstance(expr, Neg):
        t = expr_type(expr.arg, var_types)
        if t == SYM:
            raise QueryTypeError(f"{_where(expr)}: a symbol cannot be negated")
        return t
    if isinstance(expr, BinOp):
        left = expr_type(expr.left, var_types)
        right = expr_type(expr.right, var_types)
        if SYM in (left, right):
            raise QueryTypeError(f"{_where(expr)}: arithmetic '{expr.op}' on a symbol")
        if left is None or right is None:
            return None
        if expr.op == "/":
            return FLOAT
        return INT if left == right == INT else FLOAT
    return None


def _rule_var_types(
    body: tuple[Literal, ...], types: dict[str, list[str | None]], outer: dict[str, str | None]
) -> dict[str, str | None]:
    var_types: dict[str, str | None] = dict(outer)
    for atom in _positive_atoms(body):
        cols = types.get(atom.name)
        for k, arg in enumerate(atom.args):
            if isinstance(arg, Var):
                t = cols[k] if cols is not None else None
                var_types[arg.name] = _join(
                    var_types.get(arg.name), t, f"{_where(arg)}: variable {arg.name}"
                )
            elif isinstance(arg, Const) and cols is not None and cols[k] is not None:
                _join(expr_type(arg, var_types), cols[k], f"{_where(arg)}: this constant")
    for _ in range(len(body) + 1):
        for lit in body:
            if isinstance(lit, Compare):
                lt = expr_type(lit.left, var_types)
                rt = expr_type(lit.right, var_types)
                if lit.op == "=" and isinstance(lit.left, Var) and lit.left.name not in var_types:
                    var_types[lit.left.name] = rt
                elif (
                    lit.op == "=" and isinstance(lit.right, Var) and lit.right.name not in var_types
                ):
                    var_types[lit.right.name] = lt
                elif (
                    lit.op == "=" and isinstance(lit.left, Var) and var_types[lit.left.name] is None
                ):
                    var_types[lit.left.name] = rt
                elif (
                    lit.op == "="
                    and isinstance(lit.right, Var)
                    and var_types[lit.right.name] is None
                ):
                    var_types[lit.right.name] = lt
            elif isinstance(lit, Aggregate):
                var_types[lit.target.name] = _aggregate_type(lit, types, var_types)
    return var_types


def _aggregate_type(
    agg: Aggregate, types: dict[str, list[str | None]], outer: dict[str, str | None]
) -> str | None:
    if agg.func == "count":
        return INT
    inner = _rule_var_types(agg.body, types, outer)
    t = expr_type(agg.expr, inner) if agg.expr is not None else None
    if t == SYM:
        raise QueryTypeError(f"{_where(agg)}: {agg.func} over symbols")
    return t


def _check_literal_types(
    body: tuple[Literal, ...], types: dict[str, list[str | None]], var_types: dict[str, str | None]
) -> None:
    for lit in body:
        if isinstance(lit, Compare):
            lt = expr_type(lit.left, var_types)
            rt = expr_type(lit.right, var_types)
            if None not in (lt, rt) and (lt == SYM) != (rt == SYM):
                raise QueryTypeError(f"{_where(lit)}: compares a symbol with a number")
            if SYM in (lt, rt) and lit.op not in ("=", "!="):
                raise QueryTypeError(f"{_where(lit)}: symbols can be compared with = and != only")
        elif isinstance(lit, Atom) and lit.negated:
            cols = types.get(lit.name)
            for k, arg in enumerate(lit.args):
                if cols is not None and not isinstance(arg, Wildcard):
                    at = expr_type(arg, var_types)
                    _join(at, cols[k], f"{_where(arg)}: argument {k + 1} of !{lit.name}")
        elif isinstance(lit, Aggregate):
            inner = _rule_var_types(lit.body, types, var_types)
            _check_literal_types(lit.body, types, inner)


def infer_types(
    rules: dict[str, list[Rule]], needed: set[str], fixed: dict[str, Schema]
) -> dict[str, Schema]:
    """Column types of every needed relation, by fixpoint over the rules."""
    types: dict[str, list[str | None]] = {name: list(s) for name, s in fixed.items()}
    for name in needed:
        if name in rules:
            types[name] = [None] * len(rules[name][0].head.args)
    changed = True
    rounds = 0
    while changed:
        changed = False
        rounds += 1
        for name in needed:
            for rule in rules.get(name, []):
                var_types = _rule_var_types(rule.body, types, {})
                cols = types[name]
                for k, arg in enumerate(rule.head.args):
                    t = expr_type(arg, var_types)
                    new = _join(cols[k], t, f"column {k + 1} of {name}")
                    if new != cols[k]:
                        cols[k] = new
                        changed = True
        if rounds > 4 * (len(types) + 2):
            break
    for name in needed:
        for rule in rules.get(name, []):
            var_types = _rule_var_types(rule.body, types, {})
            _check_literal_types(rule.body, types, var_types)
    return {name: tuple(t or INT for t in cols) for name, cols in types.items()}
