"""eVGPU: the seed's "electronic virtual GPU", tensor operations on the CPU with numpy/BLAS.

Operations: ``matmul`` (@), ``conv2d`` (*), ``max_pool2d``/``avg_pool2d`` (↓),
``activate`` (σ: relu, sigmoid, tanh, gelu) and, for each, the gradient (∇)
as an explicit backward function; tests compare every gradient to finite
differences.

Concurrency: a thread pool sized by the cores, of which at most
``max(1, floor(cores × utilisation))`` run at once (the seed's κ = 0.6 sustained
load). Large matrix products are split into row blocks that run in parallel on
those threads with BLAS pinned to one thread each (``threadpoolctl``), so the
knob bounds the number of busy cores instead of leaving BLAS to take them all;
:meth:`EVGPU.map` runs arbitrary tasks under the same bound and records the
highest concurrency it saw.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from threadpoolctl import threadpool_limits

from focusflow.konomi.errors import InvalidOperationError

PARALLEL_MIN_FLOPS = 1 << 24
"""Products below this many multiply-adds run as one BLAS call (splitting costs more)."""


class EVGPU:
    """CPU tensor engine with a bounded thread pool (see the module docstring)."""

    def __init__(self, cores: int | None = None, utilisation: float = 0.6) -> None:
        if not 0 < utilisation <= 1:
            raise InvalidOperationError(f"utilisation must be in (0, 1], got {utilisation}")
        self.cores = int(cores or os.cpu_count() or 1)
        self.utilisation = float(utilisation)
        self.limit = max(1, math.floor(self.cores * self.utilisation + 1e-9))
        self._pool = ThreadPoolExecutor(max_workers=self.cores, thread_name_prefix="evgpu")
        self._gate = threading.BoundedSemaphore(self.limit)
        self._lock = threading.Lock()
        self._running = 0
        self.max_concurrency_seen = 0

    def close(self) -> None:
        """Stop the worker threads."""
        self._pool.shutdown(wait=True)

    def __enter__(self) -> EVGPU:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- scheduling --------------------------------------------------------------------

    def _gated(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self._gate:
            with self._lock:
                self._running += 1
                self.max_concurrency_seen = max(self.max_concurrency_seen, self._running)
            try:
                return fn(*args)
            finally:
                with self._lock:
                    self._running -= 1

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        """``[fn(x) for x in items]`` on the pool, never more than ``limit`` at once."""
        futures = [self._pool.submit(self._gated, fn, x) for x in items]
        return [f.result() for f in futures]

    # -- operations --------------------------------------------------------------------

    def tensor(self, a: np.ndarray, b: np.ndarray, op: str = "@") -> np.ndarray:
        """The seed's entry point: ``@`` matmul, ``+`` add, ``*`` convolution (b is the kernel)."""
        if op == "@":
            return self.matmul(a, b)
        if op == "+":
            total: np.ndarray = np.add(a, b)
            return total
        if op == "*":
            return conv2d(a, b)
        raise InvalidOperationError(f"unknown tensor op {op!r}; use '@', '+' or '*'")

    def matmul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``a @ b``; big 2-D products split by rows over at most ``limit`` 1-thread BLAS calls."""
        a, b = np.asarray(a), np.asarray(b)
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] * a.shape[1] * b.shape[1] < PARALLEL_MIN_FLOPS:
            product: np.ndarray = np.matmul(a, b)
            return product
        parts = min(self.limit, a.shape[0])
        out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))
        bounds = np.linspace(0, a.shape[0], parts + 1).astype(int)

        def block(i: int) -> None:
            lo, hi = bounds[i], bounds[i + 1]
            np.matmul(a[lo:hi], b, out=out[lo:hi])

        with threadpool_limits(1, user_api="blas"):
            self.map(block, range(parts))
        return out

    def conv(self, x: np.ndarray, w: np.ndarray, stride: int = 1, padding: int = 0) -> np.ndarray:
        """2-D convolution, see :func:`conv2d`."""
        return conv2d(x, w, stride, padding)

    def pool(self, x: np.ndarray, k: int = 2, mode: str = "max") -> np.ndarray:
        """k×k pooling with stride k (``mode`` is "max" or "avg")."""
        if mode == "max":
            return max_pool2d(x, k)
        if mode == "avg":
            return avg_pool2d(x, k)
        raise InvalidOperationError(f"pool mode must be 'max' or 'avg', got {mode!r}")

    def activate(self, x: np.ndarray, kind: str = "relu") -> np.ndarray:
        """Element-wise activation, see :func:`activate`."""
        return activate(x, kind)


# -- free functions: forward and backward ---------------------------------------------


def matmul_backward(
    a: np.ndarray, b: np.ndarray, dout: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of ``a @ b`` with respect to a and b given the output gradient."""
    return dout @ b.T, a.T @ dout


def _pad(x: np.ndarray, padding: int) -> np.ndarray:
    if padding == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))


