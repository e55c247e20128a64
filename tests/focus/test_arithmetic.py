"""The exact arithmetic's own pieces: Bessel series, small solve, strict kernels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import ive

from focusflow.chain.focus_spec import NEW_CHAIN_FOCUS
from focusflow.core.errors import InvalidParameterError
from focusflow.focus import compute
from focusflow.focus.anderson import solve_gram
from focusflow.focus.backends import exact_tree, get_backend
from focusflow.focus.backends.numba_cpu import EXACT_KERNELS, FAST_KERNELS
from focusflow.focus.params import EXACT_V1, EXACT_V2, EXACT_V3, make_params
from focusflow.focus.reduce import TREE_CHUNK, chunked_sum, strict_sum, tree_sum
from focusflow.focus.spectral import bessel_ive, heat_series
from focusflow.graph import Cybergraph
from focusflow.graph.csr import balanced_chunks
from focusflow.graph.generators import rmat_edges
from focusflow.graph.snapshot import Snapshot
from tests.focus.reference import as_matrix, dense_tri, dense_weights
from tests.helpers import random_weighted


@pytest.mark.parametrize("c", [1e-4, 0.01, 0.5, 1.0, 7.3, 50.0, 400.0, 3000.0])
def test_bessel_series_agrees_with_scipy(c):
    kmax = int(c + 12.0 * np.sqrt(c) + 60.0)
    ours = np.array(bessel_ive(c, kmax))
    theirs = ive(np.arange(kmax + 1), c)
    # Relative to the largest coefficient (what the heat error bound sees) ...
    assert np.max(np.abs(ours - theirs)) <= 1e-14 * theirs.max()
    # ... and each coefficient that is not at the edge of underflow.
    big = theirs > 1e-280
    assert np.max(np.abs(ours[big] - theirs[big]) / theirs[big]) < 1e-12


@pytest.mark.parametrize("c,tol", [(1.0, 1e-2), (1.0, 1e-12), (50.0, 1e-8)])
def test_exact_heat_series_cuts_where_scipys_does(c, tol):
    fast, fast_bound = heat_series(c, tol)
    exact, exact_bound = heat_series(c, tol, exact=True)
    assert len(fast) == len(exact)
    assert np.max(np.abs(fast - exact)) < 1e-16
    assert exact_bound == pytest.approx(fast_bound, rel=1e-12)


def test_small_solve_matches_least_squares_and_drops_dependent_directions():
    rng = np.random.default_rng(0)
    for k in range(1, 9):
        d = rng.standard_normal((k + 3, k))
        gram, rhs = d.T @ d, rng.standard_normal(k)
        ours = solve_gram(gram, rhs)
        theirs = np.linalg.lstsq(gram, rhs, rcond=1e-12)[0]
        assert np.max(np.abs(ours - theirs)) <= 1e-10 * np.max(np.abs(theirs))
    d = rng.standard_normal((6, 2))
    d = np.hstack([d, d[:, :1]])  # the third direction repeats the first
    gram = d.T @ d
    gamma = solve_gram(gram, gram @ np.array([1.0, 2.0, 0.0]))
    assert np.allclose(gram @ gamma, gram @ np.array([1.0, 2.0, 0.0]))
    assert solve_gram(np.zeros((2, 2)), np.ones(2)) is None
    assert solve_gram(np.array([[np.nan]]), np.ones(1)) is None


def test_exact_kernels_are_compiled_without_fastmath():
    for fast, exact in zip(FAST_KERNELS, EXACT_KERNELS, strict=True):
        assert exact.targetoptions["fastmath"] is False
        assert exact.py_func.__code__ is fast.py_func.__code__
    # the ones that are fast in the fast arithmetic
    assert FAST_KERNELS.sell_pull.targetoptions["fastmath"] is True


def test_exact_focus_is_close_to_fast_focus():
    src, dst, _ = rmat_edges(11, 8, seed=2)
    snap = Snapshot(1 << 11, src, dst, np.random.default_rng(3).random(len(src)) + 0.1)
    for mode in ("tri", "diffusion"):
        fast = compute(snap, mode=mode, backend="numba")
        exact = compute(snap, mode=mode, backend="numba", arithmetic="exact-v1")
        assert exact.diagnostics.converged
        assert np.abs(fast.focus - exact.focus).sum() < 1e-5


def test_unknown_arithmetic_and_backends_without_it_are_refused():
    with pytest.raises(InvalidParameterError, match=r"exact-v9.*not implemented"):
        make_params(arithmetic="exact-v9")
    src, dst, _ = rmat_edges(6, 4, seed=1)
    with pytest.raises(InvalidParameterError, match="numba or cuda backend only"):
        compute(Snapshot(64, src, dst, np.ones(len(src))), backend="numpy", arithmetic="exact-v1")


@pytest.mark.parametrize("arithmetic", [EXACT_V2, EXACT_V3])
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("laplacian", ["normalized", "combinatorial"])
def test_exact_tri_equals_the_dense_reference(seed, laplacian, arithmetic):
    """Every exact step of a tri solve, the blend among them, computes the
    tri-kernel's fixed point (exact-v1's blend left the diffusion's gathered
    vector stale and converged elsewhere)."""
    rng = np.random.default_rng(300 + seed)
    n = int(rng.integers(4, 40))
    src, dst, w = random_weighted(n, int(rng.integers(n, 4 * n)), seed)
    ref = dense_tri(dense_weights(n, src, dst, w), lam=(0.5, 0.3, 0.2), laplacian=laplacian)
    for anderson in (0, 6):
        res = compute(
            as_matrix(n, src, dst, w),
            mode="tri",
            laplacian=laplacian,
            tol=1e-12,
            backend="numba",
            arithmetic=arithmetic,
            anderson=anderson,
        )
        assert res.converged
        assert np.abs(res.focus - ref).sum() < 1e-8


#: An 8-particle graph (with a self-link, which is dropped) on which exact-v1's
#: new-genesis algorithm cycled until the iteration cap.
_CYCLED = (
    8,
    [6, 3, 2, 7, 7, 6, 4, 4],
    [1, 1, 6, 5, 3, 6, 1, 0],
    [6.06, 2.86, 8.93, 1.71, 5.41, 3.02, 9.67, 0.58],
)


def test_a_new_genesis_algorithm_converges_where_exact_v1_cycled():
    n, src, dst, w = (np.asarray(x) for x in _CYCLED)
    ref = dense_tri(dense_weights(int(n), src, dst, w), lam=(0.5, 0.3, 0.2))
    params = dict(NEW_CHAIN_FOCUS)
    assert params.pop("arithmetic") == EXACT_V3
    snap = Snapshot(int(n), src, dst, w)
    new = compute(snap, **params, arithmetic=EXACT_V2, tol=1e-10, backend="numba")
    assert new.converged and new.iterations < 50
    assert np.abs(new.focus - ref).sum() < 1e-8
    old = compute(snap, **params, arithmetic=EXACT_V1, tol=1e-10, max_iter=200, backend="numba")
    assert not old.converged


# --- exact-v3: chunks of 1,024 combined by a fixed tree --------------------------


def level_tree(values: list[float]) -> float:
    """The tree ``exact-v3`` defines, in Python floats: level by level,
    neighbours added, an odd last value carried up."""
    level = list(values)
    if not level:
        return 0.0
    while len(level) > 1:
        pairs = [level[i] + level[i + 1] for i in range(0, len(level) - 1, 2)]
        level = pairs + ([level[-1]] if len(level) % 2 else [])
    return level[0]


def counter_tree(values: list[float]) -> float:
    """The same tree as a binary counter (equal subtrees merge as they
    complete, the rest added right to left): how a GPU thread streams a row's
    chunks (``csr_pull_tree``)."""
    stack: list[tuple[float, int]] = []
    for v in values:
        stack.append((v, 1))
        while len(stack) >= 2 and stack[-1][1] == stack[-2][1]:
            (a, k), (b, _) = stack[-2], stack[-1]
            stack[-2:] = [(a + b, 2 * k)]
    acc = stack[-1][0]
    for v, _ in reversed(stack[:-1]):
        acc = v + acc
    return acc


def v3_sum(terms: np.ndarray) -> float:
    """A sum as ``exact-v3`` defines it, in Python floats: chunks of
    ``TREE_CHUNK`` terms added in order from 0.0, then ``level_tree``."""
    partials = []
    for lo in range(0, len(terms), TREE_CHUNK):
        s = 0.0
        for t in terms[lo : lo + TREE_CHUNK].tolist():
            s += t
        partials.append(s)
    return level_tree(partials)


def test_tree_sum_is_the_level_tree_and_the_counter_is_too():
    rng = np.random.default_rng(5)
    for m in range(0, 300):
        values = rng.standard_normal(m) * 10.0 ** rng.integers(-12, 12, m)
        want = level_tree(values.tolist())
        assert tree_sum(values) == want
        if m:
            assert counter_tree(values.tolist()) == want
    # the grouping is not strict_sum's: these values tell the orders apart
    values = np.array([1.0, 1e16, -1e16, 1.0])
    assert tree_sum(values) == (1.0 + 1e16) + (-1e16 + 1.0) == 0.0
    assert strict_sum(values) == 1.0
    big = rng.random(5000) * 10.0 ** rng.integers(-8, 8, 5000)
    assert chunked_sum(big) == v3_sum(big)
    assert chunked_sum(np.zeros(0)) == 0.0


def hub_snapshot(seed: int) -> Snapshot:
    """An R-MAT graph with hubs past exact-v3's chunk of 1,024: a particle
    with 3,000 in-links and one with 3,000 out-links in the base (rows of the
    in-link and symmetric matrices in three chunks), and a patch of 1,500
    links into one particle (an overlay row in two chunks) with 500 others."""
    g = Cybergraph(require_cids=False)
    rng = np.random.default_rng(seed)
    src, dst, _ = rmat_edges(12, 8, seed=seed)
    star = np.arange(1, 3001)
    src = np.concatenate([src, star, np.ones(3000, dtype=np.int64)])
    dst = np.concatenate([dst, np.zeros(3000, dtype=np.int64), (star + 7) % 4096])
    names = np.array([f"p{i}" for i in range(1 << 12)], dtype=object)
    g.add_links(names[src], names[dst], weights=rng.random(len(src)) + 0.01)
    g.snapshot()
    fan = rng.choice(np.arange(100, 4096), 1500, replace=False)
    g.add_links(names[fan], [names[2]] * 1500)
    g.add_links(names[rng.integers(0, 4096, 500)], names[rng.integers(0, 4096, 500)])
    snap, _ = g.refresh()
    assert snap.overlay_nnz > 1500
    return snap


def _sell_rows(m: object, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each stored row's sum of ``x`` as exact-v3 defines it (its slots in
    chunks of 1,024, the tree), in Python floats, by slot (padding: 0)."""
    grows, gptr, glen, sidx, sval = (
        np.asarray(getattr(m, k)) for k in ("grows", "gptr", "glen", "sidx", "sval")
    )
    sums = np.zeros(len(grows))
    for s in range(len(grows)):
        g, lane = divmod(s, 8)
        o = gptr[g] + lane + 8 * np.arange(glen[g])
        terms = (sval[o] * x[sidx[o]]).tolist()
        sums[s] = level_tree(
            [sum_in_order(terms[k : k + TREE_CHUNK]) for k in range(0, len(terms), TREE_CHUNK)]
            or [0.0]
        )
    return sums, grows


