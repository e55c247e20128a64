"""Full nodes beside four validators: real processes, real QUIC, on loopback.

``focusflow testnet --validators 4 --full-nodes 2`` runs six processes. What an
app builder relies on: a full node serves the same blocks, state roots and focus
roots as the validators at every height (it re-executes every block, focus
included), accepts transactions for the network, never signs, survives SIGKILL
and a restart, and a full node that joins late (its home made by
``focusflow node start --full --genesis``) catches up to the same roots.
"""

from __future__ import annotations

import json

import httpx
import pytest

from focusflow.node.home import Home, init_testnet
from focusflow.testing.testnet import LateFullNode, LocalTestnet, free_base_port

#: Blocks between the validators' snapshots here, so a late node finds one soon.
SNAPSHOT_INTERVAL = 5


@pytest.mark.slow  # seven processes, a kill and a snapshot sync: about 2 minutes
def test_full_nodes_follow_serve_survive_a_kill_and_join_late(tmp_path):
    # The homes are made first to set the snapshot interval; `focusflow testnet`
    # then runs them as they are.
    homes = init_testnet(tmp_path / "tn", 4, free_base_port(6), full_nodes=2)
    for home in homes[:4]:
        config = home.load_config()
        config["snapshot_interval"] = SNAPSHOT_INTERVAL
        home.config.write_text(json.dumps(config))
    net = LocalTestnet(tmp_path / "tn", 4, full_nodes=2)
    late = None
    try:
        validators, full = range(4), (4, 5)
        everyone = range(6)
        doc = json.loads((tmp_path / "tn" / "testnet.json").read_text())
        assert [f["name"] for f in doc["full_nodes"]] == ["f0", "f1"]
        assert (tmp_path / "tn" / "genesis.json").exists()
        for k in full:
            status = net.status(k)
            assert status["role"] == "full" and status["validator"] is None
        assert {net.status(k)["role"] for k in validators} == {"validator"}

        # A transaction sent to a full node reaches the validators and commits;
        # every node then serves the same block, state root and focus root.
        h1 = net.wait_tx(4, net.submit_links(4, "alpha", 0), 60)
        net.wait_height(everyone, h1, 30)
        net.assert_agree(everyone, h1)
        assert net.block(5, h1)[2] != net.block(5, h1 - 1)[2]  # the links moved focus

        # It never signs: no write-ahead log, and the validators saw votes of four keys only.
        for k in full:
            assert not (net.homes[k] / "consensus.wal").exists()
        body = net.validator_set(0)
        assert len(body["validators"]) == 4
        signers = {v["address"] for v in body["validators"]}
        assert not {Home(net.homes[k]).load_node_key().address for k in full} & signers

        # SIGKILL a full node; the network goes on; it restarts and catches up.
        net.kill(5)
        h2 = net.wait_tx(0, net.submit_links(0, "beta", 1), 30)
        net.wait_height((0, 4), h2, 20)
        net.restart(5)
        top = max(net.height(k) for k in validators)
        net.wait_height(everyone, top + 1, 60)
        net.assert_agree(everyone, top + 1)

        # A full node made later, from the genesis file and one validator's
        # address, starts from a verified snapshot and block-syncs the rest.
        net.wait_height((0,), 2 * SNAPSHOT_INTERVAL + 1, 60)
        v0 = json.loads((net.homes[0] / "config.json").read_text())
        v0_id = Home(net.homes[0]).load_validator_key().public_key.hex()
        late = LateFullNode(
            tmp_path / "late",
            tmp_path / "tn" / "genesis.json",
            f"{v0_id}@{v0['p2p']}",
            tmp_path / "late.log",
        )
        target = net.height(0)
        height = late.wait_height(target)
        log_text = (tmp_path / "late.log").read_text()
        assert height >= target, log_text[-3000:]
        synced = late.synced_from()
        assert synced, log_text[-3000:]
        base = synced[0]["height"]
        assert base >= SNAPSHOT_INTERVAL and base % SNAPSHOT_INTERVAL == 0
        # Blocks below the snapshot were never fetched; from it on, every root agrees.
        gone = httpx.get(f"{late.api}/v1/blocks/{base - 1}", timeout=5)
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "unknown_block"
        for h in range(base, target + 1):
            block = httpx.get(f"{late.api}/v1/blocks/{h}", timeout=5).json()
            assert (block["hash"], block["state_root"], block["focus_root"]) == net.block(0, h)
    finally:
        if late is not None:
            late.stop()
        net.stop()
