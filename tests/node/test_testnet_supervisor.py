"""``focusflow testnet`` when a validator dies.

A real testnet process run with ``--restart``, its validator killed with SIGKILL:
the testnet says so in one line naming the validator, its exit status and its
log (``DIR/v0/node.log``), starts it again on the same home after its backoff,
rewrites testnet.json with the new pid, and the chain goes on. The supervisor's
other choices are checked over real child processes (cheaper than a testnet
each): without restart an exit is reported and nothing is started; a node that
exits at every start is given up on after its restarts.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from focusflow.node.supervisor import Supervisor
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


def child(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code])


def test_without_restart_an_exit_is_reported_and_nothing_started(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="focusflow.node")
    started: list[Path] = []
    proc = child("import time; time.sleep(60)")
    sup = Supervisor(
        [("v3", tmp_path / "v3", proc)], lambda home: started.append(home) or child("0")
    )
    sup.poll(0.0)
    assert caplog.records == []
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    for t in (1.0, 2.0, 100.0):
        sup.poll(t)
    (record,) = caplog.records
    assert record.getMessage() == (
        f"v3 exited with code -9 (SIGKILL); its log: {tmp_path / 'v3' / 'node.log'} "
        "(not restarted: run with --restart)"
    )
    assert started == [] and sup.procs == [proc]


def test_a_node_that_exits_at_every_start_is_given_up_on(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="focusflow.node")
    crash = "import sys; sys.exit(3)"
    first = child(crash)
    first.wait(10)
    sup = Supervisor(
        [("v1", tmp_path / "v1", first)], lambda home: child(crash), restart=True, max_restarts=2
    )
    now = 0.0
    for _ in range(40):  # the backoffs: 1 s, then 2 s
        sup.poll(now)
        sup.procs[0].wait(10)
        now += 0.5
    lines = [r.getMessage() for r in caplog.records]
    assert sum("exited with code 3" in line for line in lines) == 3, lines
    assert sum(" restarted (pid " in line for line in lines) == 2, lines
    assert "restarting it in 1 s" in lines[0] and "restarting it in 2 s" in lines[2], lines
    assert lines[-1].endswith("restarted 2 times in a row, not again"), lines
    assert caplog.records[-1].levelname == "ERROR"
