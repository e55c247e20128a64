"""Graph algorithms over CSR arrays, exposed to the Datalog layer as relations.

Every kernel reads an out-adjacency CSR (``indptr`` int64[n+1], ``indices`` int64,
rows sorted, no duplicates) and returns flat columns (one array per attribute),
the shape a relation has. They are numba kernels because a query binds a few
sources in a graph of millions of links: the cost must follow the part of the
graph that is reached, not ``n``, and a Python loop per edge would not.

Results never depend on the number of threads. Each source is computed on its
own, sequentially, and lands at an offset fixed by the sources before it: many
sources run in parallel in two passes (count, then recompute and fill), since
numba has no way to hand variable-sized results out of a ``prange`` iteration.
A single source (or one thread) runs once, into buffers that grow.

The CSR itself is trusted (it comes from the graph layer): the wrappers check
shapes and arguments in O(1) or O(sources), never every index, so that a small
query on a large graph stays small. Lengths and weights are the exception where
a wrong sign would silently corrupt the answer; those are scanned.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable
from typing import SupportsIndex

import numba as nb
import numpy as np

from focusflow.core.errors import InvalidParameterError

__all__ = [
    "bfs_levels",
    "dijkstra",
    "label_propagation",
    "prepare",
    "random_walks",
    "weak_components",
]

# ---------------------------------------------------------------------------
# Shared plumbing
# ---------------------------------------------------------------------------

#: An index or a count inside a kernel: numba types an int and an int64 alike,
#: and some are made int64 on purpose (see ``_heap_pop``), which to the type
#: checker is no int.
_Index = int | np.int64


def _as_i64(name: str, a: object) -> np.ndarray:
    arr = np.asarray(a)
    if arr.size and arr.dtype.kind not in "iu":  # no silent truncation of 1.5 to 1
        raise InvalidParameterError(f"{name} must hold integers, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if arr.ndim != 1:
        raise InvalidParameterError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _as_f64(name: str, a: object) -> np.ndarray:
    arr = np.ascontiguousarray(a, dtype=np.float64)
    if arr.ndim != 1:
        raise InvalidParameterError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _as_int(name: str, value: object, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, SupportsIndex):
        raise InvalidParameterError(f"{name} must be an integer, got {value!r}")
    v = operator.index(value)
    if minimum is not None and v < minimum:
        raise InvalidParameterError(f"{name} must be an integer >= {minimum}, got {v}")
    return v


def _csr(indptr: object, indices: object) -> tuple[np.ndarray, np.ndarray, int]:
    """Contiguous int64 ``indptr, indices`` and ``n``; O(1) consistency checks."""
    ptr = _as_i64("indptr", indptr)
    idx = _as_i64("indices", indices)
    if ptr.shape[0] < 1:
        raise InvalidParameterError("indptr must have n + 1 >= 1 entries")
    if ptr[0] != 0 or ptr[-1] != idx.shape[0]:
        raise InvalidParameterError(
            f"indptr must run from 0 to len(indices) = {idx.shape[0]}, got {ptr[0]} .. {ptr[-1]}"
        )
    return ptr, idx, ptr.shape[0] - 1


def _entry_values(name: str, values: object, nnz: int) -> np.ndarray:
    """Per-entry float64 values (weights, lengths), refused if negative or NaN."""
    arr = _as_f64(name, values)
    if arr.shape[0] != nnz:
        raise InvalidParameterError(
            f"{name} must have one value per entry ({nnz}), got {arr.shape[0]}"
        )
    if not (arr >= 0.0).all():  # NaN fails the comparison too
        raise InvalidParameterError(f"{name} must be non-negative (and not NaN)")
    return arr


def _sources(sources: object, n: int) -> np.ndarray:
    src = _as_i64("sources", sources)
    if src.shape[0] and (src.min() < 0 or src.max() >= n):
        raise InvalidParameterError(
            f"sources must be node ids in [0, {n}), got {src.min()} .. {src.max()}"
        )
    return src


def _chunks(count: int) -> np.ndarray:
    """Bounds of contiguous chunks of sources for ``prange``; each chunk allocates
    its scratch once. Four chunks a thread, handed out one at a time (see
    ``_run_parallel``), even out sources of very different cost (an R-MAT hub
    next to a leaf). Results do not depend on the chunking."""
    parts = max(1, min(count, 4 * nb.get_num_threads()))
    return np.linspace(0, count, parts + 1).astype(np.int64)


def _run_parallel(kernel: Callable[..., None], *args: object) -> None:
    # Chunk size 1: a thread that finishes takes the next chunk, instead of the
    # static split of the iterations in equal runs per thread.
    with nb.parallel_chunksize(1):
        kernel(*args)


def _count_then_fill(
    kernel: Callable[..., None],
    args: tuple[object, ...],
    offsets: np.ndarray,
    value_dtype: type[np.generic],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The two passes of a parallel kernel over sources: count each source's rows
    into ``offsets``, then fill ``(source position, node, value)`` at the offsets."""
    none = np.empty(0, dtype=np.int64)
    _run_parallel(kernel, *args, none, none, np.empty(0, dtype=value_dtype), False)
    np.cumsum(offsets, out=offsets)
    total = int(offsets[-1])
    out = (
        np.empty(total, dtype=np.int64),
        np.empty(total, dtype=np.int64),
        np.empty(total, dtype=value_dtype),
    )
    _run_parallel(kernel, *args, *out, True)
    return out


