"""Helpers the tests import (fixtures stay in conftest.py): data paths, random graphs,
a child process with its own numba cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src" / "focusflow" / "data" / "bostrom-sample-cyberlinks.csv"
SHARED_SAMPLE = ROOT.parent / "shared" / "data" / "bostrom-sample-cyberlinks.csv"


def random_weighted(n: int, m: int, seed: int, *, zero_frac: float = 0.1, dup_frac: float = 0.1):
    """Random directed multigraph with self-loops, duplicates, zero weights, dangling
    and isolated nodes (the last ~10% of ids get no edges at all)."""
    rng = np.random.default_rng(seed)
    live = max(2, int(n * 0.9))
    src = rng.integers(0, live, m)
    dst = rng.integers(0, live, m)
    w = rng.random(m) + 0.05
    w[rng.random(m) < zero_frac] = 0.0
    k = int(m * dup_frac)
    if k:
        pick = rng.integers(0, m, k)
        src = np.concatenate([src, src[pick]])
        dst = np.concatenate([dst, dst[pick]])
        w = np.concatenate([w, rng.random(k)])
    return src, dst, w


def run_with_numba_cache(probe: str, cache: Path, timeout: float = 300) -> str:
    """What the Python code ``probe`` prints, run in a child process whose numba
    cache is the folder ``cache``: an empty one makes it compile every kernel it
    calls, where this process may load them from the cache (``./dev`` fills it
    ahead), and a loaded kernel lists none of the callees compiled into it."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
        cwd=ROOT,
    )
    return done.stdout


def cli_program(argv: list[str], missing: tuple[str, ...], watched: tuple[str, ...] = ()) -> str:
    """Python source running ``focusflow argv`` in one interpreter (the console
    script would end the process before a report) with the ``missing`` packages
    unimportable. With ``watched``, its last stdout line is ``{"loaded": [...]}``:
    the modules it loaded that are a watched name or inside one."""
    return (
        "import json, sys\n"
        f"for name in {list(missing)!r}: sys.modules[name] = None\n"
        "from focusflow.node.main import cli_main\n"
        "try:\n"
        f"    cli_main({argv!r})\n"
        "finally:\n"
        f"    watched = {list(watched)!r}\n"
        "    if watched:\n"
        "        loaded = sorted(m for m in sys.modules if sys.modules[m] is not None\n"
        "                        and any(m == w or m.startswith(w + '.') for w in watched))\n"
        "        print(json.dumps({'loaded': loaded}))\n"
    )
