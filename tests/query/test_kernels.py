"""The query layer's graph kernels against networkx (and dense numpy) in float64."""

from __future__ import annotations

import time

import networkx as nx
import numba as nb
import numpy as np
import pytest
import scipy.sparse as sp

from focusflow.core.errors import InvalidParameterError
from focusflow.graph.generators import random_graph, rmat_edges
from focusflow.query import kernels


def to_csr(n, src, dst, w):
    """Deduplicated CSR (duplicates summed, zero weights kept as entries)."""
    a = sp.csr_matrix((w, (src, dst)), shape=(n, n))
    a.sum_duplicates()
    a.sort_indices()
    return a.indptr.astype(np.int64), a.indices.astype(np.int64), a.data.astype(np.float64)


def graphs():
    """(name, n, indptr, indices, weights): uniform and R-MAT graphs, some with
    zero weights, self-loops, duplicates, dangling and isolated nodes."""
    out = []
    for seed, (n, m, zf) in enumerate([(200, 400, 0.0), (300, 1500, 0.2), (50, 40, 0.1)]):
        s, d, w = random_graph(n, m, seed=seed, zero_weight_frac=zf)
        out.append((f"uniform{seed}", n, *to_csr(n, s, d, w)))
    for seed, (scale, ef) in enumerate([(8, 4), (10, 8)]):
        s, d, w = rmat_edges(scale, ef, seed=seed)
        out.append((f"rmat{scale}", 1 << scale, *to_csr(1 << scale, s, d, w)))
    return out


GRAPHS = graphs()
IDS = [g[0] for g in GRAPHS]


def digraph(n, indptr, indices, weights=None, lengths=None):
    g = nx.DiGraph()
    g.add_nodes_from(range(n))
    rows = np.repeat(np.arange(n), np.diff(indptr))
    for e, (u, v) in enumerate(zip(rows.tolist(), indices.tolist(), strict=True)):
        attrs = {}
        if weights is not None:
            attrs["weight"] = float(weights[e])
        if lengths is not None:
            if not np.isfinite(lengths[e]):
                continue
            attrs["length"] = float(lengths[e])
        g.add_edge(u, v, **attrs)
    return g


def undirected_weighted(n, indptr, indices, weights):
    """``{u, v}`` with weight ``w(u,v) + w(v,u)``, no self-loops, no zero weights."""
    g = nx.Graph()
    g.add_nodes_from(range(n))
    rows = np.repeat(np.arange(n), np.diff(indptr))
    for u, v, w in zip(rows.tolist(), indices.tolist(), weights.tolist(), strict=True):
        if u == v:
            continue
        old = g.edges[u, v]["weight"] if g.has_edge(u, v) else 0.0
        g.add_edge(u, v, weight=old + w)
    g.remove_edges_from([(u, v) for u, v, w in g.edges(data="weight") if w == 0.0])
    return g


def pick_sources(n, seed, k=6):
    rng = np.random.default_rng(seed)
    s = rng.integers(0, n, k)
    return np.concatenate((s, s[:2]))  # repeated sources are separate positions


def rows_of(pos, i, *cols):
    sel = pos == i
    return [c[sel] for c in cols]


# ---------------------------------------------------------------------------
# bfs_levels
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("graph", GRAPHS, ids=IDS)
@pytest.mark.parametrize("max_depth", [0, 1, 2, 3, -1])
def test_bfs_levels_match_networkx(graph, max_depth):
    _, n, indptr, indices, _ = graph
    g = digraph(n, indptr, indices)
    sources = pick_sources(n, max_depth + 7)
    pos, node, depth = kernels.bfs_levels(indptr, indices, sources, max_depth)
    assert pos.dtype == node.dtype == depth.dtype == np.int64
    assert np.all(np.diff(pos) >= 0)
    cutoff = None if max_depth < 0 else max_depth
    for i, s in enumerate(sources.tolist()):
        got_node, got_depth = rows_of(pos, i, node, depth)
        want = nx.single_source_shortest_path_length(g, s, cutoff=cutoff)
        order = sorted(want, key=lambda v: (want[v], v))
        assert got_node.tolist() == order
        assert got_depth.tolist() == [want[v] for v in order]
    for parallel in (False, True):
        again = kernels._bfs_levels(indptr, indices, sources, max_depth, parallel)
        for a, b in zip(again, (pos, node, depth), strict=True):
            assert np.array_equal(a, b)


