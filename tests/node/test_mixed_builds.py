"""Nodes of two builds of focusflow on one testnet: real processes on loopback.

A network is upgraded one node at a time, so nodes whose code differs in
what decides no state (a docstring, a function off the consensus path) must
share their focus state: a node restarted on the other build starts from the
focus checkpoint the first build wrote, and a node joining late state-syncs
from a node of the other build. Before the focus state was data, both were
refused (the checkpoint and the snapshot named a fingerprint of every source
file) and the node replayed every block from genesis, or could not join.

The other build is this source tree copied to a temporary directory with a
changed docstring in the focus engine and a changed body of
``focus_commit.warm_up`` (which compiles the kernels before a node serves).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import httpx

from focusflow.node.home import Home, init_testnet
from focusflow.testing.testnet import LateFullNode, LocalTestnet, free_base_port
from tests.helpers import ROOT

SNAPSHOT_INTERVAL = 5


def other_build(target: Path) -> Path:
    """This tree's sources with a docstring and a non-consensus function
    changed; the ``src`` directory to run them from."""
    src = target / "src"
    # The compiled bytecode and numba caches go too: they are checked against
    # their source files (mtime and size), so the two changed files compile
    # again and the rest need not (compiling every kernel cold made this test
    # take 66 s instead of 16).
    shutil.copytree(ROOT / "src", src)
    engine = src / "focusflow" / "focus" / "engine.py"
    text = engine.read_text()
    engine.write_text(text.replace('"""FocusEngine:', '"""FocusEngine (another build):', 1))
    commit = src / "focusflow" / "chain" / "focus_commit.py"
    text = commit.read_text()
    warm = "    state.view(2)\n"
    assert text.count(warm) == 1
    commit.write_text(text.replace(warm, warm + "    state.view(2, state.view(2))\n"))
    return src


def test_nodes_of_two_builds_share_checkpoints_and_snapshots(tmp_path):
    other = other_build(tmp_path / "other")
    homes = init_testnet(tmp_path / "tn", 4, free_base_port(4))
    for home in homes:
        config = home.load_config()
        config["snapshot_interval"] = SNAPSHOT_INTERVAL
        home.config.write_text(json.dumps(config))
    net = LocalTestnet(tmp_path / "tn", 4)
    late = None
    try:
        everyone = range(4)
        h1 = net.wait_tx(0, net.submit_links(0, "alpha", 0), 60)
        net.wait_height(everyone, h1, 30)

        # Validator 3 stops cleanly (its focus checkpoint is written) and comes
        # back on the other build: it starts from that checkpoint.
        net.terminate(3)
        stopped = int(re.findall(r"focus checkpoint written.*?height=(\d+)", _log(net, 3))[-1])
        net.restart(3, src=other)
        opened = re.findall(r"validator home opened.*restored_from=(\w+)", _log(net, 3))
        assert opened[-1] == str(stopped), _log(net, 3)[-3000:]
        h2 = net.wait_tx(3, net.submit_links(3, "beta", 1), 60)
        net.wait_height(everyone, h2 + 1, 60)
        net.assert_agree(everyone, h2 + 1)

        # A full node of the first build joins late from validator 3 alone (the
        # other build): it installs a snapshot that build wrote and follows.
        net.wait_height((3,), h2 + 2 * SNAPSHOT_INTERVAL, 90)
        v3 = json.loads((net.homes[3] / "config.json").read_text())
        v3_id = Home(net.homes[3]).load_validator_key().public_key.hex()
        late = LateFullNode(
            tmp_path / "late",
            tmp_path / "tn" / "genesis.json",
            f"{v3_id}@{v3['p2p']}",
            tmp_path / "late.log",
            ROOT / "src",
        )
        target = net.height(3)
        height = late.wait_height(target)
        assert height >= target
        synced = late.synced_from()
        assert synced, late.log.read_text()[-3000:]
        base = synced[0]["height"]
        assert base > stopped and base % SNAPSHOT_INTERVAL == 0
        for h in range(base, target + 1):
            block = httpx.get(f"{late.api}/v1/blocks/{h}", timeout=5).json()
            assert (block["hash"], block["state_root"], block["focus_root"]) == net.block(0, h)
    finally:
        if late is not None:
            late.stop()
        net.stop()


def _log(net: LocalTestnet, k: int) -> str:
    return (net.homes[k] / "node.log").read_text(errors="replace")
