"""The phase measures: the Laplacian gap against networkx and LAPACK, the
engine's contraction rate against the dense iteration matrix's second
eigenvalue, and the regime-change rule on curves whose answer is known."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import scipy.linalg as sl
import scipy.sparse as sp

from focusflow.core.errors import InvalidParameterError
from focusflow.focus import compute, phase
from focusflow.focus.measures import entropy, syntropy
from focusflow.focus.phase import laplacian_gap, measure, regime_change
from tests.focus.reference import dense_laplacian, dense_weights


def er(n, mean_degree, seed):
    rng = np.random.default_rng(seed)
    m = int(mean_degree * n / 2)
    src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
    w = rng.random(m) + 0.05
    return sp.csr_matrix((w, (src, dst)), shape=(n, n)), (src, dst, w)


def networkx_gap(mat):
    """``lambda_2`` of the largest component's normalized Laplacian, by networkx
    and LAPACK, from the weighted undirected graph ``W + W^T`` without loops."""
    a = (mat + mat.T).toarray()
    np.fill_diagonal(a, 0.0)
    g = nx.from_numpy_array(a)
    big = max(nx.connected_components(g), key=len)
    sub = g.subgraph(big)
    lap = nx.normalized_laplacian_matrix(sub, weight="weight").toarray()
    return len(list(nx.connected_components(g))), len(big), np.linalg.eigvalsh(lap)[1]


@pytest.mark.parametrize(("mean_degree", "seed"), [(1.6, 1), (2.5, 2), (8.0, 3)])
@pytest.mark.parametrize("dense_limit", [10_000, 50])
def test_gap_matches_networkx(mean_degree, seed, dense_limit, monkeypatch):
    """Both paths: dense LAPACK, and Lanczos on the inverse (sparse factors for
    the sparse components, conjugate gradients for the dense one)."""
    monkeypatch.setattr(phase, "DENSE_LIMIT", dense_limit)
    mat, _ = er(400, mean_degree, seed)
    components, giant, gap = laplacian_gap(mat)
    want = networkx_gap(mat)
    assert (components, giant) == want[:2]
    assert gap == pytest.approx(want[2], rel=1e-7)


def test_kappa_is_the_iterations_second_eigenvalue():
    """The plain iteration's residual ratio tends to the modulus of the blend's
    second eigenvalue (dense matrix of lam_d D + lam_s S + lam_h H)."""
    n = 120
    mat, (src, dst, w) = er(n, 6.0, 4)
    a = dense_weights(n, src, dst, w)
    out = a.sum(axis=1)
    p = np.divide(a, out[:, None], out=np.zeros_like(a), where=out[:, None] > 0)
    u = np.full(n, 1.0 / n)
    dangling = out <= 0
    d_op = 0.85 * p.T + 0.85 * np.outer(u, dangling) + 0.15 * np.outer(u, np.ones(n))
    lap = dense_laplacian(a, "normalized")
    m = 0.5 * d_op + 0.3 * np.linalg.inv(lap + np.eye(n)) + 0.2 * sl.expm(-lap)
    second = np.sort(np.abs(np.linalg.eigvals(m)))[-2]
    got = measure(mat, tol=1e-12)
    assert got.kappa == pytest.approx(second, abs=0.02)
    phi = compute(mat, tol=1e-12, backend="numpy").focus
    assert got.entropy == pytest.approx(entropy(phi), abs=1e-9)
    assert got.syntropy == pytest.approx(syntropy(phi), abs=1e-9)
    assert got.entropy_ratio == pytest.approx(entropy(phi) / np.log(n), abs=1e-9)


def test_regime_change_finds_a_known_hinge():
    x = np.linspace(0.0, 4.0, 17)
    noise = 0.01 * np.cos(7 * x)
    change = regime_change(x, np.maximum(x - 2.0, 0.0) + noise)
    assert change.kink and change.at == pytest.approx(2.0)
    assert change.left == pytest.approx(0.0, abs=0.02)
    assert change.right == pytest.approx(1.0, abs=0.05)


def test_regime_change_calls_no_change_on_a_line():
    x = np.linspace(0.0, 4.0, 17)
    change = regime_change(x, 3.0 * x + 0.05 * np.cos(11 * x))
    assert not change.kink and not change.jump


def test_regime_change_ignores_a_bend_in_a_flat_curve():
    x = np.linspace(0.0, 4.0, 17)
    change = regime_change(x, 0.92 + 0.001 * np.maximum(x - 2.0, 0.0))
    assert change.gain > 0.99 and change.spread < 0.05
    assert not change.kink and not change.jump


def test_regime_change_finds_a_jump():
    x = np.arange(12.0)
    y = 0.1 * x + np.where(x >= 7, 5.0, 0.0)
    change = regime_change(x, y)
    assert change.jump and (change.jump_from, change.jump_at) == (6.0, 7.0)


def test_regime_change_refuses_bad_curves():
    with pytest.raises(InvalidParameterError):
        regime_change([0, 1, 2], [0, 1, 2])
    with pytest.raises(InvalidParameterError):
        regime_change(np.arange(8.0)[::-1], np.arange(8.0))
    with pytest.raises(InvalidParameterError):
        regime_change(np.arange(8.0), np.r_[np.arange(7.0), np.nan])


@pytest.mark.parametrize(("mean_degree", "seed"), [(0.8, 5), (2.0, 6), (6.0, 7)])
def test_kappa_never_exceeds_the_teleport_cap(mean_degree, seed):
    """On vectors of zero sum the diffusion step shrinks the L1 norm by alpha
    and springs and heat (column-stochastic, non-negative) do not grow it, so
    each L1 change of the plain iteration is at most ``alpha lam_d + lam_s +
    lam_h`` times the last, whatever the graph: no structure can slow it more."""
    mat, _ = er(600, mean_degree, seed)
    got = measure(mat, tol=1e-11)
    cap = 0.85 * 0.5 + 0.3 + 0.2
    assert got.kappa is not None and got.kappa <= cap + 1e-6
