"""A block's WASM work is bounded: host functions are priced at what they cost,
and the WASM gas of one block, asked by its transactions or carried by its
Ethereum transactions' packets, stays under ``wasm_block_gas_limit``.

Before, a host call cost 1,000 gas whatever it did: a 10^9-gas call looping
``karma_of`` ran a million Python callbacks (46 s on the dev VM), and nothing
bounded how many such calls a block held.
"""

from __future__ import annotations

import contextlib

import wasmtime

from focusflow.chain import Msg
from focusflow.chain.errors import BlockFullError, OverLimitError
from focusflow.chain.module import BlockContext
from focusflow.chain.state import PendingState
from focusflow.core.encoding import encode
from focusflow.core.hashing import sha256
from focusflow.modules import WasmParams
from focusflow.modules.wasm import GAS_COUNTER, Wasm
from focusflow.node import open_chain
from focusflow.testing.chains import ALICE, BOB, CAROL, VALIDATOR, genesis, tx
from focusflow.vm import wasm
from tests.chain.test_evm_router import FORWARD, Node, packet
from tests.chain.test_router import _deploy as deploy_wasm
from tests.chain.test_wasm import COUNTER

T0 = 1_700_000_000_000
#: A host call's least price: the cheapest host function took 9 us a call on
#: the dev VM, and WASM gas is about one nanosecond.
FLOOR = 9_000
#: The host functions a loop can call, with the import and the arguments.
LOOPS = {
    "db_read": ("(param i32 i32) (result i64)", "(drop (call $h (i32.const 0) (i32.const 3)))"),
    "db_write": (
        "(param i32 i32 i32 i32)",
        "(call $h (i32.const 0) (i32.const 3) (i32.const 0) (i32.const 3))",
    ),
    "db_remove": ("(param i32 i32)", "(call $h (i32.const 0) (i32.const 3))"),
    "focus_of": ("(param i32 i32) (result i64)", "(drop (call $h (i32.const 0) (i32.const 1)))"),
    "karma_of": ("(param i32 i32) (result i64)", "(drop (call $h (i32.const 0) (i32.const 44)))"),
    "twap_of": ("(param i32 i32) (result i64)", "(drop (call $h (i32.const 0) (i32.const 5)))"),
}  # fmt: skip


def looping(name: str) -> bytes:
    """A contract whose ``execute`` calls the host function ``name`` until its gas ends."""
    params, body = LOOPS[name]
    return wasmtime.wat2wasm(f"""(module
      (import "env" "{name}" (func $h {params}))
      (memory (export "memory") 1)
      (data (i32.const 0) "cyb h")
      (func (export "allocate") (param i32) (result i32) (i32.const 1024))
      (func (export "instantiate") (param i32 i32) (result i64) (i64.const 0))
      (func (export "execute") (param i32 i32) (result i64) (loop $l {body} (br $l)) (i64.const 0))
      (func (export "query") (param i32 i32) (result i64) (i64.const 0)))""")


def test_a_call_makes_no_more_host_calls_than_their_price_allows(monkeypatch):
    gas = 10**8
    address = b"\x07" * 20
    calls = dict.fromkeys(LOOPS, 0)
    for name in LOOPS:
        method = getattr(wasm._Run, f"_{name}")

        def counted(self, *args, name=name, method=method):
            calls[name] += 1
            return method(self, *args)

        monkeypatch.setattr(wasm._Run, f"_{name}", counted)
    for name in LOOPS:
        code = looping(name)
        data = {
            wasm.contract_key(address): encode([sha256(code), b"\0" * 20, "loop"]),
            wasm.code_key(sha256(code)): code,
            wasm.storage_key(address, b"cyb"): b"cyb",
        }
        state = PendingState(data.get, lambda _prefix: [])
        with contextlib.suppress(wasm.WasmOutOfGasError):
            wasm.call(state, wasm.WasmEnv("c", 1, T0), address, "execute", None, {}, gas)
        assert wasm.HOST_CALL_GAS[name] >= FLOOR, name
        assert 0 < calls[name] <= gas // FLOOR, (name, calls[name])


def _block_ctx(chain) -> BlockContext:
    return BlockContext(
        chain.chain_id,
        1,
        T0,
        VALIDATOR.address_raw,
        chain.params,
        PendingState(lambda k: None, lambda p: []),
    )


