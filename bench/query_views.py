"""Per-block maintenance of registered views on a 10^6-link graph.

The goal: a view registered on a node is brought up to date in under 50 ms
for a block of 10^4 new links on a graph of 10^6 links. The graph is R-MAT
(scale 16, edge factor 16 by default: about 10^6 distinct links); each block
appends 10^4 further R-MAT links, the producer publishes its view
(``build_view``, not timed) and ``ViewSet.advance`` brings every view to it
(timed, per view and in all). Beside it, the same programs evaluated afresh
on the new block, which is what a view saves.

Views:

- ``reach``: every particle reachable from the hub (recursive, incremental);
- ``two``: the hub's exact two-hop neighbourhood (a join, incremental);
- ``fan``: particles linked from at least three of the hub's successors
  (an aggregate: recomputed per block).

Run from the repository root::

    python bench/query_views.py                  # scale 16, 10 blocks of 10^4 links
    python bench/query_views.py --scale 17 --blocks 5
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from contextlib import contextmanager
from datetime import UTC, datetime

import numpy as np

from focusflow.chain.focus_view import build_view
from focusflow.core.cid import cid_of_text, cid_to_bytes
from focusflow.graph.cybergraph import Cybergraph
from focusflow.graph.generators import rmat_edges
from focusflow.query import run
from focusflow.query.node_source import NodeSource
from focusflow.query.views import LiveSource, ViewSet

GOAL_MS = 50.0


class _Chain:
    height = 0

    def block_record(self, height: int):
        return None

    @contextmanager
    def reader(self):
        yield None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=16)
    ap.add_argument("--edge-factor", type=int, default=16)
    ap.add_argument("--blocks", type=int, default=10)
    ap.add_argument("--block-links", type=int, default=10_000)
    args = ap.parse_args()

    n = 1 << args.scale
    keys = np.empty(n, dtype=object)
    keys[:] = [cid_to_bytes(cid_of_text(f"p{i}")) for i in range(n)]
    src, dst, _ = rmat_edges(args.scale, args.edge_factor, seed=1)
    extra = args.blocks * args.block_links
    xs, xd, _ = rmat_edges(args.scale, max(1, -(-extra // n)), seed=2)
    keep = xs != xd
    xs, xd = xs[keep][:extra], xd[keep][:extra]
    g = Cybergraph(require_cids=False)
    ok = src != dst
    # Links on a chain are signed by neurons: 64 of them, links spread at random.
    neurons = np.empty(64, dtype=object)
    neurons[:] = [bytes([7, i]) * 10 for i in range(64)]
    pick = np.random.default_rng(3)
    g.add_links(keys[src[ok]], keys[dst[ok]], neurons[pick.integers(0, 64, int(ok.sum()))])
    rng = np.random.default_rng(0)
    previous = build_view(1, 1000, rng.integers(1, 1000, g.n_particles), g, 1, 0.0, None)
    deg = np.bincount(src[ok], minlength=n)
    hub = cid_of_text(f"p{int(np.argmax(deg))}")
    programs = {
        "reach": (f'reach(y) :- link("{hub}", y).\nreach(y) :- reach(x), link(x, y).', "reach"),
        "two": (f'two(z) :- link("{hub}", y), link(y, z).', "two"),
        "fan": (
            f'succ(y) :- link("{hub}", y).\n'
            "fan(z, c) :- link(_, z), c = count : { succ(y), link(y, z) }, c >= 3.",
            "fan",
        ),
    }
    chain = _Chain()
    live = LiveSource(previous, chain)
    views = ViewSet(live)
    t0 = time.perf_counter()
    for name, (program, output) in programs.items():
        views.register(name, program, output)
    register_s = time.perf_counter() - t0
    per_view: dict[str, list[float]] = {name: [] for name in programs}
    totals: list[float] = []
    fresh: dict[str, list[float]] = {name: [] for name in programs}
    for b in range(args.blocks):
        lo, hi = b * args.block_links, (b + 1) * args.block_links
        g.add_links(keys[xs[lo:hi]], keys[xd[lo:hi]], neurons[pick.integers(0, 64, hi - lo)])
        previous = build_view(
            b + 2, 1000, rng.integers(1, 1000, g.n_particles), g, 1, 0.0, previous
        )
        t = time.perf_counter()
        views.advance(previous)
        totals.append((time.perf_counter() - t) * 1e3)
        for name, view in views.views.items():
            assert view.error is None, view.error
            per_view[name].append(view.update_ms)
        source = NodeSource(previous, chain)
        source.table("link")
        for name, (program, output) in programs.items():
            t = time.perf_counter()
            want = run(program, source, output=output)
            fresh[name].append((time.perf_counter() - t) * 1e3)
            assert want.total == views.views[name].rows, (name, want.total, views.views[name].rows)
        source.close()

    print(
        f"# views per block ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{platform.processor() or platform.machine()})"
    )
    print(
        f"graph: R-MAT {args.scale}/{args.edge_factor}, {g.n_links} links before the blocks; "
        f"{args.blocks} blocks of {args.block_links} links; registering took {register_s:.2f} s"
    )
    print(f"{'view':8} {'kind':12} {'rows':>9} {'update ms (median, max)':>24} {'fresh ms':>9}")
    for name, view in views.views.items():
        kind = "incremental" if view.incremental else "recompute"
        upd = per_view[name]
        print(
            f"{name:8} {kind:12} {view.rows:9d} {statistics.median(upd):11.1f} {max(upd):11.1f} "
            f"{statistics.median(fresh[name]):9.1f}"
        )
    med = statistics.median(totals)
    print(f"all views per block: median {med:.1f} ms, max {max(totals):.1f} ms")
    inc = [statistics.median(per_view[n]) for n, v in views.views.items() if v.incremental]
    print(
        f"goal: incremental view < {GOAL_MS:g} ms per block: "
        f"{'met' if max(inc) < GOAL_MS else 'NOT met'} (worst median {max(inc):.1f} ms)"
    )


if __name__ == "__main__":
    main()
