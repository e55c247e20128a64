"""A command loads what its work needs, run as a user runs it: ``--help`` no
numerical library at all, a solve over a small edge list neither pandas nor
DuckDB nor the node's web stack (each a fraction of a second of every call)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import cli_program

WATCHED = ("numpy", "numba", "scipy", "pandas", "pyarrow", "duckdb", "httpx", "fastapi", "uvicorn")


def loaded(argv: list[str]) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", cli_program(argv, (), WATCHED)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    modules = json.loads(proc.stdout.strip().splitlines()[-1])["loaded"]
    return proc, {m.split(".")[0] for m in modules}


def test_help_runs_without_the_numerical_libraries():
    for argv in (["--help"], ["focus", "--help"], ["query", "datalog", "--help"]):
        proc, heavy = loaded(argv)
        assert "Usage" in proc.stdout, proc.stderr
        assert heavy == set(), argv


def test_a_small_solve_loads_neither_pandas_nor_duckdb_nor_the_web_stack(tmp_path):
    edges = tmp_path / "edges.tsv"
    edges.write_text("".join(f"p{i} p{(i * 3 + 1) % 7}\n" for i in range(10)))
    proc, heavy = loaded(["focus", "compute", str(edges), "--top", "3"])
    assert "converged" in proc.stderr, proc.stderr
    assert heavy.isdisjoint({"pandas", "duckdb", "httpx", "fastapi", "uvicorn"}), heavy
