"""The light routes and client over real chains: set changes, route contract, time
rules and the store.

The chains are built in process (tests/chain) and served by the node's real app
on loopback; the client is the real one over HTTP.
"""

from __future__ import annotations

import json

import httpx
import pytest

from focusflow.chain.block import Header, sign_certificate
from focusflow.chain.valsets import valset_key
from focusflow.consensus.certificate import decode_certificate, verify_certificate
from focusflow.core.encoding import decode
from focusflow.core.hashing import sha256
from focusflow.light.client import LightClient, Node
from focusflow.light.errors import HeaderMismatchError, NotSyncedError, TrustExpiredError
from focusflow.light.store import MAX_BLOCKS, STORE_FILE, LightStore
from focusflow.light.synthetic import SyntheticChain
from focusflow.light.verify import parse_light_block, validator_set
from focusflow.node import open_chain
from focusflow.testing.lightnode import build_chain, node_app, serve
from tests.chain.test_epochs import EPOCH, KEYS, NEW, UNIT, Net
from tests.chain.test_epochs import genesis as epoch_genesis
from tests.light.synth_node import ChainNode


@pytest.fixture(scope="module")
def changing(tmp_path_factory):
    """A four-validator chain whose set changes at EPOCH + 1 (a newcomer joins) and
    2 * EPOCH + 1 (a validator leaves), served by the node's app."""
    net = Net(open_chain(tmp_path_factory.mktemp("sets") / "c", epoch_genesis(), KEYS[0]))
    net.step(net.tx(NEW, "stake", {"amount": 2 * UNIT}), net.tx(NEW, "validator.register", {}))
    net.to_height(EPOCH + 2)
    net.step(net.tx(KEYS[1], "validator.unregister", {}))
    net.to_height(2 * EPOCH + 3)
    assert net.chain.valsets.changes == [1, EPOCH + 1, 2 * EPOCH + 1]
    url, stop = serve(node_app(net.chain))
    yield net.chain, url
    stop()
    net.chain.close()


@pytest.fixture
def client_for():
    """Makes a light client of ``chain`` asking the node at ``url``, trusting its
    genesis set; the connections of the clients it made close when the test ends."""
    nodes: list[Node] = []

    def make(chain, url, tmp_path) -> LightClient:
        nodes.append(Node(url))
        client = LightClient(LightStore(tmp_path, chain.chain_id), nodes[-1])
        client.trust_genesis(chain.validators_at(1))
        return client

    yield make
    for node in nodes:
        node.close()


def test_the_header_route_is_the_chains_header(changing):
    chain, url = changing
    for height in (1, EPOCH + 1, chain.height):
        doc = httpx.get(f"{url}/v1/light/header/{height}").json()
        record = chain.block_record(height)
        header = Header.from_cbor(decode(bytes.fromhex(doc["header_cbor"]), "header"))
        assert header == record.block.header
        assert (
            doc["hash"]
            == sha256(bytes.fromhex(doc["header_cbor"])).hex()
            == record.block.hash.hex()
        )
        assert doc["header"]["state_root"] == header.state_root.hex()
        vset = validator_set(doc["validators"])
        assert vset.hash() == header.validators_hash == chain.validators_at(height).hash()
        cert = decode_certificate(bytes.fromhex(doc["certificate_cbor"]))
        verify_certificate(cert, vset, chain.chain_id, height=height, value_id=record.block.hash)
    assert httpx.get(f"{url}/v1/light/header/latest").json()["height"] == chain.height


def test_sync_follows_real_set_changes_adjacent_and_skipping(changing, tmp_path, client_for):
    chain, url = changing
    client = client_for(chain, url, tmp_path)
    client.sync(EPOCH)
    # The next header names a new set: adjacent, proven from header EPOCH's state.
    block = client.sync(EPOCH + 1)
    assert block.header.validators_hash != client.store.get(EPOCH).header.validators_hash
    doc = httpx.get(
        f"{url}/v1/light/proofs/validators/{EPOCH + 1}", params={"height": EPOCH}
    ).json()
    assert doc["key"] == valset_key(EPOCH + 1).hex() and doc["value"] is not None
    unchanged = httpx.get(
        f"{url}/v1/light/proofs/validators/{EPOCH + 2}", params={"height": EPOCH + 1}
    ).json()
    assert unchanged["value"] is None  # no change at EPOCH + 2: proven absent
    head = client.sync()
    assert head.hash == chain.head.hash
    fresh = client_for(chain, url, tmp_path / "skip")
    assert fresh.sync().hash == chain.head.hash  # straight from 1, skipping both changes


