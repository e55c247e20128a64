"""The exact versions side by side: how far each tri solve ends from a
tight fast solve on the bostrom sample (new-genesis algorithm, and Anderson
mixing off), and what exact-v2 and exact-v3 cost on this CPU.

exact-v1's blend kept the diffusion step's gathered vector after rewriting
the vector it came from (docs/focus.md, *Arithmetic*): every plain step of a
tri solve then gathers the diffusion part alone. With the new-genesis window
of 6 few steps are plain; with window 0 every one is. exact-v3 sums in chunks
of 1,024 combined by a tree instead of exact-v2's 64 chunks in order.

The cost table times a chain's engine with the new-genesis parameters in
exact-v2 and in exact-v3 on the same graphs in one run: a cold solve, then
``--blocks`` blocks of ``--block`` random new links through ``apply()``
(median), the two versions alternating ``--rounds`` times (the best round
of each kept, against the noise of a shared machine), on the bostrom sample
and R-MAT graphs (``--rmat 16,18``)::

    python bench/exact_versions.py [--csv PATH] [--rmat 16,18] [--blocks 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba
import numpy as np

from focusflow.chain.focus_spec import NEW_CHAIN_FOCUS
from focusflow.focus import compute
from focusflow.focus.engine import FocusEngine
from focusflow.focus.params import EXACT_V2, EXACT_V3, make_params
from focusflow.graph import Cybergraph
from focusflow.graph.generators import rmat_edges
from focusflow.graph.importers import read_bostrom

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "bostrom-sample-cyberlinks.csv"


def _rmat(scale: int) -> Cybergraph:
    """An R-MAT graph of edge factor 16 (random weights)."""
    src, dst, _ = rmat_edges(scale, 16, seed=scale)
    keep = src != dst
    g = Cybergraph(require_cids=False)
    g.add_particles([f"p{i}" for i in range(1 << scale)])
    w = np.random.default_rng(scale).random(int(keep.sum())) + 0.01
    g.add_link_ids(src[keep], dst[keep], weights=w)
    return g


def _cost(
    make: Callable[[], Cybergraph], arithmetic: str, blocks: int, block: int
) -> tuple[float, float, int]:
    """(cold s, median block s, outer iterations of the cold solve) of a
    chain's engine in ``arithmetic`` on a fresh copy of a graph, blocks of
    random links between its particles."""
    g = make()
    params = make_params(None, **{**NEW_CHAIN_FOCUS, "arithmetic": arithmetic})
    engine = FocusEngine(g, params, backend="numba")
    t = time.perf_counter()
    first = engine.compute()
    cold = time.perf_counter() - t
    rng = np.random.default_rng(7)
    times = []
    for _ in range(blocks):
        top = g.n_particles
        g.add_link_ids(
            rng.integers(0, top, block),
            rng.integers(0, top, block),
            weights=rng.random(block) + 0.01,
        )
        t = time.perf_counter()
        engine.apply()
        times.append(time.perf_counter() - t)
    return cold, float(np.median(times)), first.iterations


def cost_table(csv: str, scales: list[int], blocks: int, block: int, rounds: int) -> None:
    """exact-v2 against exact-v3 on this CPU, alternating, best of ``rounds``."""

    for arithmetic in (EXACT_V2, EXACT_V3):  # compiles (or loads) the kernels first
        _cost(functools.partial(_rmat, 10), arithmetic, 1, 100)
    graphs: list[tuple[str, Callable[[], Cybergraph], int]] = [
        ("bostrom sample", lambda: read_bostrom(csv, skip_invalid=True), max(1, block // 100))
    ]
    graphs += [(f"R-MAT {s}:16", functools.partial(_rmat, s), block) for s in scales]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print()
    print(
        f"cost on {platform.processor() or platform.machine()}, {numba.get_num_threads()} "
        f"numba threads, load {load:.1f}"
    )
    print(
        "| graph | links | block links | exact-v2 cold / block s | exact-v3 cold / block s "
        "| v3/v2 cold | v3/v2 block |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, make, size in graphs:
        best: dict[str, tuple[float, float]] = {}
        for _ in range(rounds):
            for arithmetic in (EXACT_V2, EXACT_V3):
                cold, blk, _ = _cost(make, arithmetic, blocks, size)
                old = best.get(arithmetic, (np.inf, np.inf))
                best[arithmetic] = (min(old[0], cold), min(old[1], blk))
        links = make().n_links
        v2, v3 = best[EXACT_V2], best[EXACT_V3]
        print(
            f"| {label} | {links:,} | {size:,} | {v2[0]:.3f} / {v2[1]:.3f} "
            f"| {v3[0]:.3f} / {v3[1]:.3f} | {v3[0] / v2[0]:.2f}x | {v3[1] / v2[1]:.2f}x |",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--csv", default=str(SAMPLE))
    ap.add_argument("--rmat", default="16,18", help="R-MAT scales of the cost table")
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--block", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--cost-only", action="store_true")
    args = ap.parse_args()
    scales = [int(v) for v in args.rmat.split(",") if v]
    if args.cost_only:
        cost_table(args.csv, scales, args.blocks, args.block, args.rounds)
        return
    g = read_bostrom(args.csv, skip_invalid=True)
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"# bench/exact_versions.py on {platform.node()}, {when}: {g.n_links:,} links")
    ref = compute(g, mode="tri", tol=1e-13, backend="numba").focus
    top = set(np.argsort(-ref)[:100])
    params: dict[str, Any] = {k: v for k, v in NEW_CHAIN_FOCUS.items() if k != "arithmetic"}
    print(
        "| arithmetic | Anderson window | iterations | converged "
        "| L1 to a tight solve | top-100 kept |"
    )
    print("|---|---:|---:|---|---:|---:|")
    for arithmetic in ("exact-v1", "exact-v2", "exact-v3", "fast"):
        for window in (6, 0):
            r = compute(
                g,
                **{**params, "anderson": window},
                arithmetic=arithmetic,
                tol=1e-10,
                backend="numba",
            )
            kept = len(set(np.argsort(-r.focus)[:100]) & top)
            l1 = float(np.abs(r.focus - ref).sum())
            print(
                f"| {arithmetic} | {window} | {r.iterations} | {r.converged} | {l1:.2e} | {kept} |"
            )
    cost_table(args.csv, scales, args.blocks, args.block, args.rounds)


if __name__ == "__main__":
    main()
