"""Shared fixtures: paths of the shipped and shared data (helpers live in tests/helpers.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import SAMPLE, SHARED_SAMPLE

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
