"""Sums that come out the same on every machine.

Inside a ``parallel=True`` numba function an array reduction such as
``partial.sum()`` is itself parallelised, and its partial results are combined
in an order that depends on the thread count: a 2-core and a 16-core node
would then disagree in the last bit, and a committed (quantised) focus vector
would differ between validators. Every kernel therefore sums its fixed number
of chunk partials with :func:`ordered_sum`, a plain sequential loop that numba
never parallelises.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import TypeVar, cast

import numba as nb
import numpy as np
from numba.core.dispatcher import Dispatcher

#: A jitted kernel's Python signature, which its exact twin keeps.
_Kernel = TypeVar("_Kernel", bound=Callable[..., object])


@nb.njit(cache=True)
def ordered_sum(a: np.ndarray) -> float:
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i]
    return s


@nb.njit(cache=True)
def ordered_row_sum(a: np.ndarray) -> np.ndarray:
    """``a.sum(axis=0)`` of a 2-D array, rows added in order."""
    out: np.ndarray = a[0].copy()
    for r in range(1, a.shape[0]):
        for j in range(a.shape[1]):
            out[j] += a[r, j]
    return out


@nb.njit(cache=True, fastmath=False)
def strict_sum(a: np.ndarray) -> float:
    """``ordered_sum`` that never reassociates, whoever calls it.

    numba compiles a jitted callee that does not set ``fastmath`` itself with
    its first caller's ``fastmath``, and every later caller of the same types
    in the process shares that compiled code (and its cache entry links it).
    ``ordered_sum`` called first from a ``fastmath`` kernel therefore becomes a
    vectorised, reassociated sum for every kernel, and which one a process gets
    depends on the order its kernels were first compiled in. Setting
    ``fastmath=False`` explicitly stops that inheritance.
    """
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i]
    return s


@nb.njit(cache=True, fastmath=False)
def strict_row_sum(a: np.ndarray) -> np.ndarray:
    """``ordered_row_sum`` that never reassociates (see ``strict_sum``)."""
    out: np.ndarray = a[0].copy()
    for r in range(1, a.shape[0]):
        for j in range(a.shape[1]):
            out[j] += a[r, j]
    return out


#: What an exact twin calls in place of the shared helpers.
_STRICT_CALLEES: dict[str, Dispatcher[Callable[[np.ndarray], object]]] = {
    "ordered_sum": strict_sum,
    "ordered_row_sum": strict_row_sum,
}


def exact_twin(kernel: Dispatcher[_Kernel]) -> Dispatcher[_Kernel]:
    """The same kernel compiled without ``fastmath``: what exact arithmetic runs.

    ``fastmath`` lets LLVM contract ``a * b + c`` into one fused multiply-add
    and reassociate sums for the host's vector width, so a kernel's last bits
    depend on the CPU it was compiled for (an FMA unit, AVX2 or AVX-512). The
    twin is a copy of the Python function under its own name (numba's cache
    files are named by the qualified name and keyed by the bytecode, not the
    compile options), compiled with ``fastmath=False`` set explicitly, whose
    calls to ``ordered_sum``/``ordered_row_sum`` go to ``strict_sum``/
    ``strict_row_sum`` (see there why): each product and sum is rounded on its
    own, in source order. A kernel that calls any other jitted function is
    refused here, since that callee's flags could come from elsewhere.
    """
    f = cast("types.FunctionType", kernel.py_func)
    names = set(f.__code__.co_names)
    for name in names:
        value = f.__globals__.get(name)
        if isinstance(value, Dispatcher) and name not in _STRICT_CALLEES:
            raise TypeError(f"{f.__qualname__} calls {name}, which has no strict twin")
    scope = dict(f.__globals__)
    scope.update({k: v for k, v in _STRICT_CALLEES.items() if k in names})
    twin = types.FunctionType(
        f.__code__, scope, f.__name__ + "_exact", f.__defaults__, f.__closure__
    )
    twin.__qualname__ = f.__qualname__ + "_exact"
    twin.__module__ = f.__module__
    twin.__doc__ = f.__doc__
    options = {k: v for k, v in kernel.targetoptions.items() if k not in ("fastmath", "nopython")}
    return cast("Dispatcher[_Kernel]", nb.njit(cache=True, fastmath=False, **options)(twin))


#: How many values one chunk of an ``exact-v3`` sum holds (``tree_sum``).
TREE_CHUNK = 1024


@nb.njit(cache=True, fastmath=False)
def tree_sum(partials: np.ndarray) -> float:
    """Chunk partials combined in the fixed binary tree of ``exact-v3``.

    Level by level: each level adds neighbours ``(0, 1), (2, 3), ...`` in
    place of their pair, and an odd last value is carried up unchanged, until
    one value is left (0.0 for none). Every addition is one IEEE-754 rounding
    of two values this definition fixes, so any machine that computes the
    same partials gets the same bits, whichever threads or GPU blocks add the
    pairs of a level: the levels are what a GPU runs in parallel, where
    ``strict_sum``'s chain of additions waits on each one.
    """
    m = partials.shape[0]
    if m == 0:
        return 0.0
    w = partials.copy()
    while m > 1:
        half = m // 2
        for i in range(half):
            w[i] = w[2 * i] + w[2 * i + 1]
        if m % 2:
            w[half] = w[m - 1]
            m = half + 1
        else:
            m = half
    return float(w[0])


@nb.njit(cache=True, parallel=True, fastmath=False)
def chunked_sum(a: np.ndarray) -> float:
    """``sum(a)`` as ``exact-v3`` defines a sum: chunks of ``TREE_CHUNK``
    values, each added in index order from 0.0, their partials combined by
    ``tree_sum``."""
    n = a.shape[0]
    chunks = (n + TREE_CHUNK - 1) // TREE_CHUNK
    partial = np.zeros(chunks)
    for c in nb.prange(chunks):
        s = 0.0
        for i in range(c * TREE_CHUNK, min(n, (c + 1) * TREE_CHUNK)):
            s += a[i]
        partial[c] = s
    return tree_sum(partial)
