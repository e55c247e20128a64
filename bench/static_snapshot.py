"""A one-shot solve's snapshot: the chain's patchable build against the static one.

``focusflow focus compute`` and ``compute(graph)`` solve once; since
"static snapshots" they build ``Snapshot(patchable=False)``, which leaves out
the maps between entries and links and between the two CSRs that only a
patch reads. This times both builds of one R-MAT graph per scale in one
process, alternating round by round, and checks that they hold the same
matrix.

    python bench/static_snapshot.py --scales 18 19 20
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import time

import numpy as np

from focusflow.graph import rmat_edges
from focusflow.graph.snapshot import Snapshot


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scales", type=int, nargs="+", default=[18, 19, 20])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"# bench/static_snapshot.py on {platform.node()}, {os.cpu_count()} CPUs, {when}")
    print("| scale | links | patchable s (median) | static s (median) | patchable / static |")
    print("|---:|---:|---:|---:|---:|")
    Snapshot(64, np.arange(63), np.arange(1, 64), np.ones(63), patchable=False)  # compile
    for scale in args.scales:
        src, dst, w = rmat_edges(scale, 16, seed=1)
        n = 1 << scale
        times: dict[bool, list[float]] = {True: [], False: []}
        for r in range(args.rounds):
            for patchable in (True, False) if r % 2 == 0 else (False, True):
                t = time.perf_counter()
                snap = Snapshot(n, src, dst, w, patchable=patchable)
                times[patchable].append(time.perf_counter() - t)
                if r == 0 and not patchable:
                    check = Snapshot(n, src, dst, w)
                    assert np.array_equal(check.in_w, snap.in_w)
                    assert np.array_equal(check.out_indices, snap.out_indices)
                    del check
                del snap
        full, static = (statistics.median(times[p]) for p in (True, False))
        print(f"| {scale} | {len(src):,} | {full:.3f} | {static:.3f} | {full / static:.2f} |")


if __name__ == "__main__":
    main()
