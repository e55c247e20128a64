"""The cuda backend's first use in a fresh process: compile time, cold and warm.

A user's first ``compute(..., backend="cuda")`` on a machine compiles the
backend's CUDA source (NVRTC, through CuPy) and every CuPy elementwise or
reduction kernel the solve touches; CuPy keeps the results in its kernel cache
(``CUPY_CACHE_DIR``), so later processes load them; numba likewise compiles
the CPU kernels the graph build uses and caches them (``NUMBA_CACHE_DIR``).
This script runs the same small diffusion and tri solves in child processes:

- ``cold``: both caches empty (a fresh install, the first solve compiles);
- ``warm``: the caches the cold child left (every later start);
- ``prepared``: both caches empty, then ``focusflow focus prepare`` (what
  ``./dev`` runs at install), timed on its own, then the first solve.

Run on a machine with an NVIDIA GPU and CuPy::

    python bench/cuda_first_use.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import cupy
t_import = time.perf_counter() - t0
from focusflow.focus import compute
from focusflow.graph import Snapshot, rmat_edges
src, dst, w = rmat_edges(int(sys.argv[1]), 8, seed=1)
keep = src != dst
snap = Snapshot(1 << int(sys.argv[1]), src[keep], dst[keep], w[keep])
out = {"import_cupy_s": t_import}
for label, kw in (("diffusion", {"mode": "diffusion"}), ("tri", {"mode": "tri"}),
                  ("diffusion_again", {"mode": "diffusion"}), ("tri_again", {"mode": "tri"})):
    t = time.perf_counter()
    res = compute(snap, backend="cuda", tol=1e-6, **kw)
    cupy.cuda.Device().synchronize()
    out[label + "_s"] = time.perf_counter() - t
out["total_s"] = time.perf_counter() - t0
print(json.dumps(out))
"""


def _env(cache: str) -> dict[str, str]:
    return {
        **os.environ,
        "CUPY_CACHE_DIR": os.path.join(cache, "cupy"),
        "NUMBA_CACHE_DIR": os.path.join(cache, "numba"),
    }


def prepare(cache: str) -> float:
    """``focusflow focus prepare`` in a child with these caches; seconds."""
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "from focusflow.node.main import main; main()", "focus", "prepare"],
        env=_env(cache),
        capture_output=True,
        check=True,
        timeout=600,
    )
    return time.perf_counter() - t


def child(scale: int, cache: str) -> dict:
    env = _env(cache)
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(scale)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_s"] = time.perf_counter() - t
    out["cache_files"] = sum(len(f) for _, _, f in os.walk(cache))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scale", type=int, default=12, help="R-MAT scale of the small graph")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        cold = child(args.scale, cache)
        warm = child(args.scale, cache)
    with tempfile.TemporaryDirectory() as cache:
        prepare_s = prepare(cache)
        prepared = child(args.scale, cache)
    rows = (
        ("cold (empty kernel caches)", cold),
        ("warm (caches kept)", warm),
        (f"prepared (empty caches, then focus prepare: {prepare_s:.2f} s)", prepared),
    )
    for name, row in rows:
        print(
            name
            + ": "
            + ", ".join(
                f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()
            )
        )
    print(
        f"first diffusion solve: cold {cold['diffusion_s']:.2f} s, warm {warm['diffusion_s']:.2f} s"
    )
    print(f"first tri solve: cold {cold['tri_s']:.2f} s, warm {warm['tri_s']:.2f} s")
    print(
        f"after focus prepare ({prepare_s:.2f} s): "
        f"first diffusion {prepared['diffusion_s']:.2f} s, first tri {prepared['tri_s']:.2f} s, "
        f"process {prepared['process_s']:.2f} s "
        f"(cold process {cold['process_s']:.2f} s)"
    )


if __name__ == "__main__":
    main()
