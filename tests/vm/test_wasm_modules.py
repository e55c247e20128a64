"""The checks of ``wasm.store`` on seeded random and mutated modules: each is
taken or refused with ``invalid_wasm``, and a module taken runs its calls to
a result or a WasmError; nothing else ever comes out (``tests/vm/wasm_modules``)."""

from __future__ import annotations

import contextlib
import random

from focusflow.chain.state import PendingState
from focusflow.core.encoding import encode
from focusflow.core.hashing import sha256
from focusflow.vm import wasm, wasm_scan
from focusflow.vm.wasm_errors import InvalidWasmError
from tests.vm import wasm_modules

GENERATORS = (
    wasm_modules.valid_module,
    wasm_modules.random_exports,
    wasm_modules.random_imports,
    wasm_modules.growing_module,
)
ENV = wasm.WasmEnv("focusflow-test", 1, 1_700_000_000_000)


def _checked(code: bytes) -> bool:
    """Whether ``wasm.store`` takes ``code`` (InvalidWasmError is the only refusal)."""
    try:
        wasm.check_code(code)
    except wasm.InvalidWasmError:
        return False
    return True


def _run(code: bytes) -> None:
    """Each entry point of an instance of ``code``: a result or a WasmError."""
    state = PendingState(lambda _key: None)
    address = sha256(code)[:20]
    state.put(wasm.code_key(sha256(code)), code)
    state.put(wasm.contract_key(address), encode([sha256(code), bytes(20), "fuzz"]))
    for entry in ("instantiate", "execute", "query", "reply"):
        with contextlib.suppress(wasm.WasmError):
            wasm.call(state, ENV, address, entry, None, {"x": 1}, 10**7)


def test_every_valid_module_is_taken():
    for seed in range(40):
        code = wasm_modules.build(wasm_modules.valid_module(random.Random(seed)))
        assert _checked(code), seed
        _run(code)


def test_random_and_mutated_modules_are_taken_or_refused_and_never_crash():
    taken = refused = 0
    for seed in range(240):
        rng = random.Random(seed)
        code = wasm_modules.build(GENERATORS[seed % len(GENERATORS)](rng))
        for mutant in (code, wasm_modules.mutate(code, rng), wasm_modules.mutate(code, rng)):
            if _checked(mutant):
                taken += 1
                _run(mutant)
            else:
                refused += 1
    assert taken and refused


def test_the_section_scan_reads_any_bytes_to_a_layout_or_a_refusal():
    """The scan runs after wasmtime's validation; on bytes no validator saw it
    still ends, with a layout or an error ``check_code`` turns into
    ``invalid_wasm``."""
    for seed in range(300):
        rng = random.Random(seed)
        code = wasm_modules.build(GENERATORS[seed % len(GENERATORS)](rng))
        for _ in range(3):
            code = wasm_modules.mutate(code, rng)
            with contextlib.suppress(InvalidWasmError, IndexError, KeyError, ValueError):
                wasm_scan.scan(code)
