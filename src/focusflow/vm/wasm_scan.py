"""What a WASM module must be before wasmtime compiles it, and what compiling it costs.

Cranelift's compile time grows faster than the code in a few shapes a
hostile module can take: one huge function, many values live at once (a deep
operand stack, many locals), deep nesting, tens of thousands of functions. A
module of 900 KB in one straight-line function took 14.6 s to compile. So
``wasm.store`` reads the module's sections here first, in pure Python and in
linear time, and refuses one past any of the bounds below; only then does
wasmtime compile it, at a price in gas the transaction's fee pays
(``compile_gas``). The price is a deterministic function of the bytes (the
function bodies, their count, the deepest operand stack and the locals of
each), never of the time a compile took: it goes into receipts every
validator computes.

The same pass checks the contract interface (docs/wasm.md): the exports the
ABI names with their exact kinds and signatures, and imports that are only
``env`` host functions with their exact signatures. The module has been
validated by wasmtime before this runs (``Module.validate``), so the parser
trusts the structure; anything it still does not expect is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from focusflow.vm.wasm_errors import InvalidWasmError

#: Defined functions a module may have.
MAX_FUNCTIONS = 10_000
#: Bytes of one function's body.
MAX_BODY_BYTES = 64 << 10
#: Locals of one function, its parameters included.
MAX_LOCALS = 1024
#: Values one function's operand stack may hold at once.
MAX_STACK_HEIGHT = 64
#: Blocks, loops and ifs nested in one function.
MAX_NESTING = 1024
#: Globals a module may define.
MAX_GLOBALS = 1024
#: Linear memory a call may have, in 64 KiB pages (16 MiB), and table elements.
MAX_PAGES = 256
MAX_TABLE_ELEMENTS = 4096
#: Price of compiling: per defined function, and per weighted byte of body
#: (a body's bytes times ``1 + height / HEIGHT_UNIT + locals / LOCALS_UNIT``:
#: each value live at once makes every byte dearer to compile). Measured on
#: the worst shapes found (docs/wasm.md, *Limits*): about one gas per
#: nanosecond of compile time, with a margin of two.
COMPILE_GAS_PER_FUNCTION = 200_000
COMPILE_GAS_PER_BYTE = 1_000
HEIGHT_UNIT = 6
LOCALS_UNIT = 256
#: Most a module's compile may cost: the longest compile ``wasm.store`` can
#: put in a block.
MAX_COMPILE_GAS = 4_000_000_000

I32, I64, F32, F64 = 0x7F, 0x7E, 0x7D, 0x7C
VALTYPE_NAMES = {I32: "i32", I64: "i64", F32: "f32", F64: "f64", 0x7B: "v128", 0x70: "funcref"}
KIND_NAMES = ("function", "table", "memory", "global", "tag")


#: The host functions a module may import from ``env``, and their signatures.
HOST_FUNCTIONS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "db_read": ((I32, I32), (I64,)),
    "db_write": ((I32, I32, I32, I32), ()),
    "db_remove": ((I32, I32), ()),
    "focus_of": ((I32, I32), (I64,)),
    "karma_of": ((I32, I32), (I64,)),
    "twap_of": ((I32, I32), (I64,)),
    "send": ((I32, I32, I32, I32), ()),
    "abort": ((I32, I32), ()),
}
#: ``instantiate``, ``execute``, ``query`` and ``reply``: ``(ptr, len) -> ptr << 32 | len``.
ENTRY_SIGNATURE = ((I32, I32), (I64,))
#: ``allocate(len) -> ptr``.
ALLOCATE_SIGNATURE = ((I32,), (I32,))
#: The exports the ABI needs (None: a memory), then the one it may have.
REQUIRED_EXPORTS = {
    "memory": None,
    "allocate": ALLOCATE_SIGNATURE,
    "instantiate": ENTRY_SIGNATURE,
    "execute": ENTRY_SIGNATURE,
    "query": ENTRY_SIGNATURE,
}
OPTIONAL_EXPORTS = {"reply": ENTRY_SIGNATURE}


Signature = tuple[tuple[int, ...], tuple[int, ...]]


@dataclass(frozen=True)
class Body:
    """One function's shape, as the compile price sees it."""

    size: int
    locals: int
    height: int
    nesting: int

    def weight(self) -> int:
        """Bytes weighted by the values live at once (integer: the price is exact)."""
        return (
            self.size * (HEIGHT_UNIT * LOCALS_UNIT + self.height * LOCALS_UNIT)
            + self.size * self.locals * HEIGHT_UNIT
        ) // (HEIGHT_UNIT * LOCALS_UNIT)


