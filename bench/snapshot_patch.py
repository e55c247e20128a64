"""A block's patch of the chain's snapshot against igraph adding the same block.

Each block a chain commits adds links, and in most blocks particles no one
linked before. The snapshot takes them with a patch (``Cybergraph.refresh``):
its cost should follow the block, not the graph. Until the snapshot kept
spare room past its particle-sized arrays, every block that added a particle
copied five of them (the permutations, both row pointers and the row
weights): 60-70 ms a block at 3.6 million particles on a 2-core VM.

This builds one random graph of ``--particles`` particles and ``--links``
links twice, as a focusflow ``Cybergraph`` (its snapshot built) and as an
igraph ``Graph``, then adds ``--blocks`` blocks of ``--block`` links whose
sources are drawn from the particles and ``--new`` unseen ones, to both:

- ours: ``add_links`` and the patch (``refresh``), ids by name as a chain
  receives them;
- igraph: ``add_vertices`` for the unseen particles and ``add_edges``, ids
  resolved by the same name table beforehand (igraph is given the easier job).

It prints the median of each per block and their ratio::

    python bench/snapshot_patch.py --particles 4194304 --links 4000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import time

import numpy as np

from focusflow.graph import Cybergraph


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--particles", type=int, default=1 << 22)
    ap.add_argument("--links", type=int, default=4_000_000)
    ap.add_argument("--blocks", type=int, default=8)
    ap.add_argument("--block", type=int, default=10_000)
    ap.add_argument("--new", type=int, default=50_000, help="unseen particles blocks draw from")
    args = ap.parse_args()
    import igraph

    n, m = args.particles, args.links
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"# bench/snapshot_patch.py on {platform.node()}, {os.cpu_count()} CPUs, {when}")
    rng = np.random.default_rng(1)
    names = np.array([f"p{i}" for i in range(n + args.new)], dtype=object)
    src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
    g = Cybergraph(require_cids=False)
    g.add_links(names[src], names[dst], weights=rng.random(m) + 0.01)
    g.snapshot()
    ig = igraph.Graph(n=n, edges=np.stack([src, dst], axis=1), directed=True)
    known = n
    ours, patches, theirs, grown = [], [], [], 0
    for _ in range(args.blocks):
        s = rng.integers(0, n + args.new, args.block)
        d = rng.integers(0, n, args.block)
        w = rng.random(args.block) + 0.01
        before = g.n_particles
        t = time.perf_counter()
        g.add_links(names[s], names[d], weights=w)
        t_patch = time.perf_counter()
        g.refresh(old_rows=False)
        ours.append(time.perf_counter() - t)
        patches.append(time.perf_counter() - t_patch)
        grown += g.n_particles - before
        top = int(s.max()) + 1
        t = time.perf_counter()
        if top > known:
            ig.add_vertices(top - known)
            known = top
        ig.add_edges(np.stack([s, d], axis=1))
        theirs.append(time.perf_counter() - t)
    a, b = statistics.median(ours[1:]), statistics.median(theirs[1:])
    p = statistics.median(patches[1:])
    print(
        "| linked particles | links | block | new particles a block | ours ms (median) "
        "| of which the patch ms | igraph ms (median) | igraph / ours |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {g.n_particles:,} | {g.n_links:,} | {args.block:,} | {grown / args.blocks:.0f} "
        f"| {a * 1e3:.1f} | {p * 1e3:.1f} | {b * 1e3:.1f} | {b / a:.2f}x |"
    )


if __name__ == "__main__":
    main()
