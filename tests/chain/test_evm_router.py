"""EVM contracts send packets through the router precompile: they pay, stake,
link and call WASM contracts, and a packet stands or falls with its call.

The contracts are a few bytes of hand-assembled code: ``FORWARD`` passes its
calldata to the router with ``CALL`` and stores the call's success at slot 0;
``FORWARD_REVERT`` does the same and then reverts; ``DELEGATE`` and
``STATIC`` make the call with ``DELEGATECALL`` and ``STATICCALL``.
"""

from __future__ import annotations

import json

import wasmtime
from eth_abi import encode as abi_encode

from focusflow.chain import Genesis, Msg
from focusflow.core.cid import cid_of_text, cid_to_bytes
from focusflow.modules import WasmParams
from focusflow.node import open_chain
from focusflow.state_schema.accounts import get_account, get_neudeg
from focusflow.testing.chains import ALICE, BOB, VALIDATOR, tx
from focusflow.vm import wasm
from focusflow.vm.evm import ROUTER_ADDRESS, packet_topic, packets_of
from focusflow.vm.evm_keys import storage_key
from tests.chain.test_evm import SENDER, deployable, eth
from tests.chain.test_evm import _genesis as evm_genesis
from tests.chain.test_router import _deploy as deploy_wasm
from tests.chain.test_router import sender as wasm_sender
from tests.chain.test_wasm import COUNTER

T0 = 1_700_000_000_000
_CALL_HEAD = "366000600037" + "60006000" + "36" + "6000"
_CALL_TAIL = "61f0c65a"
#: calldata -> router by CALL (value 0); slot 0 = success.
FORWARD = bytes.fromhex(_CALL_HEAD + "6000" + _CALL_TAIL + "f1" + "600055" + "00")
FORWARD_REVERT = bytes.fromhex(_CALL_HEAD + "6000" + _CALL_TAIL + "f1" + "600055" + "60006000fd")
DELEGATE = bytes.fromhex(_CALL_HEAD + _CALL_TAIL + "f4" + "600055" + "00")
STATIC = bytes.fromhex(_CALL_HEAD + _CALL_TAIL + "fa" + "600055" + "00")
GAS_PRICE = 3  # base fee 1 + tip 2 (eth()'s fees)


def _genesis() -> Genesis:
    return evm_genesis({"address": BOB.address, "balance": 10**6, "stake": 0})


def wasm_tx(key, nonce: int, contract: bytes, gas: int = 10**7) -> bytes:
    body = {"contract": contract, "msg": b"{}", "gas": gas}
    return tx(key, nonce, Msg("wasm.execute", body), fee=10**7)


def packet(port: str, doc, gas: int = 0) -> bytes:
    return abi_encode(["string", "bytes", "uint256"], [port, json.dumps(doc).encode(), gas])


class Node:
    """A producing chain, its blocks kept for a follower to replay."""

    def __init__(self, tmp_path) -> None:
        self.chain = open_chain(tmp_path / "a", _genesis(), VALIDATOR)
        self.tmp = tmp_path
        self.nonce = 0
        self.t = T0

    def block(self, *raw: bytes):
        self.t += 1000
        return self.chain.produce_block(list(raw), time_ms=self.t)

    def send(self, to: bytes | None, data: bytes = b"", **kw):
        result = self.block(eth(self.nonce, to, data, **kw))
        self.nonce += 1
        return result.receipts[0]

    def deploy(self, code: bytes, value: int = 0) -> bytes:
        receipt = self.send(None, deployable(code), value=value)
        assert receipt.code == "ok", receipt.log
        return receipt.events[0]["contract"]

    def replays(self) -> bool:
        follower = open_chain(self.tmp / "f", _genesis(), None)
        for height in range(1, self.chain.height + 1):
            with self.chain.reader() as r:
                follower.apply_block(r.block(height))
        return follower.head == self.chain.head


