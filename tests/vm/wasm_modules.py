"""Seeded generators of WASM contract modules, for property tests of ``vm.wasm``.

Each generator takes a ``random.Random`` and returns WAT text; ``build`` turns
it into module bytes (``wasmtime.wat2wasm``), and ``mutate`` damages bytes at
random. The same seed gives the same text, so a failing case is replayed from
its seed alone:

* ``valid_module``: the contract ABI (docs/wasm.md) with random extra
  functions: ``wasm.store`` must take it;
* ``random_exports``: the ABI's export names with random kinds and
  signatures (a global ``allocate``, an ``execute`` returning f64, a table
  ``query``): ``wasm.store`` must refuse it unless the draw happens to be the ABI;
* ``random_imports``: the ABI with random imports (unknown modules and
  names, host functions with wrong signatures, memories and globals);
* ``growing_module``: an ``execute`` that grows memory (``memory.grow``) or a
  table (``table.grow``) in a loop, or declares more memories or larger
  tables than a call may have.
"""

from __future__ import annotations

import random

import wasmtime

#: The host functions of ``env`` and their signatures, as ``vm.wasm`` defines them.
HOST = {
    "db_read": ("i32 i32", "i64"),
    "db_write": ("i32 i32 i32 i32", ""),
    "db_remove": ("i32 i32", ""),
    "focus_of": ("i32 i32", "i64"),
    "karma_of": ("i32 i32", "i64"),
    "twap_of": ("i32 i32", "i64"),
    "send": ("i32 i32 i32 i32", ""),
    "abort": ("i32 i32", ""),
}
#: What the ABI's exports are: a memory, ``allocate`` and the entry points.
ABI = {
    "memory": None,
    "allocate": ("i32", "i32"),
    "instantiate": ("i32 i32", "i64"),
    "execute": ("i32 i32", "i64"),
    "query": ("i32 i32", "i64"),
}
VALTYPES = ("i32", "i64", "f32", "f64")
#: A bump allocator and entry points that answer nothing: the smallest ABI.
_CORE = """
  (global $heap (mut i32) (i32.const 4096))
  (func $alloc (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func $entry (param i32 i32) (result i64) (i64.const 0))
"""


def build(wat: str) -> bytes:
    """The module bytes of ``wat``."""
    return wasmtime.wat2wasm(wat)


def _sig(params: str, results: str) -> str:
    p = f" (param {params})" if params else ""
    r = f" (result {results})" if results else ""
    return p + r


def _types(rng: random.Random, most: int) -> str:
    return " ".join(rng.choice(VALTYPES) for _ in range(rng.randint(0, most)))


def _zero(valtype: str) -> str:
    return f"({valtype}.const 0)"


def _extra_function(rng: random.Random, i: int) -> str:
    """A function that computes something from its parameters in a small loop."""
    n = rng.randint(1, 40)
    body = " ".join(
        f"(local.set $a (i32.add (i32.mul (local.get $a) (i32.const {rng.randint(1, 99)})) "
        f"(local.get $x)))"
        for _ in range(n)
    )
    return (
        f"(func $f{i} (param $x i32) (result i32) (local $a i32)\n"
        f"    (loop $l {body} (br_if $l (i32.eqz (local.get $a))))\n"
        f"    (local.get $a))"
    )


def valid_module(rng: random.Random) -> str:
    """The ABI, with up to 8 extra functions that ``execute`` calls."""
    count = rng.randint(0, 8)
    extras = "\n  ".join(_extra_function(rng, i) for i in range(count))
    calls = " ".join(f"(drop (call $f{i} (local.get 0)))" for i in range(count))
    return f"""(module
  (memory (export "memory") {rng.randint(1, 4)})
  {_CORE}
  {extras}
  (func (export "allocate") (param i32) (result i32) (call $alloc (local.get 0)))
  (func (export "instantiate") (param i32 i32) (result i64) (i64.const 0))
  (func (export "execute") (param i32 i32) (result i64) {calls} (i64.const 0))
  (func (export "query") (param i32 i32) (result i64) (i64.const 0)))"""


def _random_export(rng: random.Random, name: str, i: int) -> str:
    """``name`` exported as a random kind; a function of a random signature."""
    kind = rng.choice(("func", "func", "global", "memory", "table", "abi"))
    if kind == "abi":
        spec = ABI[name]
        if spec is None:
            return f'(memory $m{i} (export "{name}") 1)'
        return f'(func (export "{name}"){_sig(*spec)} {_zero(spec[1])})'
    if kind == "global":
        t = rng.choice(VALTYPES)
        return f'(global (export "{name}") {t} {_zero(t)})'
    if kind == "memory":
        return f'(memory $m{i} (export "{name}") 1)'
    if kind == "table":
        return f'(table (export "{name}") 1 funcref)'
    results = rng.choice(("", *VALTYPES))
    value = _zero(results) if results else ""
    return f'(func (export "{name}"){_sig(_types(rng, 3), results)} {value})'


