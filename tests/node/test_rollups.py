"""A network of rollups on loopback: a hub and rollup chains as real processes
(``focusflow testnet --rollups``), relayers between them, every wait bounded.

What users rely on: every node says its place (``GET /v1/rollup``); a link sent
to any node of the network lands on the rollup that owns it, whether the user
signs for that chain (nodes forward it) or lets the CLI pick; a rollup refuses
a link of another bucket with ``wrong_bucket`` naming the owner.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from focusflow.core.cid import cid_of_text, cid_to_bytes
from focusflow.focus.buckets import link_bucket
from focusflow.testing.process import SOURCE, node_env
from focusflow.testing.rollups import RollupNet


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    net = RollupNet(tmp_path_factory.mktemp("rollups") / "net", rollups=2)
    yield net
    net.stop()


def texts_of_bucket(bucket: int, buckets: int, tag: str) -> tuple[str, str]:
    """Two texts whose particles make a link of ``bucket``."""
    for i in range(1000):
        src = cid_to_bytes(cid_of_text(f"{tag}-src-{i}"))
        if link_bucket([src], buckets) == bucket:
            return f"{tag}-src-{i}", f"{tag}-dst-{i}"
    raise AssertionError("no source in the bucket")


def link_of_bucket(bucket: int, buckets: int, tag: str) -> list[bytes]:
    return [cid_to_bytes(cid_of_text(t)) for t in texts_of_bucket(bucket, buckets, tag)]


def test_every_node_says_its_place_and_knows_the_others(net):
    status, hub = net.get(net.hub[0], "/v1/rollup")
    assert status == 200 and hub["role"] == "hub" and hub["bucket"] is None
    assert hub["buckets"] == 2 and hub["rule"] == "source"
    assert [r["chain_id"] for r in hub["rollups"]] == net.chain_ids
    assert all(r["apis"] for r in hub["rollups"])
    for b, apis in enumerate(net.rollups):
        status, doc = net.get(apis[0], "/v1/rollup")
        assert status == 200 and (doc["role"], doc["bucket"], doc["buckets"]) == ("rollup", b, 2)
        assert doc["hub"]["apis"] == net.hub


def test_a_rollup_refuses_another_buckets_link_and_a_node_forwards_a_foreign_tx(net):
    theirs = link_of_bucket(1, 2, "refused")
    nonce = net.nonce(net.rollups[0][0], net.dev)
    r = net.submit(net.rollups[0][0], net.chain_ids[0], [theirs], nonce)
    assert r.status_code == 202, r.text
    receipt = net.wait_tx(net.rollups[0][0], r.json()["hash"], 30)
    assert receipt["code"] == "wrong_bucket"
    assert f"belongs to bucket 1 (chain {net.chain_ids[1]})" in receipt["log"]
    # Signed for rollup 1 but sent to the hub: the hub's node forwards it.
    nonce1 = net.nonce(net.rollups[1][0], net.dev)
    r = net.submit(net.hub[0], net.chain_ids[1], [theirs], nonce1)
    assert r.status_code == 202, r.text
    assert r.headers["x-forwarded-to"] == net.rollups[1][0]
    assert net.wait_tx(net.rollups[1][0], r.json()["hash"], 30)["code"] == "ok"


def test_the_cli_routes_each_link_to_its_owner(net):
    a = texts_of_bucket(0, 2, "cli")
    b = texts_of_bucket(1, 2, "cli")
    home = net.home / "hub" / "v0"
    args = [
        sys.executable, "-m", "focusflow", "tx", "link", "--text", *a, *b,
        "--home", str(home), "--node", net.hub[0], "--wait", "--json",
    ]  # fmt: skip
    out = subprocess.run(args, capture_output=True, text=True, timeout=120, env=node_env(SOURCE))
    assert out.returncode == 0, out.stderr + out.stdout
    txs = json.loads(out.stdout)["txs"]
    assert sorted(doc["chain_id"] for doc in txs) == sorted(net.chain_ids)
    assert all(doc["status"] == "committed" and doc["code"] == "ok" for doc in txs)
