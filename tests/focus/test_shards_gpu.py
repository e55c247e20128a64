"""Sharded focus with each shard's vectors on a GPU: the object-store exchange
on one GPU or more, and NCCL between two. Skipped where CuPy sees no GPU."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from focusflow.focus.params import make_params
from focusflow.focus.solver import compute
from focusflow.graph.generators import rmat_edges

ray = pytest.importorskip("ray")
cupy = pytest.importorskip("cupy")

from focusflow.focus.shards.api import compute_sharded  # noqa: E402
from tests.focus.ray_driver import LOCAL_RAY, RayDriver  # noqa: E402


def _gpus() -> int:
    try:
        return int(cupy.cuda.runtime.getDeviceCount())
    except cupy.cuda.runtime.CUDARuntimeError:  # no driver, no device
        return 0


GPUS = _gpus()
pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(GPUS == 0, reason="no GPU for CuPy"),
]


@pytest.fixture(scope="module")
def driver():
    held = RayDriver({**LOCAL_RAY, "num_gpus": GPUS})
    yield held
    held.close()


@pytest.fixture(scope="module")
def rmat():
    n = 2**12
    src, dst, w = rmat_edges(12, 8, seed=6)
    return sp.coo_matrix((w, (src, dst)), shape=(n, n))


@pytest.mark.parametrize("mode", ["diffusion", "tri"])
def test_gpu_shards_equal_one_process(driver, rmat, mode):
    ref = compute(rmat, mode=mode, tol=1e-13, backend="numpy").focus
    shards = min(GPUS, 2)
    params = make_params(None, mode=mode, tol=1e-13)
    res = driver(compute_sharded, rmat, params, shards, device="cuda")
    assert res.shards.converged
    assert np.abs(res.focus - ref).sum() < 1e-9


@pytest.mark.skipif(GPUS < 2, reason="NCCL between GPUs needs two")
@pytest.mark.parametrize("mode", ["diffusion", "tri"])
def test_nccl_exchange_equals_object_store(driver, rmat, mode):
    params = make_params(None, mode=mode, tol=1e-13)
    store = driver(compute_sharded, rmat, params, 2, device="cuda")
    nccl = driver(compute_sharded, rmat, params, 2, device="cuda", exchange="nccl")
    assert np.abs(nccl.focus - store.focus).sum() < 1e-12