def test_route_errors_have_their_codes(changing):
    chain, url = changing
    cases = [
        (f"/v1/light/header/{chain.height + 5}", 404, "unknown_block"),
        ("/v1/light/header/-1", 400, "malformed"),
        ("/v1/light/proofs/key?key=hex:zz", 400, "malformed"),
        (f"/v1/light/proofs/key?key={'x' * 1025}", 400, "malformed"),
        (f"/v1/light/proofs/key?key=hex:{'00' * 1025}", 400, "malformed"),
        (f"/v1/light/proofs/key?key=/kv/params&height={chain.height + 1}", 404, "unknown_block"),
        ("/v1/light/proofs/account/nonsense", 400, "invalid_address"),
        (
            "/v1/light/proofs/particle/bafkreiai2m2qh3rh2tatavoqz37mlzzqxzhpfza423h44q2jg3wb47e5jm",
            404,
            "unknown_particle",
        ),
        ("/v1/light/proofs/particle/notacid", 400, "invalid_cid"),
        ("/v1/light/proofs/links/notacid?limit=101", 400, "malformed"),
        ("/v1/light/proofs/particle/x?height=1", 400, "invalid_cid"),
    ]
    for path, status, code in cases:
        r = httpx.get(url + path)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (path, r.text)


def test_an_old_height_is_proven_while_the_value_is_unchanged(changing):
    _, url = changing
    key = "hex:" + valset_key(EPOCH + 1).hex()
    old = httpx.get(f"{url}/v1/light/proofs/key", params={"key": key, "height": EPOCH}).json()
    assert old["height"] == EPOCH and old["value"] is not None
    # The account of KEYS[0] changes every block (proposer fees): stale at an old height.
    r = httpx.get(f"{url}/v1/light/proofs/account/{KEYS[0].address}", params={"height": 2})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "stale_height")


def test_an_expired_trusted_header_or_a_future_one_is_refused(tmp_path):
    t0 = 1_700_000_000_000
    chain = SyntheticChain("focusflow-synthetic", 50, {1: {1: 5}}, t0)
    store = LightStore(tmp_path, chain.chain_id)
    late = LightClient(store, ChainNode(chain), clock=lambda: t0 + 1000 + 14 * 86400 * 1000)
    late.trust_genesis(chain.set_at(1))
    with pytest.raises(TrustExpiredError):
        late.sync()
    early = LightClient(LightStore(tmp_path, chain.chain_id), ChainNode(chain), clock=lambda: t0)
    early.trust_genesis(chain.set_at(1))
    with pytest.raises(HeaderMismatchError, match="future"):
        early.sync()


def test_a_header_time_that_does_not_increase_is_refused(tmp_path):
    t0 = 1_700_000_000_000
    chain = SyntheticChain("focusflow-synthetic", 3, {1: {1: 5}}, t0, block_ms=0)
    client = LightClient(LightStore(tmp_path, chain.chain_id), ChainNode(chain), clock=lambda: t0)
    client.trust_genesis(chain.set_at(1))
    with pytest.raises(HeaderMismatchError, match="not after"):
        client.sync()


def test_the_store_survives_reopening_and_refuses_a_torn_file(tmp_path):
    t0 = 1_700_000_000_000
    chain = SyntheticChain("focusflow-synthetic", 600, {1: {1: 5}, 300: {2: 5}}, t0)
    client = LightClient(
        LightStore(tmp_path, chain.chain_id), ChainNode(chain), clock=lambda: t0 + 10**6
    )
    client.trust_genesis(chain.set_at(1))
    for h in range(2, 600, 2):
        client.sync(h)
    assert len(client.store) == MAX_BLOCKS + 1  # the root and the newest MAX_BLOCKS
    assert client.store.get(1) is not None and client.store.root_height == 1
    client.store.save()
    again = LightStore.open(tmp_path)
    assert again.latest().hash == chain.header(598).hash and again.root_height == 1
    with pytest.raises(NotSyncedError):
        LightStore.open(tmp_path, "another-chain")
    path = tmp_path / STORE_FILE
    path.write_text(path.read_text()[:100])
    with pytest.raises(NotSyncedError, match="unreadable"):
        LightStore.open(tmp_path)
    doc = json.loads(json.dumps({"version": 1, "chain_id": "c", "root_height": 1, "blocks": [1]}))
    path.write_text(json.dumps(doc))
    with pytest.raises(NotSyncedError):
        LightStore.open(tmp_path)