@dataclass
class Layout:
    """The sections of a module that the ABI and the price read."""

    types: list[Signature] = field(default_factory=list)
    #: ``(module, name, kind, type index or 0)`` in order.
    imports: list[tuple[str, str, int, int]] = field(default_factory=list)
    #: Type index of every function, imported ones first.
    functions: list[int] = field(default_factory=list)
    imported_functions: int = 0
    #: ``(min, max or None)`` of each table and memory the module defines.
    tables: list[tuple[int, int | None]] = field(default_factory=list)
    memories: list[tuple[int, int | None]] = field(default_factory=list)
    globals: int = 0
    #: name -> (kind, index)
    exports: dict[str, tuple[int, int]] = field(default_factory=dict)
    bodies: list[Body] = field(default_factory=list)
    #: The compile price, set by ``scan`` (which then may drop the bodies).
    price: int = 0

    def signature(self, function: int) -> Signature:
        return self.types[self.functions[function]]

    def compile_gas(self) -> int:
        """The price of compiling the bodies (``COMPILE_GAS_PER_*``)."""
        weight = sum(b.weight() for b in self.bodies)
        return COMPILE_GAS_PER_FUNCTION * len(self.bodies) + COMPILE_GAS_PER_BYTE * weight

    def table_elements(self) -> int:
        return sum(low for low, _ in self.tables)


def signature_text(sig: Signature) -> str:
    params = ", ".join(VALTYPE_NAMES.get(t, hex(t)) for t in sig[0])
    results = ", ".join(VALTYPE_NAMES.get(t, hex(t)) for t in sig[1])
    return f"({params}) -> {results or '()'}"


