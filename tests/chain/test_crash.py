"""SIGKILL during block commits: the store reopens at the last committed block, intact."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from focusflow.testing.chains import new_chain

ROOT = Path(__file__).resolve().parents[2]


def kill_at_random(home: Path, seed: int, rng: random.Random) -> tuple[int, str]:
    """Run the writer, kill it after a random number of commits plus a random delay."""
    # src first: the tree under test, not whatever checkout the venv installed.
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        "NUMBA_NUM_THREADS": "1",
    }
    target = rng.randint(1, 4)
    last = (0, "")
    deadline = time.monotonic() + 120
    # leaving the with block closes the writer's stdout pipe and waits for it
    with subprocess.Popen(
        [sys.executable, "-m", "tests.chain.crash_writer", str(home), str(seed)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    ) as proc:
        try:
            for line in proc.stdout:
                _, h, root = line.split()
                last = (int(h), root)
                if int(h) >= target or time.monotonic() > deadline:
                    break
            time.sleep(rng.uniform(0.0, 0.3))  # somewhere inside the next commit, or not
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
    return last


def check_reopened(home: Path, last_height: int, last_root: str) -> int:
    chain = new_chain(home)
    try:
        assert chain.height >= last_height  # nothing committed is lost
        if chain.height == last_height:
            assert chain.head.state_root.hex() == last_root
        assert chain.store.recompute_root() == chain.head.state_root
        with chain.reader() as r:
            assert r.height == chain.height and r.root == chain.head.state_root
        return chain.height
    finally:
        chain.store.close()


@pytest.mark.parametrize("runs", [6])
def test_sigkill_during_commits_loses_nothing(tmp_path, runs):
    rng = random.Random(11)
    home = tmp_path / "node"
    for _ in range(runs):
        last_height, last_root = kill_at_random(home, 5, rng)
        check_reopened(home, last_height, last_root)


@pytest.mark.slow
def test_sigkill_soak(tmp_path):
    rng = random.Random(12)
    home = tmp_path / "node"
    for _ in range(40):
        last_height, last_root = kill_at_random(home, 6, rng)
        check_reopened(home, last_height, last_root)
