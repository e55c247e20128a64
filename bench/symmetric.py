"""The symmetrised graph ``A = W + W^T`` behind springs and heat, against scipy.

Every Laplacian backend starts a tri solve (and the GPU ones a compaction) by
building ``A`` from the snapshot's out-link and in-link CSRs
(``focusflow.focus.backends.symmetric.symmetric_weights``: a parallel merge of
sorted rows). The peer is scipy's ``(W + W.T).tocsr()`` on the same matrix in
the same internal order. Both results are checked equal; the script prints
the times, the ratio and the machine.

Run from the repository root (after ``pip install -e '.[bench]'``)::

    python bench/symmetric.py              # R-MAT scale 20, edge factor 16
    python bench/symmetric.py --scale 16   # quick check
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import scipy.sparse as sp

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
    t_ours, (ptr, idx, vals) = best_of(lambda: symmetric_weights(snap), args.repeat)
    base = sp.csr_matrix((snap.out_w, snap.out_indices, snap.out_indptr), shape=(n, n))
    t_scipy, peer = best_of(lambda: (base + base.T).tocsr(), args.repeat)
    peer.sort_indices()
    ours = sp.csr_matrix((vals, idx, ptr), shape=(n, n))
    same = ours.nnz == peer.nnz and abs(ours - peer).max() <= 1e-12 * abs(peer).max()
    print(f"ours  symmetric_weights: {t_ours * 1e3:8.1f} ms, {ours.nnz:,} entries")
    print(f"scipy (W + W.T).tocsr(): {t_scipy * 1e3:8.1f} ms, {peer.nnz:,} entries")
    print(f"scipy / ours: {t_scipy / t_ours:.2f}x; results equal: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
