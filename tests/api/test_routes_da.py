"""The DA endpoints over a real chain, with the API's own error mapping.

The router is mounted in a plain FastAPI app (``api.errors.install`` maps
the errors as the node's app does) over a real ``Chain`` and ``DAStore``;
every answer is checked the way a light client checks it: against the block
header's data root, never against the endpoint's own.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from focusflow.api import errors
from focusflow.api.app import build_state
from focusflow.api.routes_da import router
from focusflow.api.state import set_app_state
from focusflow.core.errors import InvalidParameterError
from focusflow.core.hashing import merkle_root
from focusflow.da import proof_from_json, verify_share_proof
from focusflow.node.da_store import DAStore
from focusflow.node.faults import FaultPlan
from focusflow.testing.chains import ALICE, genesis, link, new_chain, tx

T0 = 1_700_000_000_000


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    chain = new_chain(tmp_path_factory.mktemp("da-api"), genesis(focus={"mode": "diffusion"}))
    honest = DAStore(chain)
    chain.produce_block([], time_ms=T0 + 1)
    chain.produce_block(
        [tx(ALICE, 0, link(*[(f"p{i}", f"p{i + 1}") for i in range(40)]))], time_ms=T0 + 2
    )
    return SimpleNamespace(chain=chain, da=honest)


def client_for(node) -> TestClient:
    app = FastAPI()
    errors.install(app)
    app.include_router(router)
    set_app_state(app, build_state(node))
    return TestClient(app)


@pytest.fixture(scope="module")
def client(node):
    with client_for(node) as c:
        yield c


def header_root(node, height: int) -> bytes:
    return node.chain.block_record(height).block.header.data_root


def test_da_header_roots_hash_to_the_block_header(client, node):
    for height in (0, 1, 2):
        body = client.get(f"/v1/da/{height}").json()
        assert set(body) == {"height", "data_root", "k", "row_roots", "col_roots"}
        rows = [bytes.fromhex(r) for r in body["row_roots"]]
        cols = [bytes.fromhex(c) for c in body["col_roots"]]
        assert len(rows) == len(cols) == 2 * body["k"]
        assert all(len(r) == 90 for r in rows + cols)
        assert merkle_root(rows + cols) == header_root(node, height)
        assert body["data_root"] == header_root(node, height).hex()
    assert client.get("/v1/da/2").json()["k"] == 4


def test_every_share_comes_with_a_proof_the_light_client_accepts(client, node):
    root = header_root(node, 2)
    square = node.da.square(2)
    for row in range(square.width):
        for col in range(square.width):
            body = client.get(f"/v1/da/2/shares/{row}/{col}").json()
            assert (body["height"], body["row"], body["col"]) == (2, row, col)
            proof = proof_from_json(row, col, body["share"], body["proof"])
            assert proof.share == square.share(row, col)
            assert verify_share_proof(root, proof)
    # The same answer claimed for another coordinate, or with one byte changed, fails.
    body = client.get("/v1/da/2/shares/1/2").json()
    moved = proof_from_json(2, 1, body["share"], body["proof"])
    assert not verify_share_proof(root, moved)
    share = bytearray(bytes.fromhex(body["share"]))
    share[100] ^= 1
    assert not verify_share_proof(root, proof_from_json(1, 2, share.hex(), body["proof"]))
    assert not verify_share_proof(
        header_root(node, 1), proof_from_json(1, 2, body["share"], body["proof"])
    )


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v1/da/3", 404, "unknown_block"),
        ("/v1/da/99999999999", 404, "unknown_block"),
        ("/v1/da/3/shares/0/0", 404, "unknown_block"),
        ("/v1/da/-1", 400, "malformed"),
        ("/v1/da/abc", 400, "malformed"),
        ("/v1/da/2/shares/x/0", 400, "malformed"),
        ("/v1/da/2/shares/8/0", 404, "unknown_share"),
        ("/v1/da/2/shares/0/8", 404, "unknown_share"),
        ("/v1/da/0/shares/0/2", 404, "unknown_share"),
        ("/v1/da/2/shares/-1/0", 400, "malformed"),
        ("/v1/da/2/shares/0/1024", 400, "malformed"),
        ("/v1/da/9223372036854775808", 400, "malformed"),
    ],
)
def test_bad_requests_get_stable_codes_and_change_nothing(client, node, path, status, code):
    head, root = node.chain.head, node.chain.store.root
    r = client.get(path)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"]["code"] == code and body["error"]["message"]
    assert node.chain.head == head and node.chain.store.root == root


def test_withholding_node_answers_404_for_withheld_shares_only(node):
    da = DAStore(node.chain, faults=FaultPlan(da_withhold=0.6, da_withhold_seed=3))
    with client_for(SimpleNamespace(chain=node.chain, da=da)) as c:
        root = header_root(node, 2)
        width = 2 * c.get("/v1/da/2").json()["k"]
        withheld = da.withheld(2, width)
        assert withheld
        for row in range(width):
            for col in range(width):
                r = c.get(f"/v1/da/2/shares/{row}/{col}")
                if (row, col) in withheld:
                    assert r.status_code == 404
                    assert r.json()["error"]["code"] == "share_unavailable"
                else:
                    body = r.json()
                    assert verify_share_proof(
                        root, proof_from_json(row, col, body["share"], body["proof"])
                    )


def test_node_without_da_store_says_so(node):
    with client_for(SimpleNamespace(chain=node.chain, da=None)) as c:
        r = c.get("/v1/da/1")
    assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable"


def _ask_together(da: DAStore, heights: list[int]) -> list:
    """Ask ``da`` for the squares of ``heights``, one thread each, released at once."""
    barrier = threading.Barrier(len(heights))

    def ask(height: int):
        barrier.wait()
        return da.square(height)

    with ThreadPoolExecutor(len(heights)) as pool:
        return list(pool.map(ask, heights))


def test_concurrent_requests_for_one_old_height_share_one_rebuild(node):
    """A flood of requests for one uncached height costs one rebuild, not one each."""
    da = DAStore(node.chain)  # a fresh store: nothing cached, every height is old
    for height in (2, 1):
        squares = _ask_together(da, [height] * 24)
        assert all(sq is squares[0] for sq in squares)
        assert squares[0].data_root() == header_root(node, height)
    assert da.rebuilt == 2


def test_rebuilds_of_different_heights_are_bounded(node, monkeypatch):
    """At most ``max_rebuilds`` squares are built at once, however many heights are asked."""
    from focusflow.node import da_store

    running, peak, lock = 0, 0, threading.Lock()
    real = da_store.block_square

    def counted(txs, **kwargs):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            time.sleep(0.02)  # long enough for every thread to arrive
            return real(txs, **kwargs)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(da_store, "block_square", counted)
    da = DAStore(node.chain, cache_size=1, max_rebuilds=2)
    squares = _ask_together(da, [0, 1, 2] * 4)
    assert [sq.data_root() for sq in squares[:3]] == [header_root(node, h) for h in (0, 1, 2)]
    assert peak == 2


def test_max_rebuilds_must_be_positive(node):
    with pytest.raises(InvalidParameterError):
        DAStore(node.chain, max_rebuilds=0)
