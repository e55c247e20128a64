"""Golden state roots of the execution plane: the same blocks commit the same bits.

Three blocks mix native links, Ethereum transactions (a deployment, a contract
that reads focus through the precompile, a transfer, a revert) and WASM
messages (upload, instantiate, execute, a focus read, an out-of-gas call),
on a genesis whose focus runs in the exact arithmetic (exact-v2, named). Every block's state
root must equal the constant recorded here: py-evm's integer arithmetic,
wasmtime's fuel and canonical NaNs, and the focus the contracts read are the
same on every CPU, thread count and build (checked on the dev VM's AMD EPYC
and on an Intel Xeon). A change that alters a root changes what every chain
with contracts commits.
"""

from __future__ import annotations

import json

import wasmtime
from eth_account import Account

from focusflow.chain import Genesis, Msg
from focusflow.chain.eth_tx import evm_chain_id
from focusflow.chain.focus_spec import NEW_CHAIN_FOCUS
from focusflow.core.cid import cid_from_bytes as cid_text
from focusflow.core.keys import encode_address
from focusflow.node import open_chain
from focusflow.testing.chains import ALICE, BOB, CHAIN_ID, VALIDATOR, link, particle, tx
from focusflow.vm import wasm
from focusflow.vm.evm import FOCUS_ADDRESS
from focusflow.vm.evm_keys import storage_key as evm_storage_key
from tests.chain.test_evm import READER, abi_bytes, deployable
from tests.chain.test_wasm import COUNTER

T0 = 1_700_000_000_000
KEY = bytes.fromhex("59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d")
SENDER = bytes.fromhex(Account.from_key(KEY).address[2:])
FEE = 10**7

GOLDEN = [
    "4201c4b438b4283f2e9ff5b316279fc3740d8356cb8c4b0d84bbf666aecd86b6",
    "fe9fdaca4fa2211cdd54033ba3e263f1b17056629c85b1cc96db8d39c9e99fdb",
    "61a2755be4e7ce24dbf5109a04f16cd42715dbea32724e2ba792589d601d9953",
]


def eth(nonce: int, to: bytes | None = None, data: bytes = b"", **kw) -> bytes:
    fields = {
        "chainId": evm_chain_id(CHAIN_ID), "nonce": nonce, "maxFeePerGas": 10,
        "maxPriorityFeePerGas": 2, "gas": 300_000, "to": to, "value": 0, "data": data,
        "type": 2, **kw,
    }  # fmt: skip
    return bytes(Account.sign_transaction(fields, KEY).raw_transaction)


def plane_roots(path) -> list[str]:
    genesis = Genesis.from_json(
        {
            "chain_id": CHAIN_ID,
            "genesis_time_ms": T0,
            # The arithmetic the roots were recorded with: a later default
            # for new geneses must not move them.
            "params": {"focus": {**NEW_CHAIN_FOCUS, "arithmetic": "exact-v2"}},
            "accounts": [
                {"address": encode_address(SENDER), "balance": 10**18, "stake": 0},
                {"address": ALICE.address, "balance": 10**12, "stake": 10**6},
                {"address": BOB.address, "balance": 10**12, "stake": 0},
            ],
            "validators": [{"name": "v", "public_key": VALIDATOR.public_key.hex(), "power": 1}],
        }
    )
    chain = open_chain(path, genesis, VALIDATOR)
    code = wasmtime.wat2wasm(COUNTER)
    first = chain.produce_block(
        [
            tx(ALICE, 0, link(("x", "y"), ("y", "z"), ("z", "x"), ("w", "y"))),
            eth(0, data=deployable(READER)),
            tx(BOB, 0, Msg("wasm.store", {"code": code}), fee=FEE),
        ],
        time_ms=T0 + 1000,
    )
    reader = first.receipts[1].events[0]["contract"]
    code_hash = first.receipts[2].events[0]["code"]
    inst = Msg("wasm.instantiate", {"code": code_hash, "msg": b"{}", "label": "c", "gas": 10**6})
    second = chain.produce_block(
        [
            eth(1, reader, abi_bytes(b"\0" * 4, particle("y"))),
            eth(2, FOCUS_ADDRESS, particle("x")),
            tx(BOB, 1, inst, fee=FEE),
        ],
        time_ms=T0 + 2000,
    )
    contract = second.receipts[2].events[0]["contract"]

    def run(key: str, gas: int = 10**6) -> Msg:
        body = {"contract": contract, "msg": json.dumps({key: cid_text(particle("y"))}), "gas": gas}
        body["msg"] = body["msg"].encode()
        return Msg("wasm.execute", body)

    third = chain.produce_block(
        [
            eth(3, bytes(20), value=12345, gas=21_000),
            eth(4, reader, b"", gas=21_000),  # runs out at its first opcode
            tx(BOB, 2, run("increment"), run("focus"), fee=FEE),
            tx(BOB, 3, run("loop", 50_000), fee=FEE),
        ],
        time_ms=T0 + 3000,
    )
    codes = [[r.code for r in b.receipts] for b in (first, second, third)]
    assert codes == [
        ["ok", "ok", "ok"],
        ["ok", "ok", "ok"],
        ["ok", "evm_reverted", "ok", "wasm_out_of_gas"],
    ], codes
    with chain.reader() as r:  # both contracts read a focus that is not 0
        assert int.from_bytes(r.get(evm_storage_key(reader, 0)), "big") > 0
        assert int.from_bytes(r.get(wasm.storage_key(contract, b"count")), "little") > 1
    roots = [b.record.block.header.state_root.hex() for b in (first, second, third)]
    chain.close()
    return roots


def test_the_plane_commits_the_golden_roots(tmp_path):
    assert plane_roots(tmp_path / "a") == GOLDEN
