"""The rollups' focus exchange on a graph of ~10^5 links: error per round, time.

For B = 1, 2, 4, 8 buckets and modes diffusion and tri, runs the rollups and
the hub in one process (every round: each bucket solves with its last inflow,
the hub checks, applies and merges), and prints the L1 distance to the union
graph's focus (the engine's one-process solve) per round, the rounds to 1e-4
and 1e-6, and the mean time of BucketRank.solve and HubMerge.merge per round.
Then counts the matrix products of one tri solve of the union graph: the
exchange rounds an exact distributed tri-kernel would need.

    .venv/bin/python bench/rollup_rank.py [--links 100000] [--rounds 120]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import scipy.sparse as sp

from focusflow.core.cid import raw_cid_bytes
from focusflow.focus.buckets import particle_bucket
from focusflow.focus.params import FocusParams, make_params
from focusflow.focus.rollup_rank import BucketRank, HubMerge, l1_error, union_focus
from focusflow.focus.solver import compute

Link = tuple[bytes, bytes, bytes]


def make_graph(m: int, seed: int = 0) -> tuple[list[Link], dict[bytes, int]]:
    """Power-law targets, uniform sources over 80 % of the particles (the rest
    dangling), 50 neurons with stakes over three orders of magnitude."""
    rng = np.random.default_rng(seed)
    n = m // 4
    cids = [raw_cid_bytes(b"bench %d" % i) for i in range(n)]
    neurons = [i.to_bytes(20, "big") for i in range(50)]
    stakes = {v: int(s) for v, s in zip(neurons, 10 ** rng.uniform(6, 9, 50), strict=True)}
    src = rng.integers(0, int(n * 0.8), m)
    dst = (rng.pareto(1.1, m) * 20).astype(np.int64) % n
    who = rng.integers(0, 50, m)
    links = [
        (cids[a], cids[b], neurons[v]) for a, b, v in zip(src, dst, who, strict=True) if a != b
    ]
    return links, stakes


def run(
    links: list[Link],
    stakes: dict[bytes, int],
    params: FocusParams,
    buckets: int,
    rounds: int,
    ref: dict[bytes, float],
) -> dict[str, Any]:
    ranks = [BucketRank(b, buckets, params) for b in range(buckets)]
    hub = HubMerge(buckets, params)
    parts: list[list[Link]] = [[] for _ in range(buckets)]
    for link in links:
        parts[particle_bucket(link[0], buckets)].append(link)
    for r, part in zip(ranks, parts, strict=True):
        r.set_stakes(stakes)
        r.add_links(*map(list, zip(*part, strict=True)))
    inflows: list[dict[str, Any] | None] = [None] * buckets
    errors: list[float] = []
    t_solve = t_merge = 0.0
    cross = 0
    for _ in range(rounds):
        for b, r in enumerate(ranks):
            t = time.perf_counter()
            packet = r.solve(inflows[b])
            t_solve += time.perf_counter() - t
            t = time.perf_counter()
            hub.check(b, packet)
            hub.apply(b, packet)
            t_merge += time.perf_counter() - t
        t = time.perf_counter()
        snap = hub.merge()
        inflows = [hub.inflow(b) for b in range(buckets)]
        t_merge += time.perf_counter() - t
        errors.append(l1_error(snap, ref))
        if errors[-1] < 1e-9 or (params.mode == "tri" and len(errors) >= 4):
            break
    for link in links:
        cross += particle_bucket(link[1], buckets) != particle_bucket(link[0], buckets)
    k = len(errors)
    return {
        "errors": errors,
        "solve": t_solve / (k * buckets),
        "hub": t_merge / k,
        "cross": cross / len(links),
    }


def first_below(errors: list[float], tol: float) -> str:
    return next((str(i + 1) for i, e in enumerate(errors) if e < tol), "-")


def matvecs(links: list[Link], stakes: dict[bytes, int], params: FocusParams) -> dict[str, int]:
    """Matrix products of one tri solve of the union graph (the chain's
    algorithm, springs by CG): each would be one exchange round if buckets
    evaluated it together."""
    index: dict[bytes, int] = {}
    deg: dict[bytes, int] = {}
    for s, d, v in links:
        index.setdefault(s, len(index))
        index.setdefault(d, len(index))
        deg[v] = deg.get(v, 0) + 1
    rows = [index[s] for s, _, _ in links]
    cols = [index[d] for _, d, _ in links]
    w = [stakes[v] / deg[v] for _, _, v in links]
    adj = sp.coo_matrix((w, (rows, cols)), shape=(len(index), len(index))).tocsr()
    chain = params.with_(springs_method="cg", arithmetic="exact-v2")
    res = compute(adj, chain, backend="numba")
    inner = res.diagnostics.inner
    out = {
        "outer": res.diagnostics.iterations,
        "diffusion_start": int(inner.get("diffusion_start_iterations", 0)),
        "cg": int(inner.get("cg_iterations", 0)),
        "heat_terms": int(inner.get("heat_terms", 0)),
    }
    out["total"] = sum(out.values())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--links", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=150)
    args = ap.parse_args()
    links, stakes = make_graph(args.links)
    n = len({c for s, d, _ in links for c in (s, d)})
    print(f"graph: {len(links)} links, {n} particles, 50 neurons")
    for mode in ("diffusion", "tri"):
        params = make_params(None, mode=mode)
        t = time.perf_counter()
        ref = union_focus(links, stakes, params)
        print(f"\n[{mode}] one-process reference: {time.perf_counter() - t:.2f} s")
        print("B  cross  rounds<1e-4  rounds<1e-6  solve/round(s)  hub/round(s)  L1 per round")
        for buckets in (1, 2, 4, 8):
            r = run(links, stakes, params, buckets, args.rounds, ref)
            errs = r["errors"]
            shown = " ".join(f"{e:.1e}" for e in (errs if mode == "tri" else errs[:10]))
            tail = (
                ""
                if mode == "tri"
                else " ... every 10th: " + " ".join(f"{e:.1e}" for e in errs[9::10])
            )
            print(
                f"{buckets}  {r['cross']:.2f}   {first_below(errs, 1e-4):>6}       "
                f"{first_below(errs, 1e-6):>6}       {r['solve']:.4f}          "
                f"{r['hub']:.4f}        {shown}{tail}"
            )
            if mode == "diffusion" and len(errs) > 30:
                rate = (errs[29] / errs[9]) ** (1 / 20)
                print(f"   measured contraction per round (rounds 10-30): {rate:.3f}")
    tri = make_params(None, mode="tri")
    counts = matvecs(links, stakes, tri)
    print(f"\nmatrix products of one cold tri solve (exact-v2, CG springs): {counts}")


if __name__ == "__main__":
    main()