def _use_parallel(count: int) -> bool:
    # With two threads the count-then-fill passes cost what one serial pass does.
    return count > 1 and nb.get_num_threads() > 2


@nb.njit(cache=True)
def _grow(a: np.ndarray, need: _Index) -> np.ndarray:
    """``a`` with room for ``need`` items (doubling, so appends stay linear)."""
    if need <= a.shape[0]:
        return a
    b = np.empty(max(need, 2 * a.shape[0]), dtype=a.dtype)
    b[: a.shape[0]] = a
    return b


# ---------------------------------------------------------------------------
# Breadth-first levels
# ---------------------------------------------------------------------------


@nb.njit(cache=True)
def _bfs_one(
    indptr: np.ndarray,
    indices: np.ndarray,
    s: int,
    max_depth: int,
    seen: np.ndarray,
    queue: np.ndarray,
    qdepth: np.ndarray,
) -> int:
    """Levels from ``s`` into ``queue[:k], qdepth[:k]``; returns ``k``.

    ``seen`` is all False on entry and on exit: only the reached nodes are
    marked and unmarked, so the cost is that of the reached part. Each level is
    sorted once complete, which fixes the output order and, with it, the order
    in which the next level is discovered."""
    queue[0] = s
    qdepth[0] = 0
    seen[s] = True
    lo = 0
    hi = 1
    d = 0
    while lo < hi and (max_depth < 0 or d < max_depth):
        nxt = hi
        for q in range(lo, hi):
            u = queue[q]
            for e in range(indptr[u], indptr[u + 1]):
                v = indices[e]
                if not seen[v]:
                    seen[v] = True
                    queue[nxt] = v
                    qdepth[nxt] = d + 1
                    nxt += 1
        queue[hi:nxt].sort()
        lo = hi
        hi = nxt
        d += 1
    for q in range(hi):
        seen[queue[q]] = False
    return hi


