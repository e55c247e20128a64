"""WASM contracts as chain messages: a counter written in WAT, gas, traps, focus.

The contract (``COUNTER``) keeps a count under the key ``count``. Its entry
points dispatch on the message's first key, read as bytes of the call
document (``{"env":...,"sender":...,"msg":{"<key>"...``): the document is
built by the host, so the key sits after the fixed ``"msg":{"`` prefix the
contract searches for.
"""

from __future__ import annotations

import json

import pytest
import wasmtime

from focusflow.chain import Msg
from focusflow.chain.state import PendingState
from focusflow.core.cid import cid_from_bytes as cid_text
from focusflow.core.encoding import decode
from focusflow.testing.chains import (
    ALICE,
    BOB,
    CAROL,
    CHAIN_ID,
    genesis,
    link,
    new_chain,
    particle,
    tx,
)
from focusflow.vm import wasm
from tests.helpers import ROOT

T0 = 1_700_000_000_000

#: Messages (after ``"msg":{"``): ``i``ncrement, ``l``oop (forever), ``t``rap,
#: ``a``bort, ``f``ocus (store the focus of the 59-character CID that ends the
#: message, ``{"focus": "bafk..."}``); anything else returns the count.
#: ``instantiate`` stores count 0.
COUNTER = (ROOT / "tests" / "chain" / "counter.wat").read_text()


def code() -> bytes:
    return wasmtime.wat2wasm(COUNTER)


def m(kind: str, **body) -> Msg:
    return Msg(kind, body)


def call_msg(key: str) -> bytes:
    return json.dumps({key: {}}).encode()


def count_of(chain, address: bytes) -> int:
    with chain.reader() as r:
        raw = r.get(wasm.storage_key(address, b"count"))
    return int.from_bytes(raw, "little")


FEE = 10**7  # pays the size's minimum and 10^9 gas at 1,000 gas per unit


def _deploy(chain):
    c = code()
    r = chain.produce_block([tx(ALICE, 0, m("wasm.store", code=c), fee=FEE)], time_ms=T0 + 1000)
    code_hash = r.receipts[0].events[0]["code"]
    inst = m("wasm.instantiate", code=code_hash, msg=b"{}", label="counter", gas=10**6)
    r = chain.produce_block([tx(ALICE, 1, inst, fee=FEE)], time_ms=T0 + 2000)
    assert r.receipts[0].code == "ok", r.receipts[0].log
    return r.receipts[0].events[0]["contract"]


def test_a_counter_is_stored_instantiated_and_executed(tmp_path):
    chain = new_chain(tmp_path / "c", genesis(focus={"mode": "diffusion"}))
    follower = new_chain(tmp_path / "f", genesis(focus={"mode": "diffusion"}), producer=False)
    address = _deploy(chain)
    assert count_of(chain, address) == 0
    bump = m("wasm.execute", contract=address, msg=call_msg("increment"), gas=10**6)
    r = chain.produce_block([tx(BOB, 0, bump, bump, fee=FEE)], time_ms=T0 + 3000)
    assert r.receipts[0].code == "ok"
    events = r.receipts[0].events
    assert [int.from_bytes(e["answer"], "little") for e in events] == [1, 2]
    assert 0 < events[0]["gas_used"] < 10**6
    assert count_of(chain, address) == 2
    with chain.reader() as rd:
        _, creator, label = decode(rd.get(wasm.contract_key(address)))
    assert creator == ALICE.address_raw and label == "counter"
    for height in range(1, chain.height + 1):
        with chain.reader() as rd:
            follower.apply_block(rd.block(height))
    assert follower.head == chain.head


@pytest.mark.parametrize(
    "key, gas, code",
    [
        ("loop", 10**6, "wasm_out_of_gas"),
        ("trap", 10**6, "wasm_trap"),
        ("abort", 10**6, "wasm_abort"),
    ],
)
def test_a_failed_call_changes_nothing_but_the_fee(tmp_path, key, gas, code):
    chain = new_chain(tmp_path / "c", genesis(focus={"mode": "diffusion"}))
    address = _deploy(chain)
    bump = m("wasm.execute", contract=address, msg=call_msg("increment"), gas=10**6)
    chain.produce_block([tx(BOB, 0, bump, fee=FEE)], time_ms=T0 + 3000)
    with chain.reader() as rd:
        before = rd.get(b"/token/acct/" + BOB.address_raw)
    bad = m("wasm.execute", contract=address, msg=call_msg(key), gas=gas)
    r = chain.produce_block([tx(BOB, 1, bad, fee=FEE)], time_ms=T0 + 4000)
    assert r.receipts[0].code == code
    assert count_of(chain, address) == 1  # the trap's and the abort's writes are gone
    with chain.reader() as rd:
        balance = decode(rd.get(b"/token/acct/" + BOB.address_raw))[0]
    assert balance == decode(before)[0] - FEE  # the fee is paid all the same


