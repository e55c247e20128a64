"""What one term of the springs-and-heat series costs, and why it costs more in a series.

A focus-flow tri query on R-MAT 16 (10^6 links) spends most of its time in
about 40 terms of the series (bench/infer_latency.py), each one pass of
``numba_lap.cheb_step`` over the 1.9·10^6 stored entries of the scaled
symmetric matrix (float32 values). This times that kernel three ways, 40 terms
each, with numba's threads as configured (``NUMBA_NUM_THREADS``):

- ``fixed``: the gathered vector is never written (as a single product is);
- ``series``: the recurrence as the solver runs it, each term gathering the
  vector the previous term just wrote (half of it on the other core);
- ``series float32``: the same with float32 vectors (half the bytes to move).

Run from the repository root, once per thread count::

    python bench/cheb_passes.py
    NUMBA_NUM_THREADS=1 python bench/cheb_passes.py
"""

from __future__ import annotations

import time

import numba
import numpy as np

from focusflow.focus.backends import numba_lap
from focusflow.focus.solver import operator_for
from focusflow.graph.generators import rmat_edges
from focusflow.infer.graph import InferGraph

TERMS = 40


def best_ms(fn, rounds: int = 5, reps: int = 10) -> float:
    fn()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t0) / reps)
    return best * 1e3


def main() -> None:
    src, dst, w = rmat_edges(16, 16, seed=0)
    keep = src != dst
    src, dst, w = src[keep], dst[keep], w[keep]
    n = 1 << 16
    names = np.arange(n).astype(str).tolist()
    graph = InferGraph.from_arrays(n, src, dst, w, np.full(len(src), -1), [], names)
    op = operator_for(graph.snapshot(None), "numba", "float32")
    op.setup_laplacian("normalized")
    args, diag = op._args, op.lap_diag
    acc = np.zeros(n)
    rng = np.random.default_rng(0)

    def runner(dtype, swap: bool):
        bufs = [rng.random(n).astype(dtype), np.empty(n, dtype)]

        def run() -> None:
            a, b = bufs
            for _ in range(TERMS):
                numba_lap.cheb_step(*args, diag, 1.0, a, b, acc, 0.1, 0.0, False)
                if swap:
                    a, b = b, a

        return run

    print(f"R-MAT 16, {len(args[4]):,} stored entries, {numba.get_num_threads()} threads, "
          f"{TERMS} terms, best of 5 (ms per term)")  # fmt: skip
    for name, dtype, swap in [
        ("fixed input", np.float64, False),
        ("series (input just written)", np.float64, True),
        ("series, float32 vectors", np.float32, True),
    ]:
        print(f"  {name:30s} {best_ms(runner(dtype, swap)) / TERMS:.3f}")


if __name__ == "__main__":
    main()
