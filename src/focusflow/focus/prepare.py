"""Compile this machine's focus kernels once, ahead of a user's first solve.

Both compiled backends compile on first use and keep what they compiled:
numba its CPU kernels in its cache beside the package, CuPy the cuda
backend's module (NVRTC) and the elementwise and reduction kernels the
solve's host loop uses in its kernel cache (``CUPY_CACHE_DIR``, by default
``~/.cupy/kernel_cache``). A fresh install pays all of it inside the first
solve: on an H100 host the first cuda diffusion and tri solves took 11.3 s of
CUDA compilation and the process about 20 s more of numba compilation
(bench/cuda_first_use.py), for a solve that takes a tenth of a second once
compiled. :func:`prepare` (``focusflow focus prepare``, which ``./dev`` runs
at install) pays it once: it solves a small graph on each backend that can
run here through every path a user's solve or a node's block takes (cold
diffusion and tri, then an incremental block; on cuda also in the exact
arithmetic a chain's engine runs), and reports the time.

The kernels are compiled for the float64 storage every default uses; a
``precision="float32"`` solve compiles its own variants on its first use.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from focusflow.graph import Cybergraph

#: What ``prepare`` compiles by default: the backends whose kernels persist
#: between processes (wgpu's shaders are built by the driver in every process).
CACHED_BACKENDS = ("numba", "cuda")
#: The small graph solved: R-MAT of this scale, so every kernel (hub rows,
#: long rows, the overlay's patches) runs at least once.
_SCALE = 10


@dataclass(frozen=True)
class Prepared:
    """One backend's outcome: compiled in ``seconds``, or unavailable and why."""

    backend: str
    available: bool
    seconds: float
    reason: str = ""


def prepare(
    backends: Sequence[str] = CACHED_BACKENDS,
    report: Callable[[Prepared], None] | None = None,
) -> list[Prepared]:
    """Compile and cache the kernels of each of ``backends`` that can run here.

    A backend that cannot run (no GPU, CuPy not installed) is reported as
    unavailable with the reason, not raised: an install on a machine without
    a GPU prepares the CPU kernels and says why it skipped the rest.
    ``report`` is called with each backend's outcome as it is known.
    """
    from focusflow.core.errors import BackendUnavailableError
    from focusflow.focus.backends import get_backend

    out = []
    for name in backends:
        try:
            ok, why = get_backend(name).available()
        except BackendUnavailableError as exc:
            ok, why = False, str(exc)
        if ok:
            t0 = time.perf_counter()
            _solve_paths(name)
            done = Prepared(name, True, time.perf_counter() - t0)
        else:
            done = Prepared(name, False, 0.0, why)
        out.append(done)
        if report is not None:
            report(done)
    return out


def _solve_paths(backend: str) -> None:
    """Cold solves of a small graph in every mode (what ``focus compute``
    runs), then, in the engine a node keeps, a block of new links and a stake
    move applied incrementally in both of its modes."""
    from focusflow.focus.engine import FocusEngine
    from focusflow.focus.params import EXACT_V2, FAST
    from focusflow.focus.solver import compute
    from focusflow.graph import Cybergraph, rmat_edges

    src, dst, _ = rmat_edges(_SCALE, 8, seed=1)
    n = 1 << _SCALE
    rng = np.random.default_rng(1)
    edges = Cybergraph(require_cids=False)
    edges.add_particles([f"p{i}" for i in range(n)])
    edges.add_link_ids(src, dst, weights=rng.uniform(0.5, 2.0, len(src)))
    for mode in ("diffusion", "tri", "cyberank"):
        compute(edges, mode=mode, tol=1e-6, backend=backend)
    if backend == "numba":
        _half_layout(edges)
        _local_push(edges)
    # A chain's engine runs in an exact arithmetic: on cuda its own kernels
    # (kernels/exact.cu), where a node runs its chain there.
    arithmetics = (FAST, EXACT_V2) if backend == "cuda" else (FAST,)
    for mode, arithmetic in itertools.product(("diffusion", "tri"), arithmetics):
        graph = Cybergraph(require_cids=False)
        graph.add_particles([f"p{i}" for i in range(n)])
        graph.add_neurons([f"n{i}" for i in range(16)], rng.uniform(1.0, 10.0, 16))
        half = len(src) // 2
        graph.add_link_ids(src[:half], dst[:half], rng.integers(0, 16, half))
        engine = FocusEngine(graph, mode=mode, tol=1e-6, backend=backend, arithmetic=arithmetic)
        engine.compute()
        graph.add_link_ids(src[half:], dst[half:], rng.integers(0, 16, len(src) - half))
        graph.set_stakes(np.array([0, 1]), np.array([5.0, 0.5]))
        engine.apply()


def _local_push(graph: Cybergraph) -> None:
    """A push from one particle, the path inference tries first (``focus.local_push``)."""
    from focusflow.focus.local_push import LocalGraph, PushScratch, Walks, local_focus
    from focusflow.focus.params import FocusParams

    snap = graph.snapshot(patchable=False)
    fp = FocusParams()
    walks = Walks.of(fp.alpha, fp.mu, fp.tau, fp.weights)
    context = np.zeros(1, dtype=np.int64)
    local_focus(LocalGraph.of(snap), PushScratch(snap.n), walks, context, np.ones(1), 0.1, 64, 4096)


def _half_layout(graph: Cybergraph) -> None:
    """One series term over the half-stored symmetric matrix (``sym_half``),
    which a tri solve takes only where the graph is dense enough for the
    thread count: its kernels compiled whatever this machine's cores."""
    from focusflow.focus.backends.numba_cpu import NumbaOperator
    from focusflow.focus.backends.sym_half import HalfSymmetric

    op = NumbaOperator(graph.snapshot(patchable=False))
    op.setup_laplacian("normalized")
    assert op._sym is not None  # set up just above
    half = HalfSymmetric(op._sym, 2)
    v = np.ones(op.n)
    half.step(1.0, v, np.zeros(op.n), np.zeros(op.n), 0.5, 0.5, True)
