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

``--kernels SCALE`` instead times each exact kernel of both versions on one
R-MAT graph, alternating, the best of ``--reps`` calls each: on a shared
machine a kernel's best time moves far less than a whole block's.
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
    make: Callable[[], Cybergraph], overrides: dict[str, object], blocks: int, block: int
) -> tuple[float, float, int, float]:
    """(cold s, median block s, iterations of the cold solve, median iterations
    of a block) of a chain's engine (``NEW_CHAIN_FOCUS`` under ``overrides``)
    on a fresh copy of a graph, blocks of random links between its particles."""
    g = make()
    params = make_params(None, **{**NEW_CHAIN_FOCUS, **overrides})
    engine = FocusEngine(g, params, backend="numba")
    t = time.perf_counter()
    first = engine.compute()
    cold = time.perf_counter() - t
    rng = np.random.default_rng(7)
    times, iterations = [], []
    for _ in range(blocks):
        top = g.n_particles
        g.add_link_ids(
            rng.integers(0, top, block),
            rng.integers(0, top, block),
            weights=rng.random(block) + 0.01,
        )
        t = time.perf_counter()
        iterations.append(engine.apply().iterations)
        times.append(time.perf_counter() - t)
    return cold, float(np.median(times)), first.iterations, float(np.median(iterations))


def cost_table(csv: str, scales: list[int], blocks: int, block: int, rounds: int) -> None:
    """exact-v2 against exact-v3 on this CPU, alternating, best of ``rounds``."""

    for arithmetic in (EXACT_V2, EXACT_V3):  # compiles (or loads) the kernels first
        _cost(functools.partial(_rmat, 10), {"arithmetic": arithmetic}, 1, 100)
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
                cold, blk, *_ = _cost(make, {"arithmetic": arithmetic}, blocks, size)
                old = best.get(arithmetic, (np.inf, np.inf))
                best[arithmetic] = (min(old[0], cold), min(old[1], blk))
        links = make().n_links
        v2, v3 = best[EXACT_V2], best[EXACT_V3]
        print(
            f"| {label} | {links:,} | {size:,} | {v2[0]:.3f} / {v2[1]:.3f} "
            f"| {v3[0]:.3f} / {v3[1]:.3f} | {v3[0] / v2[0]:.2f}x | {v3[1] / v2[1]:.2f}x |",
            flush=True,
        )


def kernel_table(scale: int, reps: int) -> None:
    """Each exact kernel in exact-v2 and exact-v3 on one R-MAT graph,
    alternating call by call; the best of ``reps`` each."""
    from focusflow.focus.anderson import _mix_exact, _record_exact
    from focusflow.focus.backends import exact_tree
    from focusflow.focus.backends.numba_cpu import (
        EXACT_KERNELS,
        TREE_KERNELS,
        ExactNumbaOperator,
        Kernels,
    )
    from focusflow.focus.reduce import chunked_sum, strict_sum
    from focusflow.graph import Snapshot

    src, dst, _ = rmat_edges(scale, 16, seed=1)
    w = np.random.default_rng(1).random(len(src)) + 0.01
    snap = Snapshot(1 << scale, src, dst, w)
    n = snap.n
    op = ExactNumbaOperator(snap, "float64", EXACT_V2)
    op.setup_laplacian("normalized")
    rng = np.random.default_rng(2)
    x2, p, q = rng.random((n, 2)), rng.random(n), rng.random(n)
    dm = op.lap_diag + 0.5
    ap, tp, tn, acc, out = (np.empty(n) for _ in range(5))
    dx, dg, gamma = rng.random((6, n)), rng.random((6, n)), rng.random(6) * 0.1
    m = op.sell

    def calls(k: Kernels, v3: bool) -> list[tuple[str, Callable[[], object]]]:
        record = exact_tree._record if v3 else _record_exact
        mix = exact_tree._mix if v3 else _mix_exact
        total = chunked_sum if v3 else strict_sum
        pull = (m.grows, m.gptr, m.glen, m.sidx, m.sval, p, out, op.sell_bounds, 0.85)
        diag = op.lap_diag
        return [
            ("pair_step", lambda: k.pair_step(
                *op._args, x2, dm, ap, True, diag, 0.9, tp, tn, acc, 0.1, 0.2, False, True
            )),
            ("cg_product", lambda: k.cg_product(*op._args, dm, p, ap)),
            ("cheb_step", lambda: k.cheb_step(*op._args, diag, 0.9, p, tp, acc, 0.1, 0.2, False)),
            ("sell_pull", lambda: k.sell_pull(*pull)),
            ("cg_update", lambda: k.cg_update(out, acc, p, q, p, 0.1, tn)),
            ("finish_diffusion", lambda: k.finish_diffusion(q, out, p, q, p, tn, 0.1, 64)),
            ("dot", lambda: k.dot(p, q, 64)),
            ("blend_sum", lambda: k.blend_sum(out, p, q, 0.5, 0.3, 0.2, True, True, 64)),
            ("anderson record", lambda: record(p, q, out, acc, dx, dg, 1, True, 5)),
            ("anderson mix", lambda: mix(q, dx, dg, gamma, 5, tn)),
            ("total", lambda: total(p)),
        ]  # fmt: skip

    ways = {EXACT_V2: calls(EXACT_KERNELS, False), EXACT_V3: calls(TREE_KERNELS, True)}
    best: dict[tuple[str, str], float] = {}
    for way in ways.values():
        for _, f in way:
            f()
    for r in range(reps):
        for version in (EXACT_V2, EXACT_V3) if r % 2 else (EXACT_V3, EXACT_V2):
            for name, f in ways[version]:
                t = time.perf_counter()
                f()
                spent = time.perf_counter() - t
                best[name, version] = min(best.get((name, version), np.inf), spent)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"R-MAT {scale}:16 ({n:,} particles, {len(src):,} links), {numba.get_num_threads()} "
        f"numba threads, load {load:.1f}, best of {reps}"
    )
    print("| kernel | exact-v2 ms | exact-v3 ms | v3/v2 |")
    print("|---|---:|---:|---:|")
    for name, _ in ways[EXACT_V2]:
        a, b = best[name, EXACT_V2] * 1e3, best[name, EXACT_V3] * 1e3
        print(f"| {name} | {a:.3f} | {b:.3f} | {b / a:.2f}x |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--csv", default=str(SAMPLE))
    ap.add_argument("--rmat", default="16,18", help="R-MAT scales of the cost table")
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--block", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--cost-only", action="store_true")
    ap.add_argument("--kernels", type=int, metavar="SCALE", help="time each kernel instead")
    ap.add_argument("--reps", type=int, default=40)
    args = ap.parse_args()
    if args.kernels:
        kernel_table(args.kernels, args.reps)
        return
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