def conv2d(x: np.ndarray, w: np.ndarray, stride: int = 1, padding: int = 0) -> np.ndarray:
    """Cross-correlation of x (N, C, H, W) with w (F, C, kh, kw): (N, F, Ho, Wo), via im2col."""
    x, w = np.asarray(x), np.asarray(w)
    if x.ndim != 4 or w.ndim != 4 or x.shape[1] != w.shape[1]:
        raise InvalidOperationError(
            f"conv2d needs x (N,C,H,W) and w (F,C,kh,kw) with equal C, got {x.shape} and {w.shape}"
        )
    kh, kw = w.shape[2:]
    win = sliding_window_view(_pad(x, padding), (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    out: np.ndarray = np.einsum("nchwij,fcij->nfhw", win, w, optimize=True)
    return out


def conv2d_backward(
    x: np.ndarray, w: np.ndarray, dout: np.ndarray, stride: int = 1, padding: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of :func:`conv2d` with respect to x and w."""
    kh, kw = w.shape[2:]
    xp = _pad(x, padding)
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    dw = np.einsum("nchwij,nfhw->fcij", win, dout, optimize=True)
    dxp = np.zeros_like(xp, dtype=np.result_type(x, w, dout))
    Ho, Wo = dout.shape[2:]
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i : i + stride * Ho : stride, j : j + stride * Wo : stride] += np.einsum(
                "nfhw,fc->nchw", dout, w[:, :, i, j]
            )
    if padding:
        dxp = dxp[:, :, padding:-padding, padding:-padding]
    return dxp, dw


def _windows(x: np.ndarray, k: int) -> np.ndarray:
    N, C, H, W = x.shape
    Ho, Wo = H // k, W // k
    return x[:, :, : Ho * k, : Wo * k].reshape(N, C, Ho, k, Wo, k)


def max_pool2d(x: np.ndarray, k: int = 2) -> np.ndarray:
    """k×k max pooling with stride k over (N, C, H, W) (trailing rows/columns dropped)."""
    pooled: np.ndarray = _windows(np.asarray(x), k).max(axis=(3, 5))
    return pooled


def max_pool2d_backward(x: np.ndarray, dout: np.ndarray, k: int = 2) -> np.ndarray:
    """Gradient of :func:`max_pool2d`: each window's gradient goes to its (first) maximum."""
    win = _windows(x, k)
    N, C, Ho, _, Wo, _ = win.shape
    flat = win.transpose(0, 1, 2, 4, 3, 5).reshape(N, C, Ho, Wo, k * k)
    arg = flat.argmax(-1)
    d = np.zeros_like(flat, dtype=np.result_type(x, dout))
    np.put_along_axis(d, arg[..., None], dout[..., None], -1)
    dx = np.zeros_like(x, dtype=d.dtype)
    dx[:, :, : Ho * k, : Wo * k] = (
        d.reshape(N, C, Ho, Wo, k, k).transpose(0, 1, 2, 4, 3, 5).reshape(N, C, Ho * k, Wo * k)
    )
    return dx


def avg_pool2d(x: np.ndarray, k: int = 2) -> np.ndarray:
    """k×k average pooling with stride k over (N, C, H, W)."""
    pooled: np.ndarray = _windows(np.asarray(x), k).mean(axis=(3, 5))
    return pooled


def avg_pool2d_backward(x: np.ndarray, dout: np.ndarray, k: int = 2) -> np.ndarray:
    """Gradient of :func:`avg_pool2d`: each window shares its gradient equally."""
    Ho, Wo = dout.shape[2:]
    dx = np.zeros_like(x, dtype=np.result_type(x, dout))
    dx[:, :, : Ho * k, : Wo * k] = np.repeat(np.repeat(dout, k, axis=2), k, axis=3) / (k * k)
    return dx


_SQRT_2_PI = np.sqrt(2.0 / np.pi)


def activate(x: np.ndarray, kind: str = "relu") -> np.ndarray:
    """relu, sigmoid, tanh or gelu (tanh approximation), element-wise."""
    x = np.asarray(x)
    y: np.ndarray
    if kind == "relu":
        y = np.maximum(x, 0)
    elif kind == "sigmoid":
        y = 0.5 * (1 + np.tanh(0.5 * x))
    elif kind == "tanh":
        y = np.tanh(x)
    elif kind == "gelu":
        y = 0.5 * x * (1 + np.tanh(_SQRT_2_PI * (x + 0.044715 * x**3)))
    else:
        raise InvalidOperationError(f"unknown activation {kind!r}; use relu, sigmoid, tanh or gelu")
    return y


def activate_backward(x: np.ndarray, dout: np.ndarray, kind: str = "relu") -> np.ndarray:
    """Gradient of :func:`activate` with respect to its input."""
    x = np.asarray(x)
    dx: np.ndarray
    if kind == "relu":
        dx = dout * (x > 0)
    elif kind == "sigmoid":
        s = activate(x, "sigmoid")
        dx = dout * s * (1 - s)
    elif kind == "tanh":
        dx = dout * (1 - np.tanh(x) ** 2)
    elif kind == "gelu":
        u = _SQRT_2_PI * (x + 0.044715 * x**3)
        t = np.tanh(u)
        du = _SQRT_2_PI * (1 + 3 * 0.044715 * x**2)
        dx = dout * (0.5 * (1 + t) + 0.5 * x * (1 - t**2) * du)
    else:
        raise InvalidOperationError(f"unknown activation {kind!r}; use relu, sigmoid, tanh or gelu")
    return dx


def numerical_grad(
    f: Callable[[np.ndarray], float], x: np.ndarray, eps: float = 1e-6
) -> np.ndarray:
    """Central finite differences of a scalar function (the reference the tests check against)."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        hi = f(x)
        x[i] = old - eps
        lo = f(x)
        x[i] = old
        g[i] = (hi - lo) / (2 * eps)
    return g
