"""Focus-flow tri latency on a 10^6-link graph, and what the solve's settings buy.

The goal is under 50 ms per query on a 10^6-link graph after warm-up
(bench/infer.py measures the default on R-MAT 16). This script takes the same
R-MAT 16 graph (65,536 particles, 1,048,096 links) and one-particle contexts,
and times personalized tri solves under variants side by side: float32
operator values, a looser stop rule, a larger share of the tolerance for the
exact phase's inner solves (``FocusParams.exact_share``) and a shorter
diffusion start (``FocusParams.start_tol``). Each answer is compared with a
solve to 1e-9: its L1 distance, and how many of the reference's top 10 it
keeps. It also prints where each variant's time goes (diffusion start,
diffusion, springs and heat) and its inner counts. ``focusflow.infer`` runs
with float32 values, exact share 0.1 and start 0.5 (``InferParams``). With
``--rounds`` the variants run again in turn, so that each sees the machine in
each of its phases.

Run from the repository root::

    python bench/infer_latency.py
    python bench/infer_latency.py --rounds 3
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from focusflow.focus.personal import personalized_focus
from focusflow.graph.generators import rmat_edges
from focusflow.infer.graph import InferGraph

_FAST = {"precision": "float32", "exact_share": 0.1}
VARIANTS: dict[str, dict] = {
    "default (tol 1e-3)": {},
    "float32 values": {"precision": "float32"},
    "tol 1e-2": {"tol": 1e-2},
    "float32 + exact share 0.1": _FAST,
    "float32 + share 0.1 + start 0.2": {**_FAST, "start_tol": 0.2},
    "float32 + share 0.1 + start 0.5 (Inference's)": {**_FAST, "start_tol": 0.5},
}


def top10(p: np.ndarray) -> set[int]:
    return set(np.argsort(-p)[:10].tolist())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    src, dst, w = rmat_edges(16, 16, seed=args.seed)
    keep = src != dst
    src, dst, w = src[keep], dst[keep], w[keep]
    n = 1 << 16
    names = np.arange(n).astype(str).tolist()
    graph = InferGraph.from_arrays(n, src, dst, w, np.full(len(src), -1), [], names)
    snap = graph.snapshot(None)
    rng = np.random.default_rng(args.seed)
    contexts = rng.choice(np.unique(src), size=args.queries + 2, replace=False)
    base = {"backend": "numba", "mode": "tri", "tol": 1e-3}
    refs = {
        int(h): personalized_focus(snap, np.array([h]), **{**base, "tol": 1e-9}).focus
        for h in contexts[2:]
    }
    print(f"R-MAT 16: {n:,} particles, {len(src):,} links; {args.queries} one-particle contexts")
    for rnd in range(args.rounds):
        if args.rounds > 1:
            print(f"round {rnd + 1}")
        for name, variant in VARIANTS.items():
            _time_variant(snap, contexts, refs, name, {**base, **variant})


def _time_variant(snap, contexts, refs, name: str, kw: dict) -> None:
    """Time one variant on the contexts after two warm-up queries, and print it."""
    for h in contexts[:2]:
        personalized_focus(snap, np.array([h]), **kw)  # warm-up
    times, l1, kept, parts = [], [], [], []
    for h in contexts[2:]:
        t0 = time.perf_counter()
        r = personalized_focus(snap, np.array([h]), **kw)
        times.append(time.perf_counter() - t0)
        l1.append(float(np.abs(r.focus - refs[int(h)]).sum()))
        kept.append(len(top10(r.focus) & top10(refs[int(h)])))
        parts.append((r.diagnostics, r.iterations))
    ms = np.asarray(times) * 1e3
    print(
        f"  {name:46s} median {np.median(ms):6.1f} ms  p90 {np.percentile(ms, 90):6.1f}  "
        f"L1 to 1e-9 max {max(l1):.1e}  top-10 kept min {min(kept)}/10  "
        f"outer {np.mean([it for _, it in parts]):.1f}"
    )
    t = {
        k: np.median([d.timings.get(k, 0.0) for d, _ in parts]) * 1e3
        for k in ("diffusion_start", "diffusion", "springs_heat")
    }
    inner = {
        k: np.mean([d.inner[k] for d, _ in parts])
        for k in ("diffusion_start_iterations", "cg_iterations", "heat_terms")
    }
    print("      median ms: " + ", ".join(f"{k} {v:.1f}" for k, v in t.items()))
    print("      mean counts: " + ", ".join(f"{k} {v:.1f}" for k, v in inner.items()))


if __name__ == "__main__":
    main()
