"""A chain's focus per block: the free-energy model against the blend.

For each graph (the bostrom sample, R-MAT graphs of edge factor 16 at
``--rmat`` scales) the chain's engine (``NEW_CHAIN_FOCUS``, numba) solves cold,
then takes ``--blocks`` blocks of ``--block`` random links (the bostrom
sample: a hundredth of it), once with ``model="blend"`` (the tri-kernel's
fixed point, what chains commit by default) and once with
``model="free-energy"`` at each ``--temperatures`` T (F's exact minimiser,
warm-started from the last block's focus). Printed per row: cold and median
block seconds, the cold solve's and a block's median iterations (the blend's
outer iterations; the model's gradient evaluations), and the model's block
time over the blend's. Each configuration runs ``--rounds`` times, alternating,
best time kept; numba's kernels are compiled (or loaded) before the first.

Run: ``PYTHONPATH=src python bench/free_energy_blocks.py [--rmat 12,14]
[--temperatures 1,0.5] [--blocks 3] [--block 1000] [--rounds 2]``.
bench/RESULTS.md and docs/focus.md section 9 quote its output.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
from collections.abc import Callable
from pathlib import Path

import numba

# bench/exact_versions.py's R-MAT graphs and engine loop (this script's
# directory is on sys.path).
from exact_versions import _cost, _rmat
from focusflow.graph import Cybergraph
from focusflow.graph.importers import read_bostrom

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "bostrom-sample-cyberlinks.csv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--csv", default=str(SAMPLE))
    ap.add_argument("--rmat", default="12,14", help="R-MAT scales")
    ap.add_argument("--temperatures", default="1,0.5")
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--block", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    temps = [float(t) for t in args.temperatures.split(",") if t]
    scales = [int(s) for s in args.rmat.split(",") if s]
    configs: list[tuple[str, dict[str, object]]] = [("blend", {"model": "blend"})]
    configs += [(f"free-energy T={t:g}", {"model": "free-energy", "temperature": t}) for t in temps]
    for _, overrides in configs:  # compile (or load) the kernels first
        _cost(functools.partial(_rmat, 8), overrides, 1, 10)
    graphs: list[tuple[str, Callable[[], Cybergraph], int]] = [
        (
            "bostrom sample",
            lambda: read_bostrom(args.csv, skip_invalid=True),
            max(1, args.block // 100),
        )
    ]
    graphs += [(f"R-MAT {s}:16", functools.partial(_rmat, s), args.block) for s in scales]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{platform.processor() or platform.machine()}, {numba.get_num_threads()} numba "
        f"threads, load {load:.1f}; blocks {args.blocks}, best of {args.rounds} rounds"
    )
    print(
        "| graph | links | block links | focus | cold s | block s | cold iterations "
        "| block iterations | block / blend's |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|")
    for label, make, size in graphs:
        best: dict[str, tuple[float, float, int, float]] = {}
        for _ in range(args.rounds):
            for name, overrides in configs:
                got = _cost(make, overrides, args.blocks, size)
                old = best.get(name)
                best[name] = (
                    got if old is None else (min(old[0], got[0]), min(old[1], got[1]), *got[2:])
                )
        links = make().n_links
        blend_block = best["blend"][1]
        for name, _ in configs:
            cold, blk, it_cold, it_blk = best[name]
            print(
                f"| {label} | {links:,} | {size:,} | {name} | {cold:.3f} | {blk:.4f} "
                f"| {it_cold} | {it_blk:g} | {blk / blend_block:.1f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
