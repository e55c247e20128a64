"""The CLI and the node start without the heavy libraries only some work uses.

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
LAZY_IN_NODE = ("duckdb", "pandas", "eth_keys", "eth_utils", "rlp")


def _loaded(statement: str, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` a fresh interpreter holds after ``statement``."""
    probe = (
        "import json, sys\n"
        f"{statement}\n"
        f"print(json.dumps(sorted(m for m in {modules!r} if m in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, timeout=120
    )
    return json.loads(out.stdout)


def test_help_loads_none_of_the_heavy_libraries():
    assert _loaded("from focusflow.node.main import app", HEAVY) == []


def test_a_node_loads_query_and_ethereum_libraries_when_first_used():
    """A validator imports the API (the query routes among it) and the chain's
    modules (the EVM's among them) at start; DuckDB and pandas wait for the
    first query, eth-keys, eth-utils and rlp for the first Ethereum transaction
    (together 1.4 s of every node's start here)."""
    assert _loaded("import focusflow.node.network", LAZY_IN_NODE) == []


def test_a_new_devnet_home_derives_its_ethereum_accounts_without_eth_account(tmp_path):
    """A new devnet funds the test mnemonic's accounts and prints them at every
    start; eth-account's import (its key-file module loads py_ecc's BLS tables)
    cost each start about a second, so they are derived with hashlib and
    coincurve (``node.hd_wallet``)."""
    statement = (
        "from pathlib import Path\n"
        "from focusflow.node.home import eth_dev_accounts, init_devnet\n"
        f"init_devnet(Path({str(tmp_path / 'home')!r}))\n"
        "eth_dev_accounts()"
    )
    assert _loaded(statement, ("eth_account", "eth_keyfile", "py_ecc")) == []
