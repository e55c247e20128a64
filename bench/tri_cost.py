"""The cost of one tri solve at R-MAT scale 20: CG beside heat against one series.

Builds the R-MAT graph of ``bench/focus_cpu.py`` (Graph500 parameters, edge
factor 16), prepares the numba operator, and times full tri solves to
``tol = 1e-6`` with ``springs_method="cg"`` (CG steps side by side with heat's
Chebyshev terms, two gathered vectors per pass), ``"series"`` (springs and
heat as one Chebyshev series, one gathered vector per pass), and the series
with ``precision="float32"`` (matrix values and the series' vectors stored in
float32, every sum in float64), the float32 series both through the symmetric
matrix stored once per pair (``half``, the library's choice where it pays:
``backends.sym_half``) and with both halves of every pair (``full``, as
before), alternating them so that all see the same machine load. Reports the median and spread of
the solve times (the operator prepared, as a chain block or a repeated query
finds it), the first solve with its Laplacian setup, the passes over the
matrix, and each answer's L1 distance to a solve at ``tol = 1e-11``.

    python bench/tri_cost.py                 # scale 20, 5 rounds
    python bench/tri_cost.py --scale 18 --rounds 3
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from focus_cpu import make_edges
from focusflow.focus.backends.numba_cpu import NumbaOperator

GOAL_S = 1.5


@contextlib.contextmanager
def layout(name: str) -> Iterator[None]:
    """``full``: the series through the symmetric matrix with both halves of
    every pair (what ran before ``sym_half``); ``half``: the library's choice."""
    if name == "half":
        yield
        return
    saved = NumbaOperator._half_matrix
    NumbaOperator._half_matrix = lambda self: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        NumbaOperator._half_matrix = saved  # type: ignore[method-assign]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scale", type=int, default=20)
    p.add_argument("--edge-factor", type=int, default=16)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    from focusflow.focus import compute
    from focusflow.graph import Snapshot

    small = make_edges(10, 8, 2)
    for m in ("cg", "series"):  # load (or compile) each method's kernels before timing
        compute(Snapshot(small.n, small.src, small.dst, small.weight), springs_method=m)
    e = make_edges(args.scale, args.edge_factor, 1)
    snap = Snapshot(e.n, e.src, e.dst, e.weight)
    print(f"R-MAT scale {args.scale}, {e.m:,} links", flush=True)
    compute(snap, mode="diffusion", backend="numba", tol=1e-6)  # the diffusion operator
    methods = (
        ("cg", "float64", "full"),
        ("series", "float64", "half"),
        ("series", "float32", "full"),
        ("series", "float32", "half"),
    )
    first = {}
    for m in methods:
        snap_m = Snapshot(e.n, e.src, e.dst, e.weight)
        compute(snap_m, mode="diffusion", backend="numba", tol=1e-6, precision=m[1])
        t = time.perf_counter()
        with layout(m[2]):
            compute(snap_m, backend="numba", tol=1e-6, springs_method=m[0], precision=m[1])
        first[m] = time.perf_counter() - t
        del snap_m
    tight = compute(snap, backend="numba", tol=1e-11, springs_method="cg").focus
    times: dict[tuple[str, str, str], list[float]] = {m: [] for m in methods}
    info = {}
    for _ in range(args.rounds):
        for m in methods:
            t = time.perf_counter()
            with layout(m[2]):
                res = compute(snap, backend="numba", tol=1e-6, springs_method=m[0], precision=m[1])
            times[m].append(time.perf_counter() - t)
            inner = res.diagnostics.inner
            info[m] = (
                res.iterations,
                inner["cg_iterations"],
                inner["heat_terms"],
                float(np.abs(res.focus - tight).sum()),
            )
    print(
        "| springs | values | series layout | solve median s (min-max) | first solve with"
        " setup s | outer | CG steps | series/heat terms | L1 to a float64 solve at tol 1e-11 |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for m in methods:
        ts = times[m]
        it, cg, terms, err = info[m]
        print(
            f"| {m[0]} | {m[1]} | {m[2]} | "
            f"{statistics.median(ts):.3f} ({min(ts):.3f}-{max(ts):.3f}) | "
            f"{first[m]:.3f} | {it} | {cg} | {terms} | {err:.2e} |"
        )
    series = statistics.median(times[("series", "float64", "half")])
    single = statistics.median(times[("series", "float32", "half")])
    full = statistics.median(times[("series", "float32", "full")])
    print(
        f"cg / series: {statistics.median(times[('cg', 'float64', 'full')]) / series:.2f}x; "
        f"series float64 / float32: {series / single:.2f}x; "
        f"float32 series, full layout / half: {full / single:.2f}x"
    )
    for name, best in (("float64", series), ("float32", single)):
        print(f"goal {GOAL_S} s ({name}): {'met' if best < GOAL_S else 'NOT met'} ({best:.3f} s)")


if __name__ == "__main__":
    main()