def test_bfs_levels_empty_sources_and_isolated_source():
    indptr = np.array([0, 1, 1, 1], dtype=np.int64)
    indices = np.array([1], dtype=np.int64)
    pos, node, depth = kernels.bfs_levels(indptr, indices, np.array([], dtype=np.int64), -1)
    assert pos.shape == node.shape == depth.shape == (0,)
    pos, node, depth = kernels.bfs_levels(indptr, indices, [2, 0], 5)
    assert pos.tolist() == [0, 1, 1]
    assert node.tolist() == [2, 0, 1]
    assert depth.tolist() == [0, 0, 1]


def test_bounded_bfs_costs_the_neighbourhood_not_the_graph():
    n = 250_000
    s, d, w = random_graph(n, 1_000_000, seed=3)
    indptr, indices, _ = to_csr(n, s, d, w)
    src = np.array([12345], dtype=np.int64)
    kernels.bfs_levels(indptr, indices, src, 2)  # compiled (or loaded) already; warm the caches
    best = np.inf
    for _ in range(7):
        t = time.perf_counter()
        pos, _, _ = kernels.bfs_levels(indptr, indices, src, 2)
        best = min(best, time.perf_counter() - t)
    assert 1 <= pos.shape[0] < 200
    assert best < 5e-3, f"two-hop BFS on 10^6 links took {best * 1e3:.2f} ms"


# ---------------------------------------------------------------------------
# dijkstra
# ---------------------------------------------------------------------------


def lengths_of(weights):
    with np.errstate(divide="ignore"):
        return 1.0 / weights  # zero weight: infinite length, impassable


@pytest.mark.parametrize("graph", GRAPHS, ids=IDS)
@pytest.mark.parametrize("max_dist", [0.0, 2.5, 10.0, np.inf])
def test_dijkstra_matches_networkx(graph, max_dist):
    _, n, indptr, indices, weights = graph
    lengths = lengths_of(weights)
    g = digraph(n, indptr, indices, lengths=lengths)
    sources = pick_sources(n, 11)
    pos, node, dist = kernels.dijkstra(indptr, indices, lengths, sources, max_dist)
    assert dist.dtype == np.float64
    cutoff = None if np.isinf(max_dist) else max_dist
    for i, s in enumerate(sources.tolist()):
        got_node, got_dist = rows_of(pos, i, node, dist)
        want = nx.single_source_dijkstra_path_length(g, s, cutoff=cutoff, weight="length")
        assert got_node.tolist() == sorted(want)
        exp = np.array([want[v] for v in sorted(want)])
        np.testing.assert_allclose(got_dist, exp, rtol=1e-12, atol=0.0)
        assert got_dist[got_node == s].tolist() == [0.0]
    for parallel in (False, True):
        again = kernels._dijkstra(indptr, indices, lengths, sources, float(max_dist), parallel)
        for a, b in zip(again, (pos, node, dist), strict=True):
            assert np.array_equal(a, b)


def test_dijkstra_zero_lengths_and_negative_bound():
    # 0 -> 1 (0.0), 1 -> 2 (0.0), 0 -> 2 (inf)
    indptr = np.array([0, 2, 3, 3], dtype=np.int64)
    indices = np.array([1, 2, 2], dtype=np.int64)
    lengths = np.array([0.0, np.inf, 0.0])
    pos, node, dist = kernels.dijkstra(indptr, indices, lengths, [0], 0.0)
    assert node.tolist() == [0, 1, 2]
    assert dist.tolist() == [0.0, 0.0, 0.0]
    pos, node, dist = kernels.dijkstra(indptr, indices, lengths, [0], -1.0)
    assert pos.shape == (0,)


