"""A call holds one linear memory of at most 16 MiB and one table of at most
4,096 elements (``vm.wasm_scan``), and pays for both by the byte: modules that
would hold more (many memories, 64-bit memories, table.grow, a huge table)
are refused at ``wasm.store``, and growth is charged when it happens."""

from __future__ import annotations

import random

import psutil
import pytest

from focusflow.chain import Msg
from focusflow.core.hashing import sha256
from focusflow.testing.chains import ALICE, genesis, new_chain, tx
from focusflow.vm import wasm
from tests.vm import wasm_modules

T0 = 1_700_000_000_000
FEE = 10**8
ABI = """
  (global $heap (mut i32) (i32.const 4096))
  (func (export "allocate") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "instantiate") (param i32 i32) (result i64) (i64.const 0))
  (func (export "query") (param i32 i32) (result i64) (i64.const 0))
"""


def grower(pages: int) -> bytes:
    """``execute`` grows the memory by ``pages`` and writes a byte to every 4 KiB of it."""
    return wasm_modules.build(f"""(module (memory (export "memory") 1) {ABI}
  (func (export "execute") (param i32 i32) (result i64) (local $a i32)
    (drop (memory.grow (i32.const {pages})))
    (local.set $a (i32.const 65536))
    (block $done (loop $touch
      (br_if $done (i32.ge_u (local.get $a) (i32.mul (memory.size) (i32.const 65536))))
      (i32.store8 (local.get $a) (i32.const 1))
      (local.set $a (i32.add (local.get $a) (i32.const 4096)))
      (br $touch)))
    (i64.const 0)))""")


ATTACKS = {
    # 99 memories of 16 MiB each cost 4.5 M gas and held 1.6 GB.
    "99 memories": (
        wasm_modules.build(
            '(module (memory (export "memory") 1) '
            + " ".join(f"(memory $m{i} 256)" for i in range(99))
            + ABI
            + '(func (export "execute") (param i32 i32) (result i64) (i64.const 0)))'
        ),
        "not a valid WebAssembly module",
    ),
    # table.grow cost 1 fuel per 8-byte element: 10^9 gas held 8 GB.
    "table.grow": (
        wasm_modules.build(
            '(module (memory (export "memory") 1) (table $t 1 funcref)'
            + ABI
            + """(func (export "execute") (param i32 i32) (result i64)
                   (drop (table.grow $t (ref.null func) (i32.const 100000000))) (i64.const 0)))"""
        ),
        "not a valid WebAssembly module",
    ),
    "a table of 2^26 elements": (
        wasm_modules.build(
            '(module (memory (export "memory") 1) (table 67108864 funcref)'
            + ABI
            + '(func (export "execute") (param i32 i32) (result i64) (i64.const 0)))'
        ),
        "tables start at 67108864 elements; at most 4096",
    ),
    "a memory of 1024 pages": (
        wasm_modules.build(
            '(module (memory (export "memory") 1024)'
            + ABI
            + '(func (export "execute") (param i32 i32) (result i64) (i64.const 0)))'
        ),
        "memory starts at 1024 pages; a call may have at most 256 (16384 KiB)",
    ),
    "a 64-bit memory": (
        wasm_modules.build(
            '(module (memory (export "memory") i64 1)'
            + ABI
            + '(func (export "execute") (param i32 i32) (result i64) (i64.const 0)))'
        ),
        "not a valid WebAssembly module",
    ),
}


def _block(chain, nonce: int, *msgs: Msg):
    r = chain.produce_block([tx(ALICE, nonce, *msgs, fee=FEE)], time_ms=T0 + 1000 * (nonce + 1))
    return r.receipts[0]


def _deploy(chain, code: bytes, nonce: int) -> bytes:
    receipt = _block(chain, nonce, Msg("wasm.store", {"code": code}))
    assert receipt.code == "ok", receipt.log
    inst = {"code": sha256(code), "msg": b"{}", "label": "m", "gas": 10**7}
    receipt = _block(chain, nonce + 1, Msg("wasm.instantiate", inst))
    assert receipt.code == "ok", receipt.log
    return receipt.events[0]["contract"]


@pytest.mark.parametrize("attack", ATTACKS)
def test_modules_that_hold_more_memory_are_refused_at_store(tmp_path, attack):
    chain = new_chain(tmp_path / "c", genesis(focus={"mode": "diffusion"}))
    code, words = ATTACKS[attack]
    receipt = _block(chain, 0, Msg("wasm.store", {"code": code}))
    assert receipt.code == "invalid_wasm", receipt.log
    assert words in receipt.log
    with chain.reader() as r:
        assert r.get(wasm.code_key(sha256(code))) is None


def test_memory_growth_is_paid_by_the_page(tmp_path):
    """Growing to 16 MiB costs 255 pages' price on top of the instructions; a
    call without that gas runs out instead of holding the memory."""
    chain = new_chain(tmp_path / "c", genesis(focus={"mode": "diffusion"}))
    small = _deploy(chain, grower(0), 0)
    big = _deploy(chain, grower(255), 2)
    used = []
    for nonce, address in enumerate((small, big), start=4):
        run = Msg("wasm.execute", {"contract": address, "msg": b"{}", "gas": 10**8})
        receipt = _block(chain, nonce, run)
        assert receipt.code == "ok", receipt.log
        used.append(receipt.events[0]["gas_used"])
    assert used[1] - used[0] >= 255 * wasm.MEMORY_GAS_PER_PAGE
    short = Msg("wasm.execute", {"contract": big, "msg": b"{}", "gas": used[1] - 1})
    assert _block(chain, 6, short).code == "wasm_out_of_gas"


def test_memory_past_the_cap_is_not_given(tmp_path):
    """memory.grow past 256 pages fails (returns -1): the call keeps 16 MiB."""
    chain = new_chain(tmp_path / "c", genesis(focus={"mode": "diffusion"}))
    address = _deploy(chain, grower(1000), 0)
    run = Msg("wasm.execute", {"contract": address, "msg": b"{}", "gas": 10**8})
    receipt = _block(chain, 2, run)
    assert receipt.code == "ok", receipt.log
    assert receipt.events[0]["gas_used"] < 10 * wasm.MEMORY_GAS_PER_PAGE


def test_random_growing_modules_stay_within_a_calls_memory(tmp_path):
    """Seeded modules that grow memory or tables, or declare many memories or
    large tables: each is refused at store or runs (or runs out of gas) with
    the process's memory growing by less than 64 MiB."""
    chain = new_chain(tmp_path / "c", genesis(focus={"mode": "diffusion"}))
    process = psutil.Process()
    before = process.memory_info().rss
    nonce = 0
    for seed in range(12):
        code = wasm_modules.build(wasm_modules.growing_module(random.Random(seed)))
        receipt = _block(chain, nonce, Msg("wasm.store", {"code": code}))
        nonce += 1
        if receipt.code != "ok":
            assert receipt.code == "invalid_wasm", receipt.log
            continue
        inst = {"code": sha256(code), "msg": b"{}", "label": "g", "gas": 10**7}
        receipt = _block(chain, nonce, Msg("wasm.instantiate", inst))
        nonce += 1
        assert receipt.code == "ok", receipt.log
        run = {"contract": receipt.events[0]["contract"], "msg": b"{}", "gas": 10**9}
        receipt = _block(chain, nonce, Msg("wasm.execute", run))
        nonce += 1
        assert receipt.code in ("ok", "wasm_out_of_gas"), receipt.log
        assert process.memory_info().rss - before < 64 << 20, seed
