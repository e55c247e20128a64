"""Blobs between node processes (``node.blob_net``): four validators and two full
nodes on loopback, a blob put on some and fetched on another through the DHT,
a holder killed mid-transfer, a holder that serves corrupt blocks, and a blob the
chain asks to be kept (a pin request) fetched by the nodes that lacked it.

Every check is on bytes: what a node fetched is read back through its API and
compared with what was put."""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import pytest

from focusflow.chain import Msg, make_tx
from focusflow.core.cid import cid_to_bytes
from focusflow.core.errors import InvalidParameterError
from focusflow.core.keystore import Keystore
from focusflow.node.blob_net import BlobNetConfig
from focusflow.node.faults import FaultPlan
from focusflow.node.home import Home
from focusflow.testing.testnet import LocalTestnet

FETCH_DEADLINE = 60.0


def _random(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def _auth(net: LocalTestnet, k: int) -> dict:
    return {"Authorization": f"Bearer {(net.homes[k] / 'admin_token').read_text().strip()}"}


def _put(net: LocalTestnet, k: int, data: bytes) -> str:
    r = httpx.post(
        f"{net.apis[k]}/v1/blobs",
        content=data,
        headers={**_auth(net, k), "Content-Type": "application/octet-stream"},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    return r.json()["cid"]


def _fetch(net: LocalTestnet, k: int, cid: str) -> dict:
    """``POST /v1/blobs/{cid}/fetch`` on node k, asked again while the holders'
    announcements may still be on their way (bounded)."""
    deadline = time.monotonic() + FETCH_DEADLINE
    while True:
        r = httpx.post(f"{net.apis[k]}/v1/blobs/{cid}/fetch", headers=_auth(net, k), timeout=120)
        if r.status_code == 200:
            return r.json()
        assert r.json()["error"]["code"] == "blob_unavailable", r.text
        assert time.monotonic() < deadline, f"{r.text}\n{net.logs()}"
        time.sleep(0.5)


def _get(net: LocalTestnet, k: int, cid: str) -> bytes:
    r = httpx.get(f"{net.apis[k]}/v1/blobs/{cid}", timeout=120)
    assert r.status_code == 200, r.text
    return r.content


def _node_ids(net: LocalTestnet) -> list[str]:
    """Each node's id (the public key its transport proves), from its home."""
    return [Home(home).load_node_key().public_key.hex() for home in net.homes]


def _wait_announced(net: LocalTestnet, k: int, cid: str) -> None:
    """Until node k has announced the blob in the DHT (its log says so; bounded)."""
    wanted = cid_to_bytes(cid).hex()
    deadline = time.monotonic() + FETCH_DEADLINE
    while True:
        lines = (net.homes[k] / "node.log").read_text(errors="replace").splitlines()
        if any("blob announced" in line and wanted in line for line in lines):
            return
        assert time.monotonic() < deadline, net.logs()
        time.sleep(0.2)


def _pin_request(net: LocalTestnet, cid: str, size: int) -> None:
    """A ``pin.request`` for the blob from the testnet's funded dev key, committed."""
    key = Keystore(net.home / "v0" / "keys").load("dev")
    status = net.status(0)
    nonce = httpx.get(f"{net.apis[0]}/v1/accounts/{key.address}", timeout=5).json()["nonce"]
    body = {"cid": cid_to_bytes(cid), "size": size, "reward": 1_000, "bounty": 100_000,
            "blocks": 1_000}  # fmt: skip
    tx = make_tx(key, status["chain_id"], nonce, 10_000, [Msg("pin.request", body)])
    r = httpx.post(f"{net.apis[0]}/v1/txs", json={"tx": tx.encoded.hex()}, timeout=5)
    assert r.status_code in (200, 202), r.text
    net.wait_tx(0, tx.hash.hex(), 30)


def test_blobs_move_between_node_processes_through_the_dht(tmp_path):
    net = LocalTestnet(tmp_path / "tn", 4, full_nodes=2)
    try:
        ids = _node_ids(net)
        # a holder that lies: validator 2 serves every block corrupted
        net.kill(2)
        net.restart(2, "--fault-plan", FaultPlan(blob_serve_corrupt=True).to_json())

        # put on a full node and a validator, fetched by the other full node
        first = _random(24 << 20, 1)
        cid = _put(net, 4, first)
        assert _put(net, 1, first) == cid
        got = _fetch(net, 5, cid)
        assert got["cid"] == cid and got["size"] == len(first)
        assert got["new_bytes"] >= len(first) and got["new_chunks"] == got["chunks"]
        assert set(got["peers"]) <= {ids[1], ids[4]} and got["peers"]
        assert _get(net, 5, cid) == first
        # the fetcher holds it now, and says so: a node that never held it finds it
        assert _fetch(net, 0, cid)["size"] == len(first)
        assert _get(net, 0, cid) == first

        # the corrupting holder is found out and left out; the blob still arrives whole
        second = _random(8 << 20, 2)
        cid2 = _put(net, 2, second)
        assert _put(net, 3, second) == cid2
        _wait_announced(net, 2, cid2)  # so that the fetch finds the liar among the holders
        got = _fetch(net, 4, cid2)
        assert _get(net, 4, cid2) == second
        assert ids[2] not in got["peers"], got
        assert got["dropped"][ids[2]].startswith("lied"), got
        assert "does not hash" in (net.homes[4] / "node.log").read_text()  # reported

        # the chain asks for it to be kept: nodes that lack it fetch and pin it
        assert httpx.get(f"{net.apis[1]}/v1/blobs/{cid2}", timeout=30).status_code == 404
        _pin_request(net, cid2, len(second))
        deadline = time.monotonic() + FETCH_DEADLINE
        while httpx.get(f"{net.apis[1]}/v1/blobs/{cid2}", timeout=30).status_code != 200:
            assert time.monotonic() < deadline, net.logs()
            time.sleep(0.5)
        assert _get(net, 1, cid2) == second

        # the full nodes re-execute every block: the same block, state root and
        # focus root as the validators at the newest height (a block hash
        # commits to every block before it), the pin request's block included
        top = max(net.height(k) for k in range(4))
        net.wait_height(range(6), top, 30)
        served = [net.block(k, top) for k in range(6)]
        assert len(set(served)) == 1, served

        # a holder killed mid-transfer: the others finish it
        third = _random(64 << 20, 3)
        cid3 = _put(net, 1, third)
        assert _put(net, 4, third) == cid3
        result: dict = {}
        fetcher = threading.Thread(target=lambda: result.update(_fetch(net, 3, cid3)))
        fetcher.start()
        time.sleep(0.3)
        net.kill(4)
        fetcher.join(FETCH_DEADLINE + 130)
        assert result, "the fetch did not end"
        assert _get(net, 3, cid3) == third
        assert ids[1] in result["peers"], result
    finally:
        net.stop()


def test_the_config_keys_are_checked():
    assert BlobNetConfig.from_config({}).republish == 12 * 3600
    assert BlobNetConfig.from_config({"blob_refresh": 5}).refresh == 5.0
    assert BlobNetConfig.from_config({"blob_pin_requested": False}).pin_requested is False
    for bad in (
        {"blob_refresh": 0},
        {"blob_republish": True},
        {"blob_pin_requested": 1},
        {"blob_pin_max_bytes": -1},
        {"blob_pin_min_bounty_per_mib": 1.5},
    ):
        with pytest.raises(InvalidParameterError):
            BlobNetConfig.from_config(bad)
