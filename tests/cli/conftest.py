"""Fixtures: a devnet process per test module, and the environment a user's shell has
after the devnet printed where its home is."""

from __future__ import annotations

import pytest

from focusflow.testing.devnet import start_devnet


@pytest.fixture(scope="module")
def devnet(tmp_path_factory):
    net = start_devnet(tmp_path_factory.mktemp("clinet") / "home", timeout=240)
    yield net
    net.stop()


@pytest.fixture
def env(devnet, monkeypatch):
    """The CLI finds the devnet through its home (node.json), as a user's would."""
    monkeypatch.setenv("FOCUSFLOW_HOME", str(devnet.home))
    monkeypatch.delenv("FOCUSFLOW_PASSPHRASE", raising=False)
    return devnet