def test_a_block_holds_at_most_its_wasm_gas_and_the_rest_waits(tmp_path):
    chain = open_chain(tmp_path / "a", genesis(focus={"mode": "diffusion"}), VALIDATOR)
    follower = open_chain(tmp_path / "f", genesis(focus={"mode": "diffusion"}), None)
    counter = deploy_wasm(chain, ALICE, 0, wasmtime.wat2wasm(COUNTER), T0 + 500)
    most = WasmParams.of(chain.params).wasm_max_gas
    per_block = WasmParams.of(chain.params).wasm_block_gas_limit // most
    fee = 10**6 + most // WasmParams.of(chain.params).wasm_gas_per_unit
    calls = [
        tx(
            key,
            nonce,
            Msg("wasm.execute", {"contract": counter, "msg": b"{}", "gas": most}),
            fee=fee,
        )
        for nonce in range(3)
        for key in (BOB, CAROL)
    ]
    assert len(calls) > per_block
    first = chain.produce_block(calls, time_ms=T0 + 2000)
    assert len(first.receipts) == per_block and not first.rejected
    assert all(r.code == "ok" for r in first.receipts)
    left = [raw for raw in calls if raw not in first.record.block.txs]
    second = chain.produce_block(left, time_ms=T0 + 3000)
    assert len(second.receipts) == len(calls) - per_block
    for h in range(1, chain.height + 1):
        with chain.reader() as r:
            follower.apply_block(r.block(h))
    assert follower.head == chain.head


def test_a_block_over_its_wasm_gas_is_refused_and_a_transaction_over_it_never_fits(tmp_path):
    chain = open_chain(tmp_path / "a", genesis(focus={"mode": "diffusion"}), VALIDATOR)
    module = Wasm()
    limit = WasmParams.of(chain.params).wasm_block_gas_limit
    most = WasmParams.of(chain.params).wasm_max_gas
    one = Msg("wasm.execute", {"contract": bytes(20), "msg": b"{}", "gas": most})
    ctx = _block_ctx(chain)
    ctx.counters[GAS_COUNTER] = limit - most + 1
    from focusflow.chain import make_tx

    try:
        module.room(ctx, make_tx(ALICE, chain.chain_id, 0, 10**9, [one]))
    except BlockFullError as exc:
        assert "exceeds what the block has left" in exc.message
    else:
        raise AssertionError("a call past the block's WASM gas was let in")
    crowd = [one] * (limit // most + 1)
    try:
        module.room(_block_ctx(chain), make_tx(ALICE, chain.chain_id, 0, 10**9, crowd))
    except OverLimitError as exc:
        assert not isinstance(exc, BlockFullError)
        assert "over wasm_block_gas_limit" in exc.message
    else:
        raise AssertionError("a transaction over the block's WASM gas was let in")
    # Through the chain: left out with over_limit, its nonce unused.
    result = chain.produce_block([tx(ALICE, 0, *crowd, fee=10**9)], time_ms=T0 + 1000)
    assert not result.receipts and result.rejected[0].error.code == "over_limit"


def test_an_ethereum_packet_counts_against_the_blocks_wasm_gas(tmp_path):
    node = Node(tmp_path)
    counter = deploy_wasm(node.chain, ALICE, 0, wasmtime.wat2wasm(COUNTER), T0 + 500)
    node.t = T0 + 1000
    forward = node.deploy(FORWARD)
    params = node.chain.params
    most = WasmParams.of(params).wasm_max_gas
    body = {"contract": counter, "msg": b"{}", "gas": most}
    fee = 10**6 + most // WasmParams.of(params).wasm_gas_per_unit
    room = WasmParams.of(params).wasm_block_gas_limit // most
    fill = [tx(ALICE, 2 + i, Msg("wasm.execute", body), fee=fee) for i in range(room)]
    call = packet(f"wasm/{counter.hex()}", {"increment": {}}, gas=50_000)
    from tests.chain.test_evm import eth

    node.t += 1000
    result = node.chain.produce_block(
        [*fill, eth(node.nonce, forward, call, gas=300_000)], time_ms=node.t
    )
    *calls, evm = result.receipts
    assert len(calls) == room and all(r.code == "ok" for r in calls)
    assert evm.code == "over_limit", evm.log
    assert "wasm_block_gas_limit" in evm.log
    assert node.replays()
