"""Compiling a module is bounded, priced and done once per node.

``wasm.store`` refuses modules whose compile would run long (a huge function,
too many functions, locals, values on the stack, nesting) before wasmtime
sees them, and the fee pays a price computed from the module's bytes; the
compiled code is kept on disk by code hash, so a restart or a module evicted
from memory costs a file read, and the gas of a call is the same whichever
way its module was found."""

from __future__ import annotations

import os
import time

import pytest

from focusflow.chain import Msg
from focusflow.core.hashing import sha256
from focusflow.testing.chains import ALICE, BOB, genesis, new_chain, tx
from focusflow.vm import wasm
from tests.chain.test_wasm import COUNTER
from tests.vm import wasm_modules

T0 = 1_700_000_000_000
FEE = 10**8


def leb(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def section(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + leb(len(body)) + body


def vec(items: list[bytes]) -> bytes:
    return leb(len(items)) + b"".join(items)


def module(bodies: list[bytes], locals_: int = 0, globals_: int = 0) -> bytes:
    """The ABI (memory, allocate, entry points answering 0) and ``bodies``, each
    an ``(i32, i32) -> i64`` function with ``locals_`` i32 locals (body bytes
    without the final ``end``), the first of them exported as ``execute``."""
    entry = b"\x60\x02\x7f\x7f\x01\x7e"
    types = section(1, vec([entry, b"\x60\x01\x7f\x01\x7f"]))
    functions = section(3, vec([b"\x00"] * len(bodies) + [b"\x01", b"\x00", b"\x00"]))
    memory = section(5, vec([b"\x00\x01"]))
    global_ = b"\x7f\x00\x41\x00\x0b"
    global_section = section(6, vec([global_] * globals_)) if globals_ else b""
    n = len(bodies)
    exports = section(
        7,
        vec(
            [
                b"\x06memory\x02\x00",
                b"\x07execute\x00\x00",
                b"\x08allocate\x00" + leb(n),
                b"\x0binstantiate\x00" + leb(n + 1),
                b"\x05query\x00" + leb(n + 2),
            ]
        ),
    )
    decl = vec([leb(locals_) + b"\x7f"]) if locals_ else vec([])
    code_bodies = [decl + b + b"\x42\x00\x0b" for b in bodies]
    code_bodies += [
        vec([]) + b"\x41\x80\x20\x0b",
        vec([]) + b"\x42\x00\x0b",
        vec([]) + b"\x42\x00\x0b",
    ]
    code = section(10, vec([leb(len(b)) + b for b in code_bodies]))
    return b"\0asm\1\0\0\0" + types + functions + memory + global_section + exports + code


def straight(size: int) -> bytes:
    """``size`` bytes of straight-line code: ``local.get 0; local.get 1; i32.add; local.set 0``."""
    return b"\x20\x00\x20\x01\x6a\x21\x00" * (size // 7)


def deep_stack(values: int) -> bytes:
    """``values`` loads held on the stack at once, then summed and dropped."""
    loads = b"".join(b"\x41\x00\x28\x02" + leb(4 * k) for k in range(values))
    return loads + b"\x6a" * (values - 1) + b"\x1a"


#: (module, words the refusal must name)
TOO_BIG = {
    "a 900 KB straight-line function": (
        module([straight(900_000)]),
        "function 0's body is 900001 bytes; at most 65536",
    ),
    "10,001 functions": (
        module([b""] * 10_001),
        "the module defines 10004 functions; at most 10000",
    ),
    "1,025 locals": (module([b""], locals_=1023), "function 0 has 1025 locals; at most 1024"),
    "65 values on the stack": (
        module([deep_stack(65)]),
        "function 0 holds more than 64 values on its stack",
    ),
    "1,025 nested blocks": (
        module([b"\x02\x40" * 1025 + b"\x0b" * 1025]),
        "function 0 nests blocks deeper than 1024",
    ),
    "1,025 globals": (module([b""], globals_=1025), "defines 1025 globals; at most 1024"),
    "a compile over the cap": (
        module([deep_stack(60) * (60_000 // len(deep_stack(60)))] * 16),
        "compiling the module would cost",
    ),
}


@pytest.fixture
def artifacts(tmp_path):
    """Compiled modules kept under ``tmp_path/wasm`` for the test, none in memory."""
    wasm.forget_compiled()
    wasm.keep_artifacts(tmp_path / "wasm")
    yield tmp_path / "wasm"
    wasm.keep_artifacts(None)
    wasm.forget_compiled()


def _block(chain, key, nonce: int, *msgs: Msg, fee: int = FEE):
    at = T0 + 1000 * (chain.height + 1)
    r = chain.produce_block([tx(key, nonce, *msgs, fee=fee)], time_ms=at)
    return r.receipts[0]


@pytest.mark.parametrize("case", TOO_BIG)
def test_store_refuses_modules_that_compile_long_before_compiling(tmp_path, case):
    chain = new_chain(tmp_path / "c", genesis(focus={"mode": "diffusion"}))
    code, words = TOO_BIG[case]
    t0 = time.perf_counter()
    receipt = _block(chain, ALICE, 0, Msg("wasm.store", {"code": code}))
    took = time.perf_counter() - t0
    assert receipt.code == "invalid_wasm", receipt.log
    assert words in receipt.log
    assert took < 2.0, f"the refused store held its block {took:.1f} s"
    with chain.reader() as r:
        assert r.get(wasm.code_key(sha256(code))) is None


def test_store_charges_the_compile_price_from_the_bytes(tmp_path):
    """The store's gas is the module's compile price, paid by the fee; a fee
    short of it stores nothing; a follower computes the same receipts."""
    chain = new_chain(tmp_path / "c", genesis(focus={"mode": "diffusion"}))
    follower = new_chain(tmp_path / "f", genesis(focus={"mode": "diffusion"}), producer=False)
    code = wasm_modules.build(COUNTER)
    price = wasm.compile_gas(code)
    assert price > 0
    store = Msg("wasm.store", {"code": code})
    short = _block(chain, ALICE, 0, store, fee=price // 1000)
    assert short.code == "insufficient_fee", short.log
    with chain.reader() as r:
        assert r.get(wasm.code_key(sha256(code))) is None
    paid = _block(chain, ALICE, 1, store)
    assert paid.code == "ok", paid.log
    assert paid.events[0]["gas_used"] == price
    for height in range(1, chain.height + 1):
        with chain.reader() as r:
            follower.apply_block(r.block(height))
    assert follower.head == chain.head


def _counters(chain, count: int) -> list[bytes]:
    """``count`` counters of distinct code (each its own module), instantiated."""
    codes = [wasm_modules.build(COUNTER.replace("(i32.const 4096)", f"(i32.const {4096 + i})"))
             for i in range(count)]  # fmt: skip
    receipt = _block(chain, ALICE, 0, *[Msg("wasm.store", {"code": c}) for c in codes])
    assert receipt.code == "ok", receipt.log
    inst = [
        Msg("wasm.instantiate", {"code": sha256(c), "msg": b"{}", "label": "c", "gas": 10**6})
        for c in codes
    ]
    receipt = _block(chain, ALICE, 1, *inst)
    assert receipt.code == "ok", receipt.log
    return [e["contract"] for e in receipt.events if e["type"] == "wasm.instantiate"]


def test_cycling_more_contracts_than_memory_keeps_reads_them_from_disk(tmp_path, artifacts):
    """34 contracts (more than the 32 modules kept in memory) in one transaction,
    after a restart: every module is read from disk, none compiled."""
    chain = new_chain(tmp_path / "c", genesis(focus={"mode": "diffusion"}))
    contracts = _counters(chain, 34)
    assert len(list(artifacts.glob("*.cwasm"))) == 34
    wasm.forget_compiled()
    before = (wasm.STATS.compiled, wasm.STATS.from_disk)
    bump = [
        Msg("wasm.execute", {"contract": c, "msg": b'{"increment": {}}', "gas": 10**6})
        for c in contracts
    ]
    receipt = _block(chain, BOB, 0, *bump)
    assert receipt.code == "ok", receipt.log
    assert wasm.STATS.compiled == before[0]
    assert wasm.STATS.from_disk - before[1] == 34


def test_a_calls_gas_is_the_same_however_its_module_was_found(tmp_path, artifacts):
    """In memory, read from disk, or compiled afresh (no artifact): the same gas."""
    chain = new_chain(tmp_path / "c", genesis(focus={"mode": "diffusion"}))
    (contract,) = _counters(chain, 1)
    used = []
    for nonce, prepare in enumerate(
        (lambda: None, wasm.forget_compiled, lambda: _forget_everything(artifacts))
    ):
        prepare()
        bump = Msg(
            "wasm.execute", {"contract": contract, "msg": b'{"increment": {}}', "gas": 10**6}
        )
        receipt = _block(chain, BOB, nonce, bump)
        assert receipt.code == "ok", receipt.log
        used.append(receipt.events[0]["gas_used"])
    assert used[0] == used[1] == used[2]
    assert used[0] > wasm.LOAD_GAS_PER_BYTE * len(wasm_modules.build(COUNTER))


def _forget_everything(artifacts) -> None:
    wasm.forget_compiled()
    for path in artifacts.glob("*.cwasm"):
        path.unlink()


def test_a_damaged_artifact_is_compiled_again(tmp_path, artifacts):
    chain = new_chain(tmp_path / "c", genesis(focus={"mode": "diffusion"}))
    (contract,) = _counters(chain, 1)
    (path,) = artifacts.glob("*.cwasm")
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    wasm.forget_compiled()
    compiled = wasm.STATS.compiled
    bump = Msg("wasm.execute", {"contract": contract, "msg": b'{"increment": {}}', "gas": 10**6})
    receipt = _block(chain, BOB, 0, bump)
    assert receipt.code == "ok", receipt.log
    assert wasm.STATS.compiled == compiled + 1
    assert path.read_bytes() != bytes(raw)  # written again, whole


def test_an_artifact_directory_others_may_write_is_not_used(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with pytest.raises(wasm.FocusflowError) as raised:
        wasm.keep_artifacts(shared)
    assert raised.value.code == "bad_home" and "writable by others" in raised.value.message


def test_a_call_without_gas_for_the_load_loads_nothing(tmp_path, artifacts):
    chain = new_chain(tmp_path / "c", genesis(focus={"mode": "diffusion"}))
    (contract,) = _counters(chain, 1)
    wasm.forget_compiled()
    seen = (wasm.STATS.compiled, wasm.STATS.from_disk, wasm.STATS.from_memory)
    poor = Msg("wasm.execute", {"contract": contract, "msg": b"{}", "gas": 1000})
    receipt = _block(chain, BOB, 0, poor)
    assert receipt.code == "wasm_out_of_gas", receipt.log
    assert (wasm.STATS.compiled, wasm.STATS.from_disk, wasm.STATS.from_memory) == seen
