"""Ethereum transactions in the chain: execution, refusals, followers and hostile bytes."""

from __future__ import annotations

import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from focusflow.chain import Genesis, Msg, decode_tx
from focusflow.chain.errors import TxError
from focusflow.chain.eth_tx import EthTx, evm_chain_id
from focusflow.chain.state import PendingState
from focusflow.core.encoding import encode
from focusflow.core.errors import DecodeError
from focusflow.core.keys import encode_address
from focusflow.node import open_chain
from focusflow.state_schema.accounts import get_account
from focusflow.testing.chains import ALICE, BOB, CHAIN_ID, VALIDATOR, link, particle, tx
from focusflow.vm.evm_keys import ACCOUNT_PREFIX, storage_key
from focusflow.vm.evm_state import StateAccountDB

T0 = 1_700_000_000_000
KEY = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
SENDER = bytes.fromhex("f39fd6e51aad88f6f4ce6ab8827279cfffb92266")
FUNDS = 10**18
#: Code that stores calldata[0:32] at slot 0 and logs it with topic 1.
STORE = bytes.fromhex("60003580600055600052600160206000a100")
INIT = bytes([0x60, len(STORE)]) + bytes.fromhex("80600b6000396000f3") + STORE
#: ``focusOf(bytes cid)``: asks the focus precompile, stores the answer at slot 0
#: and returns it (the ABI's offset word is taken to be 0x20).
READER = bytes.fromhex("6024358060446000376020600082600061f0c55afa505060005160005560206000f3")


def deployable(code: bytes) -> bytes:
    return bytes([0x60, len(code)]) + bytes.fromhex("80600b6000396000f3") + code


def abi_bytes(selector: bytes, payload: bytes) -> bytes:
    padded = payload + b"\0" * (-len(payload) % 32)
    return selector + (32).to_bytes(32, "big") + len(payload).to_bytes(32, "big") + padded


def _genesis(*accounts: dict) -> Genesis:
    """The EVM tests' chain: SENDER funded, ALICE staked, and ``accounts``."""
    return Genesis.from_json(
        {
            "chain_id": CHAIN_ID,
            "genesis_time_ms": T0,
            "params": {"focus": {"mode": "diffusion"}},
            "accounts": [
                {"address": encode_address(SENDER), "balance": FUNDS, "stake": 0},
                {"address": ALICE.address, "balance": 10**12, "stake": 10**6},
                *accounts,
            ],
            "validators": [{"name": "v", "public_key": VALIDATOR.public_key.hex(), "power": 1}],
        }
    )


def eth(nonce: int, to: bytes | None = None, data: bytes = b"", **kw) -> bytes:
    fields = {
        "chainId": evm_chain_id(CHAIN_ID),
        "nonce": nonce,
        "maxFeePerGas": 10,
        "maxPriorityFeePerGas": 2,
        "gas": 200_000,
        "to": to,
        "value": 0,
        "data": data,
        "type": 2,
        **kw,
    }
    return bytes(Account.sign_transaction(fields, KEY).raw_transaction)


def test_a_block_of_ethereum_and_native_transactions_replays_to_the_same_root(tmp_path):
    a = open_chain(tmp_path / "a", _genesis(), VALIDATOR)
    b = open_chain(tmp_path / "b", _genesis(), None)
    first = a.produce_block([eth(0, data=INIT), tx(ALICE, 0, link(("x", "y")))], time_ms=T0 + 1000)
    assert [r.code for r in first.receipts] == ["ok", "ok"]
    (event,) = first.receipts[0].events
    contract = event["contract"]
    assert event["status"] == 1 and len(contract) == 20
    value = (7).to_bytes(32, "big")
    second = a.produce_block(
        [eth(1, contract, value), eth(2, contract, b"", gas=21_000)], time_ms=T0 + 2000
    )
    ok, starved = second.receipts
    assert ok.code == "ok" and ok.events[0]["logs"] == [
        [contract, [(1).to_bytes(32, "big")], value]
    ]
    # 21000 gas is all a call's intrinsic cost: it runs out at the first opcode.
    assert starved.code == "evm_reverted" and starved.events[0]["status"] == 0
    for result in (first, second):
        b.apply_block(result.record.encode())
    assert b.head == a.head
    with a.reader() as r:
        assert r.get(storage_key(contract, 0)) == b"\x07"
        account = get_account(r, SENDER)
    gas = sum(rc.events[0]["gas_used"] for res in (first, second) for rc in res.receipts[:2]
              if rc.events and rc.events[0].get("type") == "evm")  # fmt: skip
    assert account.nonce == 3 and account.balance == FUNDS - gas * 3  # base 1 + tip 2
    assert a.store.recompute_root() == a.head.state_root


