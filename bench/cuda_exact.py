"""The exact arithmetic on a GPU against the same arithmetic on the CPU, and against fast cuda.

A chain's focus runs in an exact arithmetic (``exact-v2``, or ``exact-v3``
whose sums a GPU splits): every validator computes the same bits. This bench
times one chain-sized job five ways, in one run on one machine:

* ``numba exact-v2`` and ``numba exact-v3``: the CPU operator every node can
  run (all cores);
* ``cuda exact-v2`` and ``cuda exact-v3``: the same bits on the GPU
  (``backends/cuda_exact.py``);
* ``cuda fast``: the cuda backend's own operator in ``fast`` arithmetic, the
  same algorithm otherwise (what the GPU does when bits may differ).

For each R-MAT graph (Graph500 parameters, random weights, ``--graphs
SCALE:EDGE_FACTOR``) it times a cold tri solve with a new genesis's focus
parameters, then ``--blocks`` blocks of ``--block`` new links through
``FocusEngine.apply()`` (the chain's path: patch, upload, warm solve), and
checks that numba and cuda give the same bits in each exact version, block
by block. It prints seconds, and each version's cuda exact / cuda fast (what
exactness costs on the GPU)::

    python bench/cuda_exact.py --graphs 18:16,20:16,22:16 --blocks 3 --block 10000

``--ways`` picks some of the five (``numba:exact-v2,cuda:exact-v3,...``); a
version's bits are compared where both its backends ran.

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
from focusflow.focus.params import EXACT_V2, EXACT_V3, FAST, make_params
from focusflow.graph import Cybergraph
from focusflow.graph.generators import rmat_edges

WAYS = (
    ("numba", EXACT_V2),
    ("cuda", EXACT_V2),
    ("numba", EXACT_V3),
    ("cuda", EXACT_V3),
    ("cuda", FAST),
)


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


def run(
    scale: int, factor: int, blocks: int, block: int, ways: tuple[tuple[str, str], ...] = WAYS
) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for backend, arithmetic in ways:
        label = f"{backend} {arithmetic}"
        params = make_params(None, **{**NEW_CHAIN_FOCUS, "arithmetic": arithmetic})
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
            f"  {label:15s} cold {cold:8.3f} s ({first.diagnostics.iterations} outer), "
            f"block median {out[label]['block']:.3f} s",
            flush=True,
        )
    return out


def profile(scale: int, block: int, arithmetic: str) -> None:
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
    for name in (*Kernels._fields, "record", "mix", "total", "_chunks", "_tree"):
        setattr(kernels, name, timed(name, getattr(kernels, name)))
    op = cuda_exact.ExactCudaOperator
    for name in ("refresh", "setup_laplacian"):
        setattr(op, name, timed(name, getattr(op, name)))
    # The symmetric matrix's device build (inside setup_laplacian), its
    # merges and each of its kernels.
    from focusflow.focus.backends import cuda_symmetric

    cuda_exact.build = timed("symmetric build", cuda_exact.build)
    cuda_symmetric._merged = timed("build: merges", cuda_symmetric._merged)
    kernels_of = cuda_symmetric._kernels
    cuda_symmetric._kernels = lambda module: {
        name: timed(f"build: {name}", f) for name, f in kernels_of(module).items()
    }
    g, names = _graph(scale, 16, seed=scale)
    params = make_params(None, **{**NEW_CHAIN_FOCUS, "arithmetic": arithmetic})
    engine = FocusEngine(g, params, backend="cuda")
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


def _same(a: dict[str, object] | None, b: dict[str, object] | None) -> str:
    """Whether two ways computed the same bits block after block ('-' where
    one did not run)."""
    if a is None or b is None:
        return "-"
    pairs = zip(a["phis"], b["phis"], strict=True)  # type: ignore[call-overload]
    return "yes" if all(x.tobytes() == y.tobytes() for x, y in pairs) else "NO"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graphs", default="16:16,18:16,20:16")
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--block", type=int, default=10_000)
    ap.add_argument("--ways", help="backend:arithmetic,... (default: all five)")
    ap.add_argument("--profile", type=int, metavar="SCALE", help="time each device kernel")
    ap.add_argument("--arithmetic", default=EXACT_V3, help="the version --profile runs")
    args = ap.parse_args()
    if args.profile:
        profile(args.profile, args.block, args.arithmetic)
        return
    ways: tuple[tuple[str, str], ...] = WAYS
    if args.ways:
        ways = tuple((way.split(":")[0], way.split(":")[1]) for way in args.ways.split(","))
    rows = []
    for spec in args.graphs.split(","):
        scale, factor = (int(v) for v in spec.split(":"))
        print(f"R-MAT scale {scale}, edge factor {factor}", flush=True)
        rows.append((scale, factor, run(scale, factor, args.blocks, args.block, ways)))
    print()
    labels = [f"{b} {a}" for b, a in WAYS]
    print(
        "| graph | links | "
        + " | ".join(f"{label} cold / block s" for label in labels)
        + " | v2/fast, v3/fast on cuda (block) | same bits v2, v3 |"
    )
    print("|---|---:|" + "---:|" * len(labels) + "---:|---|")
    for scale, factor, r in rows:
        cells = []
        for label in labels:
            x = r.get(label)
            cells.append("-" if x is None else f"{x['cold']:.3f} / {x['block']:.3f}")
        fast = r.get(f"cuda {FAST}")

        def over_fast(
            version: str,
            fast: dict[str, object] | None = fast,
            r: dict[str, dict[str, object]] = r,
        ) -> str:
            x = r.get(f"cuda {version}")
            if x is None or fast is None:
                return "-"
            return f"{float(x['block']) / float(fast['block']):.2f}x"  # type: ignore[arg-type]

        links = next(iter(r.values()))["links"]
        same = [_same(r.get(f"numba {v}"), r.get(f"cuda {v}")) for v in (EXACT_V2, EXACT_V3)]
        print(
            f"| R-MAT {scale}:{factor} | {links:,} | "
            + " | ".join(cells)
            + f" | {over_fast(EXACT_V2)}, {over_fast(EXACT_V3)} | {', '.join(same)} |"
        )


if __name__ == "__main__":
    main()
