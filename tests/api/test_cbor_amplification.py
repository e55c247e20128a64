"""The CBOR amplification shapes at every door where bytes arrive unauthenticated:
``POST /v1/txs`` and ``/v1/txs/batch`` (through the node's app), the p2p frame
decoder (``Hello`` and every gossip kind) and the consensus message decoder.

Each refusal is ``malformed`` and quick. The shared-reference shape here is
cut to depth 24 so that a decoder that follows the references takes seconds
(and the test fails on time) rather than hours.
"""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from focusflow.api.app import create_app
from focusflow.chain.tx import decode_tx
from focusflow.consensus.messages import decode_message as decode_consensus
from focusflow.core.errors import DecodeError
from focusflow.net.messages import decode_message as decode_net
from focusflow.node.runtime import NodeRuntime
from focusflow.testing.chains import genesis, new_chain
from tests.core.test_decode_cost import shared_refs, string_refs

SHAPES = {
    "shared refs": (shared_refs(24), "tag 28 (no tags but bignums are allowed) at byte 0"),
    "string refs": (string_refs(1000, 2000), "tag 256 (no tags but bignums are allowed) at byte 0"),
    "huge array": (b"\x9b" + b"\xff" * 8, "array of 18446744073709551615 items but 0 bytes left"),
}
#: Generous: the scan answers in microseconds; following 2^24 references takes seconds.
MAX_SECONDS = 0.5


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    chain = new_chain(tmp_path_factory.mktemp("cborapi"), genesis(focus={"mode": "diffusion"}))
    with TestClient(create_app(NodeRuntime(chain)), raise_server_exceptions=False) as c:
        yield c
    chain.close()


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize(
    ("path", "wrap"),
    [("/v1/txs", lambda data: data), ("/v1/txs/batch", lambda data: b"\x81" + data)],
    ids=["txs", "batch"],
)
def test_the_api_refuses_amplifying_cbor_quickly(client, shape, path, wrap):
    data, reason = SHAPES[shape]
    start = time.perf_counter()
    r = client.post(path, content=wrap(data), headers={"content-type": "application/cbor"})
    elapsed = time.perf_counter() - start
    assert elapsed < MAX_SECONDS, elapsed
    error = r.json()["error"]
    assert (r.status_code, error["code"]) == (400, "malformed"), r.text
    assert reason.split(" at byte")[0] in error["message"]
    assert client.get("/v1/status").json()["mempool"]["txs"] == 0


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize(
    "decoder", [decode_tx, decode_net, decode_consensus], ids=["tx", "p2p", "consensus"]
)
def test_decoders_of_unauthenticated_bytes_refuse_amplifying_cbor_quickly(decoder, shape):
    data, reason = SHAPES[shape]
    for wrapped in (data, b"\x82\x01" + data):  # alone, and as the field of [1, field]
        start = time.perf_counter()
        with pytest.raises(DecodeError) as info:
            decoder(wrapped)
        assert time.perf_counter() - start < MAX_SECONDS
        assert info.value.code == "malformed"
        assert reason.split(" at byte")[0] in info.value.message
