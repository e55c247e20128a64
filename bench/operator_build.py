"""Building an operator's storage from a snapshot, against scipy's nearest work.

Every backend pays these when it is built (first solve, compaction):

1. ``A = W + W^T`` behind springs and heat
   (``focusflow.focus.backends.symmetric.symmetric_weights``: a parallel merge
   of sorted rows) against scipy's ``(W + W.T).tocsr()`` on the same matrix in
   the same internal order; results checked equal.
2. The SELL storage of the in-link matrix (``SellMatrix``: rows sorted by
   length, groups filled in parallel, the entry map kept for patches), as the
   numba backend (SELL-8) and the GPU backends (SELL-32, hub rows apart) build
   it, against scipy's ``tocsc()`` of the same matrix: another full re-layout
   of every entry (a counting sort by column and a scatter).

Prints times, ratios and the machine.

Run from the repository root (after ``pip install -e '.[bench]'``)::

    python bench/operator_build.py              # R-MAT scale 20, edge factor 16
    python bench/operator_build.py --scale 16   # quick check
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import scipy.sparse as sp

from focusflow.focus.backends.sell import SellMatrix
from focusflow.focus.backends.symmetric import symmetric_weights
from focusflow.graph import Snapshot, rmat_edges


def best_of(fn, repeat: int) -> tuple[float, object]:
    """Fastest wall time of ``repeat`` calls (after one warm-up) and the last result."""
    out = fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=int, default=20)
    ap.add_argument("--edge-factor", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n = 1 << args.scale
    src, dst, w = rmat_edges(args.scale, args.edge_factor, seed=1)
    snap = Snapshot(n, src, dst, w)
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; R-MAT scale "
        f"{args.scale}, {snap.nnz:,} stored entries"
    )
    t_ours, (ptr, idx, vals, _, _) = best_of(lambda: symmetric_weights(snap), args.repeat)
    base = sp.csr_matrix((snap.out_w, snap.out_indices, snap.out_indptr), shape=(n, n))
    t_scipy, peer = best_of(lambda: (base + base.T).tocsr(), args.repeat)
    peer.sort_indices()
    ours = sp.csr_matrix((vals, idx, ptr), shape=(n, n))
    same = ours.nnz == peer.nnz and abs(ours - peer).max() <= 1e-12 * abs(peer).max()
    print(f"ours  symmetric_weights: {t_ours * 1e3:8.1f} ms, {ours.nnz:,} entries")
    print(f"scipy (W + W.T).tocsr(): {t_scipy * 1e3:8.1f} ms, {peer.nnz:,} entries")
    print(f"scipy / ours: {t_scipy / t_ours:.2f}x; results equal: {same}")
    inn = (snap.in_indptr, snap.in_indices, snap.in_w)
    t_sell8, sell8 = best_of(lambda: SellMatrix(*inn, np.float32), args.repeat)
    t_sell32, _ = best_of(lambda: SellMatrix(*inn, np.float32, c=32, long_row=128), args.repeat)
    pull = sp.csr_matrix((snap.in_w, snap.in_indices, snap.in_indptr), shape=(n, n))
    t_csc, _ = best_of(pull.tocsc, args.repeat)
    kept = sell8.sval[sell8.pos[sell8.pos >= 0]]
    filled = bool(np.array_equal(kept, snap.in_w[sell8.pos >= 0].astype(np.float32)))
    print(f"ours  SELL-8 storage:    {t_sell8 * 1e3:8.1f} ms (numba backend)")
    print(f"ours  SELL-32 storage:   {t_sell32 * 1e3:8.1f} ms (GPU backends, hub rows apart)")
    print(f"scipy tocsc():           {t_csc * 1e3:8.1f} ms")
    print(
        f"scipy / ours: {t_csc / t_sell8:.2f}x (SELL-8), {t_csc / t_sell32:.2f}x (SELL-32); "
        f"entry map consistent: {filled}"
    )
    return 0 if same and filled else 1


if __name__ == "__main__":
    raise SystemExit(main())
