"""eVGPU: results against numpy, gradients against finite differences, the concurrency knob."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from focusflow.konomi import EVGPU
from focusflow.konomi.evgpu import (
    activate,
    activate_backward,
    avg_pool2d,
    avg_pool2d_backward,
    conv2d,
    conv2d_backward,
    matmul_backward,
    max_pool2d,
    max_pool2d_backward,
    numerical_grad,
)


def test_seed_evgpu_test():
    gpu = EVGPU(cores=4)
    A, B = np.random.randn(100, 100), np.random.randn(100, 100)
    C = gpu.tensor(A, B, "@")
    assert C.shape == (100, 100)
    assert np.allclose(C, A @ B)
    assert np.allclose(gpu.tensor(A, B, "+"), A + B)
    gpu.close()


def test_parallel_matmul_matches_blas():
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((600, 300)), rng.standard_normal((300, 200))
    with EVGPU(cores=2, utilisation=1.0) as gpu:
        assert gpu.limit == 2
        assert np.allclose(gpu.matmul(A, B), A @ B)


def test_conv_matches_direct_loop():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((4, 3, 3, 2))
    y = conv2d(x, w, stride=2, padding=1)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    ref = np.zeros_like(y)
    for n in range(2):
        for f in range(4):
            for i in range(y.shape[2]):
                for j in range(y.shape[3]):
                    ref[n, f, i, j] = (xp[n, :, 2 * i : 2 * i + 3, 2 * j : 2 * j + 2] * w[f]).sum()
    assert np.allclose(y, ref)
    with EVGPU(cores=1) as gpu:
        assert np.allclose(gpu.tensor(x, w, "*"), conv2d(x, w))


def _check(analytic: np.ndarray, f, x: np.ndarray) -> None:
    assert np.allclose(analytic, numerical_grad(f, x), rtol=1e-5, atol=1e-6)


def test_gradients_match_finite_differences():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    g = rng.standard_normal((3, 2))
    da, db = matmul_backward(a, b, g)
    _check(da, lambda v: float(((v @ b) * g).sum()), a)
    _check(db, lambda v: float(((a @ v) * g).sum()), b)

    x, w = rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3))
    g = rng.standard_normal(conv2d(x, w, 2, 1).shape)
    dx, dw = conv2d_backward(x, w, g, 2, 1)
    _check(dx, lambda v: float((conv2d(v, w, 2, 1) * g).sum()), x)
    _check(dw, lambda v: float((conv2d(x, v, 2, 1) * g).sum()), w)

    x = rng.standard_normal((2, 2, 4, 5))
    g = rng.standard_normal((2, 2, 2, 2))
    _check(max_pool2d_backward(x, g), lambda v: float((max_pool2d(v) * g).sum()), x)
    _check(avg_pool2d_backward(x, g), lambda v: float((avg_pool2d(v) * g).sum()), x)

    x = rng.standard_normal((4, 5)) + 0.05  # keep away from relu's kink
    g = rng.standard_normal((4, 5))
    for kind in ("relu", "sigmoid", "tanh", "gelu"):
        _check(
            activate_backward(x, g, kind), lambda v, k=kind: float((activate(v, k) * g).sum()), x
        )


@pytest.mark.parametrize("cores,util,limit", [(4, 0.6, 2), (4, 1.0, 4), (2, 0.6, 1), (8, 0.5, 4)])
def test_utilisation_knob_really_limits_concurrency(cores, util, limit):
    gpu = EVGPU(cores=cores, utilisation=util)
    assert gpu.limit == limit
    state = {"now": 0, "peak": 0}
    lock = threading.Lock()

    def task(_):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.01)
        with lock:
            state["now"] -= 1

    gpu.map(task, range(4 * cores))
    gpu.close()
    assert state["peak"] == limit
    assert gpu.max_concurrency_seen == limit
