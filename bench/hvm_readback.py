"""What a CUDA run costs beyond its interactions: `focusflow hvm run --backend
cuda` end to end, in process (parse, normalise, bring the result net to the
host, print it), against the normalisation alone.

The GPU heap is 6 GiB by default (2^29 node and 2^29 variable slots); only its
live slots are brought back, renumbered (``cuda._compact``). Run on a machine
with CuPy and a GPU: ``python bench/hvm_readback.py``.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from focusflow.rewrite import cuda  # noqa: E402
from focusflow.rewrite.run import run_text  # noqa: E402

PROGRAMS = ("sum_rec.hvm", "tuples.hvm", "list.hvm", "sort_bitonic.hvm")
RUNS = 5


def main() -> int:
    ok, why = cuda.available()
    if not ok:
        print(f"no GPU: {why}")
        return 1
    print(f"device: {why}; medians of {RUNS} runs after one warm-up")
    print(f"{'program':18s} {'end to end s':>13s} {'normalise s':>12s} {'the rest s':>11s}")
    for name in PROGRAMS:
        text = (ROOT / "tests" / "rewrite" / "programs" / name).read_text()
        run_text(text, backend="cuda")
        walls, norms = [], []
        for _ in range(RUNS):
            start = time.perf_counter()
            out = run_text(text, backend="cuda")
            walls.append(time.perf_counter() - start)
            norms.append(out.seconds)
        wall, norm = statistics.median(walls), statistics.median(norms)
        print(f"{name:18s} {wall:13.3f} {norm:12.3f} {wall - norm:11.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