def sum_in_order(terms: list[float]) -> float:
    s = 0.0
    for t in terms:
        s += t
    return s


def test_exact_v3_kernels_sum_as_the_definition_says():
    """The numba kernels of exact-v3 against the definition computed in
    Python floats: rows (hubs of three chunks among them), the in-link pull
    with the overlay's long row, the Laplacian products, the vector sums and
    Anderson's Gram products, bit for bit."""
    snap = hub_snapshot(3)
    n = snap.n
    op = get_backend("numba").operator(snap, "float64", EXACT_V3)
    rng = np.random.default_rng(1)
    x = rng.random(n) ** 3
    x[rng.random(n) < 0.05] = -1e-18
    z = x * op.inv_out

    # The in-link pull: rows, then their total over the slots, then the overlay.
    sums, grows = _sell_rows(op.sell, z)
    assert op.sell.glen.max() > 2 * TREE_CHUNK
    out = np.zeros(n)
    total = exact_tree.sell_pull(
        op.sell.grows,
        op.sell.gptr,
        op.sell.glen,
        op.sell.sidx,
        op.sell.sval,
        z,
        out,
        op.sell_bounds,
        0.85,
    )
    values = np.where(grows >= 0, sums * 0.85, 0.0)
    assert np.array_equal(out[grows[grows >= 0]], values[grows >= 0])
    assert total == v3_sum(values)
    ptr, idx, w = op.ov_ptr, op.ov_indices, op.ov_in_w
    assert np.diff(ptr).max() > TREE_CHUNK
    before = out.copy()
    ov_total = exact_tree.csr_pull_add(op.ov_rows, ptr, idx, w, z, out, 0.85)
    vals = []
    for k, r in enumerate(op.ov_rows):
        terms = (w[ptr[k] : ptr[k + 1]] * z[idx[ptr[k] : ptr[k + 1]]]).tolist()
        v = (
            level_tree(
                [sum_in_order(terms[j : j + TREE_CHUNK]) for j in range(0, len(terms), TREE_CHUNK)]
                or [0.0]
            )
            * 0.85
        )
        vals.append(v)
        assert out[r] == before[r] + v
    assert ov_total == v3_sum(np.array(vals))

    # The Laplacian's rows and CG's product p . ap over the symmetric matrix.
    op.setup_laplacian("normalized")
    sym = op._sym
    assert sym.glen.max() > 2 * TREE_CHUNK
    sums, grows = _sell_rows(sym, x)
    lap = np.empty(n)
    op.lap_matvec(x, lap)
    live = grows >= 0
    assert np.array_equal(lap[grows[live]], sym.diag[grows[live]] * x[grows[live]] - sums[live])
    diag_mu = sym.diag + 0.5
    ap = np.empty(n)
    pap = exact_tree.cg_product(*op._args, diag_mu, x, ap)
    rows = grows[live]
    assert np.array_equal(ap[rows], diag_mu[rows] * x[rows] - sums[live])
    assert pap == v3_sum(np.where(live, x[np.maximum(grows, 0)] * ap[np.maximum(grows, 0)], 0.0))

    # Sums over particles, and Anderson's Gram products.
    y = rng.random(n)
    assert op.dot(x, y) == v3_sum(x * y)
    assert op.total(y) == v3_sum(y)
    m, k = 3, 2
    dx, dg = np.zeros((m, n)), rng.random((m, n))
    x_prev, g_prev = rng.random(n), rng.random(n)
    g_new = y - x
    want_dg = g_new - g_prev
    cross, rhs = exact_tree.TreeAnderson.record(
        x, y, x_prev.copy(), g_prev.copy(), dx, dg, 2, True, k
    )
    assert np.array_equal(dg[2], want_dg)
    assert [cross[j] for j in range(k)] == [v3_sum(want_dg * dg[j]) for j in range(k)]
    assert [rhs[j] for j in range(k)] == [v3_sum(dg[j] * g_new) for j in range(k)]