def test_refusals_of_bad_messages(tmp_path):
    chain = new_chain(tmp_path / "c", genesis(focus={"mode": "diffusion"}))
    address = _deploy(chain)
    deep = b"[" * 40 + b"]" * 40
    cases = [
        (m("wasm.store", code=b"\0asm garbage"), FEE, "invalid_wasm"),
        (m("wasm.store", code=wasmtime.wat2wasm("(module)")), FEE, "invalid_wasm"),
        (m("wasm.execute", contract=address, msg=deep, gas=10**6), FEE, "malformed_message"),
        (m("wasm.execute", contract=address, msg=b"{nope", gas=10**6), FEE, "malformed_message"),
        (m("wasm.execute", contract=address, msg=b"{}", gas=10**10), FEE, "over_limit"),
        (m("wasm.execute", contract=address, msg=b"{}", gas=10**9), 10_000, "insufficient_fee"),
        (m("wasm.execute", contract=bytes(20), msg=b"{}", gas=10**6), FEE, "unknown_contract"),
    ]
    for nonce, (msg, fee, code) in enumerate(cases):
        r = chain.produce_block([tx(BOB, nonce, msg, fee=fee)], time_ms=T0 + 3000 + nonce)
        assert r.receipts[0].code == code, (msg.type, r.receipts[0].log)


def test_a_query_reads_and_cannot_write(tmp_path):
    chain = new_chain(tmp_path / "c", genesis(focus={"mode": "diffusion"}))
    address = _deploy(chain)
    env = wasm.WasmEnv(CHAIN_ID, chain.height, T0)
    with chain.reader() as rd:
        state = PendingState(rd.get, rd.items)
        result = wasm.call(state, env, address, "query", None, {"get": {}}, 10**6)
        assert int.from_bytes(result.answer, "little") == 0
        with pytest.raises(wasm.WasmTrapError):
            wasm.call(state, env, address, "query", None, {"write": {}}, 10**6)
        assert not state.writes


def test_a_contract_reads_focus(tmp_path):
    chain = new_chain(tmp_path / "c", genesis(focus={"mode": "diffusion"}))
    chain.produce_block([tx(CAROL, 0, link(("x", "y")), fee=FEE)], time_ms=T0 + 500)
    expected = chain.focus.focus_of(particle("y"))[0]
    address = _deploy(chain)
    text = cid_text(particle("y"))
    assert len(text) == 59
    msg = json.dumps({"focus": text}).encode()  # the document ends bafk..."}}
    ask = m("wasm.execute", contract=address, msg=msg, gas=10**6)
    r = chain.produce_block([tx(BOB, 0, ask, fee=FEE)], time_ms=T0 + 3000)
    assert r.receipts[0].code == "ok", r.receipts[0].log
    assert expected > 0 and count_of(chain, address) == expected


#: ``execute`` stores (key "count", 8 bytes) the karma of the 44-character
#: ``focus1...`` address that ends its message (``{"karma": "focus1..."}``).
KARMA_READER = """
(module
  (import "env" "db_write" (func $db_write (param i32 i32 i32 i32)))
  (import "env" "karma_of" (func $karma_of (param i32 i32) (result i64)))
  (memory (export "memory") 2)
  (data (i32.const 0) "count")
  (global $heap (mut i32) (i32.const 4096))
  (func (export "allocate") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "instantiate") (param i32 i32) (result i64) (i64.const 0))
  (func (export "execute") (param $p i32) (param $n i32) (result i64)
    (i64.store (i32.const 32) (call $karma_of
      (i32.add (local.get $p) (i32.sub (local.get $n) (i32.const 47))) (i32.const 44)))
    (call $db_write (i32.const 0) (i32.const 5) (i32.const 32) (i32.const 8))
    (i64.const 0))
  (func (export "query") (param i32 i32) (result i64) (i64.const 0)))
"""


