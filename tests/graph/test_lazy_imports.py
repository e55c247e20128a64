"""A fresh process that reads a small graph file imports neither numba nor
pyarrow nor multiformats (0.15 s, 0.1-0.2 s and 0.04 s of a whole run), and the
graph's kernels still compile and agree with numpy when first called."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("numba", "llvmlite", "pyarrow", "multiformats", "pandas", "scipy")


def _run(code: str, *args: str) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    out: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


_READ = f"""
import json, sys
from focusflow.graph.importers import read_graph
g = read_graph(sys.argv[1], sys.argv[2], skip_invalid=True, cache=False)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
print(json.dumps({{"links": g.n_links, "heavy": heavy}}))
"""


def test_reading_the_bostrom_sample_imports_no_heavy_module(sample_path):
    out = _run(_READ, str(sample_path), "bostrom")
    assert out["links"] == 1279
    assert out["heavy"] == []


def test_reading_a_small_edge_list_imports_no_heavy_module(tmp_path):
    f = tmp_path / "edges.tsv"
    f.write_text("a\tb\t2\nb\tc\t0.5\nc\ta\t1\n")
    out = _run(_READ, str(f), "edges")
    assert out["links"] == 3
    assert out["heavy"] == []


def test_kernels_compile_on_first_call_calling_other_lazy_kernels():
    """``positions_in`` calls ``search_sorted`` inside numba: called first in a
    fresh process, the callee is still lazy and must be resolved for numba."""
    code = """
import json, sys
import numpy as np
from focusflow.graph import csr
before = "numba" in sys.modules
keys = np.array([1, 3, 5, 9], dtype=np.int64)
values = np.array([9, 2, 3, 1, 10], dtype=np.int64)
got = csr.positions_in(keys, values).tolist()
left = csr.search_sorted(keys, values, False).tolist()
want_left = np.searchsorted(keys, values, side="left").tolist()
from numba.core.dispatcher import Dispatcher
print(json.dumps({"before": before, "got": got, "left": left, "want_left": want_left,
                  "dispatcher": isinstance(csr.positions_in, Dispatcher)}))
"""
    out = _run(code)
    assert out["before"] is False
    assert out["got"] == [3, -1, 1, 0, -1]
    assert out["left"] == out["want_left"]
    assert out["dispatcher"] is True  # the module's name now holds numba's dispatcher
