"""Transaction admission through the node's real app: the refusal codes and
statuses of the mempool's checks, and a full admission queue (503
``admission_busy`` with ``Retry-After``, nothing looked at) on the hot path and
the batch route alike."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from focusflow.api.app import create_app
from focusflow.chain import Msg, make_tx
from focusflow.chain.mempool import MempoolLimits
from focusflow.core.keys import KeyPair
from focusflow.node.runtime import ADMISSION_QUEUE, NodeRuntime
from focusflow.testing.chains import ALICE, BOB, CHAIN_ID, FEE, genesis, new_chain


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    chain = new_chain(tmp_path_factory.mktemp("admission"), genesis(focus={"mode": "diffusion"}))
    runtime = NodeRuntime(chain, mempool_limits=MempoolLimits(max_per_sender=2))
    yield runtime
    chain.close()


@pytest.fixture(scope="module")
def client(node):
    with TestClient(create_app(node), raise_server_exceptions=False) as c:
        yield c


def send(key: KeyPair, nonce: int, fee: int = FEE) -> str:
    msgs = [Msg("send", {"to": BOB.address_raw, "amount": 1})]
    return make_tx(key, CHAIN_ID, nonce, fee, msgs).encoded.hex()


def error(r) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


def test_refusals_have_their_codes_and_statuses(client, node):
    stranger = KeyPair.from_seed(b"stranger".ljust(32, b"\0"))
    assert error(client.post("/v1/txs", json={"tx": send(stranger, 0, 10**15)})) == (
        400,
        "insufficient_funds",
    )
    for nonce in range(2):
        assert client.post("/v1/txs", json={"tx": send(ALICE, nonce)}).status_code == 202
    assert error(client.post("/v1/txs", json={"tx": send(ALICE, 2)})) == (429, "sender_full")
    assert len(node.mempool) == 2


def test_a_full_admission_queue_is_503_with_retry_after_and_changes_nothing(client, node):
    before = len(node.mempool)
    node.admission_waiting += ADMISSION_QUEUE  # as if that many were waiting
    try:
        single = client.post("/v1/txs", json={"tx": send(BOB, 0)})
        batch = client.post("/v1/txs/batch", json={"txs": [send(BOB, 0), send(BOB, 1)]})
    finally:
        node.admission_waiting -= ADMISSION_QUEUE
    for r in (single, batch):
        assert error(r) == (503, "admission_busy")
        assert r.headers["retry-after"] == "1"
    assert len(node.mempool) == before
    assert node.admission_waiting == 0
    assert client.post("/v1/txs", json={"tx": send(BOB, 0)}).status_code == 202
    assert node.admission_waiting == 0
