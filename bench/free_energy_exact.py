"""The free energy's minimiser in exact arithmetic against the float64 one and the engine.

For each graph (the bostrom sample, and R-MAT graphs of edge factor 16 at
``--rmat`` scales) and each temperature T, with the engine's default
parameters:

- ``exact``: ``ExactFreeEnergy.minimize`` (focus/energy_exact.py), the same bits
  on every machine: its seconds, its gradient evaluations (kept and refused
  steps), the step it settled on and how it stopped (``tol``: the Boltzmann
  residual's bound reached; ``stalled``: eta fell below ``ETA_MIN``, where F
  and the residual no longer tell steps apart);
- ``lbfgs``: ``FreeEnergyModel.minimize`` (float64, scipy's L-BFGS), its seconds;
- ``engine``: the engine's tri solve in ``exact-v2`` (numba), the consensus
  computation a chain runs today, its seconds and outer iterations;

and the L1 distance between the two minimisers with each one's Boltzmann
residual ``||phi - softmax(-grad E / T)||_1`` (both by the float64 model). Each
solver runs once untimed first (numba's kernels into its cache), the build of
each model is timed apart from its solve, and a last line per graph gives the
exact minimiser's time over the engine's and over L-BFGS's.

Run: ``PYTHONPATH=src python bench/free_energy_exact.py [--rmat 12,14]
[--temperatures 1,0.1] [--lbfgs-max 5000]`` (L-BFGS runs on graphs up to
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

from focusflow.focus import compute
from focusflow.focus.energy import FreeEnergyModel
from focusflow.focus.energy_exact import ExactFreeEnergy
from focusflow.graph import Cybergraph
from focusflow.graph.generators import rmat_edges
from focusflow.graph.importers import read_bostrom

_Out = TypeVar("_Out")

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "bostrom-sample-cyberlinks.csv"


def _rmat(scale: int) -> Cybergraph:
    """An R-MAT graph of edge factor 16 (random weights), as bench/exact_versions.py makes it."""
    src, dst, _ = rmat_edges(scale, 16, seed=scale)
    keep = src != dst
    g = Cybergraph(require_cids=False)
    g.add_particles([f"p{i}" for i in range(1 << scale)])
    w = np.random.default_rng(scale).random(int(keep.sum())) + 0.01
    g.add_link_ids(src[keep], dst[keep], weights=w)
    return g


def _timed(run: Callable[[], _Out]) -> tuple[float, _Out]:
    """Seconds ``run`` took, and what it returned."""
    t = time.perf_counter()
    out = run()
    return time.perf_counter() - t, out


def bench_graph(name: str, g: Cybergraph, temperatures: list[float], lbfgs_max: int) -> None:
    print(f"\n## {name}: {g.n_particles:,} particles, {g.n_links:,} links")
    engine_s, res = _timed(lambda: compute(g, backend="numba", arithmetic="exact-v2"))
    print(f"engine tri exact-v2: {engine_s:.3f}s, {res.iterations} outer iterations")
    build_x, exact = _timed(lambda: ExactFreeEnergy(g))
    build_f, model = _timed(lambda: FreeEnergyModel(g))
    print(f"build: exact {build_x:.3f}s, float64 model {build_f:.3f}s")
    print(
        "| T | exact s | evaluations (refused) | final eta | stop | L-BFGS s | L1 exact to L-BFGS "
        "| residual exact | residual L-BFGS |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    ratios = []
    for temp in temperatures:
        exact_s, got = _timed(functools.partial(exact.minimize, temp))
        x = got.focus
        row = (
            f"| {temp:g} | {exact_s:.3f} | {got.iterations} ({got.refused}) "
            f"| {got.eta:.3g} | {'tol' if got.converged else 'stalled'} "
        )
        if g.n_particles > lbfgs_max:
            print(f"{row}| - | - | {model.boltzmann_residual(x, temp):.1e} | - |", flush=True)
            ratios.append((temp, exact_s / engine_s, math.nan))
            continue
        lbfgs_s, y = _timed(functools.partial(model.minimize, temp))
        print(
            f"{row}| {lbfgs_s:.3f} | {np.abs(x - y).sum():.2e} "
            f"| {model.boltzmann_residual(x, temp):.1e} "
            f"| {model.boltzmann_residual(y, temp):.1e} |",
            flush=True,
        )
        ratios.append((temp, exact_s / engine_s, exact_s / lbfgs_s))
    print(
        "ratio exact minimiser / engine exact-v2 solve, / L-BFGS: "
        + ", ".join(
            f"T={t:g}: {a:.2f}x, " + ("-" if math.isnan(b) else f"{b:.2f}x") for t, a, b in ratios
        )
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
    bostrom = read_bostrom(args.csv, skip_invalid=True)
    bench_graph("bostrom sample", bostrom, temperatures, args.lbfgs_max)
    for scale in (int(s) for s in args.rmat.split(",") if s):
        bench_graph(f"R-MAT {scale}:16", _rmat(scale), temperatures, args.lbfgs_max)


if __name__ == "__main__":
    main()
