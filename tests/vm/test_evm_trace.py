"""Opcode traces (``vm.evm_trace``): recorded by a real chain's block when a store is
installed (an anvil devnet), nothing recorded otherwise, and the store's bounds."""

from __future__ import annotations

import pytest
from eth_account import Account

from focusflow.chain import Genesis
from focusflow.chain.eth_tx import evm_chain_id
from focusflow.core.keys import encode_address
from focusflow.node import open_chain
from focusflow.testing.chains import CHAIN_ID, VALIDATOR
from focusflow.vm import evm_trace
from focusflow.vm.evm_trace import Trace, TraceStore

T0 = 1_700_000_000_000
KEY = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
SENDER = bytes.fromhex("f39fd6e51aad88f6f4ce6ab8827279cfffb92266")
#: Initcode that stores 5 at slot 1 and deploys nothing.
STORE_5 = bytes.fromhex("6005600155" + "00")


def _eth(nonce: int, data: bytes, gas: int = 100_000) -> tuple[bytes, bytes]:
    fields = {"chainId": evm_chain_id(CHAIN_ID), "nonce": nonce, "maxFeePerGas": 10,
              "maxPriorityFeePerGas": 1, "gas": gas, "to": None, "data": data}  # fmt: skip
    signed = Account.sign_transaction(fields, KEY)
    return bytes(signed.raw_transaction), bytes(signed.hash)


@pytest.fixture
def chain(tmp_path):
    genesis = Genesis.from_json(
        {
            "chain_id": CHAIN_ID,
            "genesis_time_ms": T0,
            "accounts": [{"address": encode_address(SENDER), "balance": 10**18, "stake": 0}],
            "validators": [{"name": "v", "public_key": VALIDATOR.public_key.hex(), "power": 1}],
        }
    )
    chain = open_chain(tmp_path / "chain", genesis, VALIDATOR)
    yield chain
    chain.close()


def test_a_block_records_its_transactions_traces_only_while_a_store_is_installed(chain):
    raw, tx_hash = _eth(0, STORE_5)
    store = TraceStore()
    evm_trace.install(store)
    try:
        result = chain.produce_block([raw], time_ms=T0 + 1000)
    finally:
        evm_trace.install(None)
    assert [r.code for r in result.receipts] == ["ok"]
    trace = store.get(tx_hash)
    assert trace is not None and not trace.truncated
    assert [step[1] for step in trace.steps] == ["PUSH1", "PUSH1", "SSTORE", "STOP"]
    pc, op, gas, cost, depth, stack = trace.steps[2]
    assert (pc, op, depth, stack) == (4, "SSTORE", 1, [5, 1])
    assert cost == 22_100 and gas > cost  # a cold slot set from zero (EIP-2929)
    assert trace.steps[1][5] == [5]

    raw, tx_hash = _eth(1, STORE_5)
    result = chain.produce_block([raw], time_ms=T0 + 2000)
    assert [r.code for r in result.receipts] == ["ok"] and store.get(tx_hash) is None


def test_the_store_keeps_the_last_traces_within_its_bounds():
    store = TraceStore(keep=3, steps=10)
    for i in range(5):
        store.put(bytes([i]), Trace(steps=[(0, "STOP", 0, 0, 1, [])] * 2))
    assert [store.get(bytes([i])) is not None for i in range(5)] == [False, False, True, True, True]
    store.put(b"big", Trace(steps=[(0, "STOP", 0, 0, 1, [])] * 9))
    assert store.get(bytes([4])) is None and store.get(b"big") is not None
    # A trace larger than the bound on its own is still kept, alone.
    store.put(b"huge", Trace(steps=[(0, "STOP", 0, 0, 1, [])] * 50))
    assert store.get(b"big") is None and store.get(b"huge") is not None
