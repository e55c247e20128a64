"""The exact arithmetic on a GPU against the same arithmetic on the CPU, and against fast cuda.

A chain's focus runs in an exact arithmetic (``exact-v2``): every validator
computes the same bits. This bench times one chain-sized job three ways, in
one run on one machine:

* ``numba exact``: the CPU operator every node can run (all cores);
* ``cuda exact``: the same bits on the GPU (``backends/cuda_exact.py``);
* ``cuda fast``: the cuda backend's own operator in ``fast`` arithmetic, the
  same algorithm otherwise (what the GPU does when bits may differ).

For each R-MAT graph (Graph500 parameters, random weights, ``--graphs
SCALE:EDGE_FACTOR``) it times a cold tri solve with a new genesis's focus
parameters, then ``--blocks`` blocks of ``--block`` new links through
``FocusEngine.apply()`` (the chain's path: patch, upload, warm solve), and
checks that numba exact and cuda exact give the same bits, block by block.
It prints seconds, the ratio numba exact / cuda exact, and cuda exact / cuda
fast (what exactness costs on the GPU)::

    python bench/cuda_exact.py --graphs 18:16,20:16,22:16 --blocks 3 --block 10000

``--profile SCALE`` instead times each device kernel wrapper of one cold solve
and one block (between device synchronisations, so the total is longer than
a plain run's): where cuda exact's time goes.
"""

from __future__ import annotations

import argparse
import collections
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from focusflow.chain.focus_spec import NEW_CHAIN_FOCUS
from focusflow.focus.engine import FocusEngine
from focusflow.focus.params import FAST, make_params
from focusflow.graph import Cybergraph
from focusflow.graph.generators import rmat_edges

WAYS = (("numba", "exact"), ("cuda", "exact"), ("cuda", FAST))


def _graph(scale: int, factor: int, seed: int) -> tuple[Cybergraph, np.ndarray]:
    src, dst, _ = rmat_edges(scale, factor, seed=seed)
    keep = src != dst
    src, dst = src[keep], dst[keep]
    g = Cybergraph(require_cids=False)
    names = np.array([f"p{i}" for i in range((1 << scale) + 4096)], dtype=object)
    w = np.random.default_rng(seed).random(len(src)) + 0.01
    g.add_links(names[src], names[dst], weights=w)
    return g, names


def _block(rng: np.random.Generator, g: Cybergraph, names: np.ndarray, size: int) -> None:
    top = len(names)
    g.add_links(
        names[rng.integers(0, top, size)],
        names[rng.integers(0, top, size)],
        weights=rng.random(size) + 0.01,
    )


def run(scale: int, factor: int, blocks: int, block: int) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for backend, arithmetic in WAYS:
        label = f"{backend} {arithmetic}"
        focus = dict(NEW_CHAIN_FOCUS)
        if arithmetic == FAST:
            focus["arithmetic"] = FAST
        params = make_params(None, **focus)
        g, names = _graph(scale, factor, seed=scale)
        engine = FocusEngine(g, params, backend=backend)
        t = time.perf_counter()
        first = engine.compute()
        phis = [first.focus]
        cold = time.perf_counter() - t
        rng = np.random.default_rng(7)
        times = []
        for _ in range(blocks):
            _block(rng, g, names, block)
            t = time.perf_counter()
            res = engine.apply()
            phis.append(res.focus)
            times.append(time.perf_counter() - t)
        out[label] = {
            "links": g.n_links,
            "cold": cold,
            "iterations": first.diagnostics.iterations,
            "block": float(np.median(times)) if times else float("nan"),
            "phis": phis,
        }
        print(
            f"  {label:12s} cold {cold:8.3f} s ({first.diagnostics.iterations} outer), "
            f"block median {out[label]['block']:.3f} s",
            flush=True,
        )
    return out


def profile(scale: int, block: int) -> None:
    """Seconds per device kernel wrapper in a cold solve and in one block."""
    import cupy

    from focusflow.focus.backends import cuda_exact
    from focusflow.focus.backends.numba_cpu import Kernels

    spent: collections.Counter[str] = collections.Counter()
    calls: collections.Counter[str] = collections.Counter()

    def timed(name: str, f: Callable[..., Any]) -> Callable[..., Any]:
        def run(*a: Any, **k: Any) -> Any:
            cupy.cuda.Device().synchronize()
            t = time.perf_counter()
            out = f(*a, **k)
            cupy.cuda.Device().synchronize()
            spent[name] += time.perf_counter() - t
            calls[name] += 1
            return out

        return run

    kernels = cuda_exact._DeviceKernels
    # The kernels the operator calls, and the chunk sums inside them (counted
    # in both: a pass's time includes its sums).
    for name in (*Kernels._fields, "record", "mix", "total", "_chunks"):
        setattr(kernels, name, timed(name, getattr(kernels, name)))
    op = cuda_exact.ExactCudaOperator
    for name in ("refresh", "setup_laplacian"):
        setattr(op, name, timed(name, getattr(op, name)))
    g, names = _graph(scale, 16, seed=scale)
    engine = FocusEngine(g, make_params(None, **NEW_CHAIN_FOCUS), backend="cuda")
    for label, step in (
        ("cold solve", engine.compute),
        ("block", lambda: (_block(np.random.default_rng(7), g, names, block), engine.apply())),
    ):
        spent.clear()
        calls.clear()
        t = time.perf_counter()
        step()
        print(f"{label}: {time.perf_counter() - t:.3f} s")
        for name, s in spent.most_common():
            print(f"  {name:18s} {s * 1e3:9.1f} ms  {calls[name]:5d} calls")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graphs", default="16:16,18:16,20:16")
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--block", type=int, default=10_000)
    ap.add_argument("--profile", type=int, metavar="SCALE", help="time each device kernel")
    args = ap.parse_args()
    if args.profile:
        profile(args.profile, args.block)
        return
    rows = []
    for spec in args.graphs.split(","):
        scale, factor = (int(v) for v in spec.split(":"))
        print(f"R-MAT scale {scale}, edge factor {factor}", flush=True)
        r = run(scale, factor, args.blocks, args.block)
        cpu, gpu, fast = r["numba exact"], r["cuda exact"], r["cuda fast"]
        same = all(
            a.tobytes() == b.tobytes()
            for a, b in zip(cpu["phis"], gpu["phis"], strict=True)  # type: ignore[call-overload]
        )
        rows.append((scale, factor, cpu, gpu, fast, same))
    print()
    print(
        "| graph | links | numba exact cold / block s | cuda exact cold / block s "
        "| cuda fast cold / block s | numba/cuda exact (cold, block) | exact/fast on cuda "
        "(cold, block) | same bits |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for scale, factor, cpu, gpu, fast, same in rows:

        def f(x: dict[str, object]) -> str:
            return f"{x['cold']:.3f} / {x['block']:.3f}"

        def ratio(a: dict[str, object], b: dict[str, object], key: str) -> float:
            return float(a[key]) / float(b[key])  # type: ignore[arg-type]

        print(
            f"| R-MAT {scale}:{factor} | {cpu['links']:,} | {f(cpu)} | {f(gpu)} | {f(fast)} "
            f"| {ratio(cpu, gpu, 'cold'):.2f}x, {ratio(cpu, gpu, 'block'):.2f}x "
            f"| {ratio(gpu, fast, 'cold'):.2f}x, {ratio(gpu, fast, 'block'):.2f}x "
            f"| {'yes' if same else 'NO'} |"
        )


if __name__ == "__main__":
    main()
