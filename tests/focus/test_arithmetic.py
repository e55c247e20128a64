"""The exact arithmetic's own pieces: Bessel series, small solve, strict kernels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import ive

from focusflow.chain.focus_spec import NEW_CHAIN_FOCUS
from focusflow.core.errors import InvalidParameterError
from focusflow.focus import compute
from focusflow.focus.anderson import solve_gram
from focusflow.focus.backends.numba_cpu import EXACT_KERNELS, FAST_KERNELS
from focusflow.focus.params import EXACT_V1, EXACT_V2, make_params
from focusflow.focus.spectral import bessel_ive, heat_series
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


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("laplacian", ["normalized", "combinatorial"])
def test_exact_v2_tri_equals_the_dense_reference(seed, laplacian):
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
            arithmetic=EXACT_V2,
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
    assert params.pop("arithmetic") == EXACT_V2
    snap = Snapshot(int(n), src, dst, w)
    new = compute(snap, **params, arithmetic=EXACT_V2, tol=1e-10, backend="numba")
    assert new.converged and new.iterations < 50
    assert np.abs(new.focus - ref).sum() < 1e-8
    old = compute(snap, **params, arithmetic=EXACT_V1, tol=1e-10, max_iter=200, backend="numba")
    assert not old.converged
