"""The local rule as a chain's per-block mode: how it reaches and follows F's minimiser.

A chain whose genesis names ``focus.model = "local-rule"`` takes, each block,
``local_steps`` steps of size ``local_eta`` of F's local rule from the last
block's focus (energy_exact.ExactFreeEnergy.local_steps, the same bits on
every machine). Two questions, on the bostrom sample and an R-MAT graph, at
each of ``--temperatures``, for each ``STEPSxETA`` of ``--configs``:

- **fixed graph**: blocks that change nothing (the engine solves again): the
  L1 gap to F's minimiser (the exact minimiser to 1e-12) after each block, and
  the rate per block (geometric mean of the last ten ratios above 1e-11);
- **growing graph**: each block adds ``--grow`` of the graph's links (random
  pairs of its particles): the gap to that block's own minimiser, its median
  over the last half of the blocks (how closely the rule follows), beside the
  blend's engine on the same blocks for the cost: median seconds a block.

Writes docs/figures/local_rule_blocks.png (gap per block, log scale).

Run: ``PYTHONPATH=src python bench/local_rule_blocks.py [--rmat 12]
[--temperatures 1,0.5] [--configs 4x0.01,1x0.03,4x0.03,4x0.06] [--blocks 40]
[--growing 20] [--grow 0.01]``. bench/RESULTS.md and docs/focus.md section
11.3 quote its output.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import os
import platform
import time
from pathlib import Path

import numba
import numpy as np

# bench/exact_versions.py's R-MAT graphs (this script's directory is on sys.path).
from exact_versions import _rmat
from focusflow.chain.focus_spec import NEW_CHAIN_FOCUS
from focusflow.focus.energy_exact import ExactFreeEnergy, ExactMinimum
from focusflow.focus.engine import FocusEngine
from focusflow.focus.params import FocusParams, make_params
from focusflow.graph import Cybergraph
from focusflow.graph.importers import read_bostrom

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "bostrom-sample-cyberlinks.csv"


def _minimum(g: Cybergraph, p: FocusParams, start: ExactMinimum | None) -> ExactMinimum:
    """F's minimiser on the graph as it is, to 1e-12 (warm from ``start``)."""
    snap = g.snapshot(patchable=False)
    return ExactFreeEnergy(snap, p.with_(model="blend")).minimize(p.temperature, start, tol=1e-12)


def _rate(gaps: list[float]) -> float:
    ratios = [b / a for a, b in itertools.pairwise(gaps) if b > 1e-11]
    tail = ratios[-10:]
    return float(np.exp(np.mean(np.log(tail)))) if tail else float("nan")


def fixed_graph(g: Cybergraph, p: FocusParams, blocks: int) -> list[float]:
    target = _minimum(g, p, None).focus
    engine = FocusEngine(copy.deepcopy(g), p, backend="numba")
    gaps = [float(np.abs(engine.compute().focus - target).sum())]
    for _ in range(blocks):
        gaps.append(float(np.abs(engine.apply().focus - target).sum()))
    return gaps


def growing_graph(
    g: Cybergraph, p: FocusParams, blocks: int, grow: float
) -> tuple[list[float], float, float]:
    """Gaps per block to each block's minimiser; median block seconds of the
    rule and of the blend's engine on the same blocks."""
    ours, blend = copy.deepcopy(g), copy.deepcopy(g)
    engine = FocusEngine(ours, p, backend="numba")
    plain = FocusEngine(blend, p.with_(model="blend"), backend="numba")
    engine.compute()
    plain.compute()
    best = _minimum(ours, p, None)
    rng = np.random.default_rng(11)
    size = max(1, int(g.n_links * grow))
    gaps, t_ours, t_blend = [], [], []
    for _ in range(blocks):
        top = ours.n_particles
        src, dst = rng.integers(0, top, size), rng.integers(0, top, size)
        w = rng.random(size) + 0.01
        for graph in (ours, blend):
            graph.add_link_ids(src, dst, weights=w)
        t = time.perf_counter()
        phi = engine.apply().focus
        t_ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        plain.apply()
        t_blend.append(time.perf_counter() - t)
        best = _minimum(ours, p, best)
        gaps.append(float(np.abs(phi - best.focus).sum()))
    return gaps, float(np.median(t_ours)), float(np.median(t_blend))


