"""Particle texts travel with the blocks: two validators and a full node, real
processes on loopback.

A link transaction sent to validator 0 carries its particles' texts; the other
validator and the full node, which only execute the block, show them; a light
client reads one from the full node and checks it against its CID itself, and
refuses a lying node's. A transaction whose text does not hash to its CID
fails its receipt and no node keeps that text.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from focusflow.chain.tx import Msg, make_tx
from focusflow.core.cid import cid_of_text, cid_to_bytes
from focusflow.core.keystore import Keystore
from focusflow.light.client import LightClient, Node
from focusflow.light.errors import WrongValueError
from focusflow.light.store import LightStore
from focusflow.testing.process import SOURCE, node_env
from focusflow.testing.testnet import LocalTestnet

VALIDATORS, FULL = (0, 1), 2


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    home = tmp_path_factory.mktemp("texts-net") / "tn"
    network = LocalTestnet(home, 2, full_nodes=1)
    try:
        yield network
    finally:
        network.stop()


def _submit(net, links, texts) -> str:
    """One link transaction of the dev key to validator 0, at its next nonce."""
    key = Keystore(net.home / "v0" / "keys").load("dev")
    chain_id = net.status(0)["chain_id"]
    account = httpx.get(f"{net.apis[0]}/v1/accounts/{key.address}", timeout=5).json()
    nonce = account["pending_nonce"]
    body = {"links": links, "texts": texts}
    tx = make_tx(key, chain_id, nonce, 10_000, [Msg("link", body)])
    r = httpx.post(f"{net.apis[0]}/v1/txs", json={"tx": tx.encoded.hex()}, timeout=5)
    assert r.status_code in (200, 202), r.text
    return tx.hash.hex()


def _cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "focusflow", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=node_env(SOURCE),
    )


def _text(net, k: int, cid: str) -> httpx.Response:
    return httpx.get(f"{net.apis[k]}/v1/particles/{cid}/text", timeout=5)


def _wait_text(net, k: int, cid: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = _text(net, k, cid)
        if r.status_code == 200:
            return str(r.json()["text"])
        time.sleep(0.1)
    raise AssertionError(f"node {k} shows no text for {cid}\n{net.logs()[-3000:]}")


@pytest.fixture(scope="module")
def cats(net) -> str:
    """Validator 0 gets the link "Cats" -> "net-mammals" carrying both texts; every
    node has executed its block."""
    cats, mammals = cid_of_text("Cats"), cid_of_text("net-mammals")
    links = [[cid_to_bytes(cats), cid_to_bytes(mammals)]]
    texts = [[cid_to_bytes(cats), "Cats"], [cid_to_bytes(mammals), "net-mammals"]]
    height = net.wait_tx(0, _submit(net, links, texts), 60)
    net.wait_height((0, 1, FULL), height, 30)
    return cats


def test_texts_of_a_link_reach_every_node_and_the_light_client(net, cats, tmp_path):
    mammals = cid_of_text("net-mammals")
    for k in (*VALIDATORS, FULL):
        assert _wait_text(net, k, cats) == "Cats"
        assert _wait_text(net, k, mammals) == "net-mammals"
    # The full node's search finds "Cats" without case, by prefix and by substring.
    for query, match in (("cats", "exact"), ("ca", "prefix"), ("ats", "substring")):
        found = httpx.get(
            f"{net.apis[FULL]}/v1/particles/search", params={"q": query}, timeout=5
        ).json()
        row = next(r for r in found["results"] if r["cid"] == cats)
        assert row["text"] == "Cats" and row["match"] == match and row["focus"] > 0
    # A light client reads the text from the full node and hashes it itself.
    with Node(net.apis[FULL]) as node:
        client = LightClient(LightStore(tmp_path / "light", net.status(FULL)["chain_id"]), node)
        assert client.text(cats) == "Cats"
        assert client.text(cid_of_text("never linked")) is None
    # The light CLI shows it beside the focus it verified, as a user runs it.
    light, genesis = tmp_path / "light-cli", net.home / "v0" / "genesis.json"
    synced = _cli("light", "sync", "--node", net.apis[1], "--genesis", genesis, "--home", light)
    assert synced.returncode == 0, synced.stderr
    shown = _cli("light", "query", "particle", "Cats", "--node", net.apis[FULL], "--home", light,
                 "--json")  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["particle"] == cats and doc["text"] == "Cats" and doc["verified"] is True


def test_texts_by_many_cids_and_the_search_routes_refuse_bad_input(net, cats):
    unknown = cid_of_text("nobody said this")
    api = net.apis[FULL]
    got = httpx.get(f"{api}/v1/particles/texts", params={"cid": [cats, unknown]}, timeout=5)
    assert got.status_code == 200, got.text
    assert got.json() == {"texts": {cats: "Cats"}}
    for params, code in (
        ({"cid": ["not-a-cid"]}, "invalid_cid"),
        ({"cid": [cats] * 101}, "malformed"),
        ({}, "malformed"),
    ):
        r = httpx.get(f"{api}/v1/particles/texts", params=params, timeout=5)
        assert r.status_code == 400 and r.json()["error"]["code"] == code, r.text
    for params in (
        {"q": "x" * 257},
        {"q": ""},
        {"q": "cats", "limit": 0},
        {"q": "cats", "limit": 101},
    ):
        r = httpx.get(f"{api}/v1/particles/search", params=params, timeout=5)
        assert r.status_code == 400 and r.json()["error"]["code"] == "malformed", r.text
    blank = httpx.get(f"{api}/v1/particles/search", params={"q": "   "}, timeout=5).json()
    assert blank["results"] == []


def test_a_text_that_is_not_its_cids_fails_the_receipt_and_is_kept_nowhere(net):
    wolf, dog = cid_of_text("net-wolf"), cid_of_text("net-dog")
    links = [[cid_to_bytes(wolf), cid_to_bytes(dog)]]
    lie = [[cid_to_bytes(wolf), "net-wolf"], [cid_to_bytes(dog), "net-cat"]]
    tx_hash = _submit(net, links, lie)
    height = net.wait_tx(0, tx_hash, 60)
    record = httpx.get(f"{net.apis[0]}/v1/txs/{tx_hash}", timeout=5).json()
    assert record["code"] == "text_mismatch", record
    assert "texts[1]" in record["log"]
    net.wait_height((0, 1, FULL), height + 1, 30)  # every node is past that block
    for k in (*VALIDATORS, FULL):
        for cid in (wolf, dog, cid_of_text("net-cat")):
            r = _text(net, k, cid)
            assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_text"
    # A text for a particle its links do not name fails too.
    bird = cid_of_text("net-bird")
    stray = [[cid_to_bytes(bird), "net-bird"]]
    tx_hash = _submit(net, links, stray)
    net.wait_tx(0, tx_hash, 60)
    assert httpx.get(f"{net.apis[0]}/v1/txs/{tx_hash}", timeout=5).json()["code"] == (
        "unlinked_text"
    )


class _Liar(BaseHTTPRequestHandler):
    """A node that answers every text request with "dogs"."""

    def do_GET(self) -> None:
        cid = self.path.split("/")[3]
        body = json.dumps({"cid": cid, "text": "dogs"}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


def test_the_chain_and_the_text_store_bound_texts_alike():
    """The link module checks texts against the bounds the store keeps them by:
    a text a transaction may carry is one every node can keep in one write."""
    from focusflow import modules
    from focusflow.modules import links
    from focusflow.store import particle_texts

    assert links.MAX_TEXT_BYTES == particle_texts.MAX_TEXT_BYTES
    assert modules.MAX_TEXTS_PER_TX == particle_texts.MAX_BATCH


def test_the_light_client_refuses_a_lying_nodes_text(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Liar)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with Node(f"http://127.0.0.1:{server.server_address[1]}") as node:
            client = LightClient(LightStore(tmp_path / "light", "liar"), node)
            assert client.text(cid_of_text("dogs")) == "dogs"
            with pytest.raises(WrongValueError, match="does not hash"):
                client.text(cid_of_text("cats"))
    finally:
        server.shutdown()
        server.server_close()