@pytest.mark.parametrize(
    "make, code",
    [
        (lambda: eth(5), "bad_nonce"),
        (lambda: eth(0, chainId=evm_chain_id("other")), "wrong_chain_id"),
        (lambda: eth(0, maxFeePerGas=0, maxPriorityFeePerGas=0), "insufficient_fee"),
        (lambda: eth(0, value=FUNDS), "insufficient_funds"),
        (lambda: eth(0, gas=40_000_000), "over_limit"),
        (lambda: eth(0, gas=20_000), "evm_invalid"),
    ],
)
def test_a_refused_ethereum_transaction_stays_out_and_changes_nothing(tmp_path, make, code):
    chain = open_chain(tmp_path / "c", _genesis(), VALIDATOR)
    before = chain.head.state_root
    result = chain.produce_block([make()], time_ms=T0 + 1000)
    assert [r.error.code for r in result.rejected] == [code] and result.receipts == []
    with chain.reader() as r:
        assert get_account(r, SENDER).balance == FUNDS
    assert chain.head.height == 1 and chain.head.state_root == before  # an empty block


@pytest.mark.parametrize(
    "raw",
    [b"\x02", b"\x02\xc0", b"\xf8\x00", b"\x01" + b"\xff" * 40, b"\xc1\x80", b"\x02" + bytes(300)],
)
def test_hostile_ethereum_bytes_are_a_decode_error(raw):
    with pytest.raises(DecodeError):
        decode_tx(raw)


def test_a_bad_signature_is_refused():
    raw = bytearray(eth(0))
    raw[-5] ^= 0xFF  # inside s
    tx = decode_tx(bytes(raw))
    assert isinstance(tx, EthTx)
    with pytest.raises(Exception) as info:
        tx.verify_signature()
        _ = tx.sender_address
        assert tx.sender_address != SENDER
        raise AssertionError("recovered another sender")
    assert getattr(info.value, "code", "bad_signature") == "bad_signature"


def test_the_state_view_rolls_back_to_checkpoints_and_keeps_bonded_stake():
    base = PendingState(lambda k: None)
    who = b"\x11" * 20
    base.put(ACCOUNT_PREFIX + who, encode([5, 1, 9]))
    view = StateAccountDB(base)
    outer = view.record()
    view.set_balance(who, 50)
    view.set_storage(who, 3, 42)
    view.mark_address_warm(who)
    inner = view.record()
    view.set_storage(who, 3, 0)
    view.set_code(who, b"\x00")
    view.discard(inner)
    assert view.get_storage(who, 3) == 42 and view.get_code(who) == b""
    view.commit(outer)
    assert view.is_address_warm(who)
    view.delete_account(who)
    assert view.get_balance(who) == 0 and view.get_storage(who, 3) == 0
    view.flush()
    assert base.get(ACCOUNT_PREFIX + who) == encode([0, 0, 9])  # bonded stake stays
    assert base.get(storage_key(who, 3)) is None
    assert not view.is_address_warm(who)  # a new transaction starts cold


def test_a_transaction_the_block_has_no_gas_left_for_waits_for_the_next(tmp_path):
    chain = open_chain(tmp_path / "c", _genesis(), VALIDATOR)
    # Creation code 0xfe (INVALID) burns all its gas: 20M of the block's 30M.
    big = [eth(0, data=b"\xfe", gas=20_000_000), eth(1, gas=20_000_000)]
    first = chain.produce_block(big, time_ms=T0 + 1000)
    assert [r.code for r in first.receipts] == ["evm_reverted"]
    assert first.receipts[0].events[0]["gas_used"] == 20_000_000
    assert first.rejected == []  # the second is left for later, not refused
    second = chain.produce_block(big[1:], time_ms=T0 + 2000)
    assert [r.code for r in second.receipts] == ["ok"]


def test_a_contract_reads_the_focus_the_parent_block_committed(tmp_path):
    from focusflow.vm.evm import FOCUS_ADDRESS

    a = open_chain(tmp_path / "a", _genesis(), VALIDATOR)
    b = open_chain(tmp_path / "b", _genesis(), None)
    blocks = [a.produce_block([tx(ALICE, 0, link(("x", "y"), ("y", "z")))], time_ms=T0 + 1000)]
    cid = particle("y")
    expected = a.focus.focus_of(cid)[0]
    assert expected > 0
    blocks.append(a.produce_block([eth(0, data=deployable(READER))], time_ms=T0 + 2000))
    reader = blocks[-1].receipts[0].events[0]["contract"]
    calls = [
        eth(1, reader, abi_bytes(b"\0" * 4, cid)),
        eth(2, FOCUS_ADDRESS, particle("nobody")),
    ]
    blocks.append(a.produce_block(calls, time_ms=T0 + 3000))
    assert [r.code for r in blocks[-1].receipts] == ["ok", "ok"]
    with a.reader() as r:
        assert int.from_bytes(r.get(storage_key(reader, 0)), "big") == expected
    for result in blocks:  # a follower computes the same from its own focus
        b.apply_block(result.record.encode())
    assert b.head == a.head


