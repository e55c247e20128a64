"""Does a locality ordering of the particles bring the GPU diffusion step nearer its byte floor?

One R-MAT graph per scale, relabelled by several particle orders; for each
order the same cuda operator (float32 values) is built and its diffusion step
timed by CUDA events, beside cuSPARSE (torch CSR) on the same relabelled graph
and the byte floor of ``bench/focus_gpu.py`` (every stored entry's 4-byte index
and 4-byte value streamed once, two vectors read and one written).

Orders:

* ``degree``: the snapshot's own order (total degree, descending), what the
  engine uses today;
* ``random``: a random permutation, the worst case for gathers;
* ``natural``: the generator's unscrambled ids. R-MAT places edges by
  recursive quadrants, so ids sharing their high bits link more often: the
  structure a community ordering would have to recover, handed to it for free
  (an upper bound for community/rabbit-style orders on this graph family);
* ``natural-dbg``: natural ids grouped into degree buckets (powers of two,
  hubs first), ids ascending within a bucket (degree-based grouping);
* ``rcm``: reverse Cuthill-McKee (scipy) of W + Wᵀ, from the scrambled ids.

Run on a GPU machine: ``PYTHONPATH=src:bench python bench/gpu_order.py --scales 23``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from functools import partial

import numpy as np

from focus_gpu import ALPHA, copy_bandwidth, gpu_time, log, torch_pagerank


def perm_of_rank(rank_order: np.ndarray) -> np.ndarray:
    """``perm[old] = new`` from the old ids listed in their new order."""
    perm = np.empty(len(rank_order), dtype=np.int64)
    perm[rank_order] = np.arange(len(rank_order), dtype=np.int64)
    return perm


def dbg_perm(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Degree buckets (powers of two, largest first), ids ascending inside one."""
    deg = np.bincount(src, minlength=n) + np.bincount(dst, minlength=n)
    bucket = np.floor(np.log2(np.maximum(deg, 1))).astype(np.int64)
    return perm_of_rank(np.lexsort((np.arange(n), -bucket)))