class _Reader:
    """LEB128 and vectors over a byte string; every overrun is an InvalidWasmError."""

    def __init__(self, data: bytes, at: int = 0, end: int | None = None) -> None:
        self.data = data
        self.at = at
        self.end = len(data) if end is None else end

    def byte(self) -> int:
        if self.at >= self.end:
            raise InvalidWasmError("the module ends inside a section")
        value = self.data[self.at]
        self.at += 1
        return value

    def uint(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result
            if shift > 35:
                raise InvalidWasmError("an integer in the module is longer than 5 bytes")

    def name(self) -> str:
        size = self.uint()
        raw = self.bytes(size)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidWasmError("a name in the module is not UTF-8") from None

    def bytes(self, size: int) -> bytes:
        if self.at + size > self.end:
            raise InvalidWasmError("the module ends inside a section")
        raw = self.data[self.at : self.at + size]
        self.at += size
        return raw

    def limits(self) -> tuple[int, int | None]:
        flag = self.byte()
        if flag not in (0, 1):
            raise InvalidWasmError("shared or 64-bit memories and tables are not allowed")
        low = self.uint()
        return low, self.uint() if flag == 1 else None


def layout(code: bytes, bodies: bool = True) -> Layout:
    """The module's sections; with ``bodies`` every function body is decoded
    too (the bounds and the price need them). Raises InvalidWasmError."""
    if code[:8] != b"\0asm\1\0\0\0":
        raise InvalidWasmError("not a WebAssembly 1.0 module")
    out = Layout()
    r = _Reader(code, 8)
    while r.at < r.end:
        section, size = r.byte(), r.uint()
        body = _Reader(code, r.at, r.at + size)
        if body.end > r.end:
            raise InvalidWasmError("a section runs past the module's end")
        _SECTIONS.get(section, _skip)(body, out, bodies)
        r.at = body.end
    return out


def _skip(r: _Reader, out: Layout, bodies: bool) -> None:
    """A custom section, or one the layout does not need (start, data, data count)."""


def _types(r: _Reader, out: Layout, bodies: bool) -> None:
    for _ in range(r.uint()):
        if r.byte() != 0x60:
            raise InvalidWasmError("a type that is not a function type")
        params = tuple(r.byte() for _ in range(r.uint()))
        results = tuple(r.byte() for _ in range(r.uint()))
        out.types.append((params, results))


def _imports(r: _Reader, out: Layout, bodies: bool) -> None:
    for _ in range(r.uint()):
        module, name, kind = r.name(), r.name(), r.byte()
        index = 0
        if kind == 0:
            index = r.uint()
            out.functions.append(index)
            out.imported_functions += 1
        elif kind == 1:
            r.byte()
            r.limits()
        elif kind == 2:
            r.limits()
        elif kind == 3:
            r.byte()
            r.byte()
        else:
            raise InvalidWasmError(f"an import of kind {kind} is not allowed")
        out.imports.append((module, name, kind, index))


def _functions(r: _Reader, out: Layout, bodies: bool) -> None:
    count = r.uint()
    if count > MAX_FUNCTIONS:
        raise InvalidWasmError(f"the module defines {count} functions; at most {MAX_FUNCTIONS}")
    out.functions.extend(r.uint() for _ in range(count))


def _tables(r: _Reader, out: Layout, bodies: bool) -> None:
    for _ in range(r.uint()):
        r.byte()
        out.tables.append(r.limits())


def _memories(r: _Reader, out: Layout, bodies: bool) -> None:
    for _ in range(r.uint()):
        out.memories.append(r.limits())


def _globals(r: _Reader, out: Layout, bodies: bool) -> None:
    out.globals = r.uint()
    if out.globals > MAX_GLOBALS:
        raise InvalidWasmError(f"the module defines {out.globals} globals; at most {MAX_GLOBALS}")


def _exports(r: _Reader, out: Layout, bodies: bool) -> None:
    for _ in range(r.uint()):
        name, kind, index = r.name(), r.byte(), r.uint()
        out.exports[name] = (kind, index)


def _code(r: _Reader, out: Layout, bodies: bool) -> None:
    count = r.uint()
    for i in range(count):
        size = r.uint()
        start = r.at
        r.at += size
        if r.at > r.end:
            raise InvalidWasmError("a function body runs past the code section")
        if size > MAX_BODY_BYTES:
            number = out.imported_functions + i
            raise InvalidWasmError(
                f"function {number}'s body is {size} bytes; at most {MAX_BODY_BYTES}"
            )
        if bodies:
            out.bodies.append(_body(r.data, start, start + size, out, out.imported_functions + i))
        else:
            out.bodies.append(Body(size, 0, 0, 0))


_SECTIONS = {
    1: _types,
    2: _imports,
    3: _functions,
    4: _tables,
    5: _memories,
    6: _globals,
    7: _exports,
    10: _code,
}

# Instruction classes: how to skip an instruction's immediates.
_PLAIN, _LEB, _LEB2, _BLOCK, _F32, _F64, _CALL, _CALL_INDIRECT, _BR_TABLE, _PREFIX = range(10)
_ELSE, _END, _UNREACHABLE, _BAD = 10, 11, 12, 13
_KIND = [_BAD] * 256
#: What each plain instruction does to the stack's height: pushes less pops.
_NET = [0] * 256


def _ops(ops: range | tuple[int, ...], kind: int, pop: int, push: int) -> None:
    for op in ops:
        _KIND[op], _NET[op] = kind, push - pop


_ops((0x00, 0x0F), _UNREACHABLE, 0, 0)  # unreachable, return
_ops((0x01,), _PLAIN, 0, 0)  # nop
_ops((0x02, 0x03, 0x04), _BLOCK, 0, 0)  # block, loop, if (its condition: below)
_ops((0x05,), _ELSE, 0, 0)
_ops((0x0B,), _END, 0, 0)
_ops((0x0C,), _UNREACHABLE, 0, 0)  # br: its label is skipped below
_ops((0x0D,), _LEB, 1, 0)  # br_if
_ops((0x0E,), _BR_TABLE, 1, 0)
_ops((0x10,), _CALL, 0, 0)
_ops((0x11,), _CALL_INDIRECT, 1, 0)
_ops((0x1A,), _PLAIN, 1, 0)  # drop
_ops((0x1B,), _PLAIN, 3, 1)  # select
_ops((0x20, 0x23), _LEB, 0, 1)  # local.get, global.get
_ops((0x21, 0x24), _LEB, 1, 0)  # local.set, global.set
_ops((0x22,), _LEB, 1, 1)  # local.tee
_ops(range(0x28, 0x36), _LEB2, 1, 1)  # loads
_ops(range(0x36, 0x3F), _LEB2, 2, 0)  # stores
_ops((0x3F,), _LEB, 0, 1)  # memory.size
_ops((0x40,), _LEB, 1, 1)  # memory.grow
_ops((0x41, 0x42), _LEB, 0, 1)  # i32.const, i64.const
_ops((0x43,), _F32, 0, 1)
_ops((0x44,), _F64, 0, 1)
for _unary in (0x45, 0x50, *range(0x67, 0x6A), *range(0x79, 0x7C), *range(0x8B, 0x92)):
    _ops((_unary,), _PLAIN, 1, 1)
_ops(range(0x99, 0xA0), _PLAIN, 1, 1)  # f64 unary
_ops(range(0xA7, 0xC5), _PLAIN, 1, 1)  # conversions, sign extension
for _first, _last in ((0x46, 0x4F), (0x51, 0x66), (0x6A, 0x78), (0x7C, 0x8A), (0x92, 0x98)):
    _ops(range(_first, _last + 1), _PLAIN, 2, 1)
_ops(range(0xA0, 0xA7), _PLAIN, 2, 1)  # f64 binary
_ops((0xFC,), _PREFIX, 0, 0)
#: 0xFC instructions: (immediates, pops, pushes); saturating truncations and bulk memory.
_FC = {
    **{sub: (0, 1, 1) for sub in range(8)},
    8: (2, 3, 0),  # memory.init
    9: (1, 0, 0),  # data.drop
    10: (2, 3, 0),  # memory.copy
    11: (1, 3, 0),  # memory.fill
    12: (2, 3, 0),  # table.init
    13: (1, 0, 0),  # elem.drop
    14: (2, 3, 0),  # table.copy
}
_VALTYPES = frozenset((I32, I64, F32, F64, 0x7B, 0x70, 0x6F))


def _skip_leb(code: bytes, i: int) -> int:
    while code[i] & 0x80:
        i += 1
    return i + 1


def _leb(code: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = code[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def _block_type(code: bytes, i: int, out: Layout) -> tuple[int, int, int]:
    """``(params, results, next)`` of the block type at ``i``."""
    b = code[i]
    if b == 0x40:
        return 0, 0, i + 1
    if b in _VALTYPES:
        return 0, 1, i + 1
    index, i = _leb(code, i)
    params, results = out.types[index]
    return len(params), len(results), i


def _body(code: bytes, start: int, end: int, out: Layout, index: int) -> Body:
    """One function body's locals, deepest operand stack and nesting."""
    params, results = out.signature(index)
    count, i = _leb(code, start)
    local_count = len(params)
    for _ in range(count):
        n, i = _leb(code, i)
        local_count += n
        i += 1
    if local_count > MAX_LOCALS:
        raise InvalidWasmError(f"function {index} has {local_count} locals; at most {MAX_LOCALS}")
    walk = _Walk(code, out, index, len(results))
    walk.run(i, end)
    return Body(end - start, local_count, walk.top, walk.deepest - 1)


class _Walk:
    """The decode of one body: the operand stack's height, the open blocks and
    whether the code at hand is reachable.

    The height counts reachable code only: after an unconditional branch the
    rest of the block is dead, and cranelift compiles none of it. Plain
    instructions are handled in ``run``'s loop (most of a body); the others
    by the ``_HANDLERS``, each returning where the next instruction starts."""

    def __init__(self, code: bytes, out: Layout, index: int, results: int) -> None:
        self.code = code
        self.out = out
        self.index = index
        #: Each open block: (floor, params, results, dead before it); the function's first.
        self.frames = [(0, 0, results, False)]
        self.height = self.top = 0
        self.deepest = 1
        self.dead = False

    def run(self, i: int, end: int) -> None:
        code, kinds, net, handlers, frames = self.code, _KIND, _NET, _HANDLERS, self.frames
        height, top, dead = 0, 0, False
        while i < end and frames:
            op = code[i]
            i += 1
            kind = kinds[op]
            if kind <= _LEB2:
                if kind:
                    while code[i] > 0x7F:
                        i += 1
                    i += 1
                    if kind == _LEB2:
                        while code[i] > 0x7F:
                            i += 1
                        i += 1
                if dead:
                    continue
                height += net[op]
            else:
                self.height, self.dead = height, dead
                i = handlers[kind](self, op, i)
                height, dead = self.height, self.dead
            if height > top:
                top = height
                if top > MAX_STACK_HEIGHT:
                    raise InvalidWasmError(
                        f"function {self.index} holds more than {MAX_STACK_HEIGHT} values "
                        "on its stack"
                    )
        self.top = top

    def block(self, op: int, i: int) -> int:
        p, r, i = _block_type(self.code, i, self.out)
        if op == 0x04 and not self.dead:
            self.height -= 1
        self.frames.append((self.height - p, p, r, self.dead))
        if len(self.frames) > self.deepest:
            self.deepest = len(self.frames)
            if self.deepest > MAX_NESTING + 1:
                raise InvalidWasmError(
                    f"function {self.index} nests blocks deeper than {MAX_NESTING}"
                )
        return i

    def end(self, op: int, i: int) -> int:
        floor, _, results, self.dead = self.frames.pop()
        self.height = floor + results
        return i

    def else_(self, op: int, i: int) -> int:
        floor, params, _, self.dead = self.frames[-1]
        self.height = floor + params
        return i

    def branch(self, op: int, i: int) -> int:
        """unreachable, return, br: the rest of the block is dead."""
        self.dead = True
        return _skip_leb(self.code, i) if op == 0x0C else i

    def br_table(self, op: int, i: int) -> int:
        n, i = _leb(self.code, i)
        for _ in range(n + 1):
            i = _skip_leb(self.code, i)
        self.dead = True
        return i

    def call(self, op: int, i: int) -> int:
        target, i = _leb(self.code, i)
        if op == 0x10:
            params, results = self.out.signature(target)
            pops = len(params)
        else:
            params, results = self.out.types[target]
            pops = len(params) + 1
            i = _skip_leb(self.code, i)
        self._effect(pops, len(results))
        return i

    def const(self, op: int, i: int) -> int:
        self._effect(0, 1)
        return i + (4 if op == 0x43 else 8)

    def prefixed(self, op: int, i: int) -> int:
        sub, i = _leb(self.code, i)
        if sub not in _FC:
            raise InvalidWasmError(
                f"function {self.index} uses instruction 0xfc {sub}, not allowed"
            )
        immediates, pops, pushes = _FC[sub]
        for _ in range(immediates):
            i = _skip_leb(self.code, i)
        self._effect(pops, pushes)
        return i

    def refuse(self, op: int, i: int) -> int:
        raise InvalidWasmError(f"function {self.index} uses instruction {op:#04x}, not allowed")

    def _effect(self, pops: int, pushes: int) -> None:
        if not self.dead:
            self.height += pushes - pops


_HANDLERS: dict[int, Callable[[_Walk, int, int], int]] = {
    _BLOCK: _Walk.block,
    _END: _Walk.end,
    _ELSE: _Walk.else_,
    _UNREACHABLE: _Walk.branch,
    _BR_TABLE: _Walk.br_table,
    _CALL: _Walk.call,
    _CALL_INDIRECT: _Walk.call,
    _F32: _Walk.const,
    _F64: _Walk.const,
    _PREFIX: _Walk.prefixed,
    _BAD: _Walk.refuse,
}


def scan(code: bytes) -> Layout:
    """The layout of a module ``wasm.store`` may keep: every body decoded, the
    contract interface and the bounds checked; InvalidWasmError says what is wrong."""
    out = layout(code)
    check_imports(out)
    check_exports(out)
    check_sizes(out)
    return out


def check_imports(out: Layout) -> None:
    """Only ``env`` functions of the host, each with the host's exact signature."""
    for module, name, kind, index in out.imports:
        where = f'the module imports "{module}" "{name}"'
        if module != "env" or kind != 0:
            as_kind = "" if kind == 0 else f" as a {KIND_NAMES[kind]}"
            raise InvalidWasmError(
                f'{where}{as_kind}: only "env" functions of the host can be imported '
                f"({', '.join(HOST_FUNCTIONS)})"
            )
        if name not in HOST_FUNCTIONS:
            raise InvalidWasmError(f"{where}: no such host function ({', '.join(HOST_FUNCTIONS)})")
        given, wanted = out.types[index], HOST_FUNCTIONS[name]
        if given != wanted:
            raise InvalidWasmError(
                f"{where} as {signature_text(given)}: the host gives {signature_text(wanted)}"
            )


def check_exports(out: Layout) -> None:
    """The ABI's exports, each of its exact kind and signature."""
    missing = [name for name in REQUIRED_EXPORTS if name not in out.exports]
    for name, wanted in {**REQUIRED_EXPORTS, **OPTIONAL_EXPORTS}.items():
        if name not in out.exports:
            continue
        kind, index = out.exports[name]
        if wanted is None:
            if kind != 2:
                raise InvalidWasmError(
                    f"the module's export memory must be a memory, not a {KIND_NAMES[kind]}"
                )
            continue
        should = f"the module's export {name} must be a function {signature_text(wanted)}"
        if kind != 0:
            raise InvalidWasmError(f"{should}, not a {KIND_NAMES[kind]}")
        given = out.signature(index)
        if given != wanted:
            raise InvalidWasmError(f"{should}, not {signature_text(given)}")
    if missing:
        raise InvalidWasmError(f"the module does not export {', '.join(missing)}")


def check_sizes(out: Layout) -> None:
    """One memory of at most ``MAX_PAGES`` to start, tables of at most
    ``MAX_TABLE_ELEMENTS``, and a compile within ``MAX_COMPILE_GAS``."""
    for low, _ in out.memories:
        if low > MAX_PAGES:
            raise InvalidWasmError(
                f"the module's memory starts at {low} pages; a call may have at most {MAX_PAGES} "
                f"({MAX_PAGES * 64} KiB)"
            )
    if out.table_elements() > MAX_TABLE_ELEMENTS:
        raise InvalidWasmError(
            f"the module's tables start at {out.table_elements()} elements; "
            f"at most {MAX_TABLE_ELEMENTS}"
        )
    gas = out.price = out.compile_gas()
    if gas > MAX_COMPILE_GAS:
        raise InvalidWasmError(
            f"compiling the module would cost {gas} gas; at most {MAX_COMPILE_GAS} "
            "(smaller functions, fewer values live at once)"
        )
