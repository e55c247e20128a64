"""Networks of real validator processes on loopback for the attack tests, each
stopped (every process killed) when its test ends."""

from __future__ import annotations

import pytest

from focusflow.testing.testnet import LocalTestnet
from tests.adversarial.attacknet import AttackNet


@pytest.fixture
def net(tmp_path):
    """Four validators any of which a test may swap for a byzantine process."""
    net = AttackNet(tmp_path / "tn", 4)
    yield net
    net.stop()


@pytest.fixture
def testnet(tmp_path):
    """Four plain validators (an attacker connects as a fifth process)."""
    net = LocalTestnet(tmp_path / "tn", 4)
    yield net
    net.stop()
