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


# The files that take longest, longest first (per-file totals of a full run
# with --durations). `./dev test` hands whole files to two workers in
# collection order, each taking the next file when it frees up; a long file
# collected late would run alone at the end while the other worker idles, so
# these go first and the many short files fill in behind them.
LONGEST_FIRST = (
    "tests/node/test_mixed_builds.py",
    "tests/adversarial/test_hostile_proposals.py",
    "tests/adversarial/test_vanishing_proposer.py",
    "tests/adversarial/test_timestamps.py",
    "tests/adversarial/test_proposals.py",
    "tests/node/test_testnet.py",
    "tests/node/test_devnet.py",
    "tests/node/test_bootstrap.py",
    "tests/node/test_rollups.py",
    "tests/node/test_openapi.py",
    "tests/chain/test_crash.py",
    "tests/adversarial/test_sync.py",
    "tests/node/test_blob_net.py",
    "tests/query/test_provenance.py",
    "tests/focus/test_properties.py",
    "tests/adversarial/test_gossip.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Collect the longest files first, keeping every file's own order."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    root = config.rootpath

    def key(item: pytest.Item) -> int:
        return rank.get(item.path.relative_to(root).as_posix(), len(rank))

    items.sort(key=key)


@pytest.fixture
def sample_path() -> Path:
    return SAMPLE


@pytest.fixture
def shared_sample_path() -> Path:
    if not SHARED_SAMPLE.exists():
        pytest.skip(f"shared data not present at {SHARED_SAMPLE}")
    return SHARED_SAMPLE
