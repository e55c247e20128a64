"""A module with the ABI's export names and the wrong kinds or signatures, or with
imports the host does not offer, is refused by ``wasm.store``; a call of such
code (stored before the check existed) fails with a WasmError, never an
exception that escapes the block."""

from __future__ import annotations

import random

import pytest

from focusflow.chain import Msg
from focusflow.chain.state import PendingState
from focusflow.core.encoding import encode
from focusflow.core.hashing import sha256
from focusflow.testing.chains import ALICE, CHAIN_ID, genesis, new_chain, tx
from focusflow.vm import wasm
from tests.vm import wasm_modules

T0 = 1_700_000_000_000
FEE = 10**8
ALLOC = '(func (export "allocate") (param i32) (result i32) (i32.const 4096))'
ENTRY = "(param i32 i32) (result i64) (i64.const 0)"


def module(*parts: str, memory: str = '(memory (export "memory") 1)') -> bytes:
    """The ABI with ``parts`` in place of the exports they name."""
    given = " ".join(parts)
    fields = [memory] if '"memory"' not in given else []
    if '"allocate"' not in given:
        fields.append(ALLOC)
    for entry in wasm.ENTRY_POINTS:
        if f'"{entry}"' not in given:
            fields.append(f'(func (export "{entry}") {ENTRY})')
    return wasm_modules.build("(module " + " ".join([*parts, *fields]) + ")")


#: (module, words the refusal must name)
BAD_EXPORTS = {
    "instantiate without a result": (
        module('(func (export "instantiate") (param i32 i32))'),
        "instantiate must be a function (i32, i32) -> i64",
    ),
    "allocate a global": (
        module('(global (export "allocate") i32 (i32.const 0))'),
        "allocate must be a function (i32) -> i32, not a global",
    ),
    "execute returns f64": (
        module('(func (export "execute") (param i32 i32) (result f64) (f64.const 0))'),
        "execute must be a function (i32, i32) -> i64",
    ),
    "query a table": (
        module('(table (export "query") 1 funcref)'),
        "query must be a function (i32, i32) -> i64, not a table",
    ),
    "memory a function": (
        module('(func (export "memory") (param i32 i32) (result i64) (i64.const 0))', memory=""),
        "memory must be a memory, not a function",
    ),
    "reply of another signature": (
        module('(func (export "reply") (param i32) (result i64) (i64.const 0))'),
        "reply must be a function (i32, i32) -> i64",
    ),
}

BAD_IMPORTS = {
    "an unknown host function": (
        module('(import "env" "gas" (func (param i32)))'),
        'imports "env" "gas": no such host function',
    ),
    "a host function of another signature": (
        module('(import "env" "db_read" (func (param i32) (result i64)))'),
        'imports "env" "db_read" as (i32) -> i64: the host gives (i32, i32) -> i64',
    ),
    "another module": (
        module('(import "wasi_snapshot_preview1" "fd_write" (func (param i32) (result i32)))'),
        'imports "wasi_snapshot_preview1" "fd_write": only "env" functions',
    ),
    "a memory": (
        module('(import "env" "memory" (memory 1))', memory='(export "memory" (memory 0))'),
        'imports "env" "memory" as a memory: only "env" functions',
    ),
}


def _store(chain, code: bytes, nonce: int):
    r = chain.produce_block(
        [tx(ALICE, nonce, Msg("wasm.store", {"code": code}), fee=FEE)],
        time_ms=T0 + 1000 * (nonce + 1),
    )
    return r.receipts[0]


@pytest.mark.parametrize("case", [*BAD_EXPORTS, *BAD_IMPORTS])
def test_store_refuses_exports_and_imports_off_the_abi(tmp_path, case):
    chain = new_chain(tmp_path / "c", genesis(focus={"mode": "diffusion"}))
    code, words = {**BAD_EXPORTS, **BAD_IMPORTS}[case]
    receipt = _store(chain, code, 0)
    assert receipt.code == "invalid_wasm", receipt.log
    assert words in receipt.log
    with chain.reader() as r:
        assert r.get(wasm.code_key(sha256(code))) is None


def test_store_takes_the_abi_with_every_host_function(tmp_path):
    chain = new_chain(tmp_path / "c", genesis(focus={"mode": "diffusion"}))
    imports = " ".join(
        f'(import "env" "{name}" (func (param {params}){f" (result {res})" if res else ""}))'
        for name, (params, res) in wasm_modules.HOST.items()
    )
    reply = f'(func (export "reply") {ENTRY})'
    receipt = _store(chain, module(imports, reply), 0)
    assert receipt.code == "ok", receipt.log


def _planted(code: bytes) -> tuple[PendingState, bytes]:
    """A state holding ``code`` and an instance of it, as if stored before
    ``wasm.store`` checked the ABI."""
    state = PendingState(lambda _key: None)
    code_hash = sha256(code)
    address = bytes(range(20))
    state.put(wasm.code_key(code_hash), code)
    state.put(wasm.contract_key(address), encode([code_hash, bytes(20), "old"]))
    return state, address


@pytest.mark.parametrize("case", [*BAD_EXPORTS, *BAD_IMPORTS])
def test_a_call_of_code_off_the_abi_is_a_wasm_error(case):
    state, address = _planted({**BAD_EXPORTS, **BAD_IMPORTS}[case][0])
    before = dict(state.writes)
    env = wasm.WasmEnv(CHAIN_ID, 1, T0)
    for entry in ("instantiate", "execute", "query", "reply"):
        with pytest.raises(wasm.WasmError):
            wasm.call(state, env, address, entry, None, {}, 10**6)
    assert state.writes == before


def test_random_exports_and_imports_are_refused_or_run(tmp_path):
    """Seeded random ABIs: each is refused at store (``invalid_wasm``) or, when
    the draw is a valid ABI, stored, instantiated and executed; none escapes
    the block."""
    chain = new_chain(tmp_path / "c", genesis(focus={"mode": "diffusion"}))
    nonce = 0
    for seed in range(24):
        rng = random.Random(seed)
        generator = wasm_modules.random_exports if seed % 2 else wasm_modules.random_imports
        code = wasm_modules.build(generator(rng))
        receipt = _store(chain, code, nonce)
        nonce += 1
        assert receipt.code in ("ok", "invalid_wasm"), (seed, receipt.log)
        if receipt.code != "ok":
            continue
        inst = Msg(
            "wasm.instantiate", {"code": sha256(code), "msg": b"{}", "label": "r", "gas": 10**6}
        )
        r = chain.produce_block([tx(ALICE, nonce, inst, fee=FEE)], time_ms=T0 + 1000 * (nonce + 1))
        nonce += 1
        assert r.receipts[0].code == "ok", (seed, r.receipts[0].log)
