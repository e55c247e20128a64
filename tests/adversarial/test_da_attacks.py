"""Data-availability attacks on real node processes on loopback.

Homes come from ``focusflow.node.home.init_testnet``; each node runs as
``python -m focusflow node start --home DIR`` (a full node's home says
``"full": true``), with a tests-only fault plan (``focusflow.node.faults``)
turning one validator into the attacker:

* ``da_withhold_proposals``: a validator that publishes its proposals but serves
  none of their shares. The honest validators sample each proposal from its
  proposer over QUIC before they prevote, so none of its blocks is committed,
  and the chain goes on with the next rounds' proposers.
* ``da_bad_encoding``: the single validator of a network commits blocks whose
  data root covers a square with a corrupted parity share. An honest full node
  syncing from it refuses the block (its transactions do not hash to that data
  root), fetches the committed square over QUIC, proves the bad row, gossips
  the proof and halts; a second full node that only hears the proof verifies it
  and halts too; both serve the proof at ``GET /v1/da/{height}/fraud``, and
  neither accepted the block.

Both take tens of seconds (several processes start): marked slow.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from focusflow.chain import Msg, make_tx
from focusflow.core.cid import cid_of_text, cid_to_bytes
from focusflow.core.keystore import Keystore
from focusflow.da import befp_from_json, verify_bad_encoding_proof
from focusflow.node.faults import FaultPlan
from focusflow.node.home import Home, init_testnet
from focusflow.node.network import start_validator
from focusflow.testing.testnet import START_TIMEOUT, free_base_port

pytestmark = pytest.mark.slow


class Nodes:
    """Node processes over homes made by init_testnet, each config patched first."""

    def __init__(
        self,
        root: Path,
        validators: int,
        full_nodes: int,
        patch,
        faults: dict[str, FaultPlan] | None = None,
    ) -> None:
        """``patch(name, config)`` may change each home's config before it starts;
        ``faults`` names the nodes that run with a fault plan."""
        self.homes = init_testnet(
            root, validators, free_base_port(validators + full_nodes), full_nodes=full_nodes
        )
        self.names = [h.path.name for h in self.homes]
        for home in self.homes:
            config = home.load_config()
            patch(home.path.name, config)
            home.config.write_text(json.dumps(config, indent=2))
        self.apis = {h.path.name: f"http://{h.load_config()['api']}" for h in self.homes}
        self.procs: dict[str, subprocess.Popen] = {}
        os.environ.setdefault("NUMBA_NUM_THREADS", "1")
        for home in self.homes:
            plan = (faults or {}).get(home.path.name)
            self.procs[home.path.name] = start_validator(home, faults=plan)
        deadline = time.monotonic() + START_TIMEOUT
        for name in self.names:
            self.wait(lambda name=name: self.status(name) is not None, deadline, f"{name} up")

    def status(self, name: str) -> dict | None:
        try:
            r = httpx.get(f"{self.apis[name]}/v1/status", timeout=2)
        except httpx.HTTPError:
            return None
        return r.json() if r.status_code == 200 else None

    def height(self, name: str) -> int:
        status = self.status(name)
        return -1 if status is None else status["height"]

    def get(self, name: str, path: str) -> httpx.Response:
        return httpx.get(f"{self.apis[name]}{path}", timeout=5)

    def log(self, name: str) -> str:
        path = self.homes[self.names.index(name)].path / "node.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self) -> str:
        return "\n".join(f"--- {n}\n{self.log(n)[-2500:]}" for n in self.names)

    def wait(self, check, deadline: float, what: str) -> None:
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.2)
        raise AssertionError(f"{what}: not in time\n{self.logs()}")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def submit_links(api: str, home: Path, tag: str) -> str:
    """A transaction of five links signed by the testnet's dev key; its hash."""
    key = Keystore(home / "keys").load("dev")
    chain_id = httpx.get(f"{api}/v1/status", timeout=5).json()["chain_id"]
    pairs = [
        [cid_to_bytes(cid_of_text(f"{tag}-{i}")), cid_to_bytes(cid_of_text(tag))] for i in range(5)
    ]
    tx = make_tx(key, chain_id, 0, 10_000, [Msg("link", {"links": pairs})])
    r = httpx.post(f"{api}/v1/txs", json={"tx": tx.encoded.hex()}, timeout=5)
    assert r.status_code in (200, 202), r.text
    return tx.hash.hex()


