"""Springs and heat as one Chebyshev series (``springs_method="series"``),
against the functions themselves and dense matrix functions."""

import math

import numpy as np
import pytest
import scipy.linalg as sl

from focusflow.chain.focus_spec import NEW_CHAIN_FOCUS, chain_focus_params
from focusflow.focus import compute
from focusflow.focus.backends import get_backend
from focusflow.focus.spectral import (
    HeatState,
    blend,
    blend_pays,
    blend_series,
    heat,
    resolvent_rate,
    resolvent_series,
)
from focusflow.graph import Snapshot, rmat_edges
from tests.focus.reference import as_matrix, dense_laplacian, dense_tri, dense_weights
from tests.helpers import random_weighted


def _chebyshev_sum(coeffs: np.ndarray, x: np.ndarray, lam_max: float) -> np.ndarray:
    """``sum_k a_k T_k(z)`` at ``x = (lam_max / 2)(1 + z)``, by numpy's own Chebyshev code."""
    return np.polynomial.chebyshev.chebval(2.0 * x / lam_max - 1.0, coeffs)


@pytest.mark.parametrize(("mu", "lam_max"), [(1.0, 2.0), (0.05, 2.0), (3.0, 2.0), (1.0, 40.0)])
def test_resolvent_coefficients_give_the_resolvent(mu, lam_max):
    x = np.linspace(0.0, lam_max, 1001)
    k = math.ceil(45.0 / math.log(resolvent_rate(mu, lam_max)))
    coeffs = np.array(resolvent_series(mu, lam_max, k))
    assert np.abs(_chebyshev_sum(coeffs, x, lam_max) - mu / (x + mu)).max() < 1e-13


@pytest.mark.parametrize(
    ("mu", "tau", "share"), [(1.0, 1.0, 0.6), (0.3, 2.5, 0.2), (2.0, 0.4, 1.0)]
)
@pytest.mark.parametrize("tol", [1e-3, 1e-7, 1e-12])
def test_blend_series_stays_within_its_bound(mu, tau, share, tol):
    """The truncated series of ``share mu/(x+mu) + (1-share) exp(-tau x)`` is
    within the bound it reports, which is within ``tol``, on the whole interval."""
    lam_max = 2.0
    coeffs, bound = blend_series(tau * lam_max / 2, mu, lam_max, share, tol)
    assert bound <= tol
    x = np.linspace(0.0, lam_max, 2001)
    g = share * mu / (x + mu) + (1 - share) * np.exp(-tau * x)
    assert np.abs(_chebyshev_sum(coeffs, x, lam_max) - g).max() <= bound + 1e-15
    # a looser tolerance never needs more terms
    assert len(blend_series(tau, mu, lam_max, share, 10 * tol)[0]) <= len(coeffs)


def _setup(seed: int, laplacian: str):
    n = 40
    src, dst, w = random_weighted(n, 160, seed)
    op = get_backend("numba").operator(Snapshot(n, src, dst, w, order="none"))
    op.setup_laplacian(laplacian)
    return op, dense_laplacian(dense_weights(n, src, dst, w), laplacian)


def _dense_blend(lap, phi, mu, tau, share):
    n = len(phi)
    s = np.linalg.solve(lap + mu * np.eye(n), mu * phi)
    return share * s + (1 - share) * sl.expm(-tau * lap) @ phi


@pytest.mark.parametrize("laplacian", ["normalized", "combinatorial"])
def test_blend_matches_dense_springs_and_heat(laplacian):
    op, lap = _setup(21, laplacian)
    phi = np.random.default_rng(2).random(op.n)
    phi /= phi.sum()
    mu, tau, share = 0.7, 1.3, 0.6
    out = blend(op, phi, mu, tau, share, HeatState(), 1e-13)
    assert np.abs(out - _dense_blend(lap, phi, mu, tau, share)).sum() < 1e-10
    assert out.sum() == pytest.approx(1.0, abs=1e-12)


def test_blend_does_not_build_on_a_heat_result():
    """A state holding ``exp(-tau L) phi`` is not the blend's: the blend starts
    afresh (and heat afresh after the blend), whatever the series parameter."""
    mu, tau, share = 1.0, 1.0, 0.6
    op, lap = _setup(23, "normalized")
    phi = np.random.default_rng(4).random(op.n)
    phi /= phi.sum()
    state = HeatState()
    heat(op, phi, tau, state, 1e-12)
    out = blend(op, phi, mu, tau, share, state, 1e-12)
    assert np.abs(out - _dense_blend(lap, phi, mu, tau, share)).sum() < 1e-10
    back = heat(op, phi, tau, state, 1e-12)
    assert np.abs(back - sl.expm(-tau * lap) @ phi).sum() < 1e-10
    other = blend(op, phi, 2 * mu, tau, share, state, 1e-12)
    assert np.abs(other - _dense_blend(lap, phi, 2 * mu, tau, share)).sum() < 1e-10


def test_series_and_cg_reach_the_dense_fixed_point_on_rmat():
    """Both methods on a graph with hubs, in both arithmetics, against the dense
    equilibrium; the series takes no CG step and reports itself."""
    src, dst, w = rmat_edges(8, 8, seed=5)
    keep = src != dst
    src, dst, w = src[keep], dst[keep], w[keep]
    n = 1 << 8
    ref = dense_tri(dense_weights(n, src, dst, w))
    a = as_matrix(n, src, dst, w)
    for arithmetic in ("fast", "exact-v1", "exact-v2"):
        for method in ("cg", "series"):
            res = compute(
                a, tol=1e-12, springs_method=method, arithmetic=arithmetic, backend="numba"
            )
            assert res.diagnostics.inner["springs_method"] == method
            assert (res.diagnostics.inner["cg_iterations"] == 0) == (method == "series")
            assert np.abs(res.focus - ref).sum() < 1e-9


def test_auto_takes_the_series_only_where_it_pays():
    assert blend_pays(1.0, 2.0) and blend_pays(0.05, 2.0)
    assert not blend_pays(0.001, 2.0)
    # the combinatorial Laplacian of a graph with a hub of degree 1000
    assert not blend_pays(1.0, 2000.0)
    src, dst, w = random_weighted(60, 300, 7)
    a = as_matrix(60, src, dst, w)
    assert compute(a, backend="numba").diagnostics.inner["springs_method"] == "series"
    assert compute(a, mu=0.001, backend="numba").diagnostics.inner["springs_method"] == "cg"
    hub = np.zeros(400, dtype=np.int64)
    spokes = np.arange(1, 401)
    star = as_matrix(401, hub, spokes, np.ones(400))
    res = compute(star, laplacian="combinatorial", backend="numba")
    assert res.diagnostics.inner["springs_method"] == "cg"


def test_chains_keep_cg():
    """A chain's focus does not change with the library's default: the genesis
    defaults and what a new genesis names both spell out CG."""
    assert chain_focus_params({}).springs_method == "cg"
    assert chain_focus_params({"mode": "tri"}).springs_method == "cg"
    assert NEW_CHAIN_FOCUS["springs_method"] == "cg"
    assert chain_focus_params({"springs_method": "series"}).springs_method == "series"
