"""Personal focus in the browser (``static/light/focus.js``) beside the engine.

A graph of about 10^5 links (R-MAT, ``--scale`` and ``--edge-factor``, or an
edge list given with ``--graph``: ``src dst [weight]`` per line, ids in 0..n-1)
is handed to headless Chromium (Debian's, through Playwright), which prepares
it (out-weights, ``A = W + W^T`` scaled by ``D^-1/2``) and computes the
personal focus of one particle, the tri-kernel to L1 change ``--tol``, on the
CPU in float64, then with springs and heat on WebGPU (the light mode:
float32 series, tolerance 1e-5; ``--adapter swiftshader``, the default, is
Chromium's software adapter, ``default`` the machine's GPU). The engine's
``personalized_focus`` computes the same answer in this process (numba
backend, same parameters); the L1 distance between the two is printed beside
both times. The median of ``--runs`` timed runs after
one untimed run of each.

    .venv/bin/python bench/web_focus.py [--scale 15] [--edge-factor 3] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from typing import Any

import numpy as np
import scipy.sparse as sp
from playwright.sync_api import sync_playwright
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from focusflow.api.app import STATIC
from focusflow.focus.params import make_params
from focusflow.focus.personal import personalized_focus
from focusflow.graph.generators import rmat_edges
from focusflow.testing.lightnode import serve
from focusflow.testing.web import find_chromium

JS_RUN = """async (a) => {
  const F = await import("/static/light/focus.js");
  const G = await import("/static/light/gpu.js");
  const gpu = await G.gpuDevice();
  const out = {};
  for (const [path, dev] of [["cpu", null], ["webgpu", gpu]]) {
    if (path === "webgpu" && !dev) continue;
    const times = [], prep = [];
    let r = null;
    for (let i = 0; i <= a.runs; i++) {
      const t0 = performance.now();
      const g = F.prepareGraph(a.n, a.src, a.dst, a.w);
      const t1 = performance.now();
      r = await F.personalFocus(g, [a.context], path === "cpu" ? { tol: a.tol } : {}, { gpu: dev });
      const t2 = performance.now();
      if (i > 0) { prep.push(t1 - t0); times.push(t2 - t0); }
    }
    out[path] = { times, prep, focus: Array.from(r.focus), iterations: r.iterations,
                  passes: r.passes, terms: r.terms, converged: r.converged,
                  adapter: dev ? `${dev.adapter}${dev.software ? ", software" : ""}` : "" };
  }
  return out;
}"""


#: The light mode's tolerance (static/light/gpu.js LIGHT_TOL).
LIGHT_TOL = 1e-5


def adapter_flags(adapter: str) -> list[str]:
    """Chromium's flags for ``--adapter``: ``swiftshader`` (the software adapter,
    what a machine without a GPU has) or ``default`` (whatever the machine has)."""
    return ["--use-webgpu-adapter=swiftshader"] if adapter == "swiftshader" else []


def graph(args: argparse.Namespace) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    if args.graph:
        rows = np.loadtxt(args.graph, ndmin=2)
        src, dst = rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64)
        w = rows[:, 2] if rows.shape[1] > 2 else np.ones(len(rows))
        return int(max(src.max(), dst.max())) + 1, src, dst, w
    src, dst, w = rmat_edges(args.scale, args.edge_factor, seed=args.seed)
    return 1 << args.scale, src, dst, w


def ms(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ms (runs {min(values):.1f}-{max(values):.1f})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=int, default=15)
    p.add_argument("--edge-factor", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--graph", help="an edge list instead of R-MAT")
    p.add_argument("--tol", type=float, default=1e-6)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--adapter", choices=["swiftshader", "default"], default="swiftshader")
    args = p.parse_args()
    chromium = find_chromium()
    if chromium is None:
        sys.exit("no Chromium found (install Debian's chromium package, or set $CHROMIUM)")
    n, src, dst, w = graph(args)
    keep = src != dst
    # the context: the particle with the most out-links, so the answer spreads wide
    context = int(np.bincount(src[keep], minlength=n).argmax())
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
        f"{platform.python_version()}; load {os.getloadavg()[0]:.2f} at start; "
        f"{n} particles, {int(keep.sum())} links (self-links dropped), context {context}"
    )
    g = sp.csr_matrix((w[keep], (src[keep], dst[keep])), shape=(n, n))
    params = make_params(None, tol=args.tol)
    py: list[float] = []
    want: Any = None
    for i in range(args.runs + 1):
        t = time.perf_counter()
        want = personalized_focus(g, np.asarray([context]), params=params, backend="numba").focus
        if i:
            py.append((time.perf_counter() - t) * 1e3)
    app: Any = Starlette(routes=[Mount("/static", StaticFiles(directory=STATIC))])
    url, stop = serve(app)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=chromium,
                headless=True,
                # WebGPU on the machine's adapter, or on SwiftShader where it has no GPU
                args=["--no-sandbox", "--enable-unsafe-webgpu", *adapter_flags(args.adapter)],
            )
            page = browser.new_page()
            page.goto(f"{url}/static/style.css")
            js = page.evaluate(
                JS_RUN,
                {
                    "n": n,
                    "src": src.tolist(),
                    "dst": dst.tolist(),
                    "w": w.tolist(),
                    "context": context,
                    "tol": args.tol,
                    "runs": args.runs,
                },
            )
            print(f"Chromium {browser.version}; {args.runs} timed runs after one untimed")
            browser.close()
    finally:
        stop()
    for path, r in js.items():
        l1 = float(np.abs(np.asarray(r["focus"]) - want).sum())
        ratio = statistics.median(r["times"]) / statistics.median(py)
        where = f"WebGPU ({r['adapter']}), tol {LIGHT_TOL}" if path == "webgpu" else "CPU"
        print(
            f"personal focus, browser on the {where}: {ms(r['times'])} (of which the graph's "
            f"preparation {statistics.median(r['prep']):.1f} ms; {r['iterations']} outer "
            f"iterations, {r['passes']} passes over A, {r['terms']} series terms), engine "
            f"(numba, this process, tol {args.tol}) {ms(py)}; browser / engine = {ratio:.2f}; "
            f"L1 between the two {l1:.2e}; goal < 1000 ms in the browser"
        )
    if "webgpu" not in js:
        print("no WebGPU adapter in this Chromium: the CPU path only")


if __name__ == "__main__":
    main()
