"""Shared fixtures; the 512 x 512 Celestia vector (~15 s, 2 GB) runs with FOCUSFLOW_SLOW=1."""

from __future__ import annotations

import os
import random

import pytest

from focusflow.da import extend, square_from_block


@pytest.fixture(scope="session")
def block_square():
    """Builds the extended square of a block of ``txs`` random transactions of ``size`` bytes."""

    def build(seed: int, txs: int, size: int):
        rng = random.Random(seed)
        return extend(square_from_block([rng.randbytes(size) for _ in range(txs)]))

    return build


def pytest_collection_modifyitems(config, items):
    if os.environ.get("FOCUSFLOW_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow; set FOCUSFLOW_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords and "tests/da/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(skip)
