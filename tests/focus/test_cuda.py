"""CUDA backend parity with the float64 reference (runs where a GPU is present).

On machines without CuPy or a GPU every test here is skipped with the reason;
bench/focus_gpu.py runs them on the device machine.
"""

import numpy as np
import pytest

from focusflow.focus import compute
from focusflow.focus.backends import get_backend
from focusflow.focus.backends.cuda import cuda_available
from focusflow.focus.engine import FocusEngine
from focusflow.graph import Cybergraph, Snapshot, rmat_edges
from tests.conftest import random_weighted
from tests.focus.reference import as_matrix

OK, WHY = cuda_available()
pytestmark = pytest.mark.skipif(not OK, reason=f"cuda backend unavailable: {WHY}")


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("mode", ["diffusion", "tri"])
@pytest.mark.parametrize("seed", range(4))
def test_cuda_matches_reference(mode, precision, seed):
    n = 300 + 200 * seed
    src, dst, w = random_weighted(n, 6 * n, seed)
    a = as_matrix(n, src, dst, w)
    ref = compute(a, mode=mode, backend="numpy", tol=1e-12)
    res = compute(a, mode=mode, backend="cuda", precision=precision, tol=1e-9)
    assert res.converged
    assert np.abs(res.focus - ref.focus).sum() < 1e-6


def test_hub_rows_take_the_chunked_path():
    # R-MAT hubs exceed the long-row threshold, so warps share them.
    src, dst, w = rmat_edges(14, 16, seed=2)
    a = as_matrix(1 << 14, src, dst, w)
    ref = compute(a, mode="diffusion", backend="numpy", tol=1e-12)
    res = compute(a, mode="diffusion", backend="cuda", precision="float32", tol=1e-9)
    assert np.abs(res.focus - ref.focus).sum() < 1e-6


def test_poisoned_outputs_are_all_written():
    import cupy

    n = 5000
    src, dst, w = random_weighted(n, 40_000, 9)
    snap = Snapshot(n, src, dst, w)
    op = get_backend("cuda").operator(snap, "float32")
    ref_op = get_backend("numpy").operator(snap)
    x = np.random.default_rng(0).random(n)
    x /= x.sum()
    prior = np.full(n, 1.0 / n)
    y_ref = np.empty(n)
    ref_op.diffusion(x, y_ref, 0.85, prior)
    y = cupy.full(n, cupy.nan)
    op.ylink.fill(cupy.nan)
    op.z.fill(cupy.nan)
    op.diffusion(cupy.asarray(x), y, 0.85, cupy.asarray(prior))
    got = cupy.asnumpy(y)
    assert np.all(np.isfinite(got)) and np.all(np.isfinite(cupy.asnumpy(op.z)))
    assert np.abs(got - y_ref).sum() < 1e-6
    op.setup_laplacian("normalized")
    ref_op.setup_laplacian("normalized")
    out = cupy.full(n, cupy.nan)
    op.lap_matvec(cupy.asarray(x), out)
    out_ref = np.empty(n)
    ref_op.lap_matvec(x, out_ref)
    assert np.abs(cupy.asnumpy(out) - out_ref).sum() < 1e-6


def test_engine_on_cuda_follows_blocks():
    rng = np.random.default_rng(5)
    g = Cybergraph(require_cids=False)
    names = np.array([f"p{i}" for i in range(3000)], dtype=object)
    g.add_links(
        names[rng.integers(0, 3000, 20_000)],
        names[rng.integers(0, 3000, 20_000)],
        weights=rng.random(20_000),
    )
    engine = FocusEngine(g, mode="diffusion", backend="cuda", tol=1e-9)
    engine.compute()
    for _ in range(5):
        g.add_links(
            names[rng.integers(0, 3000, 200)],
            names[rng.integers(0, 3000, 200)],
            weights=rng.random(200),
        )
        res = engine.apply()
        cold = compute(g, mode="diffusion", backend="numpy", tol=1e-12)
        assert np.abs(res.focus - cold.focus).sum() < 1e-7
