"""``focusflow hvm run --backend wgpu`` on a machine whose only WebGPU adapter is
the CPU (Mesa's llvmpipe, as in CI), run as a process: the run is right but far
slower than numba, so one warning line on stderr says so and names numba; a
numba run prints no warning. Skipped where wgpu finds a real GPU or no adapter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from focusflow.focus.backends.webgpu_storage import wgpu_available

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = ROOT / "tests" / "rewrite" / "programs" / "list.hvm"


def hvm(*args: object) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run(
        [sys.executable, "-m", "focusflow", "hvm", "run", PROGRAM, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_a_cpu_adapter_is_named_with_the_faster_choice():
    if not wgpu_available()[0]:
        pytest.skip("wgpu finds no adapter here")
    if wgpu_available(require_gpu=True)[0]:
        pytest.skip("wgpu runs on a real GPU here")
    slow = hvm("--backend", "wgpu", "--json")
    assert slow.returncode == 0, slow.stderr
    warnings = [line for line in slow.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, slow.stderr
    assert "CPU adapter" in warnings[0] and "--backend numba" in warnings[0], warnings
    fast = hvm("--json")
    assert fast.returncode == 0 and "warning:" not in fast.stderr, fast.stderr
    # the same answer either way: the warning is about speed only
    assert json.loads(slow.stdout)["interactions"] == json.loads(fast.stdout)["interactions"]