def figure(curves: dict[str, dict[str, tuple[list[float], list[float]]]], where: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(curves), 2, figsize=(11, 4 * len(curves)), squeeze=False)
    for row, (graph, runs) in enumerate(curves.items()):
        for label, (fixed, growing) in runs.items():
            axes[row][0].semilogy(np.maximum(fixed, 1e-16), label=label)
            axes[row][1].semilogy(range(1, len(growing) + 1), growing, label=label)
        axes[row][0].set_title(f"{graph}: fixed graph, L1 gap to F's minimiser")
        axes[row][1].set_title(f"{graph}: growing graph, gap to each block's minimiser")
        for ax in axes[row]:
            ax.set_xlabel("block")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(title="steps x eta", fontsize=8)
    fig.tight_layout()
    fig.savefig(where / "local_rule_blocks.png", dpi=100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--csv", default=str(SAMPLE))
    ap.add_argument("--rmat", type=int, default=12)
    ap.add_argument("--temperatures", default="1,0.5")
    ap.add_argument("--configs", default="4x0.01,1x0.03,4x0.03,4x0.06")
    ap.add_argument("--blocks", type=int, default=40)
    ap.add_argument("--growing", type=int, default=20)
    ap.add_argument("--grow", type=float, default=0.01)
    ap.add_argument("--figures", default=str(ROOT / "docs" / "figures"))
    args = ap.parse_args()
    configs = [(int(s), float(e)) for s, e in (c.split("x") for c in args.configs.split(","))]
    temps = [float(t) for t in args.temperatures.split(",") if t]
    graphs = {
        "bostrom sample": read_bostrom(args.csv, skip_invalid=True),
        f"R-MAT {args.rmat}:16": _rmat(args.rmat),
    }
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{platform.processor() or platform.machine()}, {numba.get_num_threads()} numba "
        f"threads, load {load:.1f}"
    )
    print(
        "| graph | T | steps x eta | gap after 10 / 20 / all fixed blocks | rate a block "
        "| growing: median gap, last half | block s | blend block s |"
    )
    print("|---|---:|---|---|---:|---:|---:|---:|")
    curves: dict[str, dict[str, tuple[list[float], list[float]]]] = {}
    for (name, g), t in ((item, t) for item in graphs.items() for t in temps):
        row = f"{name}, T = {t:g}"
        curves[row] = {}
        for steps, eta in configs:
            p = make_params(
                None,
                **{
                    **NEW_CHAIN_FOCUS,
                    "model": "local-rule",
                    "temperature": t,
                    "local_steps": steps,
                    "local_eta": eta,
                },
            )
            fixed = fixed_graph(g, p, args.blocks)
            growing, t_ours, t_blend = growing_graph(g, p, args.growing, args.grow)
            label = f"{steps}x{eta:g}"
            curves[row][label] = (fixed, growing)
            half = growing[len(growing) // 2 :]
            print(
                f"| {name} | {t:g} | {label} | {fixed[min(10, len(fixed) - 1)]:.1e} / "
                f"{fixed[min(20, len(fixed) - 1)]:.1e} / {fixed[-1]:.1e} | {_rate(fixed):.3f} "
                f"| {float(np.median(half)):.1e} | {t_ours:.4f} | {t_blend:.4f} |",
                flush=True,
            )
    figure(curves, Path(args.figures))
    print(f"wrote {Path(args.figures) / 'local_rule_blocks.png'}")


if __name__ == "__main__":
    main()