@nb.njit(cache=True)
def _bfs_serial(
    indptr: np.ndarray, indices: np.ndarray, sources: np.ndarray, max_depth: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = indptr.shape[0] - 1
    seen = np.zeros(n, dtype=np.bool_)
    queue = np.empty(n, dtype=np.int64)
    qdepth = np.empty(n, dtype=np.int64)
    pos = np.empty(16, dtype=np.int64)
    node = np.empty(16, dtype=np.int64)
    depth = np.empty(16, dtype=np.int64)
    total = 0
    for i in range(sources.shape[0]):
        k = _bfs_one(indptr, indices, sources[i], max_depth, seen, queue, qdepth)
        pos = _grow(pos, total + k)
        node = _grow(node, total + k)
        depth = _grow(depth, total + k)
        for j in range(k):
            pos[total + j] = i
            node[total + j] = queue[j]
            depth[total + j] = qdepth[j]
        total += k
    return pos[:total].copy(), node[:total].copy(), depth[:total].copy()


@nb.njit(cache=True, parallel=True)
def _bfs_parallel(
    indptr: np.ndarray,
    indices: np.ndarray,
    sources: np.ndarray,
    max_depth: int,
    bounds: np.ndarray,
    offsets: np.ndarray,
    pos: np.ndarray,
    node: np.ndarray,
    depth: np.ndarray,
    fill: bool,
) -> None:
    """Count pass (``fill`` False: ``offsets[i + 1]`` = rows of source ``i``) or
    fill pass (rows of source ``i`` at ``offsets[i]``)."""
    n = indptr.shape[0] - 1
    for c in nb.prange(bounds.shape[0] - 1):
        seen = np.zeros(n, dtype=np.bool_)
        queue = np.empty(n, dtype=np.int64)
        qdepth = np.empty(n, dtype=np.int64)
        for i in range(bounds[c], bounds[c + 1]):
            k = _bfs_one(indptr, indices, sources[i], max_depth, seen, queue, qdepth)
            if fill:
                o = offsets[i]
                for j in range(k):
                    pos[o + j] = i
                    node[o + j] = queue[j]
                    depth[o + j] = qdepth[j]
            else:
                offsets[i + 1] = k


def _bfs_levels(
    indptr: np.ndarray, indices: np.ndarray, sources: np.ndarray, max_depth: int, parallel: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not parallel:
        return _bfs_serial(indptr, indices, sources, max_depth)
    bounds = _chunks(sources.shape[0])
    offsets = np.zeros(sources.shape[0] + 1, dtype=np.int64)
    args = (indptr, indices, sources, max_depth, bounds, offsets)
    return _count_then_fill(_bfs_parallel, args, offsets, np.int64)


def bfs_levels(
    indptr: np.ndarray, indices: np.ndarray, sources: np.ndarray, max_depth: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(src_pos, node, depth)``: every node within ``max_depth`` hops of each source.

    ``src_pos`` indexes ``sources`` (which may repeat); the source itself is at
    depth 0; ``max_depth < 0`` means unbounded. Rows are ordered by source
    position, depth, node id. A bounded search touches only what it reaches
    (plus one ``n``-byte mark array per source batch), so a two-hop query on a
    large graph costs the neighbourhood, not the graph.
    """
    ptr, idx, n = _csr(indptr, indices)
    src = _sources(sources, n)
    depth = _as_int("max_depth", max_depth)
    return _bfs_levels(ptr, idx, src, depth, _use_parallel(src.shape[0]))


# ---------------------------------------------------------------------------
# Dijkstra
# ---------------------------------------------------------------------------


@nb.njit(cache=True)
def _heap_less(hkey: np.ndarray, hnode: np.ndarray, a: _Index, b: _Index) -> bool:
    less: bool = hkey[a] < hkey[b] or (hkey[a] == hkey[b] and hnode[a] < hnode[b])
    return less


@nb.njit(cache=True)
def _heap_push(hkey: np.ndarray, hnode: np.ndarray, size: _Index, key: float, v: int) -> _Index:
    i = size
    hkey[i] = key
    hnode[i] = v
    while i > 0:
        p = (i - 1) >> 1
        if _heap_less(hkey, hnode, i, p):
            hkey[i], hkey[p] = hkey[p], hkey[i]
            hnode[i], hnode[p] = hnode[p], hnode[i]
            i = p
        else:
            break
    return size + 1


@nb.njit(cache=True)
def _heap_pop(hkey: np.ndarray, hnode: np.ndarray, size: _Index) -> _Index:
    """Remove the root (read it before calling); returns the new size."""
    size -= 1
    hkey[0] = hkey[size]
    hnode[0] = hnode[size]
    i = np.int64(0)  # a plain 0 is typed as the literal, and _heap_less compiled for it
    while True:
        left = 2 * i + 1
        if left >= size:
            break
        m = left
        if left + 1 < size and _heap_less(hkey, hnode, left + 1, left):
            m = left + 1
        if _heap_less(hkey, hnode, m, i):
            hkey[i], hkey[m] = hkey[m], hkey[i]
            hnode[i], hnode[m] = hnode[m], hnode[i]
            i = m
        else:
            break
    return size


@nb.njit(cache=True)
def _dijkstra_one(
    indptr: np.ndarray,
    indices: np.ndarray,
    lengths: np.ndarray,
    s: int,
    max_dist: float,
    state: np.ndarray,
    dist: np.ndarray,
    out: np.ndarray,
) -> int:
    """Settled nodes of ``s`` (sorted) in ``out[:k]``, distances in ``dist``; returns ``k``.

    A binary heap with lazy deletion (a node may sit in it more than once; stale
    entries are skipped when popped) keeps the search at O(E log E) over the
    reached part, where a dense scan for the minimum would cost O(n) per step,
    and needs no position array to maintain. The heap starts small and doubles,
    so a query that reaches little allocates little. ``state`` (0 unseen, 1 queued,
    2 settled) is all zero on entry and on exit; ``dist`` is read only where
    ``state`` is non-zero, so it is never initialised. Ties in the heap break by
    node id, so the pop order too is fixed."""
    if not (max_dist >= 0.0):
        return 0
    hkey = np.empty(64, dtype=np.float64)
    hnode = np.empty(64, dtype=np.int64)
    size = _heap_push(hkey, hnode, np.int64(0), 0.0, s)  # int64, not a literal: one compile
    state[s] = 1
    dist[s] = 0.0
    k = 0
    while size > 0:
        d = hkey[0]
        u = hnode[0]
        size = _heap_pop(hkey, hnode, size)
        if state[u] == 2 or d > dist[u]:
            continue
        state[u] = 2
        out[k] = u
        k += 1
        for e in range(indptr[u], indptr[u + 1]):
            v = indices[e]
            if state[v] == 2:
                continue
            nd = d + lengths[e]
            if nd > max_dist or nd == np.inf:
                continue
            if state[v] == 0 or nd < dist[v]:
                state[v] = 1
                dist[v] = nd
                if size == hkey.shape[0]:
                    hkey = _grow(hkey, size + 1)
                    hnode = _grow(hnode, size + 1)
                size = _heap_push(hkey, hnode, size, nd, v)
    # Every queued node is settled before the heap empties, so ``out`` lists all
    # the nodes whose state needs resetting.
    for j in range(k):
        state[out[j]] = 0
    out[:k].sort()
    return k


@nb.njit(cache=True)
def _dijkstra_serial(
    indptr: np.ndarray,
    indices: np.ndarray,
    lengths: np.ndarray,
    sources: np.ndarray,
    max_dist: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = indptr.shape[0] - 1
    state = np.zeros(n, dtype=np.int8)
    dist = np.empty(n, dtype=np.float64)
    out = np.empty(n, dtype=np.int64)
    pos = np.empty(16, dtype=np.int64)
    node = np.empty(16, dtype=np.int64)
    dd = np.empty(16, dtype=np.float64)
    total = 0
    for i in range(sources.shape[0]):
        k = _dijkstra_one(indptr, indices, lengths, sources[i], max_dist, state, dist, out)
        pos = _grow(pos, total + k)
        node = _grow(node, total + k)
        dd = _grow(dd, total + k)
        for j in range(k):
            pos[total + j] = i
            node[total + j] = out[j]
            dd[total + j] = dist[out[j]]
        total += k
    return pos[:total].copy(), node[:total].copy(), dd[:total].copy()


@nb.njit(cache=True, parallel=True)
def _dijkstra_parallel(
    indptr: np.ndarray,
    indices: np.ndarray,
    lengths: np.ndarray,
    sources: np.ndarray,
    max_dist: float,
    bounds: np.ndarray,
    offsets: np.ndarray,
    pos: np.ndarray,
    node: np.ndarray,
    dd: np.ndarray,
    fill: bool,
) -> None:
    n = indptr.shape[0] - 1
    for c in nb.prange(bounds.shape[0] - 1):
        state = np.zeros(n, dtype=np.int8)
        dist = np.empty(n, dtype=np.float64)
        out = np.empty(n, dtype=np.int64)
        for i in range(bounds[c], bounds[c + 1]):
            k = _dijkstra_one(indptr, indices, lengths, sources[i], max_dist, state, dist, out)
            if fill:
                o = offsets[i]
                for j in range(k):
                    pos[o + j] = i
                    node[o + j] = out[j]
                    dd[o + j] = dist[out[j]]
            else:
                offsets[i + 1] = k


def _dijkstra(
    indptr: np.ndarray,
    indices: np.ndarray,
    lengths: np.ndarray,
    sources: np.ndarray,
    max_dist: float,
    parallel: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not parallel:
        return _dijkstra_serial(indptr, indices, lengths, sources, max_dist)
    bounds = _chunks(sources.shape[0])
    offsets = np.zeros(sources.shape[0] + 1, dtype=np.int64)
    args = (indptr, indices, lengths, sources, max_dist, bounds, offsets)
    return _count_then_fill(_dijkstra_parallel, args, offsets, np.float64)


def dijkstra(
    indptr: np.ndarray,
    indices: np.ndarray,
    lengths: np.ndarray,
    sources: np.ndarray,
    max_dist: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(src_pos, node, dist)``: shortest-path distances up to ``max_dist``.

    ``lengths`` (one per CSR entry, non-negative; the caller passes 1/weight) may
    be ``inf``: such an entry cannot be crossed. Each source is included at 0.0;
    nodes with ``dist <= max_dist`` are kept (``np.inf`` keeps all reachable),
    sorted per source by node id. A path whose length overflows to ``inf`` counts
    as no path.
    """
    ptr, idx, n = _csr(indptr, indices)
    ln = _entry_values("lengths", lengths, idx.shape[0])
    src = _sources(sources, n)
    md = float(max_dist)
    if np.isnan(md):
        raise InvalidParameterError("max_dist must be a number (np.inf for no bound), got NaN")
    return _dijkstra(ptr, idx, ln, src, md, _use_parallel(src.shape[0]))


# ---------------------------------------------------------------------------
# Weakly connected components
# ---------------------------------------------------------------------------


@nb.njit(cache=True)
def _find(parent: np.ndarray, x: int) -> int:
    while parent[x] != x:
        parent[x] = parent[parent[x]]  # path halving
        x = parent[x]
    return x


@nb.njit(cache=True)
def _weak_components(n: int, indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Union-find where the root is always the smaller id, so the root of each
    set is its smallest member and the labels come out canonical for free."""
    parent = np.arange(n, dtype=np.int64)
    for u in range(n):
        for e in range(indptr[u], indptr[u + 1]):
            a = _find(parent, u)
            b = _find(parent, indices[e])
            if a < b:
                parent[b] = a
            elif b < a:
                parent[a] = b
    for u in range(n):
        parent[u] = parent[parent[u]]  # roots precede their members: one hop suffices
    return parent


def weak_components(n: int, indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``labels`` int64[n]: the weakly connected component of each node, direction ignored.

    A component is labelled by its smallest node id, a canonical name that does
    not depend on traversal order and that two queries can join on.
    """
    n = _as_int("n", n, 0)
    ptr, idx, m = _csr(indptr, indices)
    if m != n:
        raise InvalidParameterError(f"indptr has {m + 1} entries, expected n + 1 = {n + 1}")
    return _weak_components(n, ptr, idx)


# ---------------------------------------------------------------------------
# Label propagation
# ---------------------------------------------------------------------------


def _symmetric(
    n: int, indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR of ``W + W^T`` without self-loops or zero-weight pairs.

    A stable sort puts, for each ordered pair, ``w(u,v)`` before ``w(v,u)``; a sum
    of two floats commutes exactly, so both directions carry the same weight."""
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    keep = rows != indices
    r = rows[keep]
    c = indices[keep]
    w = weights[keep]
    u = np.concatenate((r, c))
    v = np.concatenate((c, r))
    ww = np.concatenate((w, w))
    order = np.argsort(u * np.int64(n) + v, kind="stable")
    u, v, ww = u[order], v[order], ww[order]
    if u.shape[0]:
        first = np.flatnonzero(np.r_[True, (u[1:] != u[:-1]) | (v[1:] != v[:-1])])
        u, v, ww = u[first], v[first], np.add.reduceat(ww, first)
    live = ww > 0.0
    u, v, ww = u[live], v[live], ww[live]
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(u, minlength=n), out=ptr[1:])
    return ptr, v, ww


@nb.njit(cache=True)
def _label_propagation(
    n: int, indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray, max_iter: int
) -> np.ndarray:
    """Asynchronous sweeps in id order: each node reads the labels its earlier
    neighbours already took this sweep, which converges faster than synchronous
    updates and cannot oscillate between two bipartite halves. Ties go to the
    current label, else the smallest, so the run is a pure function of the input."""
    labels = np.arange(n, dtype=np.int64)
    acc = np.zeros(n, dtype=np.float64)
    mark = np.zeros(n, dtype=np.bool_)
    maxdeg = 0
    for u in range(n):
        maxdeg = max(maxdeg, indptr[u + 1] - indptr[u])
    touched = np.empty(maxdeg, dtype=np.int64)
    for _ in range(max_iter):
        changed = False
        for u in range(n):
            a = indptr[u]
            b = indptr[u + 1]
            if a == b:
                continue
            k = 0
            for e in range(a, b):
                lab = labels[indices[e]]
                if not mark[lab]:
                    mark[lab] = True
                    touched[k] = lab
                    k += 1
                acc[lab] += weights[e]
            best = -1.0
            best_lab = -1
            for j in range(k):
                lab = touched[j]
                if acc[lab] > best or (acc[lab] == best and lab < best_lab):
                    best = acc[lab]
                    best_lab = lab
            cur = labels[u]
            if not (mark[cur] and acc[cur] == best) and best_lab != cur:
                labels[u] = best_lab
                changed = True
            for j in range(k):
                acc[touched[j]] = 0.0
                mark[touched[j]] = False
        if not changed:
            break
    # Canonical names: the smallest member of each community.
    smallest = np.full(n, n, dtype=np.int64)
    for u in range(n):
        if u < smallest[labels[u]]:
            smallest[labels[u]] = u
    for u in range(n):
        labels[u] = smallest[labels[u]]
    return labels


def label_propagation(
    n: int,
    indptr: np.ndarray,
    indices: np.ndarray,
    weights: np.ndarray,
    max_iter: int = 100,
) -> np.ndarray:
    """``labels`` int64[n]: communities by label propagation on the undirected graph.

    The weight of ``{u, v}`` is ``w(u,v) + w(v,u)``; self-loops and pairs of total
    weight zero are ignored (a node with no other links keeps its own label).
    Updates are deterministic (see ``_label_propagation``), and each community is
    named by its smallest member, so equal inputs give equal labels across runs,
    machines and thread counts, and the labels are usable as join keys.
    """
    n = _as_int("n", n, 0)
    max_iter = _as_int("max_iter", max_iter, 1)
    ptr, idx, m = _csr(indptr, indices)
    if m != n:
        raise InvalidParameterError(f"indptr has {m + 1} entries, expected n + 1 = {n + 1}")
    w = _entry_values("weights", weights, idx.shape[0])
    if not np.isfinite(w).all():
        raise InvalidParameterError("weights must be finite")
    sptr, sidx, sw = _symmetric(n, ptr, idx, w)
    return _label_propagation(n, sptr, sidx, sw, max_iter)


# ---------------------------------------------------------------------------
# Random walks
# ---------------------------------------------------------------------------

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_TWO_M53 = 1.0 / 9007199254740992.0


@nb.njit(cache=True)
def _mix64(z: np.uint64) -> np.uint64:
    """The splitmix64 finaliser: a bijection of uint64 with full avalanche."""
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@nb.njit(cache=True)
def _walk_seed(seed: np.uint64, pos: int, walk: int) -> np.uint64:
    return _mix64(_mix64(_mix64(seed) + np.uint64(pos)) + np.uint64(walk))


@nb.njit(cache=True)
def _row_cumsum(indptr: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Running sum of the weights along each row (one pass, memory-bound)."""
    cum = np.empty(weights.shape[0], dtype=np.float64)
    for u in range(indptr.shape[0] - 1):
        s = 0.0
        for e in range(indptr[u], indptr[u + 1]):
            s += weights[e]
            cum[e] = s
    return cum


@nb.njit(cache=True)
def _walk_one(
    indptr: np.ndarray,
    indices: np.ndarray,
    cum: np.ndarray,
    pos: int,
    s: int,
    walks: int,
    length: int,
    seed: np.uint64,
    counts: np.ndarray,
    touched: np.ndarray,
) -> int:
    """Visit counts of ``walks`` walks from ``s`` into ``counts``; the visited
    nodes (sorted) in ``touched[:k]``; returns ``k``.

    Each walk owns a splitmix64 stream seeded by ``(seed, pos, walk)``: a
    counter-based generator makes every walk reproducible on its own, whichever
    thread runs it and in whatever order. A step draws ``x`` uniform in
    ``[0, total)`` and takes the first entry whose running row sum exceeds it
    (binary search), so zero-weight entries are never taken."""
    k = 0
    for w in range(walks):
        state = _walk_seed(seed, pos, w)
        u = s
        if counts[u] == 0:
            touched[k] = u
            k += 1
        counts[u] += 1
        for _ in range(length):
            a = indptr[u]
            b = indptr[u + 1]
            if a == b:
                break
            total = cum[b - 1]
            if not (total > 0.0):
                break
            state += _GAMMA
            x = np.float64(_mix64(state) >> _S11) * _TWO_M53 * total
            lo = a
            hi = b
            while lo < hi:
                mid = (lo + hi) >> 1
                if cum[mid] > x:
                    hi = mid
                else:
                    lo = mid + 1
            if lo == b:  # x rounded up to total: take the last entry of positive weight
                lo = b - 1
                while lo > a and cum[lo - 1] == cum[lo]:
                    lo -= 1
            u = indices[lo]
            if counts[u] == 0:
                touched[k] = u
                k += 1
            counts[u] += 1
    touched[:k].sort()
    return k


@nb.njit(cache=True)
def _walks_serial(
    indptr: np.ndarray,
    indices: np.ndarray,
    cum: np.ndarray,
    sources: np.ndarray,
    walks: int,
    length: int,
    seed: np.uint64,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = indptr.shape[0] - 1
    counts = np.zeros(n, dtype=np.int64)
    touched = np.empty(n, dtype=np.int64)
    pos = np.empty(16, dtype=np.int64)
    node = np.empty(16, dtype=np.int64)
    visits = np.empty(16, dtype=np.int64)
    total = 0
    for i in range(sources.shape[0]):
        k = _walk_one(indptr, indices, cum, i, sources[i], walks, length, seed, counts, touched)
        pos = _grow(pos, total + k)
        node = _grow(node, total + k)
        visits = _grow(visits, total + k)
        for j in range(k):
            v = touched[j]
            pos[total + j] = i
            node[total + j] = v
            visits[total + j] = counts[v]
            counts[v] = 0
        total += k
    return pos[:total].copy(), node[:total].copy(), visits[:total].copy()


@nb.njit(cache=True, parallel=True)
def _walks_parallel(
    indptr: np.ndarray,
    indices: np.ndarray,
    cum: np.ndarray,
    sources: np.ndarray,
    walks: int,
    length: int,
    seed: np.uint64,
    bounds: np.ndarray,
    offsets: np.ndarray,
    pos: np.ndarray,
    node: np.ndarray,
    visits: np.ndarray,
    fill: bool,
) -> None:
    n = indptr.shape[0] - 1
    for c in nb.prange(bounds.shape[0] - 1):
        counts = np.zeros(n, dtype=np.int64)
        touched = np.empty(n, dtype=np.int64)
        for i in range(bounds[c], bounds[c + 1]):
            k = _walk_one(indptr, indices, cum, i, sources[i], walks, length, seed, counts, touched)
            o = offsets[i]
            for j in range(k):
                v = touched[j]
                if fill:
                    pos[o + j] = i
                    node[o + j] = v
                    visits[o + j] = counts[v]
                counts[v] = 0
            if not fill:
                offsets[i + 1] = k


def _random_walks(
    indptr: np.ndarray,
    indices: np.ndarray,
    weights: np.ndarray,
    sources: np.ndarray,
    walks: int,
    length: int,
    seed: int,
    parallel: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cum = _row_cumsum(indptr, weights)
    seed64 = np.uint64(seed % (1 << 64))
    if not parallel:
        return _walks_serial(indptr, indices, cum, sources, walks, length, seed64)
    bounds = _chunks(sources.shape[0])
    offsets = np.zeros(sources.shape[0] + 1, dtype=np.int64)
    args = (indptr, indices, cum, sources, walks, length, seed64, bounds, offsets)
    return _count_then_fill(_walks_parallel, args, offsets, np.int64)


def random_walks(
    indptr: np.ndarray,
    indices: np.ndarray,
    weights: np.ndarray,
    sources: np.ndarray,
    walks: int,
    length: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(src_pos, node, visits)``: visit counts of weighted random walks.

    From each source, ``walks`` walks of ``length`` steps; a step follows an
    out-link with probability proportional to its weight, and a node with no
    out-weight ends the walk. ``visits`` counts the positions 0..length that fell
    on each node (the start once per walk), so without dead ends a source's
    visits sum to ``walks * (length + 1)``. Rows with ``visits > 0``, sorted per
    source by node id. The same ``seed`` gives the same counts on any machine
    and thread count; the expected counts are ``walks * sum_t e_s P^t``.
    """
    ptr, idx, n = _csr(indptr, indices)
    w = _entry_values("weights", weights, idx.shape[0])
    if not np.isfinite(w).all():
        raise InvalidParameterError("weights must be finite")
    src = _sources(sources, n)
    walks = _as_int("walks", walks, 1)
    length = _as_int("length", length, 0)
    seed = _as_int("seed", seed)
    return _random_walks(ptr, idx, w, src, walks, length, seed, _use_parallel(src.shape[0]))


# ---------------------------------------------------------------------------
# Compiled ahead
# ---------------------------------------------------------------------------


def prepare() -> float:
    """Compile (or load from numba's cache) every kernel here, through both the
    serial and the parallel pass, on a three-node graph; returns seconds.

    A first query would otherwise compile the kernels it reaches (8 to 10 s on
    a 2-core machine for a breadth-first search); ``./dev`` runs this at
    install. The arrays are converted as the public functions convert them, and
    the scalars are Python numbers as there, so the signatures compiled are the
    ones a query uses.
    """
    t0 = time.perf_counter()
    ptr, idx, n = _csr(np.array([0, 2, 3, 3]), np.array([1, 2, 2]))
    src = _sources(np.array([0, 1]), n)
    ones = _entry_values("weights", np.ones(3), idx.shape[0])
    for parallel in (False, True):
        _bfs_levels(ptr, idx, src, -1, parallel)
        _dijkstra(ptr, idx, ones, src, float(np.inf), parallel)
        _random_walks(ptr, idx, ones, src, 2, 3, 1, parallel)
    weak_components(n, ptr, idx)
    label_propagation(n, ptr, idx, ones)
    return time.perf_counter() - t0
