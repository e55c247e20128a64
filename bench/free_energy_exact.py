"""The free energy's minimiser in exact arithmetic against the float64 one and the engine.

For each graph (the bostrom sample, and R-MAT graphs of edge factor 16 at
``--rmat`` scales) and each temperature T, with the engine's default
parameters:

- ``plain`` and ``Anderson``: ``ExactFreeEnergy.minimize`` (focus/energy_exact.py),
  the same bits on every machine, with ``window=0`` (the plain damped
  iteration) and with Anderson mixing (``--window``, the default's): their
  seconds, their gradient evaluations (kept and refused steps; for Anderson
  also the kept mixed steps) and how each stopped (``tol``: the Boltzmann
  residual's bound reached; ``stalled``: eta fell below ``ETA_MIN``, where F
  and the residual no longer tell steps apart);
- ``lbfgs``: ``FreeEnergyModel.minimize`` (float64, scipy's L-BFGS), its seconds;
- ``engine``: the engine's tri solve in ``exact-v2`` (numba), the consensus
  computation a chain runs today, its seconds and outer iterations;

and the L1 distances of the Anderson minimiser from L-BFGS's and from the
plain one, with the Boltzmann residuals ``||phi - softmax(-grad E / T)||_1``
(by the float64 model). Each solver runs once untimed first (numba's kernels
into its cache), the build of each model is timed apart from its solve, and
ratio lines per graph give Anderson's evaluations and time over the plain
iteration's, and its time over the engine's and over L-BFGS's. On a loaded
machine ``--repeat N`` alternates the two exact solves N times and keeps each
one's best time.

Run: ``PYTHONPATH=src python bench/free_energy_exact.py [--rmat 12,14]
[--temperatures 1,0.1] [--lbfgs-max 5000] [--window 5] [--repeat 1]`` (L-BFGS runs on graphs up to
``--lbfgs-max`` particles: it took minutes at R-MAT 14). docs/focus.md section 9 quotes its output.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numba
import numpy as np

# bench/exact_versions.py's R-MAT graphs (this script's directory is on sys.path).
from exact_versions import _rmat
from focusflow.focus import compute
from focusflow.focus.energy import FreeEnergyModel
from focusflow.focus.energy_exact import WINDOW, ExactFreeEnergy, ExactMinimum
from focusflow.graph import Cybergraph
from focusflow.graph.importers import read_bostrom

_Out = TypeVar("_Out")

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "bostrom-sample-cyberlinks.csv"


def _timed(run: Callable[[], _Out]) -> tuple[float, _Out]:
    """Seconds ``run`` took, and what it returned."""
    t = time.perf_counter()
    out = run()
    return time.perf_counter() - t, out


def _stop(got: ExactMinimum) -> str:
    return "tol" if got.converged else "stalled"


def bench_graph(
    name: str, g: Cybergraph, temperatures: list[float], lbfgs_max: int, window: int, repeat: int
) -> None:
    print(f"\n## {name}: {g.n_particles:,} particles, {g.n_links:,} links")
    engine_s, res = _timed(lambda: compute(g, backend="numba", arithmetic="exact-v2"))
    print(f"engine tri exact-v2: {engine_s:.3f}s, {res.iterations} outer iterations")
    build_x, exact = _timed(lambda: ExactFreeEnergy(g))
    build_f, model = _timed(lambda: FreeEnergyModel(g))
    print(f"build: exact {build_x:.3f}s, float64 model {build_f:.3f}s")
    print(
        "| T | plain s | plain evaluations (refused) | plain stop "
        f"| Anderson({window}) s | evaluations (refused, mixed) | stop | L-BFGS s "
        "| L1 Anderson to L-BFGS | L1 Anderson to plain | residual Anderson | residual L-BFGS |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    ratios = []
    for temp in temperatures:
        plain_s = fast_s = math.inf
        plain = fast = None
        for _ in range(repeat):
            s, plain = _timed(functools.partial(exact.minimize, temp, window=0))
            plain_s = min(plain_s, s)
            s, fast = _timed(functools.partial(exact.minimize, temp, window=window))
            fast_s = min(fast_s, s)
        assert plain is not None and fast is not None
        x = fast.focus
        row = (
            f"| {temp:g} | {plain_s:.3f} | {plain.iterations} ({plain.refused}) | {_stop(plain)} "
            f"| {fast_s:.3f} | {fast.iterations} ({fast.refused}, {fast.accelerated}) "
            f"| {_stop(fast)} "
        )
        gap = np.abs(x - plain.focus).sum()
        if g.n_particles > lbfgs_max:
            print(
                f"{row}| - | - | {gap:.1e} | {model.boltzmann_residual(x, temp):.1e} | - |",
                flush=True,
            )
            lbfgs_s = math.nan
        else:
            lbfgs_s, y = _timed(functools.partial(model.minimize, temp))
            print(
                f"{row}| {lbfgs_s:.3f} | {np.abs(x - y).sum():.2e} | {gap:.1e} "
                f"| {model.boltzmann_residual(x, temp):.1e} "
                f"| {model.boltzmann_residual(y, temp):.1e} |",
                flush=True,
            )
        ratios.append((temp, plain, fast, plain_s, fast_s, lbfgs_s))
    for temp, plain, fast, plain_s, fast_s, lbfgs_s in ratios:
        vs_lbfgs = "-" if math.isnan(lbfgs_s) else f"{fast_s / lbfgs_s:.2g}x"
        print(
            f"ratio T={temp:g}: Anderson / plain evaluations "
            f"{fast.iterations / max(plain.iterations, 1):.3f}, time {fast_s / plain_s:.3f}; "
            f"Anderson / engine exact-v2 {fast_s / engine_s:.1f}x "
            f"(plain {plain_s / engine_s:.1f}x), / L-BFGS {vs_lbfgs}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path, default=SAMPLE)
    ap.add_argument("--rmat", default="12,14", help="R-MAT scales, comma-separated ('' for none)")
    ap.add_argument("--temperatures", default="1,0.1")
    ap.add_argument(
        "--lbfgs-max",
        type=int,
        default=5000,
        help="run L-BFGS on graphs of at most this many particles (it took 366 s at R-MAT 14, T=1)",
    )
    ap.add_argument("--window", type=int, default=WINDOW, help="the Anderson window to compare")
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="time the plain and Anderson solves this many times, alternating, and keep the best",
    )
    args = ap.parse_args()
    temperatures = [float(x) for x in args.temperatures.split(",")]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"# bench/free_energy_exact.py on {platform.processor() or platform.machine()}, "
        f"{numba.get_num_threads()} numba threads, load {load:.1f}"
    )
    warm = _rmat(8)
    compute(warm, backend="numba", arithmetic="exact-v2")
    ExactFreeEnergy(warm).minimize(1.0)
    ExactFreeEnergy(warm).minimize(1.0, window=0)
    bostrom = read_bostrom(args.csv, skip_invalid=True)
    settings = (temperatures, args.lbfgs_max, args.window, max(args.repeat, 1))
    bench_graph("bostrom sample", bostrom, *settings)
    for scale in (int(s) for s in args.rmat.split(",") if s):
        bench_graph(f"R-MAT {scale}:16", _rmat(scale), *settings)


if __name__ == "__main__":
    main()
