"""The consensus tests' fixture (the harness itself is in harness.py)."""

from __future__ import annotations

import pytest

from tests.consensus.harness import Harness, make_harness


@pytest.fixture
def harness() -> Harness:
    h = make_harness()
    h.machine.start_height(1, h.vs)
    return h
