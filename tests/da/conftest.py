"""Shared fixtures; the 512 x 512 Celestia vector (~15 s, 2 GB) is marked slow (`-m slow`)."""

from __future__ import annotations

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