# ---------------------------------------------------------------------------
# weak_components
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("graph", GRAPHS, ids=IDS)
def test_weak_components_match_networkx(graph):
    _, n, indptr, indices, _ = graph
    labels = kernels.weak_components(n, indptr, indices)
    assert labels.dtype == np.int64 and labels.shape == (n,)
    want = np.empty(n, dtype=np.int64)
    comps = list(nx.weakly_connected_components(digraph(n, indptr, indices)))
    for comp in comps:
        want[list(comp)] = min(comp)
    assert np.array_equal(labels, want)
    assert len(np.unique(labels)) == len(comps)


def test_weak_components_edge_cases():
    empty = np.zeros(0, dtype=np.int64)
    assert kernels.weak_components(0, np.zeros(1, dtype=np.int64), empty).shape == (0,)
    # 3 -> 0 and 2 -> 1 only: labels are the smallest ids whatever the direction
    indptr = np.array([0, 0, 0, 1, 2], dtype=np.int64)
    indices = np.array([1, 0], dtype=np.int64)
    assert kernels.weak_components(4, indptr, indices).tolist() == [0, 1, 1, 0]


# ---------------------------------------------------------------------------
# label_propagation
# ---------------------------------------------------------------------------


def planted(seed, k=5, size=20, p=0.8, bridges=4):
    rng = np.random.default_rng(seed)
    src, dst = [], []
    for c in range(k):
        ids = np.arange(c * size, (c + 1) * size)
        uu, vv = np.meshgrid(ids, ids, indexing="ij")
        keep = (rng.random(uu.shape) < p) & (uu != vv)
        src.append(uu[keep])
        dst.append(vv[keep])
    for _ in range(bridges):
        a, b = rng.choice(k, 2, replace=False)
        src.append([a * size + rng.integers(size)])
        dst.append([b * size + rng.integers(size)])
    s = np.concatenate(src)
    d = np.concatenate(dst)
    return k * size, *to_csr(k * size, s, d, rng.random(s.shape[0]) + 0.01)


