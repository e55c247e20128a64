"""Per-block focus updates against rebuilding: what a chain pays for each block.

A chain applies blocks, not random batches: a few thousand new links, signed
by neurons that already hold links (each new link re-weighs every link of its
neuron: a neuron's stake is spread over its links), plus a few stake changes.
For graphs of ``--links`` (default 10^6 and 10^7) R-MAT links owned by
``--neurons`` neurons, this applies blocks of 10^3, 10^4 and 10^5 new links
(with ``--stake-moves`` stake changes each) and times, for diffusion and tri:

- ``update``: ``FocusEngine.apply()`` (patch the snapshot, update focus from
  the previous state: forward push in diffusion, a warm start in tri);
- ``rebuild``: what a node without the engine does, a new snapshot of the
  whole graph and a cold solve.

Both stop at ``--tol`` and both are checked against a tight solve of the same
final graph (L1 error) and against each other's top 100. The ratio
``rebuild / update`` is the speed-up a block gets. Wall times are medians over
``--blocks`` blocks after one untimed warm-up block.

    python bench/focus_blocks.py                         # 10^6 and 10^7 links
    python bench/focus_blocks.py --links 1000000 --sizes 1000 --blocks 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import time

import numpy as np

from focusflow.focus import compute, make_params
from focusflow.focus.engine import FocusEngine
from focusflow.graph import Cybergraph, Snapshot, rmat_edges


def build_graph(links: int, neurons: int, seed: int) -> tuple[Cybergraph, int]:
    """An R-MAT graph of about ``links`` links, each signed by one of ``neurons``."""
    scale = max(4, int(np.ceil(np.log2(links / 16))))
    src, dst, _ = rmat_edges(scale, seed=seed)
    src, dst = src[:links], dst[:links]
    rng = np.random.default_rng(seed)
    g = Cybergraph(require_cids=False)
    n = 1 << scale
    g.add_particles([f"p{i}" for i in range(n)])
    names = [f"n{i}" for i in range(neurons)]
    g.add_neurons(names, rng.uniform(1.0, 100.0, neurons))
    owner = rng.integers(0, neurons, len(src))
    g.add_link_ids(src, dst, owner)
    return g, n


def block(g: Cybergraph, n: int, size: int, moves: int, signers: int, rng) -> None:
    """Append one block: ``size`` new links signed by ``signers`` existing neurons,
    and ``moves`` stake changes."""
    scale = int(np.log2(n))
    src, dst, _ = rmat_edges(scale, edge_factor=1, seed=int(rng.integers(1 << 30)))
    take = rng.choice(len(src), size=size, replace=len(src) < size)
    who = rng.choice(g.n_neurons, size=min(signers, g.n_neurons), replace=False)
    owner = who[rng.integers(0, len(who), size)]
    g.add_link_ids(src[take], dst[take], owner)
    who = rng.choice(g.n_neurons, size=moves, replace=False)
    g.set_stakes(who, rng.uniform(1.0, 100.0, moves))


def fresh_snapshot(g: Cybergraph) -> Snapshot:
    """The whole graph's snapshot built anew, as after a restart."""
    links = g.links()
    return Snapshot(g.n_particles, links.src, links.dst, g.link_weight(np.arange(g.n_links)))


def top(x: np.ndarray, k: int = 100) -> np.ndarray:
    return np.argsort(-x, kind="stable")[:k]


def run(links: int, size: int, mode: str, args) -> dict:
    rng = np.random.default_rng(size + links)
    g, n = build_graph(links, args.neurons, seed=7)
    params = make_params(mode=mode, tol=args.tol)
    tight = make_params(mode=mode, tol=args.tol * 1e-3, max_iter=2048)
    engine = FocusEngine(g, params)
    engine.compute()
    block(g, n, size, args.stake_moves, args.signers, rng)
    engine.apply()  # warm-up: first patch, kernels loaded
    upd, reb, err_u, err_r, same_top = [], [], [], [], []
    for _ in range(args.blocks):
        block(g, n, size, args.stake_moves, args.signers, rng)
        t = time.perf_counter()
        res = engine.apply()
        upd.append(time.perf_counter() - t)
        fu = np.asarray(res.focus, dtype=np.float64)
        t = time.perf_counter()
        snap = fresh_snapshot(g)  # a node without the engine: new snapshot, cold solve
        cold = compute(snap, params, backend="numba")
        reb.append(time.perf_counter() - t)
        fr = np.asarray(cold.focus, dtype=np.float64)
        ref = np.asarray(compute(snap, tight, backend="numba").focus, dtype=np.float64)
        err_u.append(float(np.abs(fu / fu.sum() - ref / ref.sum()).sum()))
        err_r.append(float(np.abs(fr / fr.sum() - ref / ref.sum()).sum()))
        same_top.append(bool(np.array_equal(top(fu), top(fr))))
    u, r = statistics.median(upd), statistics.median(reb)
    return {
        "links": g.n_links,
        "size": size,
        "mode": mode,
        "update": u,
        "rebuild": r,
        "ratio": r / u,
        "err_update": max(err_u),
        "err_rebuild": max(err_r),
        "top100": all(same_top),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--links", type=int, nargs="*", default=[10**6, 10**7])
    ap.add_argument("--sizes", type=int, nargs="*", default=[10**3, 10**4, 10**5])
    ap.add_argument("--modes", nargs="*", default=["diffusion", "tri"])
    ap.add_argument("--neurons", type=int, default=10_000)
    ap.add_argument("--stake-moves", type=int, default=10)
    ap.add_argument("--signers", type=int, default=10, help="neurons signing a block's links")
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--tol", type=float, default=1e-6)
    args = ap.parse_args()
    print(
        f"# focus_blocks {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{os.cpu_count()} CPUs; {args.neurons} neurons, {args.stake_moves} stake moves "
        f"per block, tol {args.tol:g}, median of {args.blocks} blocks",
        flush=True,
    )
    print(
        "| links | block | mode | update s | rebuild s | rebuild/update | L1 update | "
        "L1 rebuild | top-100 same |"
    )
    print("|---|---|---|---|---|---|---|---|---|", flush=True)
    for links in args.links:
        for size in args.sizes:
            for mode in args.modes:
                r = run(links, size, mode, args)
                print(
                    f"| {r['links']:,} | {size:,} | {mode} | {r['update']:.3f} | "
                    f"{r['rebuild']:.3f} | {r['ratio']:.1f}x | {r['err_update']:.1e} | "
                    f"{r['err_rebuild']:.1e} | {r['top100']} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