def test_a_proposer_that_withholds_its_shares_gets_no_block_committed(tmp_path):
    def patch(name: str, config: dict) -> None:
        pass

    nodes = Nodes(tmp_path / "tn", 4, 0, patch, {"v1": FaultPlan(da_withhold_proposals=True)})
    try:
        honest = ["v0", "v2", "v3"]
        target = 12
        nodes.wait(
            lambda: all(nodes.height(n) >= target for n in honest),
            time.monotonic() + 120,
            f"honest validators at height {target}",
        )
        attacker = Home(tmp_path / "tn" / "v1").load_validator_key().address
        proposers = {}
        for h in range(1, target + 1):
            blocks = {n: nodes.get(n, f"/v1/blocks/{h}").json() for n in honest}
            assert len({b["hash"] for b in blocks.values()}) == 1, f"disagree at {h}"
            proposers[h] = blocks["v0"]["proposer"]
        # Four validators take turns: the attacker led some of these heights'
        # first rounds, yet made none of the committed blocks.
        assert attacker not in proposers.values(), proposers
        assert len(set(proposers.values())) == 3
        refusals = [
            line
            for n in honest
            for line in nodes.log(n).splitlines()
            if "prevote nil: proposal refused" in line and "sampling failed" in line
        ]
        assert len(refusals) >= 3, nodes.logs()
    finally:
        nodes.stop()


def test_a_badly_encoded_block_is_proven_gossiped_and_halts_the_full_nodes(tmp_path):
    root = tmp_path / "tn"

    def patch(name: str, config: dict) -> None:
        if name == "f1":
            # f1 hears of the chain from f0 only: what it learns of the bad block
            # is f0's fraud proof.
            f0_id = Home(root / "f0").load_node_key().public_key.hex()
            config["peers"] = [p for p in config["peers"] if p.startswith(f0_id)]
            assert len(config["peers"]) == 1

    nodes = Nodes(root, 1, 2, patch, {"v0": FaultPlan(da_bad_encoding=True)})
    try:
        nodes.wait(lambda: nodes.height("f1") >= 2, time.monotonic() + 60, "f1 follows via f0")
        # Empty blocks share one cached square: only a block with transactions
        # gets the corrupted parity share. Submit one.
        tx_hash = submit_links(nodes.apis["v0"], root / "v0", "bad")
        bad_height = None
        deadline = time.monotonic() + 60
        while bad_height is None and time.monotonic() < deadline:
            r = nodes.get("v0", f"/v1/txs/{tx_hash}")
            if r.status_code == 200 and r.json()["status"] == "committed":
                bad_height = r.json()["height"]
            time.sleep(0.1)
        assert bad_height is not None, nodes.logs()
        header = nodes.get("v0", f"/v1/blocks/{bad_height}").json()

        for name in ("f0", "f1"):
            nodes.wait(
                lambda name=name: (nodes.status(name) or {}).get("halted"),
                time.monotonic() + 60,
                f"{name} halts",
            )
            status = nodes.status(name)
            assert status["height"] == bad_height - 1, status  # the block was not accepted
            assert "badly encoded" in status["halted"]
            r = nodes.get(name, f"/v1/da/{bad_height}/fraud")
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["block_hash"] == header["hash"]
            assert body["data_root"] == header["data_root"]
            proof = befp_from_json(body["proof"])
            assert verify_bad_encoding_proof(bytes.fromhex(header["data_root"]), proof)
        # No proof against a good block: 404 with its code.
        r = nodes.get("f0", f"/v1/da/{bad_height - 1}/fraud")
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_fraud_proof"
        # Halted nodes stay where they are while the attacker goes on.
        time.sleep(2)
        assert nodes.height("f0") == bad_height - 1 and nodes.height("f1") == bad_height - 1
    finally:
        nodes.stop()
