"""The exact arithmetic's own pieces: Bessel series, small solve, strict kernels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import ive

from focusflow.core.errors import InvalidParameterError
from focusflow.focus import compute
from focusflow.focus.anderson import solve_gram
from focusflow.focus.backends.numba_cpu import EXACT_KERNELS, FAST_KERNELS
from focusflow.focus.params import make_params
from focusflow.focus.spectral import bessel_ive, heat_series
from focusflow.graph.generators import rmat_edges
from focusflow.graph.snapshot import Snapshot


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
    with pytest.raises(InvalidParameterError, match="numba backend only"):
        compute(Snapshot(64, src, dst, np.ones(len(src))), backend="numpy", arithmetic="exact-v1")