@settings(max_examples=500, deadline=None)
@given(
    first=st.sampled_from([0x01, 0x02, 0xF8, 0xF9, 0xFA, 0xFB]),
    rest=st.binary(max_size=300),
)
def test_any_bytes_that_look_ethereum_decode_or_are_malformed(first, rest):
    """Hostile bytes from the wire: a decode error or a transaction whose checks
    raise only their own codes, never another exception."""
    raw = bytes([first]) + rest
    try:
        tx = decode_tx(raw)
    except DecodeError:
        return
    assert isinstance(tx, EthTx)
    try:
        tx.verify_signature()
        tx.check_chain(CHAIN_ID)
    except TxError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_ethereum_transactions_never_escape_as_other_errors(data):
    raw = bytearray(eth(0, data=b"\x01\x02"))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    try:
        tx = decode_tx(bytes(raw))
    except (DecodeError, TxError):
        return
    try:
        tx.verify_signature()
        tx.check_chain(CHAIN_ID)
        _ = tx.sender_address
    except TxError:
        pass


#: Passes its calldata to the karma precompile and stores the answer at slot 0.
KARMA_READER = bytes.fromhex("366000600037" + "6020600036600061f0c75afa50" + "60005160005500")


def test_a_contract_reads_karma_as_every_node_computes_it(tmp_path):
    from focusflow.chain.karma import karma_fixed

    a = open_chain(tmp_path / "a", _genesis(), VALIDATOR)
    b = open_chain(tmp_path / "b", _genesis(), None)
    blocks = [a.produce_block([tx(ALICE, 0, link(("x", "y"), ("y", "z")))], time_ms=T0 + 1000)]
    table = karma_fixed(a.focus.graph, a.focus.q)
    expected = int(table[a.focus.graph.neurons.get(ALICE.address_raw)])
    assert expected > 0
    blocks.append(a.produce_block([eth(0, data=deployable(KARMA_READER))], time_ms=T0 + 2000))
    reader = blocks[-1].receipts[0].events[0]["contract"]
    word = ALICE.address_raw.rjust(32, b"\0")
    for nonce, (data, want) in enumerate(
        [(ALICE.address_raw, expected), (word, expected), (b"\1" * 20, 0), (b"\1" * 7, 0)], 1
    ):
        blocks.append(a.produce_block([eth(nonce, reader, data)], time_ms=T0 + 2000 + 1000 * nonce))
        assert blocks[-1].receipts[0].code == "ok"
        with a.reader() as r:
            stored = r.get(storage_key(reader, 0))
        assert (int.from_bytes(stored, "big") if stored else 0) == want
    for result in blocks:  # a follower computes the same from its own graph
        b.apply_block(result.record.encode())
    assert b.head == a.head


#: Passes its calldata to the TWAP precompile and stores the answer at slot 0.
TWAP_READER = bytes.fromhex("366000600037" + "6020600036600061f0c85afa50" + "60005160005500")


def test_a_contract_reads_a_pools_twap(tmp_path):
    """The TWAP precompile answers the exchange's own oracle (Q64) at the block's
    time, in the state the block's earlier transactions left; 0 without a pool."""
    from focusflow.modules.dex import twap_q64

    bob = {"address": BOB.address, "balance": 10**12, "stake": 0, "tokens": {"h": 10**12}}
    chain = open_chain(tmp_path / "a", _genesis(bob), VALIDATOR)
    create = Msg("dex.create", {"a": "h", "b": "cyb", "amount_a": 3 * 10**9, "amount_b": 10**9})
    swap = Msg("dex.swap", {"path": ["cyb", "h"], "amount_in": 10**7, "min_out": 0})
    assert chain.produce_block([tx(BOB, 0, create)], time_ms=T0 + 1000).receipts[0].ok
    assert chain.produce_block([tx(BOB, 1, swap)], time_ms=T0 + 5000).receipts[0].ok
    deployed = chain.produce_block([eth(0, data=deployable(TWAP_READER))], time_ms=T0 + 6000)
    reader = deployed.receipts[0].events[0]["contract"]
    for nonce, text in enumerate([b"h cyb", b"cyb h", b"h nope", b"h"], 1):
        now = T0 + 6000 + 9000 * nonce
        result = chain.produce_block([eth(nonce, reader, text)], time_ms=now)
        assert result.receipts[0].code == "ok", result.receipts[0].log
        with chain.reader() as r:
            stored = r.get(storage_key(reader, 0))
            base, _, quote = text.decode().partition(" ")
            want = twap_q64(r, base, quote, now, chain.params) if quote in ("h", "cyb") else None
        got = int.from_bytes(stored, "big") if stored else 0
        assert got == (want or 0)
        if want is not None:
            assert got > 0 and abs(got / 2**64 - (1 / 3 if base == "h" else 3)) < 0.05
