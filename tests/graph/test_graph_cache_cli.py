"""The commands that read graph files use the cache, and ``--no-cache`` keeps them off it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from focusflow.graph.graph_cache import ENV, MIN_SOURCE_BYTES, SUFFIX


@pytest.fixture(scope="module")
def big_edge_list(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An edge list just past the size from which files are cached."""
    path = tmp_path_factory.mktemp("cli-cache") / "edges.tsv"
    lines = [f"v{i % 997}\tv{(i * 7 + 1) % 1009}\t{1 + i % 5}" for i in range(100_000)]
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size > MIN_SOURCE_BYTES
    return path


def focusflow(*args: object, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "focusflow", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_focus_compute_writes_then_uses_the_cache(big_edge_list: Path) -> None:
    cache = big_edge_list.with_name(big_edge_list.name + SUFFIX)
    cache.unlink(missing_ok=True)
    plain = focusflow("focus", "compute", big_edge_list, "--top", 5, "--no-cache")
    assert not cache.exists()
    off = focusflow("focus", "compute", big_edge_list, "--top", 5, env={ENV: "0"})
    assert not cache.exists()
    first = focusflow("focus", "compute", big_edge_list, "--top", 5)
    assert cache.exists()
    written = cache.stat().st_mtime_ns
    second = focusflow("focus", "compute", big_edge_list, "--top", 5)
    assert cache.stat().st_mtime_ns == written  # read, not written again
    assert plain == off == first == second


def test_datalog_takes_no_cache(big_edge_list: Path) -> None:
    cache = big_edge_list.with_name(big_edge_list.name + SUFFIX)
    cache.unlink(missing_ok=True)
    program = 'r(y) :- link("v1", y).'
    args = ("query", "datalog", program, "--graph", big_edge_list, "-o", "r")
    plain = focusflow(*args, "--no-cache")
    assert not cache.exists()
    assert focusflow(*args) == plain
    assert cache.exists()
    assert focusflow(*args) == plain
