"""``GET /v1/da/{height}/fraud``: a held bad-encoding fraud proof as JSON, which a
client verifies against the data root of a header it checked itself."""

from __future__ import annotations

from types import SimpleNamespace

from fastapi import FastAPI
from fastapi.testclient import TestClient

from focusflow.api import errors
from focusflow.api.app import build_state
from focusflow.api.routes_da import router
from focusflow.api.state import set_app_state
from focusflow.chain.da_commit import FraudRecord, block_square
from focusflow.da import befp_from_json, find_bad_encoding, verify_bad_encoding_proof
from focusflow.node.da_store import DAStore
from focusflow.node.faults import bad_encoding
from focusflow.testing.chains import ALICE, genesis, link, new_chain, tx

T0 = 1_700_000_000_000


def test_a_held_fraud_proof_is_served_and_verifies_and_none_is_a_precise_404(tmp_path):
    chain = new_chain(tmp_path / "bad", genesis(focus={"mode": "diffusion"}))
    with bad_encoding():
        chain.produce_block([tx(ALICE, 0, link(("a", "b"), ("b", "c")))], time_ms=T0 + 1)
        square = block_square(chain.block_record(1).block.txs)
    record = chain.block_record(1)
    store = DAStore(chain)
    store.record_fraud(FraudRecord(record.block.header, record.commit, find_bad_encoding(square)))
    app = FastAPI()
    errors.install(app)
    app.include_router(router)
    set_app_state(app, build_state(SimpleNamespace(chain=chain, da=store)))
    with TestClient(app) as client:
        r = client.get("/v1/da/1/fraud")
        assert r.status_code == 200
        body = r.json()
        assert body["height"] == 1 and body["block_hash"] == record.block.hash.hex()
        proof = befp_from_json(body["proof"])
        assert verify_bad_encoding_proof(record.block.header.data_root, proof)
        r = client.get("/v1/da/2/fraud")
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_fraud_proof"
