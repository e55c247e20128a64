"""GPU benchmark of focusflow's cuda backend against torch (cuSPARSE) PageRank.

One run on the device machine builds, checks and times everything:

1. the device-to-device copy bandwidth (bytes read + written per second),
   measured with CuPy events on a 2 GiB buffer;
2. for each R-MAT graph (Graph500 a,b,c = 0.57,0.19,0.19, ids scrambled,
   weights uniform in (0,1]; generated on the GPU, self-loops dropped):
   - the per-iteration byte floor: matrix indices and values once
     (8 bytes per stored entry in float32), the gathered vector once and the
     new vector written once, over the measured bandwidth;
   - torch cuSPARSE weighted PageRank on the graph in its generated order
     (CSR of P^T in float32, float64 vectors), ms per iteration and a full
     solve to L1 change < 1e-6;
   - focusflow's cuda backend (float32 values, float64 sums): operator
     build, ms per diffusion step, the full diffusion solve and the full tri
     solve to 1e-6, each checked against a float64 reference (torch float64
     power iteration to L1 change < 1e-12);
   - incremental blocks: ``--blocks`` blocks of ``--block`` new links each
     added to a Cybergraph of the graph, ``FocusEngine.apply()`` timed end to
     end (snapshot patch, upload of the changed values, warm-started solve),
     and apart from it the read-back of the block's focus vector to the host
     (the engine leaves it on the device until asked); the first block pays
     for compiling the patch's kernels, so look at the median.
3. A table: ms/iteration, iterations, solve times, ratio to cuSPARSE and to the
   floor.

Run on the device machine from the repository root::

    python bench/focus_gpu.py --graphs 23:12            # ~10^8 edges
    python bench/focus_gpu.py --graphs 23:12,25:16      # and ~5*10^8 edges
    python bench/focus_gpu.py --graphs 23:12 --skip-tri --engine-max-scale 0 --wgpu
    python bench/focus_gpu.py --graphs 23:12 --engine-max-scale 0 --wgpu  # and tri on both

Off the GPU (no CuPy/torch), ``--allow-cpu-adapter --wgpu`` runs only the wgpu
part on whatever adapter wgpu finds (llvmpipe), to check the script end to end::

    python bench/focus_gpu.py --allow-cpu-adapter --wgpu --wgpu-host-step --graphs 14:8

With ``--wgpu`` and without ``--skip-tri`` the wgpu tri solve is timed too
(setup, solve, iterations, CG iterations, Chebyshev terms, waits, the time
split) and checked against a float64 tri focus (cuda float64 on the device
machine, numba on the CPU-adapter path).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import sys
import time
from pathlib import Path

import numpy as np

TOL = 1e-6
ALPHA = 0.85


def log(msg: str) -> None:
    print(msg, flush=True)


def gpu_time(cupy, fn, repeat: int) -> list[float]:
    """Times of ``fn()`` in seconds, by CUDA events, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, stop) / 1e3)
    return times