def test_stored_blocks_are_rechecked_against_their_hash(tmp_path):
    t0 = 1_700_000_000_000
    chain = SyntheticChain("focusflow-synthetic", 5, {1: {1: 5}}, t0)
    client = LightClient(LightStore(tmp_path, chain.chain_id), ChainNode(chain), clock=lambda: t0)
    client.trust_genesis(chain.set_at(1))
    client.store.save()
    path = tmp_path / STORE_FILE
    doc = json.loads(path.read_text())
    doc["blocks"][0]["hash"] = "00" * 32
    path.write_text(json.dumps(doc))
    with pytest.raises(NotSyncedError, match="unreadable"):
        LightStore.open(tmp_path)


def test_links_of_many_blocks_map_to_their_messages(tmp_path, client_for):
    """Link ids map to the messages of the blocks that made them (a page inside the
    hub's links, and a particle linked to from two blocks)."""
    chain = build_chain(tmp_path / "c", 8)
    url, stop = serve(node_app(chain))
    try:
        client = client_for(chain, url, tmp_path / "l")
        client.sync()
        from focusflow.core.cid import cid_from_bytes
        from focusflow.testing.chains import particle

        hub = cid_from_bytes(particle("hub"))
        page = client.links(hub, "out", 2, 3)
        assert [link["to"] for link in page.links] == [
            cid_from_bytes(particle(f"p{h}")) for h in (3, 4, 5)
        ]
        page = client.links(cid_from_bytes(particle("p8")), "in", 0, 5)
        assert len(page.links) == 2 and page.unproven == 0
    finally:
        stop()
        chain.close()


def test_a_certificate_for_a_block_of_another_chain_is_refused():
    chain = SyntheticChain("focusflow-synthetic", 3, {1: {1: 5}}, 1_700_000_000_000)
    doc = chain.header_doc(2)
    key = chain.keys[1]
    other = sign_certificate([key], "another-chain", 2, bytes.fromhex(doc["hash"]))
    from focusflow.consensus.certificate import encode_certificate
    from focusflow.light.errors import BadCertificateError

    doc["certificate_cbor"] = encode_certificate(other).hex()
    with pytest.raises(BadCertificateError):
        parse_light_block(doc, chain.chain_id, 2)


def test_an_answer_over_the_size_cap_is_refused(tmp_path):
    from fastapi import FastAPI
    from fastapi.responses import Response

    from focusflow.light.client import MAX_ANSWER_BYTES
    from focusflow.light.errors import MalformedAnswerError

    app = FastAPI()

    @app.get("/v1/light/header/{height}")
    def huge(height: str) -> Response:
        return Response(
            b'{"pad": "' + b"x" * MAX_ANSWER_BYTES + b'"}', media_type="application/json"
        )

    url, stop = serve(app)
    try:
        with Node(url) as node:
            client = LightClient(LightStore(tmp_path, "c"), node)
            with pytest.raises(MalformedAnswerError, match="over"):
                client.trust_genesis(validator_set([{"public_key": "11" * 32, "power": 1}]))
    finally:
        stop()


def test_a_links_page_ends_at_its_byte_cap(tmp_path, monkeypatch, client_for):
    from focusflow.api import routes_light
    from focusflow.core.cid import cid_from_bytes
    from focusflow.testing.chains import particle

    chain = build_chain(tmp_path / "c", 5)
    url, stop = serve(node_app(chain))
    try:
        client = client_for(chain, url, tmp_path / "l")
        client.sync()
        hub = cid_from_bytes(particle("hub"))
        assert len(client.links(hub, "out", 0, 10).links) == 5
        monkeypatch.setattr(routes_light, "MAX_LINK_PAGE_BYTES", 1)
        page = client.links(hub, "out", 0, 10)
        assert len(page.links) == 1 and page.total_stated == 5  # the first message passes 1 byte
    finally:
        stop()
        chain.close()
