"""Diffusion mode is weighted PageRank: checked against networkx."""

import numpy as np
import pytest

from focusflow.focus import compute
from tests.focus.reference import as_matrix, dense_weights, networkx_pagerank
from tests.helpers import random_weighted


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("seed", range(12))
def test_diffusion_equals_networkx_pagerank(backend, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 120))
    m = int(rng.integers(1, 4 * n))
    alpha = float(rng.choice([0.5, 0.85, 0.95]))
    src, dst, w = random_weighted(n, m, seed)
    ref = networkx_pagerank(dense_weights(n, src, dst, w), alpha)
    res = compute(
        as_matrix(n, src, dst, w), mode="diffusion", alpha=alpha, tol=1e-13, backend=backend
    )
    assert res.converged
    assert np.abs(res.focus - ref).sum() < 1e-8
    assert res.focus.sum() == pytest.approx(1.0, abs=1e-12)


def test_float32_storage_stays_within_tolerance():
    src, dst, w = random_weighted(400, 3000, 7)
    a = as_matrix(400, src, dst, w)
    ref = compute(a, mode="diffusion", tol=1e-12, backend="numpy").focus
    res = compute(a, mode="diffusion", tol=1e-7, backend="numba", precision="float32")
    assert np.abs(res.focus - ref).sum() < 1e-6


def test_graph_without_links_is_uniform():
    import scipy.sparse as sp

    res = compute(sp.csr_matrix((7, 7)), mode="tri")
    assert np.allclose(res.focus, 1 / 7)


def test_all_zero_weights_never_nan():
    src = np.array([0, 1, 2])
    dst = np.array([1, 2, 0])
    res = compute(as_matrix(4, src, dst, np.zeros(3)), mode="tri")
    assert np.all(np.isfinite(res.focus))
    assert np.allclose(res.focus, 0.25)