def test_exact_v3_is_close_to_v2_and_the_thread_count_does_not_matter():
    """v3 changes only how sums group: its focus is v2's to rounding (the
    golden roots and the thread test check its bits)."""
    snap = hub_snapshot(4)
    for mode in ("tri", "diffusion"):
        v2 = compute(snap, mode=mode, backend="numba", arithmetic=EXACT_V2, tol=1e-10)
        v3 = compute(snap, mode=mode, backend="numba", arithmetic=EXACT_V3, tol=1e-10)
        assert v3.converged
        assert np.abs(v2.focus - v3.focus).sum() < 1e-12


def test_exact_v3_matrix_sums_are_the_same_however_threads_split_the_rows():
    """A matrix kernel's threads take rows by cost, so a chunk of 1,024 slots
    lies whole in one thread's part (summed as it goes) or is cut by a part's
    bound (its terms summed afterwards): both give the definition's bits."""
    src, dst, _ = rmat_edges(15, 8, seed=9)
    w = np.random.default_rng(9).random(len(src)) + 0.1
    snap = Snapshot(1 << 15, src, dst, w)
    op = get_backend("numba").operator(snap, "float64", EXACT_V3)
    m = op.sell
    groups = len(m.glen)
    cut = [exact_tree._whole(op.sell_bounds, c, groups) for c in range(len(op.sell_bounds) - 1)]
    assert sum(hi - lo for lo, hi in cut) > 0  # some chunks lie whole in a part
    assert sum(hi - lo for lo, hi in cut) < (groups + exact_tree.GROUPS - 1) // exact_tree.GROUPS
    z = np.random.default_rng(1).random(snap.n)
    sums, grows = _sell_rows(m, z)
    out = np.zeros(snap.n)
    args = (m.grows, m.gptr, m.glen, m.sidx, m.sval, z, out, op.sell_bounds, 0.85)
    total = exact_tree.sell_pull(*args)
    assert total == v3_sum(np.where(grows >= 0, sums * 0.85, 0.0))
    for parts in (1, 3, 64, 200):  # other splits of the same rows, the same bits
        bounds = balanced_chunks(m.gptr, parts)
        assert exact_tree.sell_pull(*args[:7], bounds, 0.85) == total
