"""WASM contracts on a real devnet: uploaded, instantiated and executed by signed
transactions over ``POST /v1/txs``, read back over ``/v1/wasm``."""

from __future__ import annotations

import json

import wasmtime

from focusflow.chain import Msg
from focusflow.core.keys import decode_address, encode_address, hex_address
from focusflow.testing.devnet import signed, wait_tx
from tests.chain.test_wasm import COUNTER

FEE = 10**7


def _commit(net, key, msgs) -> dict:
    tx = signed(net, key, msgs, fee=FEE)
    with net.client() as c:
        assert c.post("/v1/txs", json={"tx": tx.encoded.hex()}).status_code == 202
    return wait_tx(net, tx.hash.hex())


def test_a_contract_is_deployed_executed_and_queried(shared_devnet):
    dev = shared_devnet.dev_key()
    stored = _commit(shared_devnet, dev, [Msg("wasm.store", {"code": wasmtime.wat2wasm(COUNTER)})])
    assert stored["code"] == "ok"
    code_hash = bytes.fromhex(stored["events"][0]["code"])
    body = {"code": code_hash, "msg": b"{}", "label": "counter", "gas": 10**6}
    made = _commit(shared_devnet, dev, [Msg("wasm.instantiate", body)])
    assert made["code"] == "ok", made["log"]
    address = bytes.fromhex(made["events"][0]["contract"])
    bump = {"contract": address, "msg": json.dumps({"increment": {}}).encode(), "gas": 10**6}
    done = _commit(shared_devnet, dev, [Msg("wasm.execute", bump)] * 3)
    assert done["code"] == "ok"

    with shared_devnet.client() as c:
        info = c.get(f"/v1/wasm/{encode_address(address)}").json()
        assert info == {
            "address": encode_address(address),
            "code": code_hash.hex(),
            "creator": dev.address,
            "label": "counter",
        }
        r = c.post(f"/v1/wasm/{encode_address(address)}/query", json={"msg": {"get": {}}})
        assert r.status_code == 200, r.text
        answer = r.json()
        assert int.from_bytes(bytes.fromhex(answer["answer_hex"]), "little") == 3
        assert answer["answer"] is None and answer["gas_used"] > 0  # 8 raw bytes, not JSON
        r = c.post(f"/v1/wasm/{encode_address(address)}/query", json={"msg": {"write": {}}})
        assert (r.status_code, r.json()["error"]["code"]) == (400, "wasm_trap")
        nobody = encode_address(bytes(20))
        r = c.get(f"/v1/wasm/{nobody}")
        assert (r.status_code, r.json()["error"]["code"]) == (404, "unknown_contract")
        r = c.post(f"/v1/wasm/{nobody}/query", json={"msg": {}})
        assert r.status_code == 404
        r = c.post(f"/v1/wasm/{encode_address(address)}/query", json={"msg": {}, "x": 1})
        assert (r.status_code, r.json()["error"]["code"]) == (400, "malformed")
        # One address, two spellings: the 0x form (EIP-55, or one case) reads the same.
        for spelled in (hex_address(address), "0x" + address.hex(), address.hex().upper()):
            assert c.get(f"/v1/wasm/{spelled}").json() == info
        mine = c.get(f"/v1/accounts/{dev.address}").json()
        assert c.get(f"/v1/accounts/{hex_address(decode_address(dev.address))}").json() == mine
        good = hex_address(address)
        i = next(i for i, ch in enumerate(good) if i > 1 and ch.isalpha())
        broken = good[:i] + good[i].swapcase() + good[i + 1 :]
        r = c.get(f"/v1/wasm/{broken}")
        assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_address")
