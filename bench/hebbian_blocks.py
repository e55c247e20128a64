"""A chain's focus per block with the Hebbian rule against the plain blend.

For each graph (the bostrom sample, R-MAT graphs of edge factor 16 at
``--rmat`` scales, their links spread over ``--neurons`` staked neurons) a
chain's focus state (``FocusState`` over ``NEW_CHAIN_FOCUS``, numba) takes the
graph as its first block, then ``--blocks`` blocks of ``--block`` random
links, once as the plain blend and once with the Hebbian rule every block
(``hebbian_every = 1``, the rule's worst case: every block is a due one; the
defaults' other numbers, eta 0.01, delta 0.1, cap 2, mass cap 0.01). Printed
per row: the first block's seconds, the median block's seconds and solve
iterations, the rule's own update (the factors from the last focus, before
the solve) as a median, the links whose factor moved in the last block, and
the block's time over the blend's. Each configuration runs ``--rounds`` times,
alternating, best time kept; the kernels are compiled (or loaded) first.

Run: ``PYTHONPATH=src python bench/hebbian_blocks.py [--rmat 12,14]
[--blocks 4] [--block 1000] [--rounds 2]``. bench/RESULTS.md and
docs/focus.md section 12 quote its output.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Any

import numba
import numpy as np

from focusflow.chain.focus_commit import NEW_CHAIN_FOCUS, FocusState
from focusflow.chain.module import Deltas
from focusflow.graph.generators import rmat_edges
from focusflow.graph.importers import read_bostrom

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "bostrom-sample-cyberlinks.csv"
HEBBIAN = {"hebbian_every": 1}


def _cid(i: int) -> bytes:
    return b"\x01\x55\x12\x20" + int(i).to_bytes(32, "big")


def _first_block(src: np.ndarray, dst: np.ndarray, neurons: int, seed: int) -> Deltas:
    """All of a graph's links as one block, link ``k`` sent by neuron ``k mod neurons``,
    the neurons' stakes drawn once (seeded)."""
    rng = np.random.default_rng(seed)
    addrs = [bytes([1 + k % 250, k // 250]) + bytes(18) for k in range(neurons)]
    links = []
    for k, addr in enumerate(addrs):
        pairs = [[_cid(s), _cid(d)] for s, d in zip(src[k::neurons], dst[k::neurons], strict=True)]
        links.append((addr, pairs, None))
    stakes = {a: int(v) for a, v in zip(addrs, rng.integers(10**6, 10**8, neurons), strict=True)}
    return Deltas(links=links, stakes=stakes)


def _random_block(rng: np.random.Generator, n: int, size: int, neurons: int) -> Deltas:
    addr = bytes([1 + int(rng.integers(0, min(neurons, 250))), 0]) + bytes(18)
    src, dst = rng.integers(0, n, size), rng.integers(0, n, size)
    keep = src != dst
    pairs = [[_cid(s), _cid(d)] for s, d in zip(src[keep], dst[keep], strict=True)]
    return Deltas(links=[(addr, pairs, None)])


def _cost(
    edges: tuple[np.ndarray, np.ndarray], overrides: dict[str, Any], args: argparse.Namespace
) -> dict[str, float]:
    src, dst = edges
    n = int(max(src.max(), dst.max())) + 1
    state = FocusState({**NEW_CHAIN_FOCUS, **overrides})
    update_s: list[float] = []
    if state.hebbian is not None:
        step = state._hebbian_step

        def timed() -> None:
            t = time.perf_counter()
            step()
            update_s.append(time.perf_counter() - t)

        state._hebbian_step = timed  # type: ignore[method-assign]
    t = time.perf_counter()
    state.apply(_first_block(src, dst, args.neurons, seed=1), height=1)
    first = time.perf_counter() - t
    rng = np.random.default_rng(7)
    times, iterations = [], []
    for h in range(2, 2 + args.blocks):
        deltas = _random_block(rng, n, args.block, args.neurons)
        t = time.perf_counter()
        state.apply(deltas, height=h)
        times.append(time.perf_counter() - t)
        iterations.append(state.iterations)
    factors = state.graph.factors
    return {
        "first": first,
        "block": float(np.median(times)),
        "iterations": float(np.median(iterations)),
        "update": float(np.median(update_s)) if update_s else 0.0,
        "above_one": float(np.count_nonzero(factors > 1.0)) if factors is not None else 0.0,
        "links": float(state.graph.n_links),
    }


def _graphs(args: argparse.Namespace) -> list[tuple[str, tuple[np.ndarray, np.ndarray], int]]:
    g = read_bostrom(args.csv, skip_invalid=True)
    links = g.links()
    out = [("bostrom sample", (links.src.copy(), links.dst.copy()), max(1, args.block // 100))]
    for scale in [int(s) for s in args.rmat.split(",") if s]:
        src, dst, _ = rmat_edges(scale, 16, seed=scale)
        keep = src != dst
        out.append((f"R-MAT {scale}:16", (src[keep], dst[keep]), args.block))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--csv", default=str(SAMPLE))
    ap.add_argument("--rmat", default="12,14", help="R-MAT scales")
    ap.add_argument("--neurons", type=int, default=64)
    ap.add_argument("--blocks", type=int, default=4)
    ap.add_argument("--block", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    configs: list[tuple[str, dict[str, Any]]] = [("blend", {}), ("blend + Hebbian", HEBBIAN)]
    small = rmat_edges(8, 4, seed=1)[:2]
    for _, overrides in configs:  # compile (or load) the kernels first
        _cost(small, overrides, argparse.Namespace(**{**vars(args), "blocks": 1, "block": 10}))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{platform.processor() or platform.machine()}, {numba.get_num_threads()} numba "
        f"threads, load {load:.1f}; {args.neurons} neurons, blocks {args.blocks}, "
        f"best of {args.rounds} rounds"
    )
    print(
        "| graph | links | block links | focus | first block s | block s | block iterations "
        "| rule's update s | factors > 1 | block / blend's |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for label, edges, size in _graphs(args):
        run = argparse.Namespace(**{**vars(args), "block": size})
        best: dict[str, dict[str, float]] = {}
        for _ in range(args.rounds):
            for name, overrides in configs:
                got = _cost(edges, overrides, run)
                old = best.get(name)
                if old is not None:
                    for key in ("first", "block", "update"):
                        got[key] = min(got[key], old[key])
                best[name] = got
        blend_block = best["blend"]["block"]
        for name, _ in configs:
            r = best[name]
            print(
                f"| {label} | {int(r['links']):,} | {size:,} | {name} | {r['first']:.3f} "
                f"| {r['block']:.4f} | {r['iterations']:g} | {r['update']:.4f} "
                f"| {int(r['above_one']):,} | {r['block'] / blend_block:.2f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