def rcm_perm(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    import scipy.sparse as sp
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    a = sp.csr_matrix((np.ones(len(src), dtype=np.int8), (src, dst)), shape=(n, n))
    a = (a + a.T).tocsr()
    return perm_of_rank(np.asarray(reverse_cuthill_mckee(a, symmetric_mode=True)))


_GATHER = r"""
extern "C" __global__ void gather(const int* idx, const float* v, float* out, long long m) {
    float s = 0.0f;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < m; i += stride)
        s += __ldg(v + __ldcs(idx + i));
    out[(long long)blockIdx.x * blockDim.x + threadIdx.x] = s;
}
"""


def probe(cupy, op, n: int, repeat: int) -> None:
    """Where the product's time goes: the same product with no scattered
    gathers (every index 0: the streamed bytes and the loop), and a bare
    kernel doing as many 4-byte gathers at random from an n-entry vector
    (indices streamed, nothing else)."""
    m = op.sell
    nnz = int(m.sidx.size + m.lidx.size)
    t = partial(op._pull_into, m, op.z, op.ylink, 0.85, op.ov)
    base = 1e3 * float(np.median(gpu_time(cupy, t, repeat)))
    sidx, lidx = m.sidx, m.lidx
    m.sidx, m.lidx = cupy.zeros_like(sidx), cupy.zeros_like(lidx)
    zero = 1e3 * float(np.median(gpu_time(cupy, t, repeat)))
    m.sidx, m.lidx = sidx, lidx
    kernel = cupy.RawKernel(_GATHER, "gather")
    idx = cupy.random.default_rng(3).integers(0, n, nnz, dtype=cupy.int32)
    v = cupy.random.random(n, dtype=cupy.float32)
    blocks, threads = 132 * 16, 256
    out = cupy.empty(blocks * threads, dtype=cupy.float32)
    g = 1e3 * float(
        np.median(
            gpu_time(
                cupy, partial(kernel, (blocks,), (threads,), (idx, v, out, np.int64(nnz))), repeat
            )
        )
    )
    seq = cupy.arange(nnz, dtype=cupy.int32) % n
    s_ms = 1e3 * float(
        np.median(
            gpu_time(
                cupy, partial(kernel, (blocks,), (threads,), (seq, v, out, np.int64(nnz))), repeat
            )
        )
    )
    log(
        f"  probe: product {base:.3f} ms; every index 0 {zero:.3f} ms; {nnz:,} random 4-byte "
        f"gathers from {n:,} floats {g:.3f} ms ({nnz / g / 1e9:.1f} G/ms); the same kernel with "
        f"sequential indices {s_ms:.3f} ms"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scales", default="23", help="scale[:edge_factor] list")
    ap.add_argument("--orders", default="degree,random,natural,natural-dbg,rcm")
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--probe",
        action="store_true",
        help="for the first order also time the product with every index set to 0 "
        "(streaming, no scattered gathers) and a bare kernel of as many random gathers",
    )
    args = ap.parse_args()

    import cupy
    import torch

    from focusflow.focus.solver import operator_for
    from focusflow.graph import Snapshot, rmat_edges

    name = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    log(f"gpu_order: {name}, {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}")
    bw = copy_bandwidth(cupy)
    log(f"copy bandwidth {bw / 1e12:.2f} TB/s")
    log(
        "| scale | order | order s | floor ms | cuSPARSE ms/it | ours ms/it | pull ms "
        "| ours / floor | cuSPARSE / ours |"
    )
    log("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for spec in args.scales.split(","):
        scale, ef = (int(x) for x in [*spec.split(":"), "12"][:2])
        n = 1 << scale
        graphs = {}
        orders = args.orders.split(",")
        wanted = {not o.startswith("natural") for o in orders}
        for scramble in sorted(wanted, reverse=True):
            s, d, w = rmat_edges(scale, ef, seed=args.seed, scramble=scramble, xp=cupy)
            keep = s != d
            graphs[scramble] = (cupy.asnumpy(s[keep]), cupy.asnumpy(d[keep]), cupy.asnumpy(w[keep]))
            del s, d, w, keep
            cupy.get_default_memory_pool().free_all_blocks()
        for k, order in enumerate(orders):
            src, dst, w = graphs[not order.startswith("natural")]
            t0 = time.perf_counter()
            if order == "degree":
                snap = Snapshot(n, src, dst, w)
            else:
                if order == "random":
                    perm = np.random.default_rng(7).permutation(n)
                elif order == "natural":
                    perm = np.arange(n, dtype=np.int64)
                elif order == "natural-dbg":
                    perm = dbg_perm(n, src, dst)
                elif order == "rcm":
                    perm = rcm_perm(n, src, dst)
                else:
                    raise SystemExit(f"unknown order {order!r}")
                snap = Snapshot(n, perm[src], perm[dst], w, order="none")
            t_order = time.perf_counter() - t0
            ps, pd = (snap.perm[src], snap.perm[dst])
            _, _, ms_t, _ = torch_pagerank(torch, n, ps, pd, w, torch.float32, 1e-30, max_iter=12)
            torch.cuda.empty_cache()
            del ps, pd
            floor_ms = (8 * snap.nnz + n * (4 + 8)) / bw * 1e3
            op = operator_for(snap, "cuda", "float32")
            x = cupy.full(n, 1.0 / n)
            y = cupy.empty(n)
            prior = cupy.full(n, 1.0 / n)
            ms = 1e3 * float(
                np.median(gpu_time(cupy, partial(op.diffusion, x, y, ALPHA, prior), args.repeat))
            )
            m = op.sell
            pull = 1e3 * float(
                np.median(
                    gpu_time(
                        cupy, partial(op._pull_into, m, op.z, op.ylink, ALPHA, op.ov), args.repeat
                    )
                )
            )
            log(
                f"| {scale} | {order} | {t_order:.1f} | {floor_ms:.3f} | {ms_t:.3f} | {ms:.3f} | "
                f"{pull:.3f} | {ms / floor_ms:.2f} | {ms_t / ms:.2f} |"
            )
            if args.probe and k == 0:
                probe(cupy, op, n, args.repeat)
            op = snap = x = y = prior = None
            cupy.get_default_memory_pool().free_all_blocks()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