def test_a_contract_pays_stakes_and_links_through_the_router(tmp_path):
    node = Node(tmp_path)
    contract = node.deploy(FORWARD, value=10_000)
    with node.chain.reader() as r:
        bob = get_account(r, BOB.address_raw).balance
    pay = node.send(contract, packet("bank", {"send": {"to": BOB.address, "amount": 77}}))
    assert pay.code == "ok", pay.log
    evm, sent = pay.events[0], pay.events[1]
    assert evm["status"] == 1 and sent["type"] == "packet" and sent["port"] == "bank"
    assert sent["source"] == contract and sent["ack"] == {"sent": 77, "to": BOB.address}
    # The packet is also an Ethereum log of the router, for tools that index logs.
    ((address, topics, _),) = evm["logs"]
    assert address == ROUTER_ADDRESS and int.from_bytes(topics[0], "big") == packet_topic()
    stake = node.send(contract, packet("bank", {"stake": {"amount": 1000}}))
    assert stake.code == "ok", stake.log
    cats, mammals = cid_of_text("cats"), cid_of_text("mammals")
    linked = node.send(contract, packet("graph", {"link": [[cats, mammals]]}))
    assert linked.code == "ok", linked.log
    with node.chain.reader() as r:
        assert get_account(r, BOB.address_raw).balance == bob + 77
        account = get_account(r, contract)
        assert account.bonded == 1000
        assert account.balance == 10_000 - 77 - 1000 - node.chain.params.link_burn
        assert get_neudeg(r, contract) == 1
        assert int.from_bytes(r.get(storage_key(contract, 0)), "big") == 1
    node.block()  # the link's focus is committed with the next block
    assert node.chain.focus.focus_of(cid_to_bytes(mammals)) is not None
    assert node.replays()


def test_a_failed_packet_undoes_the_call_and_keeps_its_gas(tmp_path):
    node = Node(tmp_path)
    contract = node.deploy(FORWARD, value=50)
    with node.chain.reader() as r:
        before = get_account(r, SENDER)
        bob = get_account(r, BOB.address_raw).balance
    receipt = node.send(contract, packet("bank", {"send": {"to": BOB.address, "amount": 51}}))
    assert receipt.code == "insufficient_funds"
    assert "packet 0 to 'bank'" in receipt.log
    evm = receipt.events[0]
    assert evm["status"] == 0 and evm["logs"] == [] and len(receipt.events) == 1
    with node.chain.reader() as r:
        after = get_account(r, SENDER)
        assert r.get(storage_key(contract, 0)) is None  # the call's own write is gone
        assert get_account(r, contract).balance == 50
        assert get_account(r, BOB.address_raw).balance == bob
    assert after.nonce == before.nonce + 1
    assert after.balance == before.balance - evm["gas_used"] * GAS_PRICE
    closed = node.send(contract, packet("validators", {"anything": 1}))
    assert closed.code == "port_refused"
    unknown = node.send(contract, packet("nowhere", {}))
    assert unknown.code == "unknown_port"
    assert node.replays()


def test_a_packet_of_a_reverted_or_borrowed_call_is_never_sent(tmp_path):
    """A revert drops the packet with the call; DELEGATECALL (which would send
    in the caller's name), STATICCALL and bad input make the router's call
    fail, which the contract sees as a failed call."""
    node = Node(tmp_path)
    pay = packet("bank", {"send": {"to": BOB.address, "amount": 5}})
    with node.chain.reader() as r:
        bob = get_account(r, BOB.address_raw).balance
    reverting = node.deploy(FORWARD_REVERT, value=100)
    receipt = node.send(reverting, pay)
    assert receipt.code == "evm_reverted"
    for code in (DELEGATE, STATIC):
        contract = node.deploy(code, value=100)
        receipt = node.send(contract, pay)
        assert receipt.code == "ok" and len(receipt.events) == 1
        with node.chain.reader() as r:
            assert r.get(storage_key(contract, 0)) is None  # CALL's result: 0
    forward = node.deploy(FORWARD, value=100)
    for bad in (
        b"",
        b"\x01" * 96,
        abi_encode(["string", "bytes"], ["bank", b"{}"]),
        packet("bank", {}, gas=1)[:-32],
        packet("bank", {}, gas=1),  # gas is for wasm/ ports only
        packet("wasm/00", {}, gas=10**9),  # more than the call has
    ):
        receipt = node.send(forward, bad)
        assert receipt.code == "ok" and len(receipt.events) == 1
    huge = abi_encode(["string", "bytes", "uint256"], ["bank", b" " * (17 * 1024), 0])
    receipt = node.send(forward, huge, gas=1_000_000)
    assert receipt.code == "ok" and len(receipt.events) == 1
    with node.chain.reader() as r:
        assert r.get(storage_key(forward, 0)) is None
        assert get_account(r, BOB.address_raw).balance == bob
    # The signer may send its own packet by calling the router itself.
    own = node.send(ROUTER_ADDRESS, pay)
    assert own.code == "ok" and own.events[1]["source"] == SENDER
    assert node.replays()