def random_exports(rng: random.Random) -> str:
    """Every ABI export name, each a random kind or signature (at most one memory)."""
    parts = [_random_export(rng, name, i) for i, name in enumerate(ABI)]
    memories = [p for p in parts if p.startswith("(memory")]
    for extra in memories[1:]:
        parts[parts.index(extra)] = extra.replace("(memory", "(global", 1).replace(
            " 1)", " i32 (i32.const 0))"
        )
    return "(module\n  " + "\n  ".join(parts) + ")"


def _random_import(rng: random.Random, i: int) -> str:
    module = rng.choice(("env", "env", "env", "wasi_snapshot_preview1", "other"))
    name = rng.choice((*HOST, "nope", "memory", "gas"))
    kind = rng.choice(("func", "func", "func", "memory", "global"))
    if kind == "memory":
        return f'(import "{module}" "{name}" (memory $im{i} 1))'
    if kind == "global":
        return f'(import "{module}" "{name}" (global $ig{i} i32))'
    if name in HOST and rng.random() < 0.5:
        params, results = HOST[name]
    else:
        params, results = _types(rng, 4), rng.choice(("", *VALTYPES))
    return f'(import "{module}" "{name}" (func $if{i}{_sig(params, results)}))'


def random_imports(rng: random.Random) -> str:
    """The ABI's exports after up to 6 random imports (imports come first)."""
    imports = [_random_import(rng, i) for i in range(rng.randint(1, 6))]
    memory = "" if any("(memory" in line for line in imports) else "(memory $mem 1)"
    return f"""(module
  {chr(10).join(imports)}
  {memory}
  (export "memory" (memory 0))
  {_CORE}
  (func (export "allocate") (param i32) (result i32) (call $alloc (local.get 0)))
  (func (export "instantiate") (param i32 i32) (result i64) (i64.const 0))
  (func (export "execute") (param i32 i32) (result i64) (i64.const 0))
  (func (export "query") (param i32 i32) (result i64) (i64.const 0)))"""


def growing_module(rng: random.Random) -> str:
    """An ``execute`` that grows memory or a table ``rounds`` times by ``step``
    (pages or elements), or a module that declares more memories or a larger
    table than a call may have."""
    kind = rng.choice(("memory", "table", "memories", "big table"))
    rounds, step = rng.randint(1, 1000), rng.choice((1, 16, 256, 4096, 65536))
    memories = ""
    table = "(table $t 1 funcref)"
    if kind == "memory":
        grow = f"(drop (memory.grow (i32.const {step})))"
    elif kind == "table":
        grow = f"(drop (table.grow $t (ref.null func) (i32.const {step})))"
    else:
        grow = "(nop)"
    if kind == "memories":
        memories = "\n  ".join(f"(memory $extra{i} 256)" for i in range(rng.randint(1, 99)))
    if kind == "big table":
        table = f"(table $t {rng.choice((10_000, 1 << 20, 1 << 26))} funcref)"
    return f"""(module
  (memory $mem (export "memory") 1)
  {memories}
  {table}
  {_CORE}
  (func (export "allocate") (param i32) (result i32) (call $alloc (local.get 0)))
  (func (export "instantiate") (param i32 i32) (result i64) (i64.const 0))
  (func (export "execute") (param i32 i32) (result i64) (local $i i32)
    (loop $l {grow}
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const {rounds}))))
    (i64.const 0))
  (func (export "query") (param i32 i32) (result i64) (i64.const 0)))"""


def mutate(data: bytes, rng: random.Random) -> bytes:
    """``data`` with 1 to 8 random edits: a byte flipped, set, inserted or
    deleted, or a run of bytes duplicated (the header is left alone half the
    time, so most mutants reach the section parser)."""
    out = bytearray(data)
    start = 8 if rng.random() < 0.5 and len(out) > 8 else 0
    for _ in range(rng.randint(1, 8)):
        if len(out) <= start:
            out.append(rng.randrange(256))
            continue
        at = rng.randrange(start, len(out))
        edit = rng.randrange(5)
        if edit == 0:
            out[at] ^= 1 << rng.randrange(8)
        elif edit == 1:
            out[at] = rng.choice((0x00, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif edit == 2:
            out.insert(at, rng.randrange(256))
        elif edit == 3:
            del out[at]
        else:
            end = min(len(out), at + rng.randint(1, 16))
            out[at:at] = out[at:end]
    return bytes(out)