@pytest.mark.parametrize("seed", range(6))
def test_label_propagation_recovers_planted_communities(seed):
    n, indptr, indices, weights = planted(seed)
    labels = kernels.label_propagation(n, indptr, indices, weights)
    assert labels.dtype == np.int64
    assert np.array_equal(labels, (np.arange(n) // 20) * 20)


def sparse_graphs():
    """Sparse uniform graphs (mean degree 2.5 to 4), where label propagation finds
    real structure; on the denser ones above every method's modularity is ~0."""
    out = []
    for seed, m in enumerate((500, 650, 800)):
        s, d, w = random_graph(400, m, seed=10 + seed)
        out.append((f"sparse{m}", 400, *to_csr(400, s, d, w)))
    return out


LPA_GRAPHS = GRAPHS + sparse_graphs()


@pytest.mark.parametrize("graph", LPA_GRAPHS, ids=[g[0] for g in LPA_GRAPHS])
def test_label_propagation_modularity_and_determinism(graph):
    _, n, indptr, indices, weights = graph
    labels = kernels.label_propagation(n, indptr, indices, weights)
    assert np.array_equal(labels, kernels.label_propagation(n, indptr, indices, weights))
    # canonical: every label is the smallest member of its community
    assert np.all(labels <= np.arange(n))
    assert np.array_equal(labels[labels], labels)
    g = undirected_weighted(n, indptr, indices, weights)
    ours = [set(np.flatnonzero(labels == lab).tolist()) for lab in np.unique(labels)]
    q_ours = nx.community.modularity(g, ours, weight="weight")
    theirs = list(nx.community.label_propagation_communities(g))
    q_theirs = nx.community.modularity(g, theirs, weight="weight")
    assert q_ours >= 0.8 * q_theirs, (q_ours, q_theirs)


def test_label_propagation_isolated_self_loops_zero_weights_and_max_iter():
    # 0 - 1 linked, 2 has only a self-loop, 3 -> 4 of weight zero, 5 has nothing
    indptr = np.array([0, 1, 1, 2, 3, 3, 3], dtype=np.int64)
    indices = np.array([1, 2, 4], dtype=np.int64)
    weights = np.array([1.0, 5.0, 0.0])
    labels = kernels.label_propagation(6, indptr, indices, weights)
    assert labels.tolist() == [0, 0, 2, 3, 4, 5]
    n, indptr, indices, weights = planted(0)
    one = kernels.label_propagation(n, indptr, indices, weights, max_iter=1)
    assert np.all(one <= np.arange(n))
    assert kernels.label_propagation(0, np.zeros(1, np.int64), np.zeros(0, np.int64), []).shape == (
        0,
    )


# ---------------------------------------------------------------------------
# random_walks
# ---------------------------------------------------------------------------


def small_graph(seed, dead_ends):
    """~30 nodes; with ``dead_ends`` False a ring keeps every node's out-weight > 0."""
    n = 30
    s, d, w = random_graph(n, 90, seed=seed, zero_weight_frac=0.2 if dead_ends else 0.0)
    if not dead_ends:
        ring = np.arange(n)
        s, d, w = np.r_[s, ring], np.r_[d, (ring + 1) % n], np.r_[w, np.full(n, 0.5)]
    return n, *to_csr(n, s, d, w)


def expected_visits(n, indptr, indices, weights, s, length):
    """Mean and variance of one walk's visit count per node, densely.

    ``P`` is row-normalised (rows of zero out-weight stay zero: the walk dies), so
    ``p_t = e_s P^t`` and ``E[X_v^2] = sum_t p_t(v) + 2 sum_{t<t'} p_t(v) (P^(t'-t))_vv``.
    """
    a = sp.csr_matrix((weights, indices, indptr), shape=(n, n)).toarray()
    tot = a.sum(axis=1, keepdims=True)
    p = np.divide(a, tot, out=np.zeros_like(a), where=tot > 0)
    pt = [np.eye(n)[s]]
    powers = [np.eye(n)]
    for _ in range(length):
        pt.append(pt[-1] @ p)
        powers.append(powers[-1] @ p)
    ret = np.array([np.diag(m) for m in powers])  # ret[k, v] = (P^k)_vv
    mean = np.sum(pt, axis=0)
    second = mean.copy()
    for t in range(length + 1):
        second += 2.0 * pt[t] * ret[1 : length + 1 - t].sum(axis=0)
    return mean, second - mean**2


@pytest.mark.parametrize("dead_ends", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_random_walks_match_expected_visits(seed, dead_ends):
    n, indptr, indices, weights = small_graph(seed, dead_ends)
    walks, length = 20_000, 8
    sources = np.array([0, 7, 7, 29], dtype=np.int64)
    pos, node, visits = kernels.random_walks(indptr, indices, weights, sources, walks, length, 42)
    assert visits.dtype == np.int64 and np.all(visits > 0)
    for i, s in enumerate(sources.tolist()):
        got_node, got_visits = rows_of(pos, i, node, visits)
        assert np.all(np.diff(got_node) > 0)
        counts = np.zeros(n)
        counts[got_node] = got_visits
        mean, var = expected_visits(n, indptr, indices, weights, s, length)
        if not dead_ends:
            assert counts.sum() == walks * (length + 1)
        assert counts[s] >= walks
        assert np.all(counts[mean == 0] == 0)
        sd = np.sqrt(walks * var)
        assert np.all(np.abs(counts - walks * mean) <= 5 * sd + 1e-9), (s, counts, walks * mean)
    # the repeated source has its own walks (seeded by position), not a copy
    assert not np.array_equal(rows_of(pos, 1, visits)[0], rows_of(pos, 2, visits)[0])


def test_random_walks_deterministic_and_seeded():
    _, _, indptr, indices, weights = GRAPHS[4]
    sources = pick_sources(indptr.shape[0] - 1, 5)
    a = kernels.random_walks(indptr, indices, weights, sources, 50, 12, 7)
    b = kernels.random_walks(indptr, indices, weights, sources, 50, 12, 7)
    c = kernels.random_walks(indptr, indices, weights, sources, 50, 12, 8)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x, y)
    assert not all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, c, strict=True))
    for parallel in (False, True):
        again = kernels._random_walks(indptr, indices, weights, sources, 50, 12, 7, parallel)
        for x, y in zip(again, a, strict=True):
            assert np.array_equal(x, y)
    # length 0: each walk is its start
    pos, node, visits = kernels.random_walks(indptr, indices, weights, [3, 3], 9, 0, 1)
    assert pos.tolist() == [0, 1] and node.tolist() == [3, 3] and visits.tolist() == [9, 9]


