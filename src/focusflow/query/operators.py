"""Graph operators as relations: what Datalog calls PageRank, k-hop, Dijkstra...

An operator is a relation computed on demand by the focus engine or the
numba kernels of ``kernels.py``. Global ones (``pagerank``, ``component``,
``community``) are computed once per source and kept like a base relation.
Anchored ones (``personalized``, ``khop``, ``shortest``, ``walk``) take a
source particle as their first column, which the rule must bind (a constant,
or a variable bound by other atoms): the evaluator finds the distinct sources
first and computes only from them, and a constant bound on the third column
(``k <= 3``, ``d < 2.5``) limits how far the search goes.

Lengths for ``shortest`` are reciprocal link weights, so heavily weighted
links are short and an unweighted graph measures hops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from focusflow.query import kernels
from focusflow.query.analysis import FLOAT, INT, SYM, Schema
from focusflow.query.errors import QueryLimitError
from focusflow.query.sources import Columns, GraphView

# How many distinct sources one anchored call may take: enough for any
# interactive use, small enough that one query cannot ask for n solves.
MAX_SOURCES = {"personalized": 64, "khop": 100_000, "shortest": 10_000, "walk": 10_000}
WALKS = 1000
WALK_LENGTH = 20
WALK_SEED = 0
PAGERANK_ALPHA = 0.85


@dataclass(frozen=True)
class Operator:
    name: str
    schema: Schema
    columns: tuple[str, ...]
    anchored: bool
    # Global: view -> columns. Anchored: (view, sources, bound) -> columns,
    # where ``bound`` limits the third column (inclusive) or is None.
    run: Callable[..., Columns]


def _pagerank(view: GraphView) -> Columns:
    from focusflow.focus.solver import compute

    r = compute(view.graph, mode="diffusion", alpha=PAGERANK_ALPHA).focus
    return [np.arange(view.n, dtype=np.int64), np.asarray(r, dtype=np.float64)]


def _component(view: GraphView) -> Columns:
    labels = kernels.weak_components(view.n, view.indptr, view.indices)
    return [np.arange(view.n, dtype=np.int64), labels]


def _community(view: GraphView) -> Columns:
    labels = kernels.label_propagation(view.n, view.indptr, view.indices, view.weights)
    return [np.arange(view.n, dtype=np.int64), labels]


def _personalized(view: GraphView, sources: np.ndarray, bound: float | None) -> Columns:
    from focusflow.focus.personal import personalized_focus

    srcs, ps, rs = [], [], []
    for s in sources.tolist():
        r = np.asarray(personalized_focus(view.graph, np.array([s])).focus)
        keep = np.flatnonzero(r > 0)
        srcs.append(np.full(len(keep), s, dtype=np.int64))
        ps.append(keep.astype(np.int64))
        rs.append(r[keep])
    return [_cat(srcs, np.int64), _cat(ps, np.int64), _cat(rs, np.float64)]


def _khop(view: GraphView, sources: np.ndarray, bound: float | None) -> Columns:
    depth = -1 if bound is None else int(np.floor(bound))
    pos, node, k = kernels.bfs_levels(view.indptr, view.indices, sources, depth)
    return [sources[pos], node, k]


def _shortest(view: GraphView, sources: np.ndarray, bound: float | None) -> Columns:
    with np.errstate(divide="ignore"):
        lengths = np.where(view.weights > 0, 1.0 / view.weights, np.inf)
    limit = np.inf if bound is None else float(bound)
    pos, node, d = kernels.dijkstra(view.indptr, view.indices, lengths, sources, limit)
    return [sources[pos], node, d]


def _walk(view: GraphView, sources: np.ndarray, bound: float | None) -> Columns:
    pos, node, visits = kernels.random_walks(
        view.indptr, view.indices, view.weights, sources, WALKS, WALK_LENGTH, WALK_SEED
    )
    return [sources[pos], node, visits]


def _cat(parts: list[np.ndarray], dtype: type[np.generic]) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.empty(0, dtype=dtype)


OPERATORS: dict[str, Operator] = {
    op.name: op
    for op in (
        Operator("pagerank", (SYM, FLOAT), ("p", "r"), False, _pagerank),
        Operator("component", (SYM, SYM), ("p", "c"), False, _component),
        Operator("community", (SYM, SYM), ("p", "c"), False, _community),
        Operator("personalized", (SYM, SYM, FLOAT), ("src", "p", "r"), True, _personalized),
        Operator("khop", (SYM, SYM, INT), ("src", "dst", "k"), True, _khop),
        Operator("shortest", (SYM, SYM, FLOAT), ("src", "dst", "d"), True, _shortest),
        Operator("walk", (SYM, SYM, INT), ("src", "p", "visits"), True, _walk),
    )
}
BOUNDED = {"khop", "shortest"}


def anchored_run(
    op: Operator, view: GraphView, sources: np.ndarray, bound: float | None
) -> Columns:
    """Run an anchored operator from ``sources``, refusing too many of them."""
    cap = MAX_SOURCES[op.name]
    if len(sources) > cap:
        raise QueryLimitError(
            f"{op.name} would run from {len(sources)} sources, more than its limit of {cap}: "
            "bind its first argument more narrowly",
            "sources",
        )
    sources = np.asarray(sources, dtype=np.int64)
    inside = (sources >= 0) & (sources < view.n)
    return op.run(view, sources[inside], bound)
