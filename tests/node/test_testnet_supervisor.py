"""``focusflow testnet`` when a validator dies: a real testnet process, one of its
validator processes killed with SIGKILL.

Without ``--restart`` the testnet says so in one line naming the validator, its
exit status and its log (``DIR/v0/node.log``) and starts nothing. With
``--restart`` it says so, starts the validator again on the same home after
its backoff, rewrites testnet.json with the new pid, and the chain goes on.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from focusflow.testing.testnet import START_TIMEOUT, LocalTestnet


def log_of(net: LocalTestnet) -> str:
    return (net.home.parent / "testnet.log").read_text(errors="replace")


def wait_for(what, timeout: float, why) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, why()
        time.sleep(0.2)


def killed_line(net: LocalTestnet) -> str:
    """Kill validator 0 with SIGKILL; the testnet's line about it."""
    os.kill(net.pid(0), signal.SIGKILL)
    wanted = f"v0 exited with code -9 (SIGKILL); its log: {net.home / 'v0' / 'node.log'}"
    wait_for(lambda: wanted in log_of(net), 30, lambda: log_of(net)[-3000:])
    (line,) = [line for line in log_of(net).splitlines() if wanted in line]
    return line


@pytest.fixture
def testnet_of(tmp_path):
    nets: list[LocalTestnet] = []

    def start(*extra: str) -> LocalTestnet:
        nets.append(LocalTestnet(tmp_path / "tn", 1, extra))
        return nets[-1]

    yield start
    for net in nets:
        net.stop()


def test_a_dead_validator_is_reported_and_not_restarted_by_default(testnet_of):
    net = testnet_of()
    line = killed_line(net)
    assert "WARN" in line and "not restarted: run with --restart" in line, line
    time.sleep(3)  # longer than the first restart's backoff
    assert "restarted (pid" not in log_of(net)
    assert json.loads((net.home / "testnet.json").read_text())["validators"][0]["pid"] == net.pid(0)
    assert net.proc.poll() is None  # the testnet itself runs on


def test_with_restart_a_dead_validator_is_started_again(testnet_of):
    net = testnet_of("--restart")
    net.wait_height([0], 2, START_TIMEOUT)
    old = net.pid(0)
    line = killed_line(net)
    assert "restarting it in 1 s" in line, line
    doc_path: Path = net.home / "testnet.json"

    def new_pid() -> bool:
        return json.loads(doc_path.read_text())["validators"][0]["pid"] != old

    wait_for(new_pid, 30, lambda: log_of(net)[-3000:])
    assert "v0 restarted (pid" in log_of(net)
    net.wait_up(0, time.monotonic() + START_TIMEOUT)
    height = net.height(0)
    net.wait_height([0], height + 2, 60)
