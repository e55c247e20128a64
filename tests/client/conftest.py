"""Fixtures: one devnet process for the client's tests against a real node."""

from __future__ import annotations

import pytest

from focusflow.testing.devnet import start_devnet


@pytest.fixture(scope="package")
def devnet(tmp_path_factory):
    net = start_devnet(tmp_path_factory.mktemp("clientnet") / "home", timeout=240)
    yield net
    net.stop()
