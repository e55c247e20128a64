"""Fixtures: a running devnet process per test (module-scoped where tests only read)."""

from __future__ import annotations

import pytest

from focusflow.testing.devnet import start_devnet


@pytest.fixture
def devnet(tmp_path):
    net = start_devnet(tmp_path / "home")
    yield net
    net.stop()


@pytest.fixture(scope="module")
def shared_devnet(tmp_path_factory):
    net = start_devnet(tmp_path_factory.mktemp("devnet") / "home")
    yield net
    net.stop()
