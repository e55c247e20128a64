"""What a proposal's copy of the chain's focus state costs: by value against shared.

Every block a validator proposes or checks under consensus advances a copy of
the head's focus state (``BlockPipeline.build``, ``copy.deepcopy``), so that
a proposal that is not committed leaves the head as it was. For a state of
``--links`` R-MAT links (as ``checkpoint.py`` builds it: an R-MAT graph put
into a chain's focus state, one block solving it) this times, ``--repeats``
times each, in one process:

- ``by value``: a copy that shares nothing (a pickle round trip: every array
  copied, what ``copy.deepcopy`` cost before copies shared arrays);
- ``shared copy``: ``copy.deepcopy`` as the pipeline makes it today (link
  columns, key tables, links-by-neuron index, matrix structure and the
  Laplacian shared; particle- and overlay-sized arrays copied);
- ``first writes``: what the copy's first block then copies on its first
  write into the shared base weights and SELL values (the same
  ``ndarray.copy`` calls, timed on the head's arrays);

and a block of ``--block`` links applied on a shared copy (the solve
included), for scale. The ratio is by value / (shared copy + first writes).
A cost proportional to the block would be the same at every size.

    python bench/proposal_copy.py                     # 10^6 and 10^7 links
    python bench/proposal_copy.py --links 1e6 --repeats 3
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")

import argparse
import copy
import datetime as dt
import pickle
import platform
import statistics
import time

import numpy as np

from focusflow.chain.focus_commit import NEW_CHAIN_FOCUS, FocusState
from focusflow.chain.module import Deltas
from focusflow.graph import rmat_edges


def _cid(i: int) -> bytes:
    return b"\x01\x55\x12\x20" + int(i).to_bytes(32, "big")


def _neuron(i: int) -> bytes:
    return int(i).to_bytes(20, "big")


def build(links: int, neurons: int) -> tuple[FocusState, int]:
    """A solved focus state of an R-MAT graph of ``links`` links; its particles."""
    scale = max(4, int(np.ceil(np.log2(links / 16))))
    src, dst, _ = rmat_edges(scale, seed=1)
    state = FocusState(dict(NEW_CHAIN_FOCUS))
    g = state.graph
    g.add_particles(np.array([_cid(i) for i in range(1 << scale)], dtype=object))
    rng = np.random.default_rng(1)
    ids = g.add_neurons([_neuron(i) for i in range(neurons)])
    g.set_stakes(ids, rng.uniform(1.0, 100.0, neurons))
    g.add_link_ids(src[:links], dst[:links], rng.integers(0, neurons, links))
    state.apply(block(np.random.default_rng(0), 1 << scale, 100))
    return state, 1 << scale


def block(rng: np.random.Generator, particles: int, links: int) -> Deltas:
    """``links`` links by one neuron that holds links already (its others are
    re-weighed: the base weights are written) and one stake change."""
    a = rng.integers(0, particles, links)
    b = rng.integers(0, particles, links)
    pairs = [[_cid(x), _cid(y)] for x, y in zip(a, b, strict=True)]
    return Deltas(links=[(_neuron(5), pairs, None)], stakes={_neuron(7): 50})


def first_writes(state: FocusState) -> tuple[float, int]:
    """Seconds and bytes of the copies a shared copy's first block makes of
    the base weights (``Snapshot._own_weights``) and SELL values (``SellMatrix.update``)."""
    snap = state.engine._snap
    arrays = [snap.out_w, snap.in_w]
    sell = getattr(state.engine._op, "sell", None)
    if sell is not None:
        arrays.append(sell.sval)
    t = time.perf_counter()
    copies = [a.copy() for a in arrays]
    seconds = time.perf_counter() - t
    del copies
    return seconds, sum(a.nbytes for a in arrays)


def run(links: int, args: argparse.Namespace) -> dict[str, float]:
    t = time.perf_counter()
    head, particles = build(links, args.neurons)
    built = time.perf_counter() - t
    by_value, shared, writes = [], [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        twin = pickle.loads(pickle.dumps(head, protocol=5))
        by_value.append(time.perf_counter() - t)
        del twin
        t = time.perf_counter()
        twin = copy.deepcopy(head)
        shared.append(time.perf_counter() - t)
        del twin
        seconds, nbytes = first_writes(head)
        writes.append(seconds)
    proposal = copy.deepcopy(head)
    t = time.perf_counter()
    proposal.apply(block(np.random.default_rng(1), particles, args.block))
    applied = time.perf_counter() - t
    v, s, w = (statistics.median(x) for x in (by_value, shared, writes))
    return {
        "links": head.graph.n_links,
        "particles": particles,
        "build_s": built,
        "by_value": v,
        "shared": s,
        "writes": w,
        "write_mb": nbytes / 1e6,
        "apply": applied,
        "ratio": v / (s + w),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--links", type=float, nargs="*", default=[1e6, 1e7])
    ap.add_argument("--neurons", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--block", type=int, default=1_000, help="links of the block applied")
    args = ap.parse_args()
    print(
        f"# proposal_copy {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; median of {args.repeats}",
        flush=True,
    )
    print(
        "| links | particles | by value ms | shared copy ms | first writes ms (MB) "
        "| by value / (shared + writes) | block of "
        f"{args.block:,} links on the copy, solve included, s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    for links in args.links:
        r = run(int(links), args)
        print(
            f"| {r['links']:,} | {r['particles']:,} | {1e3 * r['by_value']:.1f} "
            f"| {1e3 * r['shared']:.1f} | {1e3 * r['writes']:.1f} ({r['write_mb']:.0f}) "
            f"| {r['ratio']:.1f}x | {r['apply']:.2f} |",
            flush=True,
        )
    print(f"# load at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
