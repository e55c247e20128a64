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


LAZY_IN_NODE = ("duckdb", "pandas", "eth_keys", "eth_utils", "rlp")


def test_a_node_loads_query_and_ethereum_libraries_when_first_used():
    """A validator imports the API (the query routes among it) and the chain's
    modules (the EVM's among them) at start; DuckDB and pandas wait for the
    first query, eth-keys, eth-utils and rlp for the first Ethereum transaction
    (together 1.4 s of every node's start here)."""
    probe = (
        "import json, sys\n"
        "import focusflow.node.network\n"
        f"print(json.dumps(sorted(m for m in {LAZY_IN_NODE!r} if m in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, timeout=120
    )
    assert json.loads(out.stdout) == []
