"""Committed focus does not depend on how many threads a node runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import numpy as np
from focusflow.chain.focus_commit import FocusState
from focusflow.chain.module import Deltas
from focusflow.graph.generators import rmat_edges
src, dst, _ = rmat_edges(12, 8, seed=4)
neurons = [bytes([i]) * 20 for i in range(30)]
roots = []
arithmetics = ("fast", "exact-v1", "exact-v2", "exact-v3")
for mode, arithmetic in [(m, a) for m in ("tri", "diffusion") for a in arithmetics]:
    fs = FocusState({"mode": mode, "arithmetic": arithmetic})
    d = Deltas(stakes={a: 1000 + 37 * i for i, a in enumerate(neurons)})
    pairs = [[int(a).to_bytes(4, "big"), int(b).to_bytes(4, "big")]
             for a, b in zip(src, dst) if a != b]
    d.links = [(neurons[i], pairs[i::30], None) for i in range(30)]
    fs.apply(d)
    roots.append(fs.root.hex())
    fs.apply(Deltas(stakes={neurons[0]: 99999}))
    roots.append(fs.root.hex())
print(" ".join(roots))
"""


def run(threads: int) -> str:
    path = os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "NUMBA_NUM_THREADS": str(threads), "PYTHONPATH": path}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_focus_roots_equal_with_one_and_two_threads():
    assert run(1) == run(2)