def test_an_evm_contract_calls_a_wasm_contract_with_the_gas_it_forwards(tmp_path):
    node = Node(tmp_path)
    counter = deploy_wasm(node.chain, ALICE, 0, wasmtime.wat2wasm(COUNTER), T0 + 500)
    node.t = T0 + 1000
    forward = node.deploy(FORWARD)
    call = packet(f"wasm/{counter.hex()}", {"increment": {}}, gas=50_000)
    receipt = node.send(forward, call, gas=300_000)
    assert receipt.code == "ok", receipt.log
    ((_, _, record),) = receipt.events[0]["logs"]
    ((source, port, _, forwarded),) = packets_of([(ROUTER_ADDRESS, [packet_topic()], record)])
    assert source == forward and port == f"wasm/{counter.hex()}"
    assert forwarded == 50_000
    used = receipt.events[1]["ack"]["gas_used"]
    assert 0 < used <= forwarded * WasmParams.of(node.chain.params).wasm_gas_per_unit
    with node.chain.reader() as r:
        count = int.from_bytes(r.get(wasm.storage_key(counter, b"count")), "little")
    assert count == 1
    assert node.replays()


#: Keeps its caller at slot 0.
STORE_CALLER = bytes.fromhex("33600055" + "00")
#: Reverts whatever it is given.
REVERT = bytes.fromhex("60006000fd")


def test_a_wasm_contract_calls_an_evm_contract_as_its_own_sender(tmp_path):
    node = Node(tmp_path)
    keeper = node.deploy(STORE_CALLER)
    forward = node.deploy(FORWARD, value=100)
    reverts = node.deploy(REVERT)
    # The EVM contract FORWARD passes its calldata to the router: a packet
    # from the WASM contract makes it send one of its own (a bank transfer).
    inner = packet("bank", {"send": {"to": BOB.address, "amount": 40}})
    calls = [
        (f"evm/{keeper.hex()}", json.dumps({"call": {"data": "0x"}}).encode()),
        (f"evm/{forward.hex()}", json.dumps({"call": {"data": "0x" + inner.hex()}}).encode()),
    ]
    caller = deploy_wasm(node.chain, ALICE, 0, wasm_sender(calls), node.t + 500)
    node.t += 2000
    with node.chain.reader() as r:
        bob = get_account(r, BOB.address_raw).balance
    result = node.chain.produce_block(
        [wasm_tx(ALICE, 2, caller, gas=2 * 10**8)], time_ms=node.t + 1000
    )
    node.t += 1000
    receipt = result.receipts[0]
    assert receipt.code == "ok", receipt.log
    acks = [e for e in receipt.events if e["type"] == "packet"]
    assert [a["port"] for a in acks] == [calls[0][0], "bank", calls[1][0]]
    assert acks[0]["ack"]["gas_used"] >= 21_000
    with node.chain.reader() as r:
        assert int.from_bytes(r.get(storage_key(keeper, 0)), "big") == int.from_bytes(caller, "big")
        assert get_account(r, BOB.address_raw).balance == bob + 40
        assert get_account(r, forward).balance == 60
        before = get_account(r, caller)
    # A call that reverts fails the message: nothing it or the calls before did stays.
    bad = [calls[0], (f"evm/{reverts.hex()}", json.dumps({"call": {}}).encode())]
    failing = deploy_wasm(node.chain, ALICE, 3, wasm_sender(bad), node.t + 500)
    node.t += 2000
    result = node.chain.produce_block(
        [wasm_tx(ALICE, 5, failing, gas=10**8)], time_ms=node.t + 1000
    )
    node.t += 1000
    assert result.receipts[0].code == "evm_reverted", result.receipts[0].log
    with node.chain.reader() as r:
        assert int.from_bytes(r.get(storage_key(keeper, 0)), "big") == int.from_bytes(caller, "big")
        assert get_account(r, caller).nonce == before.nonce
    malformed = [(f"evm/{keeper.hex()}", json.dumps({"call": {"data": "zz"}}).encode())]
    broken = deploy_wasm(node.chain, ALICE, 6, wasm_sender(malformed), node.t + 500)
    node.t += 2000
    result = node.chain.produce_block([wasm_tx(ALICE, 8, broken)], time_ms=node.t + 1000)
    node.t += 1000
    assert result.receipts[0].code == "malformed_message", result.receipts[0].log
    assert node.replays()
