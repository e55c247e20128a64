"""Tri-mode blocks on the numba engine: the chain's first algorithm against a new genesis's.

A chain whose genesis names only the mode keeps the algorithm its blocks were
first committed with (``CHAIN_FOCUS_DEFAULTS``); a genesis written now names
the library's (``NEW_CHAIN_FOCUS``: window 6, diffusion start, bounded heat
reuse and finish). This runs both, and three variants that each take one
choice back, on one R-MAT graph through the same blocks of new links, and
reports per block the pair passes over ``sigma (W + W^T) sigma`` (counted at
the kernel: the work, free of this VM's timing noise), outer iterations, CG
steps and heat terms, and the median wall time.

    python bench/tri_blocks.py                    # scale 17, 12 blocks of 5,000 links
    python bench/tri_blocks.py --scale 18 --block 20000
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

import focusflow.focus.backends.numba_cpu as numba_cpu
from focusflow.chain.focus_commit import CHAIN_FOCUS_DEFAULTS, NEW_CHAIN_FOCUS
from focusflow.focus.engine import FocusEngine
from focusflow.graph import Cybergraph, rmat_edges

VARIANTS = {
    "first (CHAIN_FOCUS_DEFAULTS)": {"mode": "tri", **CHAIN_FOCUS_DEFAULTS},
    "new (NEW_CHAIN_FOCUS)": dict(NEW_CHAIN_FOCUS),
    "new, window 2": {**NEW_CHAIN_FOCUS, "anderson": 2},
    "new, finish fixed": {**NEW_CHAIN_FOCUS, "finish": "fixed"},
    "new, heat reuse exact": {**NEW_CHAIN_FOCUS, "heat_reuse": "exact"},
}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--scale", type=int, default=17)
    ap.add_argument("--edge-factor", type=int, default=8)
    ap.add_argument("--blocks", type=int, default=12)
    ap.add_argument("--block", type=int, default=5000, help="new links per block")
    args = ap.parse_args()
    when = time.strftime("%Y-%m-%d %H:%M")
    print(f"# bench/tri_blocks.py on {platform.node()}, {os.cpu_count()} CPUs, {when}")
    passes = [0]
    kernel = numba_cpu.pair_step

    def counted(*a):
        passes[0] += 1
        return kernel(*a)

    numba_cpu.pair_step = counted
    n = 1 << args.scale
    src, dst, w = rmat_edges(args.scale, args.edge_factor, seed=1)
    new_src, new_dst, new_w = rmat_edges(args.scale, args.edge_factor, seed=9)
    if args.blocks * args.block > len(new_src):
        raise SystemExit("not enough new links for that many blocks")
    engines = {}
    for name, params in VARIANTS.items():
        g = Cybergraph(require_cids=False)
        g.particles.intern(np.arange(n).astype(str))
        g.add_link_ids(src, dst, None, w)
        engine = FocusEngine(g, backend="numba", **params)
        engine.compute()
        engines[name] = (g, engine)
    rows: dict[str, list[tuple[float, int, int, int, int]]] = {k: [] for k in VARIANTS}
    for b in range(args.blocks):
        part = slice(b * args.block, (b + 1) * args.block)
        for name, (g, engine) in engines.items():
            g.add_link_ids(new_src[part], new_dst[part], None, new_w[part])
            cg_before = engine._springs.iterations
            before = passes[0]
            t = time.perf_counter()
            res = engine.apply()
            dt = time.perf_counter() - t
            cg = engine._springs.iterations - cg_before
            heat = res.diagnostics.inner.get("heat_terms", 0)
            rows[name].append((dt, passes[0] - before, res.iterations, cg, heat))
    print(
        f"\nR-MAT scale {args.scale}, edge factor {args.edge_factor}; {args.blocks} blocks of "
        f"{args.block} new links; the first two blocks left out of the means\n"
    )
    print(
        "| algorithm | pair passes / block | outer iterations | CG steps | heat terms | median ms |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    base = None
    for name, data in rows.items():
        a = np.array(data[2:], dtype=float)
        mean_passes = a[:, 1].mean()
        base = base or mean_passes
        print(
            f"| {name} | {mean_passes:.1f} ({mean_passes / base:.2f}) | {a[:, 2].mean():.1f} | "
            f"{a[:, 3].mean():.1f} | {a[:, 4].mean():.1f} | {1e3 * np.median(a[:, 0]):.0f} |"
        )


if __name__ == "__main__":
    main()
