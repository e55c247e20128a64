"""The symmetric matrix stored once per pair (``backends.sym_half``): the same
Chebyshev terms as the full layout and the dense matrix, in every partition
count, and only where the fast kernels run and the solve allows sums grouped
by thread count; and the SELL chunks weighed by group (``sell.group_bounds``)."""

import copy
import pickle

import numba
import numpy as np
import pytest

from focusflow.focus import compute
from focusflow.focus.backends import get_backend, numba_lap
from focusflow.focus.backends.sell import group_bounds
from focusflow.focus.backends.sym_half import HalfSymmetric
from focusflow.focus.params import FocusParams
from focusflow.graph import Snapshot
from focusflow.graph.csr import balanced_chunks
from tests.focus.reference import as_matrix, dense_laplacian, dense_tri, dense_weights
from tests.helpers import random_weighted


@pytest.fixture
def two_threads():
    """The buffers pay at two threads on these graphs (``HalfSymmetric.worth``),
    whatever the machine's core count."""
    before = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    yield
    numba.set_num_threads(before)


def _operator(n: int, m: int, seed: int, laplacian: str = "normalized", **kw):
    src, dst, w = random_weighted(n, m, seed)
    # self-links of their own weight, which no other row points at
    src = np.concatenate([src, [3, 5, 5]])
    dst = np.concatenate([dst, [3, 5, 5]])
    w = np.concatenate([w, [0.7, 0.2, 0.4]])
    op = get_backend("numba").operator(Snapshot(n, src, dst, w, order="none"), **kw)
    op.setup_laplacian(laplacian)
    lap = dense_laplacian(dense_weights(n, src, dst, w), laplacian)
    # in the symmetric frame the kernels work in: Ls = sigma L sigma^-1
    sigma = op.lap_sigma
    inv = np.divide(1.0, sigma, out=np.zeros(n), where=sigma > 0)
    return op, sigma[:, None] * lap * inv[None, :]


def _terms(step, n, k, seed=0):
    """``k`` terms of the recurrence from a random vector; what each wrote."""
    rng = np.random.default_rng(seed)
    t_cur, t_prev, acc = rng.random(n), np.zeros(n), np.zeros(n)
    out = []
    step(t_cur, t_prev, acc, 0.3, 0.5, True)
    out.append((t_prev.copy(), acc.copy()))
    for a_k in rng.random(k - 1):
        t_cur, t_prev = t_prev, t_cur
        step(t_cur, t_prev, acc, a_k, 0.0, False)
        out.append((t_prev.copy(), acc.copy()))
    return out


@pytest.mark.parametrize("parts", [1, 2, 3, 7])
@pytest.mark.parametrize(("n", "laplacian"), [(61, "normalized"), (203, "combinatorial")])
def test_terms_equal_the_full_layout_and_the_dense_matrix(parts, n, laplacian):
    op, lap = _operator(n, 12 * n, seed=n + parts, laplacian=laplacian)
    sym = op._sym
    half = HalfSymmetric(sym, parts)
    assert len(half.bounds) - 1 == parts
    # each pair once: the stored nonzeros are about half of the full layout's
    assert np.count_nonzero(half.sval) <= sym.nnz / 2 + 1
    scale = 2.0 / sym.lam_max
    args = (sym.grows, sym.gptr, sym.glen, sym.sidx, sym.sval, sym.bounds, sym.diag, scale)

    def full(t_cur, t_prev, acc, a_k, a_0, first):
        numba_lap.cheb_step(*args, t_cur, t_prev, acc, a_k, a_0, first)

    def halved(t_cur, t_prev, acc, a_k, a_0, first):
        half.step(scale, t_cur, t_prev, acc, a_k, a_0, first)

    z = scale * lap - np.eye(n)
    rng = np.random.default_rng(0)
    x = rng.random(n)
    prev, cur = np.zeros(n), x
    for (tf, af), (th, ah) in zip(_terms(full, n, 6), _terms(halved, n, 6), strict=True):
        assert np.abs(th - tf).max() <= 1e-12 * max(1.0, np.abs(tf).max())
        assert np.abs(ah - af).max() <= 1e-12 * max(1.0, np.abs(af).max())
    # the first two terms against the dense Z
    (t1, a1), (t2, _) = _terms(halved, n, 2)
    assert np.allclose(t1, z @ x, rtol=1e-12, atol=1e-12)
    assert np.allclose(a1, 0.5 * x + 0.3 * t1, rtol=1e-12, atol=1e-12)
    prev, cur = x, t1
    assert np.allclose(t2, 2 * z @ cur - prev, rtol=1e-11, atol=1e-11)
    # the buffers are left zero for the next term
    assert not half.bufs.any()


