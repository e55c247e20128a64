"""The exact focus arithmetic against the fast one, on the same chain blocks.

Two ``FocusState`` objects (the chain's focus phase: graph patch, incremental
focus, quantisation and the focus root) take the same blocks, alternately, so
that the drift of a shared machine touches both alike: ``--blocks`` blocks of
``--block-links`` R-MAT links over about ``--particles`` particles, from
``--neurons`` neurons, with stake changes every fourth block. Both run the
focus algorithm a genesis written now names (``NEW_CHAIN_FOCUS``), one in
``fast`` and one in ``exact-v1`` arithmetic. Prints per-phase medians over the
last half of the blocks (graph near its final size) and the ratio
exact / fast; the first block (cold solve, and the kernels' compilation if
numba's cache is cold) is left out.

Run from the repository root::

    python bench/arithmetic.py                                  # 10^6 links
    python bench/arithmetic.py --blocks 12 --block-links 4000 --particles 30000
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

from focusflow.chain.focus_commit import NEW_CHAIN_FOCUS, FocusState
from focusflow.chain.module import Deltas
from focusflow.focus.params import EXACT_V1, FAST
from focusflow.graph.generators import rmat_edges


def make_blocks(blocks: int, block_links: int, particles: int, neurons: int) -> list[Deltas]:
    total = blocks * block_links
    scale = int(np.ceil(np.log2(particles)))
    src, dst, _ = rmat_edges(scale, 2 * total // (1 << scale) + 2, seed=11)
    src, dst = src % particles, dst % particles
    keep = src != dst
    src, dst = src[keep][:total], dst[keep][:total]
    cids = [b"\x01\x55\x12\x20" + int(i).to_bytes(32, "big") for i in range(particles)]
    who = [bytes([i % 256, i // 256]) * 10 for i in range(neurons)]
    out = []
    for b in range(blocks):
        lo = b * block_links
        pairs = [
            [cids[s], cids[d]]
            for s, d in zip(src[lo : lo + block_links], dst[lo : lo + block_links], strict=True)
        ]
        links = [(who[i], pairs[i::neurons], None) for i in range(neurons)]
        stakes = (
            {who[i]: 10**6 * (1 + (i * 7 + b) % 13) for i in range(neurons)} if b % 4 == 0 else {}
        )
        out.append(Deltas(links=links, stakes=stakes))
    return out


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--blocks", type=int, default=40)
    ap.add_argument("--block-links", type=int, default=25_000)
    ap.add_argument("--particles", type=int, default=250_000)
    ap.add_argument("--neurons", type=int, default=50)
    args = ap.parse_args()
    print(
        f"# bench/arithmetic.py on {platform.node()} ({cpu_name()}), "
        f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M')}"
    )
    blocks = make_blocks(args.blocks, args.block_links, args.particles, args.neurons)
    states = {a: FocusState({**NEW_CHAIN_FOCUS, "arithmetic": a}) for a in (FAST, EXACT_V1)}
    seconds: dict[str, list[float]] = {a: [] for a in states}
    iterations: dict[str, list[int]] = {a: [] for a in states}
    for h, deltas in enumerate(blocks, start=1):
        order = list(states) if h % 2 else list(states)[::-1]
        for a in order:
            t = time.perf_counter()
            states[a].apply(deltas)
            seconds[a].append(time.perf_counter() - t)
            iterations[a].append(states[a].iterations)
    g = states[FAST].graph
    print(
        f"{args.blocks} blocks x {args.block_links} links, graph {g.n_links} links, "
        f"{g.n_particles} particles, focus {dict(NEW_CHAIN_FOCUS, arithmetic='*')}"
    )
    half = max(1, args.blocks // 2)
    print("| arithmetic | median s per block (last half) | mean iterations | s (blocks 2..) |")
    print("| --- | --- | --- | --- |")
    med = {}
    for a in states:
        med[a] = statistics.median(seconds[a][-half:])
        print(
            f"| {a} | {med[a]:.4f} | {statistics.mean(iterations[a][-half:]):.1f} | "
            f"{sum(seconds[a][1:]):.2f} |"
        )
    total = {a: sum(seconds[a][1:]) for a in states}
    print(
        f"exact / fast: {med[EXACT_V1] / med[FAST]:.2f}x per block (median, last half), "
        f"{total[EXACT_V1] / total[FAST]:.2f}x in total"
    )
    same = sum(1 for a, b in zip(iterations[FAST], iterations[EXACT_V1], strict=True) if a == b)
    print(f"blocks with equal iteration counts: {same} of {args.blocks}")


if __name__ == "__main__":
    main()
