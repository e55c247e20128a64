"""The CLI starts without the heavy libraries only some commands use.

Every command module is imported to build ``focusflow --help``; one that
imported numba, numpy, scipy, pyarrow or the HTTP client at module level
would make every command, ``--help`` included, pay for it (numba alone is
about a second with its first dispatch).
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("numba", "numpy", "scipy", "pyarrow", "httpx", "duckdb", "onnxruntime", "wgpu")


def test_help_loads_none_of_the_heavy_libraries():
    probe = (
        "import json, sys\n"
        "from focusflow.node.main import app\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, timeout=120
    )
    assert json.loads(out.stdout) == []


def test_a_node_loads_the_query_engines_libraries_with_its_first_query_only():
    """A validator imports the API (the query routes among it) at start; DuckDB
    and pandas (0.7 s of every node's start here) wait for the first query."""
    probe = (
        "import json, sys\n"
        "import focusflow.node.network\n"
        "print(json.dumps(sorted(m for m in ('duckdb', 'pandas') if m in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, timeout=120
    )
    assert json.loads(out.stdout) == []