def test_results_independent_of_thread_count():
    _, n, indptr, indices, weights = GRAPHS[4]
    sources = np.arange(0, n, 7, dtype=np.int64)
    lengths = lengths_of(weights)
    saved = nb.get_num_threads()
    runs = []
    try:
        for threads in (1, saved):
            nb.set_num_threads(threads)
            runs.append(
                (
                    *kernels._bfs_levels(indptr, indices, sources, 3, True),
                    *kernels._dijkstra(indptr, indices, lengths, sources, 5.0, True),
                    *kernels._random_walks(indptr, indices, weights, sources, 20, 6, 3, True),
                )
            )
    finally:
        nb.set_num_threads(saved)
    for x, y in zip(*runs, strict=True):
        assert np.array_equal(x, y)


# ---------------------------------------------------------------------------
# argument validation
# ---------------------------------------------------------------------------

PTR = np.array([0, 1, 2, 2], dtype=np.int64)
IDX = np.array([1, 2], dtype=np.int64)
W = np.array([1.0, 2.0])


@pytest.mark.parametrize(
    "call",
    [
        lambda: kernels.bfs_levels(PTR, IDX, [3], 1),
        lambda: kernels.bfs_levels(PTR, IDX, [-1], 1),
        lambda: kernels.bfs_levels(PTR, IDX, [0], 1.5),
        lambda: kernels.bfs_levels(PTR, IDX, [[0]], 1),
        lambda: kernels.bfs_levels(PTR, IDX, [0.5], 1),
        lambda: kernels.bfs_levels(PTR, IDX, np.array([True]), 1),
        lambda: kernels.bfs_levels(np.array([0, 1, 3, 3]), IDX, [0], 1),
        lambda: kernels.bfs_levels(np.array([1, 1, 2, 2]), IDX, [0], 1),
        lambda: kernels.dijkstra(PTR, IDX, [1.0, -1.0], [0], np.inf),
        lambda: kernels.dijkstra(PTR, IDX, [1.0, np.nan], [0], np.inf),
        lambda: kernels.dijkstra(PTR, IDX, [1.0], [0], np.inf),
        lambda: kernels.dijkstra(PTR, IDX, W, [0], np.nan),
        lambda: kernels.dijkstra(PTR, IDX, W, [5], np.inf),
        lambda: kernels.weak_components(4, PTR, IDX),
        lambda: kernels.weak_components(-1, PTR, IDX),
        lambda: kernels.label_propagation(3, PTR, IDX, W, max_iter=0),
        lambda: kernels.label_propagation(3, PTR, IDX, [1.0, -2.0]),
        lambda: kernels.label_propagation(3, PTR, IDX, [1.0, np.inf]),
        lambda: kernels.label_propagation(3, PTR, IDX, W, max_iter=True),
        lambda: kernels.random_walks(PTR, IDX, W, [0], 0, 3, 1),
        lambda: kernels.random_walks(PTR, IDX, W, [0], 1, -1, 1),
        lambda: kernels.random_walks(PTR, IDX, W, [3], 1, 1, 1),
        lambda: kernels.random_walks(PTR, IDX, [-1.0, 1.0], [0], 1, 1, 1),
        lambda: kernels.random_walks(PTR, IDX, W, [0], 1, 1, "seed"),
    ],
)
def test_invalid_arguments_raise(call):
    with pytest.raises(InvalidParameterError):
        call()
