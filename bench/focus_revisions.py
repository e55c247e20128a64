"""The focus engine at two git revisions, side by side: did a change slow it down?

Each revision's ``src`` is exported with ``git archive`` into a temporary
folder, and every timing runs in a process of its own with that tree first on
``PYTHONPATH``, rounds interleaved (A, B, A, B, ...) so a machine that drifts
drifts for both. A process times ``focus.compute`` (numba backend, tol 1e-6,
the snapshot built from a scipy matrix inside each call, as a user's call
does) on R-MAT graphs, best of ``--repeats`` after one warm-up, and prints its
iterations and a checksum of the answer: the two revisions must agree on both,
or the comparison is between different computations. The first process of
each revision also compiles its numba kernels into its own tree's cache.

Run from the repository root::

    python bench/focus_revisions.py 74f811d HEAD --scales 17 20 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

ONE_PROCESS = """
import json, sys, time
import numpy as np
import scipy.sparse as sp
from focusflow.focus import compute
from focusflow.graph.generators import rmat_edges
scales, repeats = json.loads(sys.argv[1]), int(sys.argv[2])
out = {}
for scale in scales:
    src, dst, w = rmat_edges(scale, 16, seed=0)
    keep = src != dst
    n = 1 << scale
    a = sp.csr_matrix((w[keep], (src[keep], dst[keep])), shape=(n, n))
    a.sum_duplicates()
    for mode in ("diffusion", "tri"):
        kw = dict(backend="numba", mode=mode, tol=1e-6)
        compute(a, **kw)
        ts = []
        for _ in range(repeats):
            t = time.perf_counter()
            r = compute(a, **kw)
            ts.append(time.perf_counter() - t)
        out[f"{scale}/{mode}"] = [min(ts), int(r.iterations), float(np.sum(r.focus[::97]))]
print(json.dumps(out))
"""


def export(rev: str, into: Path) -> Path:
    """``rev``'s ``src`` folder, unpacked under ``into``."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "src"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def time_tree(src: Path, scales: list[int], repeats: int) -> dict[str, list[float]]:
    env = dict(os.environ, PYTHONPATH=str(src))
    done = subprocess.run(
        [sys.executable, "-c", ONE_PROCESS, json.dumps(scales), str(repeats)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("base", help="the revision before the change")
    ap.add_argument("head", help="the revision after it")
    ap.add_argument("--scales", type=int, nargs="+", default=[17])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    revs = {"base": args.base, "head": args.head}
    with tempfile.TemporaryDirectory() as tmp:
        trees = {k: export(rev, Path(tmp) / k) for k, rev in revs.items()}
        best: dict[str, dict[str, list[float]]] = {k: {} for k in revs}
        for rnd in range(1, args.rounds + 1):
            for k, tree in trees.items():
                got = time_tree(tree, args.scales, args.repeats)
                print(f"round {rnd} {k} ({revs[k]}): {json.dumps(got)}", flush=True)
                for case, (t, iters, check) in got.items():
                    seen = best[k].setdefault(case, [t, iters, check])
                    seen[0] = min(seen[0], t)
    print(f"\n{'case':16s} {'base s':>9s} {'head s':>9s} {'head/base':>10s}  same answer")
    for case, (tb, ib, cb) in best["base"].items():
        th, ih, ch = best["head"][case]
        same = ib == ih and cb == ch
        print(f"{case:16s} {tb:9.3f} {th:9.3f} {th / tb:10.3f}  {same}")


if __name__ == "__main__":
    main()