def copy_bandwidth(cupy) -> float:
    nbytes = 2 << 30
    a = cupy.ones(nbytes // 4, dtype=cupy.float32)
    b = cupy.empty_like(a)
    times = gpu_time(cupy, lambda: cupy.copyto(b, a), 10)
    return 2 * nbytes / float(np.median(times))


def rmat_gpu(cupy, scale: int, edge_factor: int, seed: int):
    """focusflow's R-MAT generated on the GPU, self-loops dropped."""
    from focusflow.graph import rmat_edges

    src, dst, w = rmat_edges(scale, edge_factor, seed=seed, xp=cupy)
    keep = src != dst
    return src[keep].astype(cupy.int32), dst[keep].astype(cupy.int32), w[keep]


def torch_pagerank(torch, n, src, dst, w, dtype, tol, max_iter=1000):
    """Power iteration with a torch CSR P^T; returns (x, iterations, ms per iteration)."""
    dev = "cuda"
    s = torch.as_tensor(src, device=dev).long()
    d = torch.as_tensor(dst, device=dev).long()
    wt = torch.as_tensor(w, device=dev).double()
    out = torch.zeros(n, dtype=torch.float64, device=dev).index_add_(0, s, wt)
    dangling = out <= 0
    val = (wt / out[s]).to(dtype)
    pt = torch.sparse_coo_tensor(torch.stack([d, s]), val, (n, n)).coalesce().to_sparse_csr()
    del s, d, wt, val
    x = torch.full((n,), 1.0 / n, dtype=torch.float64, device=dev)
    times = []
    iterations = 0
    for it in range(1, max_iter + 1):
        iterations = it
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        y = ALPHA * (pt @ x.to(dtype).unsqueeze(1)).squeeze(1).double()
        y += (ALPHA * x[dangling].sum() + 1 - ALPHA) / n
        change = (y - x).abs().sum()
        stop.record()
        change = float(change)
        times.append(start.elapsed_time(stop))
        x = y
        if change < tol:
            break
    nnz = pt.values().numel()
    del pt
    return x, iterations, float(np.median(times[1:] or times)), nnz


def host_pagerank(n, src, dst, w, tol=1e-12, max_iter=10_000) -> np.ndarray:
    """Float64 reference on the host (scipy CSR of P^T), for runs without CuPy/torch."""
    import scipy.sparse as sp

    out = np.bincount(src, weights=w, minlength=n)
    linked = out > 0
    val = w / out[src]
    pt = sp.csr_matrix((val, (dst, src)), shape=(n, n))
    x = np.full(n, 1.0 / n)
    for _ in range(max_iter):
        y = ALPHA * (pt @ x) + (ALPHA * x[~linked].sum() + 1 - ALPHA) / n
        change = np.abs(y - x).sum()
        x = y
        if change < tol:
            break
    return x


def bench_wgpu_tri(op, snap, prior: np.ndarray, tri_ref) -> dict:
    """The wgpu tri solve (device-resident springs, heat, blend and Anderson).

    Times the symmetric matrix setup (host build of ``W + W^T`` and upload,
    once per snapshot), then a warm-up solve and a timed one with the default
    parameters (tol 1e-6, Anderson 2), printed with its iterations, inner work
    (CG iterations, Chebyshev terms, scalar waits) and time split into setup,
    encoding, waiting and read-back; and ``compute()`` to 1e-7 against
    ``tri_ref()`` (a float64 tri focus in particle order) for accuracy.
    """
    import numba

    from focusflow.focus import compute, make_params
    from focusflow.focus.backends.webgpu import TIMING_KEYS
    from focusflow.focus.solver import solve

    t0 = time.perf_counter()
    op.setup_laplacian("normalized")
    t_setup = time.perf_counter() - t0
    params = make_params(mode="tri")
    solve(op, params, prior)  # warm-up (bind groups, staging buffers)
    # Three solves with each ending, alternating (docs/focus.md, finish): the
    # default's early switch against the fixed rule, in one process.
    times: dict[str, list[float]] = {"bounded": [], "fixed": []}
    iterations = {}
    for _ in range(3):
        for finish in ("fixed", "bounded"):
            t0 = time.perf_counter()
            _, diag = solve(op, params.with_(finish=finish), prior)
            times[finish].append(time.perf_counter() - t0)
            iterations[finish] = diag.iterations
    log(
        "  wgpu tri solves, finish=bounded: "
        + ", ".join(f"{t * 1e3:.1f}" for t in times["bounded"])
        + f" ms ({iterations['bounded']} it); finish=fixed: "
        + ", ".join(f"{t * 1e3:.1f}" for t in times["fixed"])
        + f" ms ({iterations['fixed']} it)"
    )
    t0 = time.perf_counter()
    _, diag = solve(op, params, prior)
    t_last = time.perf_counter() - t0
    t_tri = float(np.median([*times["bounded"], t_last]))
    counts = dict(op.tri_counts)
    parts = {key: 1e3 * diag.timings[key] for key in TIMING_KEYS}
    rest = 1e3 * t_last - sum(parts.values())
    waits = counts["cg_batches"] + diag.iterations
    log(
        f"  wgpu tri: symmetric matrix setup {t_setup:.2f} s (host build + upload, once per "
        f"snapshot); solve {t_tri * 1e3:.1f} ms (median of four; the rest of this line is "
        f"the last one's), {diag.iterations} iterations "
        f"({t_tri * 1e3 / max(diag.iterations, 1):.2f} ms each), "
        f"{counts['cg_iterations']} CG iterations, {counts['heat_terms']} Chebyshev terms, "
        f"{waits} scalar waits; "
        + " + ".join(f"{key.removeprefix('device_')} {ms:.1f}" for key, ms in parts.items())
        + f" + solver {rest:.1f} ms (of which the diffusion start, kept on the device, "
        + f"{1e3 * diag.timings.get('diffusion_start', 0.0):.1f} ms, "
        + f"{diag.inner.get('diffusion_start_iterations', 0)} steps); read-back = "
        + " + ".join(f"{k} {v * 1e3:.1f}" for k, v in op.readback_parts.items())
        + f" ms (numba {numba.get_num_threads()} threads, {numba.threading_layer()} layer)"
    )
    res = compute(snap, mode="tri", backend="wgpu", tol=1e-7)
    t0 = time.perf_counter()
    ref = tri_ref()
    err = float(np.abs(res.focus - ref).sum())
    ok = res.converged and err < 1e-6
    log(
        f"  wgpu tri compute() to 1e-7: {res.iterations} iterations, L1 error {err:.2e} "
        f"vs float64 tri ({time.perf_counter() - t0:.1f} s) {'ok' if ok else 'FAIL'}"
    )
    return {
        "wgpu_tri_setup_s": t_setup,
        "wgpu_tri_solve_ms": t_tri * 1e3,
        "wgpu_tri_fixed_ms": 1e3 * float(np.median(times["fixed"])),
        "wgpu_tri_iterations": diag.iterations,
        "wgpu_tri_parts_ms": parts,
        "wgpu_tri_counts": counts,
        "wgpu_tri_error": err,
        "wgpu_tri_ok": ok,
    }


def bench_wgpu(
    snap,
    ref: np.ndarray,
    repeat: int,
    allow_cpu: bool,
    host_step: bool,
    tri_ref=None,
) -> dict:
    """The wgpu backend on the same graph: diffusion steps and full solves.

    * ``sync step``: one device-resident step submitted alone and waited for
      (its L1 change read back), as a solver that checks every step sees it;
    * ``batched step``: ``repeat`` steps in one submission, divided by
      ``repeat`` (what the solver does once the contraction rate is known);
    * ``host step`` (with ``--wgpu-host-step``): the old path, host vectors in
      float64 and one upload and read-back per product, for comparison;
    * the full diffusion solve to ``TOL`` on the device, plain power iteration
      (batched) and Anderson mixing (window 2, a wait per step), each printed
      with its time split into setup, encoding, waiting, read-back and the
      solver around them, and, for the accuracy check, ``compute()`` to 1e-7
      (Anderson, the default) against ``ref``;
    * with ``tri_ref`` (a callable giving a float64 tri focus), the tri solve
      (:func:`bench_wgpu_tri`).
    """
    from focusflow.focus import compute, make_params
    from focusflow.focus.backends.webgpu import (
        MAX_BATCH,
        TIMING_KEYS,
        WgpuOperator,
        wgpu_available,
    )
    from focusflow.focus.solver import solve

    ok, why = wgpu_available(require_gpu=not allow_cpu)
    log(f"  wgpu: {why}")
    if not ok:
        return {}
    t0 = time.perf_counter()
    op = WgpuOperator(snap)
    t_build = time.perf_counter() - t0
    n = snap.n
    x = np.full(n, 1.0 / n)
    prior = np.full(n, 1.0 / n)
    row: dict = {"wgpu_adapter": why, "wgpu_build_s": t_build}
    if host_step:
        y = np.empty(n)
        op.diffusion(x, y, ALPHA, prior)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            op.diffusion(x, y, ALPHA, prior)
            times.append(time.perf_counter() - t0)
        row["wgpu_host_ms_per_iter"] = 1e3 * float(np.median(times))
        log(f"  wgpu old host step: {row['wgpu_host_ms_per_iter']:.2f} ms")
    op.start_diffusion(prior, x, ALPHA)
    op.steps(1)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        op.steps(1)
        times.append(time.perf_counter() - t0)
    sync_ms = 1e3 * float(np.median(times))
    batch = min(repeat, MAX_BATCH)
    batched = {}
    for every in (1, batch):  # a submission per step (overlaps encoding), or one per batch
        op.submit_every = every
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            op.steps(batch)
            times.append((time.perf_counter() - t0) / batch)
        batched[every] = 1e3 * float(np.median(times))
    op.submit_every = 1 if batched[1] <= batched[batch] else batch
    batch_ms = batched[op.submit_every]
    solves = {}
    for m in (0, 2):  # plain power iteration (batched), Anderson window 2 (a wait per step)
        params = make_params(mode="diffusion", weights=(1.0, 0.0, 0.0), tol=TOL, anderson=m)
        solve(op, params, prior)
        t0 = time.perf_counter()
        _, diag = solve(op, params, prior)
        t_solve = time.perf_counter() - t0
        parts = {key: 1e3 * diag.timings[key] for key in TIMING_KEYS}
        rest = 1e3 * t_solve - sum(parts.values())
        log(
            f"  wgpu solve, anderson={m}: {t_solve * 1e3:.1f} ms = "
            + " + ".join(f"{key.removeprefix('device_')} {ms:.1f}" for key, ms in parts.items())
            + f" + solver {rest:.1f} ms ({diag.iterations} iterations, "
            f"{(parts['device_encode'] + parts['device_wait']) / diag.iterations:.3f} "
            "ms/iteration in steps); read-back = "
            + " + ".join(f"{k} {v * 1e3:.1f}" for k, v in op.readback_parts.items())
            + " ms"
        )
        solves[m] = (t_solve, diag, parts)
    t_solve, diag, parts = solves[0]
    aa_solve, aa_diag, aa_parts = solves[2]
    res = compute(snap, mode="diffusion", backend="wgpu", tol=1e-7)
    err = float(np.abs(res.focus - ref).sum())
    ok = res.converged and err < 1e-6
    log(
        f"  wgpu: operator build {t_build:.1f} s; device-resident diffusion step "
        f"{sync_ms:.3f} ms (submitted alone, L1 read back); in batches of {batch}: "
        f"{batched[1]:.3f} ms (a submission per step), {batched[batch]:.3f} ms (one "
        f"submission); solve to {TOL:g} (submit_every={op.submit_every}): {t_solve * 1e3:.1f} ms, "
        f"{diag.iterations} iterations (includes reading phi back); with Anderson: "
        f"{aa_solve * 1e3:.1f} ms, {aa_diag.iterations} iterations; compute() to 1e-7: "
        f"{res.iterations} iterations, L1 error {err:.2e} {'ok' if ok else 'FAIL'}"
    )
    row.update(
        wgpu_ms_per_iter=sync_ms,
        wgpu_batched_ms_per_iter=batch_ms,
        wgpu_batched_submit_each_ms=batched[1],
        wgpu_batched_submit_once_ms=batched[batch],
        wgpu_solve_ms=t_solve * 1e3,
        wgpu_solve_parts_ms=parts,
        wgpu_iterations=diag.iterations,
        wgpu_aa_solve_ms=aa_solve * 1e3,
        wgpu_aa_solve_parts_ms=aa_parts,
        wgpu_aa_iterations=aa_diag.iterations,
        wgpu_error=err,
        wgpu_ok=ok,
    )
    if tri_ref is not None:
        row.update(bench_wgpu_tri(op, snap, prior, tri_ref))
        row["wgpu_ok"] = row["wgpu_ok"] and row["wgpu_tri_ok"]
    return row


def main_cpu_adapter(args) -> int:
    """``--allow-cpu-adapter`` without CuPy/torch: only the wgpu measurements, on
    R-MAT graphs generated on the host, checked against a host float64 reference.
    For checking the script end to end on a CPU adapter (llvmpipe): the numbers
    are CPU-adapter numbers, not GPU ones."""
    from focusflow.focus import compute
    from focusflow.graph import Snapshot, rmat_edges

    log(f"focus_gpu (wgpu only, CPU adapter allowed), {dt.datetime.now(dt.UTC).isoformat()}")
    rows = []
    for spec in args.graphs.split(","):
        scale, ef = (int(x) for x in spec.split(":"))
        log(f"\n== R-MAT scale {scale}, edge factor {ef} ==")
        src, dst, w = rmat_edges(scale, ef, seed=args.seed)
        keep = src != dst
        src, dst, w = src[keep], dst[keep], w[keep]
        n = 1 << scale
        snap = Snapshot(n, src, dst, w)
        ref = host_pagerank(n, src, dst, w)
        row = {"scale": scale, "edge_factor": ef, "nnz": snap.nnz}
        tri_ref = None
        if not args.skip_tri:

            def tri_ref(snap=snap):
                return compute(snap, mode="tri", backend="numba", tol=1e-10).focus

        row.update(bench_wgpu(snap, ref, args.repeat, True, args.wgpu_host_step, tri_ref))
        rows.append(row)
    log(
        "\n| scale | nnz | wgpu old host step ms | wgpu sync step ms | wgpu batched step ms "
        "| wgpu solve ms (it) | wgpu Anderson solve ms (it) | L1 error "
        "| wgpu tri ms (it) | tri L1 error |"
    )
    log("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        log(
            f"| {r['scale']} | {r['nnz']:,} | {r.get('wgpu_host_ms_per_iter', float('nan')):.2f} "
            f"| {r.get('wgpu_ms_per_iter', float('nan')):.3f} "
            f"| {r.get('wgpu_batched_ms_per_iter', float('nan')):.3f} "
            f"| {r.get('wgpu_solve_ms', float('nan')):.1f} ({r.get('wgpu_iterations', '-')}) "
            f"| {r.get('wgpu_aa_solve_ms', float('nan')):.1f} "
            f"({r.get('wgpu_aa_iterations', '-')}) "
            f"| {r.get('wgpu_error', float('nan')):.2e} "
            f"| {r.get('wgpu_tri_solve_ms', float('nan')):.1f} "
            f"({r.get('wgpu_tri_iterations', '-')}) "
            f"| {r.get('wgpu_tri_error', float('nan')):.2e} |"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"graphs": rows}, fh, indent=2)
    if not rows or not all(r.get("wgpu_ok") for r in rows):
        log("FAILED: wgpu unavailable or inaccurate")
        return 1
    log("All checks passed.")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--graphs", default="23:12", help="scale:edge_factor list, e.g. 23:12,25:16")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--block", type=int, default=100_000, help="links in the incremental block")
    ap.add_argument("--blocks", type=int, default=4, help="incremental blocks in a row")
    ap.add_argument(
        "--engine-mode",
        default="diffusion",
        choices=("diffusion", "tri"),
        help="mode of the incremental engine's blocks",
    )
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--skip-tri", action="store_true")
    ap.add_argument("--wgpu", action="store_true", help="also time the wgpu backend (Vulkan)")
    ap.add_argument(
        "--wgpu-host-step",
        action="store_true",
        help="also time the old host-side wgpu step (float64 vectors on the host)",
    )
    ap.add_argument(
        "--allow-cpu-adapter",
        action="store_true",
        help="let wgpu run on a CPU adapter (llvmpipe); without CuPy/torch only the "
        "wgpu part runs (checks the script end to end off the GPU)",
    )
    ap.add_argument(
        "--engine-max-scale",
        type=int,
        default=23,
        help="run the incremental engine only up to this scale (building a Cybergraph "
        "of string ids for 5*10^8 links takes minutes)",
    )
    ap.add_argument("--json", default=None)
    ap.add_argument(
        "--record",
        action="store_true",
        help=f"write today's tri figures into {RECORDED.name} (after a change that is meant "
        "to move them)",
    )
    args = ap.parse_args()

    try:
        import cupy
        import torch
    except ImportError as exc:
        if args.allow_cpu_adapter:
            log(f"no CuPy/torch ({exc}): wgpu measurements only")
            return main_cpu_adapter(args)
        raise

    from focusflow.focus import compute, make_params
    from focusflow.focus.engine import FocusEngine
    from focusflow.focus.solver import operator_for, solve
    from focusflow.graph import Cybergraph, Snapshot

    name = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    log(
        f"focus_gpu: {name}, CuPy {cupy.__version__}, torch {torch.__version__}, "
        f"{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}"
    )
    bw = copy_bandwidth(cupy)
    log(f"device-to-device copy: {bw / 1e12:.2f} TB/s (read + write)")
    results = {"device": name, "copy_bandwidth": bw, "graphs": []}
    failures = []
    for spec in args.graphs.split(","):
        scale, ef = (int(x) for x in spec.split(":"))
        log(f"\n== R-MAT scale {scale}, edge factor {ef} ==")
        t0 = time.perf_counter()
        s_d, d_d, w_d = rmat_gpu(cupy, scale, ef, args.seed)
        src, dst, w = cupy.asnumpy(s_d), cupy.asnumpy(d_d), cupy.asnumpy(w_d)
        del s_d, d_d, w_d
        cupy.get_default_memory_pool().free_all_blocks()
        n = 1 << scale
        log(f"  generated {len(src):,} links on the GPU in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        snap = Snapshot(n, src, dst, w)
        t_snap = time.perf_counter() - t0
        log(f"  Snapshot build (host, numba): {t_snap:.1f} s, nnz {snap.nnz:,}")
        row = {
            "scale": scale,
            "edge_factor": ef,
            "links": len(src),
            "nnz": snap.nnz,
            "snapshot_s": t_snap,
        }

        ref, ref_it, _, _ = torch_pagerank(torch, n, src, dst, w, torch.float64, 1e-12)
        ref = ref.cpu().numpy()
        log(f"  reference: torch float64, {ref_it} iterations")
        x_t, it_t, ms_t, _ = torch_pagerank(torch, n, src, dst, w, torch.float32, TOL)
        err_t = float(np.abs(x_t.cpu().numpy() - ref).sum())
        torch.cuda.empty_cache()
        log(
            f"  torch cuSPARSE f32: {ms_t:.3f} ms/iteration, {it_t} iterations, "
            f"L1 error {err_t:.2e}"
        )
        floor_bytes = 8 * snap.nnz + n * (4 + 8)
        floor_ms = floor_bytes / bw * 1e3
        log(f"  floor: {floor_bytes / 1e9:.2f} GB per iteration -> {floor_ms:.3f} ms")

        t0 = time.perf_counter()
        if args.wgpu:
            tri_ref = None
            if not args.skip_tri:

                def tri_ref(snap=snap):
                    return compute(
                        snap, mode="tri", backend="cuda", precision="float64", tol=1e-10
                    ).focus

            row.update(
                bench_wgpu(
                    snap,
                    ref,
                    args.repeat,
                    args.allow_cpu_adapter,
                    args.wgpu_host_step,
                    tri_ref,
                )
            )
            if "wgpu_ok" in row and not row["wgpu_ok"]:
                failures.append(
                    f"scale {scale} wgpu error {row['wgpu_error']:.2e}, "
                    f"tri error {row.get('wgpu_tri_error', float('nan')):.2e}"
                )
        op = operator_for(snap, "cuda", "float32")
        cupy.cuda.Device().synchronize()
        t_op = time.perf_counter() - t0
        x = cupy.full(n, 1.0 / n)
        y = cupy.empty(n)
        prior = cupy.full(n, 1.0 / n)

        def step(op=op, x=x, y=y, prior=prior) -> None:
            op.diffusion(x, y, ALPHA, prior)

        steps = gpu_time(cupy, step, args.repeat)
        m = op.sell
        pull_ms = 1e3 * float(
            np.median(
                gpu_time(cupy, lambda: op._pull_into(m, op.z, op.ylink, ALPHA, op.ov), args.repeat)  # noqa: B023 (called at once)
            )
        )
        sum_ms = 1e3 * float(np.median(gpu_time(cupy, lambda: float(op.ylink.sum()), args.repeat)))  # noqa: B023 (called at once)
        log(
            f"  breakdown: SELL + hub-chunk pull {pull_ms:.3f} ms, ylink sum + read-back "
            f"{sum_ms:.3f} ms; {m.ngroups:,} groups, {m.nchunks:,} hub chunks of "
            f"{len(m.host.long_rows):,} rows; share of entries in row groups "
            f"{m.host.gptr[-1] / max(1, snap.nnz):.3f}"
        )
        ms_ours = float(np.median(steps)) * 1e3
        log(
            f"  ours cuda: operator build {t_op:.2f} s; {ms_ours:.3f} ms per diffusion step "
            f"(includes the residual read-back)"
        )
        compute(snap, mode="diffusion", backend="cuda", precision="float32")
        t0 = time.perf_counter()
        res = compute(snap, mode="diffusion", backend="cuda", precision="float32")
        t_wall = time.perf_counter() - t0
        diff_params = make_params(mode="diffusion", weights=(1.0, 0.0, 0.0))
        solve(op, diff_params, prior)
        solve(op, diff_params, prior)
        cupy.cuda.Device().synchronize()
        t0 = time.perf_counter()
        _, d_diag = solve(op, diff_params, prior)
        cupy.cuda.Device().synchronize()
        t_diff = time.perf_counter() - t0
        log(
            f"  ours cuda diffusion: device solve {t_diff * 1e3:.1f} ms "
            f"({d_diag.iterations} iterations); compute() wall {t_wall * 1e3:.1f} ms "
            "(adds the prior upload, the download and the return to particle order)"
        )
        err = float(np.abs(res.focus - ref).sum())
        ok = err < 1e-6
        failures += [] if ok else [f"scale {scale} diffusion error {err:.2e}"]
        log(
            f"  ours cuda diffusion solve: {t_diff * 1e3:.1f} ms, {res.iterations} iterations, "
            f"L1 error {err:.2e} {'ok' if ok else 'FAIL'}"
        )
        row.update(
            torch_ms_per_iter=ms_t,
            torch_iterations=it_t,
            torch_solve_ms=ms_t * it_t,
            floor_ms=floor_ms,
            ours_ms_per_iter=ms_ours,
            ours_iterations=res.iterations,
            ours_solve_ms=t_diff * 1e3,
            ours_error=err,
            operator_build_s=t_op,
        )
        if not args.skip_tri:
            warm = compute(snap, mode="tri", backend="cuda", precision="float32", max_iter=3)
            t_setup = warm.diagnostics.timings.get("laplacian_setup", 0.0)
            tri_params = make_params(mode="tri")
            solve(op, tri_params, prior)  # warm-up: CuPy compiles its elementwise kernels
            tri_times = []
            for _ in range(3):
                cupy.cuda.Device().synchronize()
                t0 = time.perf_counter()
                tri_phi, tri_diag = solve(op, tri_params, prior)
                cupy.cuda.Device().synchronize()
                tri_times.append(time.perf_counter() - t0)
            t_tri = float(np.median(tri_times))
            tri_timed = snap.to_particle_order(cupy.asnumpy(tri_phi))
            log(f"  tri solves (tol 1e-6): {', '.join(f'{t * 1e3:.1f}' for t in tri_times)} ms")
            phases = {k: round(v * 1e3, 1) for k, v in tri_diag.timings.items()}
            log(
                f"  ours cuda tri: symmetric matrix setup {t_setup:.2f} s (host, once per "
                f"snapshot); device solve {t_tri * 1e3:.1f} ms, {tri_diag.iterations} "
                f"iterations, {tri_diag.inner}, phases {phases} ms"
            )
            lap_in = cupy.random.random(n)
            lap_out = cupy.empty(n)
            lap_ms = 1e3 * float(
                np.median(gpu_time(cupy, lambda: op.lap_matvec(lap_in, lap_out), 10))  # noqa: B023 (called at once)
            )
            log(f"  one Laplacian product (symmetric SELL-32): {lap_ms:.3f} ms")
            if scale > args.engine_max_scale:
                row.update(
                    tri_solve_ms=t_tri * 1e3,
                    tri_iterations=tri_diag.iterations,
                    tri_setup_s=t_setup,
                    lap_ms=lap_ms,
                )
                op = None
                results["graphs"].append(row)
                continue
            tri32 = compute(snap, mode="tri", backend="cuda", precision="float32", tol=1e-8)
            tri64 = compute(snap, mode="tri", backend="cuda", precision="float64", tol=1e-10)
            tri_err = float(np.abs(tri32.focus - tri64.focus).sum())
            timed_err = float(np.abs(tri_timed - tri64.focus).sum())
            log(f"  timed tri solve (float32, tol 1e-6) vs float64 (tol 1e-10): L1 {timed_err:.2e}")
            ok = tri_err < 1e-6
            failures += [] if ok else [f"scale {scale} tri error {tri_err:.2e}"]
            log(
                f"  tri float32 (tol 1e-8) vs float64 (tol 1e-10): L1 {tri_err:.2e} "
                f"{'ok' if ok else 'FAIL'}"
            )
            row.update(
                tri_solve_ms=t_tri * 1e3,
                tri_iterations=tri_diag.iterations,
                tri_error=tri_err,
                tri_timed_error=timed_err,
                tri_setup_s=t_setup,
                lap_ms=lap_ms,
            )
        op = None
        cupy.get_default_memory_pool().free_all_blocks()

        if scale > args.engine_max_scale or args.blocks < 1:
            results["graphs"].append(row)
            continue
        t0 = time.perf_counter()
        g = Cybergraph(require_cids=False)
        g.particles.intern(np.arange(n).astype(str))
        g.add_link_ids(src, dst, None, w)
        engine = FocusEngine(g, mode=args.engine_mode, backend="cuda", precision="float32")
        engine.compute()
        log(f"  engine: graph and cold compute {time.perf_counter() - t0:.1f} s")
        rng = np.random.default_rng(args.seed + 7)
        applies, fetches = [], []
        for block in range(args.blocks):
            bs = src[rng.integers(0, len(src), args.block)]
            bd = dst[rng.integers(0, len(dst), args.block)]
            g.add_link_ids(bs, bd, None, rng.random(args.block))
            cupy.cuda.Device().synchronize()
            collections = [st["collections"] for st in gc.get_stats()]
            t0 = time.perf_counter()
            inc = engine.apply()
            cupy.cuda.Device().synchronize()
            t_inc = time.perf_counter() - t0
            collected = [
                st["collections"] - c for st, c in zip(gc.get_stats(), collections, strict=True)
            ]
            t0 = time.perf_counter()
            focus = inc.focus
            t_fetch = time.perf_counter() - t0
            applies.append(t_inc * 1e3)
            fetches.append(t_fetch * 1e3)
            log(
                f"  block {block + 1} of {args.block:,} links: apply {t_inc * 1e3:.1f} ms "
                f"({ {k: round(v * 1e3, 1) for k, v in inc.diagnostics.timings.items()} } ms), "
                f"{inc.diagnostics.iterations} iterations; reading focus back "
                f"{t_fetch * 1e3:.1f} ms; GC runs during apply (gen 0, 1, 2) {collected}"
            )
        deferred = engine.deferred_links
        t0 = time.perf_counter()
        g.snapshot()
        t_catch = time.perf_counter() - t0
        log(
            f"  host snapshot brought up to date with the {deferred:,} links the blocks "
            f"deferred: {t_catch * 1e3:.1f} ms"
        )
        cold = compute(g, mode=args.engine_mode, backend="cuda", precision="float64", tol=1e-10)
        inc_err = float(np.abs(focus - cold.focus).sum())
        log(f"  last block: L1 vs tight cold {inc_err:.2e}")
        row.update(
            block=args.block,
            incremental_ms=float(np.median(applies)),
            incremental_all_ms=applies,
            fetch_ms=float(np.median(fetches)),
            incremental_error=inc_err,
            deferred_links=deferred,
            catch_up_ms=t_catch * 1e3,
        )
        results["graphs"].append(row)
        del g, engine, snap
        cupy.get_default_memory_pool().free_all_blocks()
        torch.cuda.empty_cache()

    log("\n## Results\n")
    log(f"device {name}; copy bandwidth {bw / 1e12:.2f} TB/s; stop at L1 change < {TOL:g}\n")
    log(
        "| scale | nnz | floor ms/it | cuSPARSE ms/it | ours ms/it | ours / floor "
        "| cuSPARSE / ours "
        "| cuSPARSE solve ms (it) | ours diffusion ms (it) | ours tri ms (it) | block apply ms |"
    )
    log("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results["graphs"]:
        log(
            f"| {r['scale']} | {r['nnz']:,} | {r['floor_ms']:.3f} | {r['torch_ms_per_iter']:.3f} | "
            f"{r['ours_ms_per_iter']:.3f} | {r['ours_ms_per_iter'] / r['floor_ms']:.2f} | "
            f"{r['torch_ms_per_iter'] / r['ours_ms_per_iter']:.2f} | "
            f"{r['torch_solve_ms']:.1f} ({r['torch_iterations']}) | "
            f"{r['ours_solve_ms']:.1f} ({r['ours_iterations']}) | "
            f"{r.get('tri_solve_ms', float('nan')):.1f} ({r.get('tri_iterations', '-')}) | "
            f"{r.get('incremental_ms', float('nan')):.1f} |"
        )
    wgpu_rows = [r for r in results["graphs"] if "wgpu_ms_per_iter" in r]
    if wgpu_rows:
        log(f"\nwgpu ({wgpu_rows[0]['wgpu_adapter']}) beside cuda and cuSPARSE, same graphs:\n")
        log(
            "| scale | wgpu sync step ms | wgpu batched step ms | cuda step ms "
            "| wgpu / cuda | cuSPARSE ms/it | wgpu solve ms (it) | wgpu Anderson solve ms (it) "
            "| cuda solve ms (it) | wgpu old host step ms | wgpu L1 error "
            "| wgpu tri ms (it) | cuda tri ms (it) | wgpu tri L1 error |"
        )
        log("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in wgpu_rows:
            log(
                f"| {r['scale']} | {r['wgpu_ms_per_iter']:.3f} "
                f"| {r['wgpu_batched_ms_per_iter']:.3f} | {r['ours_ms_per_iter']:.3f} "
                f"| {r['wgpu_ms_per_iter'] / r['ours_ms_per_iter']:.2f} "
                f"| {r['torch_ms_per_iter']:.3f} "
                f"| {r['wgpu_solve_ms']:.1f} ({r['wgpu_iterations']}) "
                f"| {r['wgpu_aa_solve_ms']:.1f} ({r['wgpu_aa_iterations']}) "
                f"| {r['ours_solve_ms']:.1f} ({r['ours_iterations']}) "
                f"| {r.get('wgpu_host_ms_per_iter', float('nan')):.1f} "
                f"| {r['wgpu_error']:.2e} "
                f"| {r.get('wgpu_tri_solve_ms', float('nan')):.1f} "
                f"({r.get('wgpu_tri_iterations', '-')}) "
                f"| {r.get('tri_solve_ms', float('nan')):.1f} ({r.get('tri_iterations', '-')}) "
                f"| {r.get('wgpu_tri_error', float('nan')):.2e} |"
            )
        compare_recorded(name, wgpu_rows, args.record)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    if failures:
        log("FAILED: " + "; ".join(failures))
        return 1
    log("All checks passed.")
    return 0


#: The last recorded tri figures per device and graph (``--record`` writes them).
RECORDED = Path(__file__).with_name("focus_gpu_recorded.json")
#: How much slower than its recorded figure a time may be before the line says so.
SLOWER = 1.15


def compare_recorded(device: str, rows: list[dict], record: bool) -> None:
    """Today's wgpu and cuda tri times beside the last recorded ones for this
    device and graph, each with today / recorded and wgpu / cuda, and a
    REGRESSED mark where today's is more than ``SLOWER`` times the recorded
    one (or wgpu / cuda is): a host-side slowdown of the wgpu solve shows up
    in the run that has it. ``record``: today's figures replace them."""
    table = json.loads(RECORDED.read_text()) if RECORDED.exists() else {}
    mine = table.setdefault(device, {})
    log(f"\ntri against the recorded figures ({RECORDED.name}, {device}):\n")
    log(
        "| graph | wgpu tri ms | recorded | today / recorded | cuda tri ms | recorded "
        "| today / recorded | wgpu / cuda | recorded | verdict |"
    )
    log("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        graph = f"{r['scale']}:{r['edge_factor']}"
        wgpu, cuda = r.get("wgpu_tri_solve_ms"), r.get("tri_solve_ms")
        if wgpu is None or cuda is None:
            continue
        old = mine.get(graph)
        if old is None:
            log(
                f"| {graph} | {wgpu:.1f} | - | - | {cuda:.1f} | - | - | {wgpu / cuda:.2f} | - "
                "| nothing recorded |"
            )
        else:
            ratios = (wgpu / old["wgpu_tri_ms"], cuda / old["cuda_tri_ms"])
            share = wgpu / cuda
            old_share = old["wgpu_tri_ms"] / old["cuda_tri_ms"]
            slower = max(*ratios, share / old_share) > SLOWER
            log(
                f"| {graph} | {wgpu:.1f} | {old['wgpu_tri_ms']:.1f} ({old['date']}) "
                f"| {ratios[0]:.2f} | {cuda:.1f} | {old['cuda_tri_ms']:.1f} | {ratios[1]:.2f} "
                f"| {share:.2f} | {old_share:.2f} | {'REGRESSED' if slower else 'ok'} |"
            )
        if record:
            mine[graph] = {
                "wgpu_tri_ms": round(wgpu, 1),
                "cuda_tri_ms": round(cuda, 1),
                "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
            }
    if record:
        RECORDED.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
        log(f"recorded today's figures in {RECORDED}")


if __name__ == "__main__":
    sys.exit(main())
