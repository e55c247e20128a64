"""Shared fixtures: paths of the shipped and shared data, small random graphs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src" / "focusflow" / "data" / "bostrom-sample-cyberlinks.csv"
SHARED_SAMPLE = ROOT.parent / "shared" / "data" / "bostrom-sample-cyberlinks.csv"

# Key files written by the suite (and the processes it starts) use a cheap scrypt:
# the real cost (2**17, ~0.5 s a derivation) times hundreds of keys would dominate
# the run. tests/core/test_keystore.py checks the real default without it.
os.environ.setdefault("FOCUSFLOW_INSECURE_TEST_SCRYPT_N", str(2**10))


@pytest.fixture
def sample_path() -> Path:
    return SAMPLE


@pytest.fixture
def shared_sample_path() -> Path:
    if not SHARED_SAMPLE.exists():
        pytest.skip(f"shared data not present at {SHARED_SAMPLE}")
    return SHARED_SAMPLE


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