def test_the_operator_takes_it_where_allowed_and_it_pays_only_for_fast_kernels(two_threads):
    dense, _ = _operator(120, 3000, seed=1)
    assert HalfSymmetric.worth(dense._sym.nnz, dense.n, numba.get_num_threads())
    coeffs = np.array([0.4, -0.3, 0.2, 0.05, -0.01])
    v = np.random.default_rng(1).random(dense.n)
    # not allowed (what an engine's or a chain's solve says): the full layout
    dense.allow_thread_sums(False)
    want = dense.chebyshev(v, coeffs)
    assert "_half" not in vars(dense)
    dense.allow_thread_sums(True)
    got = dense.chebyshev(v, coeffs)
    assert "_half" in vars(dense)
    assert np.abs(got - want).max() <= 1e-12 * np.abs(want).max()
    # the exact kernels never take it
    exact, _ = _operator(120, 3000, seed=1, arithmetic="exact-v1")
    exact.allow_thread_sums(True)
    assert np.abs(exact.chebyshev(v, coeffs) - want).max() <= 1e-12 * np.abs(want).max()
    assert "_half" not in vars(exact)
    # nor does a graph too sparse for its buffers to pay
    sparse, _ = _operator(120, 200, seed=2)
    sparse.allow_thread_sums(True)
    assert not HalfSymmetric.worth(sparse._sym.nnz, sparse.n, numba.get_num_threads())
    sparse.chebyshev(v, coeffs)
    assert "_half" not in vars(sparse)


def test_copies_and_pickles_rebuild_it(two_threads):
    op, _ = _operator(120, 3000, seed=3)
    op.allow_thread_sums(True)
    coeffs = np.array([0.4, -0.3, 0.2, 0.05])
    v = np.random.default_rng(3).random(op.n)
    first = op.chebyshev(v, coeffs)
    assert "_half" in vars(op)
    for other in (copy.deepcopy(op), pickle.loads(pickle.dumps(op))):
        assert "_half" not in vars(other) and "_thread_sums" not in vars(other)
        other.allow_thread_sums(True)
        assert np.array_equal(other.chebyshev(v, coeffs), first)
        assert "_half" in vars(other)
    # a new matrix (after a refresh) is not served by the old one's copy
    op.refresh()
    op.setup_laplacian("normalized")
    assert "_half" not in vars(op)


def test_tri_series_reaches_the_dense_fixed_point_through_it(two_threads, monkeypatch):
    steps = []
    real = HalfSymmetric.step
    monkeypatch.setattr(HalfSymmetric, "step", lambda self, *a: steps.append(1) or real(self, *a))
    n = 150
    src, dst, w = random_weighted(n, 3000, 9)
    ref = dense_tri(dense_weights(n, src, dst, w))
    for precision in ("float64", "float32"):
        res = compute(
            as_matrix(n, src, dst, w),
            tol=1e-10,
            springs_method="series",
            backend="numba",
            precision=precision,
        )
        assert res.diagnostics.inner["springs_method"] == "series"
        assert np.abs(res.focus - ref).sum() < (1e-8 if precision == "float64" else 1e-5)
        assert steps, "the series did not run through the half-stored matrix"
        steps.clear()


def _dense_rmat_solve(threads: int, **kw) -> np.ndarray:
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        n = 150
        src, dst, w = random_weighted(n, 3000, 11)
        return compute(as_matrix(n, src, dst, w), springs_method="series", **kw).focus
    finally:
        numba.set_num_threads(before)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two threads")
def test_without_thread_sums_the_bits_do_not_depend_on_the_thread_count(monkeypatch):
    steps = []
    real = HalfSymmetric.step
    monkeypatch.setattr(HalfSymmetric, "step", lambda self, *a: steps.append(1) or real(self, *a))
    one = _dense_rmat_solve(1, thread_sums=False)
    assert np.array_equal(one, _dense_rmat_solve(2, thread_sums=False))
    assert not steps
    # compute() takes them by default; its answers agree within rounding
    fast = _dense_rmat_solve(2)
    assert steps
    assert np.abs(fast - one).sum() < 1e-9
    # given params, compute() keeps what they say (off by default)
    steps.clear()
    _dense_rmat_solve(2, params=FocusParams())
    assert not steps


def test_group_bounds_weigh_groups_beside_slots():
    """A degree-sorted layout: 10 long groups then 990 short ones. By slots
    alone the second of two chunks holds 994 groups; with a cost per group the
    split moves towards the short groups, and ranges stay contiguous."""
    glen = np.array([100] * 10 + [1] * 990)
    gptr = np.zeros(len(glen) + 1, dtype=np.int64)
    np.cumsum(glen * 8, out=gptr[1:])
    by_slots = balanced_chunks(gptr, 2)
    weighed = group_bounds(gptr, 2, 32)
    assert by_slots[0] == 0 and by_slots[-1] == len(glen)
    assert weighed[0] == 0 and weighed[-1] == len(glen)
    assert weighed[1] > by_slots[1]
    cost = gptr + 32 * np.arange(len(gptr))
    halves = np.diff(cost[weighed])
    assert abs(halves[0] - halves[1]) <= 800 + 32  # within one long group
    # the fast operator's diffusion pull uses them, the exact one equal slots
    op, _ = _operator(61, 400, seed=4)
    assert np.array_equal(op.sell_bounds, group_bounds(op.sell.gptr, 64, 32))
    exact, _ = _operator(61, 400, seed=4, arithmetic="exact-v1")
    assert np.array_equal(exact.sell_bounds, balanced_chunks(exact.sell.gptr, 64))
