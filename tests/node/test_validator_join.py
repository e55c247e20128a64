"""A validator joins a running network at an epoch boundary (real processes, loopback).

What an operator relies on: ``focusflow node init`` makes a home for the new
validator, ``focusflow tx validator register --stake`` bonds and registers its
key through any validator's API, and from the first epoch boundary after that
the network's set holds it: the other validators accept its connection, it
syncs the blocks it missed, and its signatures are in the certificates of the
blocks that follow, with the same roots everywhere.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx

from focusflow.chain import Msg, make_tx
from focusflow.core.keys import KeyPair, decode_address
from focusflow.core.keystore import Keystore
from focusflow.testing.process import node_env
from focusflow.testing.testnet import LocalTestnet, free_base_port

EPOCH = 5
STAKE = 10**9  # power 1000 at the testnet's power_unit, like each genesis validator


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "focusflow", *args],
        capture_output=True,
        text=True,
        env=node_env(),
        timeout=timeout,
        check=False,
    )


def test_a_registered_validator_joins_at_the_next_epoch(tmp_path):
    net = LocalTestnet(tmp_path / "tn", 3, extra=("--epoch-blocks", str(EPOCH)))
    try:
        peers = []
        for k in range(3):
            config = json.loads((net.home / f"v{k}" / "config.json").read_text())
            key = KeyPair.load(net.home / f"v{k}" / "validator_key")
            peers += ["--peer", f"{key.public_key.hex()}@{config['p2p']}"]
        port = free_base_port(1)
        home = net.home / "v3"
        made = cli(
            "node", "init", "--home", str(home), "--genesis", str(net.home / "v0" / "genesis.json"),
            "--p2p", f"127.0.0.1:{port}", "--api", f"127.0.0.1:{port + 1}", "--name", "v3", *peers,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        joiner = KeyPair.load(home / "validator_key")
        assert joiner.address in made.stdout
        # A light client trusts the genesis alone and verifies the headers so far.
        net.wait_height(range(3), 2, 30)
        light = str(tmp_path / "light")
        genesis_file = str(net.home / "v0" / "genesis.json")
        first = cli("light", "sync", "--node", net.apis[0], "--genesis", genesis_file,
                    "--home", light, "--json")  # fmt: skip
        assert first.returncode == 0, first.stdout + first.stderr
        assert json.loads(first.stdout)["height"] >= 1

        # The dev key funds the joiner; the joiner bonds and registers in one tx.
        dev = Keystore(net.home / "v0" / "keys").load("dev")
        chain_id = net.status(0)["chain_id"]
        nonce = httpx.get(f"{net.apis[0]}/v1/accounts/{dev.address}", timeout=5).json()
        fund = make_tx(
            dev,
            chain_id,
            nonce["pending_nonce"],
            10_000,
            [Msg("send", {"to": decode_address(joiner.address), "amount": 2 * STAKE})],
        )
        r = httpx.post(f"{net.apis[0]}/v1/txs", json={"tx": fund.encoded.hex()}, timeout=5)
        assert r.status_code in (200, 202), r.text
        net.wait_tx(0, fund.hash.hex(), 30)
        # Without stake, the CLI refuses before sending anything.
        refused = cli("tx", "validator", "register", "--home", str(home), "--node", net.apis[1])
        assert refused.returncode != 0 and "nothing was sent" in refused.stderr
        done = cli(
            "tx", "validator", "register", "--home", str(home), "--node", net.apis[1],
            "--stake", str(STAKE), "--name", "v3", "--wait", "--json",
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        registered_at = json.loads(done.stdout)["height"]
        # The end of the registering block itself may be the boundary.
        boundary = -(-registered_at // EPOCH) * EPOCH

        k = net.add_node(home)
        # From the boundary on, every node's set holds four, the joiner included.
        net.wait_height(range(3), boundary + 1, 60)
        for i in range(3):
            body = net.validator_set(i)
            assert body["total_power"] == 4000, body
            assert joiner.address in {v["address"] for v in body["validators"]}
        # The joiner catches up and signs: its key is in later certificates.
        deadline = time.monotonic() + 90
        signed_at = None
        while signed_at is None and time.monotonic() < deadline:
            top = net.height(0)
            for h in range(boundary + 1, top + 1):
                block = httpx.get(f"{net.apis[0]}/v1/blocks/{h}", timeout=5).json()
                if joiner.public_key.hex() in {s["public_key"] for s in block["commit"]}:
                    signed_at = h
                    break
            time.sleep(0.3)
        assert signed_at is not None, f"the joiner never signed a commit\n{net.logs()}"
        net.wait_height(range(4), signed_at + 1, 60)
        net.assert_agree(range(4), signed_at + 1)
        blocks = [
            httpx.get(f"{net.apis[k]}/v1/blocks/{h}", timeout=5).json()
            for h in (boundary, boundary + 1)
        ]
        changed = [e for e in blocks[0]["events"] if e["type"] == "validator_set"]
        assert changed and changed[0]["height"] == boundary + 1
        assert blocks[0]["validators_hash"] != blocks[1]["validators_hash"]

        # The light client follows across the set change (from another node, a
        # third as witness), and the joiner's bond is proven against its state root.
        after = cli("light", "sync", "--node", net.apis[1], "--witness", net.apis[2],
                    "--home", light, "--json")  # fmt: skip
        assert after.returncode == 0, after.stdout + after.stderr
        synced = json.loads(after.stdout)
        assert synced["height"] > boundary + 1, synced
        account = cli("light", "query", "balance", joiner.address, "--node", net.apis[k],
                      "--home", light, "--json")  # fmt: skip
        assert account.returncode == 0, account.stdout + account.stderr
        proven = json.loads(account.stdout)
        assert proven["verified"] is True and proven["bonded"] == STAKE, proven
    finally:
        net.stop()