def test_a_contract_reads_karma(tmp_path):
    """The karma a WASM call reads is the head's fixed-point karma, as the
    EVM's precompile answers; a follower computes the same."""
    from focusflow.chain.karma import karma_fixed

    chain = new_chain(tmp_path / "c", genesis(focus={"mode": "diffusion"}))
    follower = new_chain(tmp_path / "f", genesis(focus={"mode": "diffusion"}), producer=False)
    chain.produce_block([tx(CAROL, 0, link(("x", "y"), ("y", "z")), fee=FEE)], time_ms=T0 + 500)
    r = chain.produce_block(
        [tx(ALICE, 0, m("wasm.store", code=wasmtime.wat2wasm(KARMA_READER)), fee=FEE)],
        time_ms=T0 + 1000,
    )
    inst = m(
        "wasm.instantiate", code=r.receipts[0].events[0]["code"], msg=b"{}", label="k", gas=10**6
    )
    r = chain.produce_block([tx(ALICE, 1, inst, fee=FEE)], time_ms=T0 + 2000)
    address = r.receipts[0].events[0]["contract"]
    table = karma_fixed(chain.focus.graph, chain.focus.q)
    expected = int(table[chain.focus.graph.neurons.get(CAROL.address_raw)])
    assert expected > 0
    msg = json.dumps({"karma": CAROL.address}).encode()  # the document ends focus1..."}}
    ask = m("wasm.execute", contract=address, msg=msg, gas=10**6)
    unknown = json.dumps({"karma": "x" * 44}).encode()
    nobody = m("wasm.execute", contract=address, msg=unknown, gas=10**6)
    r = chain.produce_block([tx(BOB, 0, ask, fee=FEE)], time_ms=T0 + 3000)
    assert r.receipts[0].code == "ok", r.receipts[0].log
    assert count_of(chain, address) == expected
    r = chain.produce_block([tx(BOB, 1, nobody, fee=FEE)], time_ms=T0 + 4000)
    assert r.receipts[0].code == "ok" and count_of(chain, address) == 0
    for height in range(1, chain.height + 1):
        with chain.reader() as rd:
            follower.apply_block(rd.block(height))
    assert follower.head == chain.head


TWAP_READER = """
(module
  (import "env" "db_write" (func $db_write (param i32 i32 i32 i32)))
  (import "env" "twap_of" (func $twap_of (param i32 i32) (result i64)))
  (memory (export "memory") 2)
  (data (i32.const 0) "count")
  (data (i32.const 64) "h cyb")
  (data (i32.const 96) "h nope")
  (global $heap (mut i32) (i32.const 4096))
  (func (export "allocate") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "instantiate") (param i32 i32) (result i64) (i64.const 0))
  (func (export "execute") (param $p i32) (param $n i32) (result i64)
    (i64.store (i32.const 32) (call $twap_of (i32.const 64) (i32.const 5)))
    (i64.store (i32.const 40) (call $twap_of (i32.const 96) (i32.const 6)))
    (call $db_write (i32.const 0) (i32.const 5) (i32.const 32) (i32.const 16))
    (i64.const 0))
  (func (export "query") (param i32 i32) (result i64) (i64.const 0)))
"""


def test_a_contract_reads_a_pools_twap(tmp_path):
    """``twap_of`` answers the pool's TWAP of one H in CYB at the block's time in
    fixed point 10^9, as the exchange's own oracle computes it; -1 without a pool."""
    from focusflow.modules.dex import twap_q64
    from focusflow.state_schema.tokens import balance_of

    gen = genesis(focus={"mode": "diffusion"})
    gen = type(gen).from_json(
        {
            **gen.to_json(),
            "accounts": [
                {**a, "tokens": {"h": 10**11}} if a["address"] == ALICE.address else a
                for a in gen.to_json()["accounts"]
            ],
        }
    )
    chain = new_chain(tmp_path / "c", gen)
    create = m("dex.create", a="h", b="cyb", amount_a=4 * 10**9, amount_b=10**9)
    r = chain.produce_block([tx(ALICE, 0, create, fee=FEE)], time_ms=T0 + 1000)
    assert r.receipts[0].code == "ok", r.receipts[0].log
    swap = m("dex.swap", path=["cyb", "h"], amount_in=10**7, min_out=0)
    r = chain.produce_block([tx(ALICE, 1, swap, fee=FEE)], time_ms=T0 + 61_000)
    assert r.receipts[0].code == "ok", r.receipts[0].log
    with chain.reader() as rd:
        assert balance_of(rd, ALICE.address_raw, "h") < 10**11
    store = m("wasm.store", code=wasmtime.wat2wasm(TWAP_READER))
    r = chain.produce_block([tx(BOB, 0, store, fee=FEE)], time_ms=T0 + 62_000)
    inst = m(
        "wasm.instantiate", code=r.receipts[0].events[0]["code"], msg=b"{}", label="t", gas=10**6
    )
    r = chain.produce_block([tx(BOB, 1, inst, fee=FEE)], time_ms=T0 + 63_000)
    address = r.receipts[0].events[0]["contract"]
    now = T0 + 181_000
    r = chain.produce_block(
        [tx(BOB, 2, m("wasm.execute", contract=address, msg=b"{}", gas=10**6), fee=FEE)],
        time_ms=now,
    )
    assert r.receipts[0].code == "ok", r.receipts[0].log
    with chain.reader() as rd:
        raw = rd.get(wasm.storage_key(address, b"count"))
        # The pool as the block found it: the swap (CYB in, H out) made H dearer,
        # and that price held from T0 + 61 s to now, lifting the TWAP above 0.25.
        expected = twap_q64(rd, "h", "cyb", now, chain.params) * 10**9 >> 64
    assert 250_000_000 < expected < 260_000_000
    assert int.from_bytes(raw[:8], "little", signed=True) == expected
    assert int.from_bytes(raw[8:], "little", signed=True) == -1
