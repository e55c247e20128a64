"""WASM contracts: CosmWasm-like actors run by wasmtime over the chain state.

A contract is a WebAssembly module (uploaded once, addressed by the SHA-256 of
its bytes) and any number of instances, each with an address and its own
storage. Every call gets one JSON document and returns bytes (JSON by
convention); the contract reaches the chain only through the host functions
below. Keys:

* ``/vm/wasm/code/<sha256>``: the module's bytes;
* ``/vm/wasm/contract/<address>``: ``[code hash, creator, label]`` (CBOR);
* ``/vm/wasm/store/<address><key>``: the instance's storage.

The module's interface (the ABI, docs/wasm.md):

* exports ``memory``, ``allocate(len: i32) -> i32`` (a buffer the host may
  write ``len`` bytes to) and the entry points ``instantiate``, ``execute``
  and ``query``, each ``(ptr: i32, len: i32) -> i64``: the input is the JSON
  ``{"env": {"chain_id", "height", "time_ms", "contract"}, "sender", "msg"}``
  in compact form (no spaces, ASCII only, keys in that order)
  (``sender`` a ``focus1...`` address, null in a query), the result packs the
  answer's place as ``ptr << 32 | len``;
* imports from ``env``: ``db_read(key_ptr, key_len) -> i64`` (the value's
  place, allocated by the contract, or -1 when absent), ``db_write(key_ptr,
  key_len, value_ptr, value_len)``, ``db_remove(key_ptr, key_len)``,
  ``focus_of(cid_ptr, cid_len) -> i64`` (the committed focus, fixed point
  10^15, of the particle whose CID text, ``Qm...`` or ``bafy...``, is given: as
  the EVM's precompile answers; 0 for text that names no particle),
  ``karma_of(addr_ptr, addr_len) -> i64`` (a neuron's karma in the same fixed
  point, ``chain.karma``, of the ``focus1...`` address given; 0 for none),
  ``twap_of(pair_ptr, pair_len) -> i64`` (the exchange's time-weighted average
  price of one ``base`` in ``quote``, the text ``"base quote"``, in fixed point
  10^9, rounded down and capped at 2^63 - 1; -1 when the pair has no pool or
  the text names none: ``modules.dex``),
  ``send(port_ptr, port_len, data_ptr, data_len)`` (a packet for the router,
  ``modules.router``: delivered in order after the call returns) and ``abort(msg_ptr,
  msg_len)``, which ends the call with the contract's own error.

Gas is wasmtime's fuel (about one unit per instruction, one per byte a bulk
memory instruction moves) plus a fixed price per host call and per byte it
moves, a price per byte of the module to load it (``LOAD_GAS_PER_BYTE``, on
every call, whether or not this node has it compiled at hand), and a price
per page of memory and element of table the call holds
(``MEMORY_GAS_PER_PAGE``, ``TABLE_GAS_PER_ELEMENT``: charged for what it
starts with, and for what it grew to at every host call and on return). A
call that runs out traps, and so do the module's own traps, a memory over
``MAX_MEMORY`` and a stack overflow. Any such failure leaves the state as it
was: writes reach the chain state only when the call returns. Floats are
deterministic (NaNs canonicalised); the wasm proposals the ABI needs no part
of are off (``engine``).

``wasm.store`` checks a module before compiling it (``vm.wasm_scan``: the
ABI's exports and imports with their exact signatures, bounds on its
functions and what compiling them costs) and the transaction's fee pays for
the compile (``compile_gas``). Compiled modules are kept in memory
(``MODULES_KEPT``) and, where the node names a directory
(``keep_artifacts``), on disk (``vm.wasm_artifacts``).
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import platform
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from focusflow.chain.state import PendingState
from focusflow.core.cid import cid_to_bytes
from focusflow.core.encoding import decode
from focusflow.core.errors import FocusflowError
from focusflow.core.hashing import sha256
from focusflow.core.keys import decode_address, encode_address
from focusflow.vm import wasm_scan
from focusflow.vm.wasm_artifacts import Artifacts
from focusflow.vm.wasm_errors import InvalidWasmError as InvalidWasmError
from focusflow.vm.wasm_errors import UnknownContractError as UnknownContractError
from focusflow.vm.wasm_errors import WasmAbortError as WasmAbortError
from focusflow.vm.wasm_errors import WasmError as WasmError
from focusflow.vm.wasm_errors import WasmOutOfGasError as WasmOutOfGasError
from focusflow.vm.wasm_errors import WasmTrapError as WasmTrapError
from focusflow.vm.wasm_scan import HOST_FUNCTIONS, Layout

CODE_PREFIX = b"/vm/wasm/code/"
CONTRACT_PREFIX = b"/vm/wasm/contract/"
STORE_PREFIX = b"/vm/wasm/store/"
ENTRY_POINTS = ("instantiate", "execute", "query")
#: Called, where the module exports it, with the acknowledgement of each packet
#: the instance sent (``modules.router``).
REPLY_ENTRY = "reply"
#: Largest module, storage key, storage value and answer, in bytes.
MAX_CODE_BYTES = 1 << 20
MAX_KEY_BYTES = 256
MAX_VALUE_BYTES = 64 << 10
MAX_ANSWER_BYTES = 64 << 10
#: Linear memory a call may grow to (bytes): one memory of ``wasm_scan.MAX_PAGES``.
MAX_MEMORY = wasm_scan.MAX_PAGES << 16
#: Gas of one call of each host function, before the bytes it moves: about
#: one gas a nanosecond of the CPU it costs, as the rest of WASM gas (a host
#: function is Python: crossing into it, decoding what it was handed and
#: answering took 9-53 us a call on the loaded 2-core dev VM, where a loop of
#: 1,000-gas calls ran 8-46 ns a gas and a 10^9-gas call of karma_of ran 46 s;
#: ``python bench/wasm_blocks.py --host``). ``db_read`` includes the
#: contract's ``allocate`` it calls back for a found value.
HOST_CALL_GAS: dict[str, int] = {
    "db_read": 60_000,
    "db_write": 30_000,
    "db_remove": 20_000,
    "focus_of": 50_000,
    "karma_of": 80_000,
    "twap_of": 60_000,
    "send": 30_000,
    "abort": 0,
}
READ_GAS_PER_BYTE = 3
WRITE_GAS_PER_BYTE = 30
#: Gas per byte of the module, on every call: reading its compiled code back
#: from disk took under 1 ns a byte of module (bench/wasm_blocks.py
#: --limits), instantiating it copies its data and tables. The same whether
#: or not this node has it compiled in memory, as gas must be on every node.
LOAD_GAS_PER_BYTE = 10
#: Gas per 64 KiB page of linear memory a call holds (half a gas a byte: a
#: page grown, touched every 4 KiB and freed took 30 us of CPU on a loaded
#: 2-core VM, bench/wasm_blocks.py --limits), and per table element (8 bytes).
MEMORY_GAS_PER_PAGE = 32_768
TABLE_GAS_PER_ELEMENT = 4
#: Packets one call may send, and the longest port name.
MAX_PACKETS = 16
MAX_PORT_BYTES = 64
#: Modules compiled and kept per process, most recently used last, and
#: modules whose check (``wasm_scan``) is kept.
MODULES_KEPT = 32
SCANS_KEPT = 64


@dataclass(frozen=True)
class WasmEnv:
    """What a call sees of the block."""

    chain_id: str
    height: int
    time_ms: int


@dataclass
class CallResult:
    answer: bytes
    gas_used: int
    #: ``(port, data)`` of the packets the call sent (``env.send``), in order:
    #: the router delivers them once the call has returned.
    packets: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass(frozen=True)
class Compiled:
    """A module ready to instantiate, with the layout its calls read (its
    exports, the table elements it starts with)."""

    module: Any
    layout: Layout


@dataclass
class LoadStats:
    """How this process came by the modules it ran: what a restart or an
    eviction costs (read by tests and the bench, never by consensus)."""

    compiled: int = 0
    from_disk: int = 0
    from_memory: int = 0


STATS = LoadStats()


def code_key(code_hash: bytes) -> bytes:
    return CODE_PREFIX + code_hash


def contract_key(address: bytes) -> bytes:
    return CONTRACT_PREFIX + address


def storage_key(address: bytes, key: bytes) -> bytes:
    return STORE_PREFIX + address + key


#: The wasm proposals off: none is part of the ABI, and each is either not
#: deterministic (threads, relaxed SIMD), a way to hold more memory than one
#: capped linear memory and one table (multi-memory, memory64, reference
#: types and their table.grow, GC, custom page sizes), or code the checks in
#: ``wasm_scan`` do not decode (SIMD, tail calls, exceptions, wide arithmetic,
#: stack switching, components). On: the MVP with sign extension, saturating
#: truncation, multi-value and bulk memory (whose instructions wasmtime meters
#: per byte moved).
FEATURES_OFF = (
    "wasm_threads",
    "wasm_relaxed_simd",
    "wasm_simd",
    "wasm_multi_memory",
    "wasm_memory64",
    "wasm_reference_types",
    "wasm_function_references",
    "wasm_gc",
    "wasm_tail_call",
    "wasm_exceptions",
    "wasm_wide_arithmetic",
    "wasm_custom_page_sizes",
    "wasm_stack_switching",
    "wasm_component_model",
)
#: Settings of the C API the Python binding has no property for: the async
#: component model needs reference types, and wasmtime aborts the process when
#: an engine turns those off with it on; compact imports encode the import
#: section in a way ``wasm_scan`` does not read.
_FFI_OFF = (
    "wasmtime_config_wasm_component_model_async_set",
    "wasmtime_config_wasm_component_model_more_async_builtins_set",
    "wasmtime_config_wasm_component_model_async_stackful_set",
    "wasmtime_config_wasm_compact_imports_set",
)
#: What must match for a compiled artifact to be reused: bump it when the
#: checks of ``wasm_scan`` or the engine's settings change.
ENGINE_VERSION = "1"


@functools.cache
def engine() -> Any:
    """The process's wasmtime engine: fuel on, deterministic floats, only the
    proposals the ABI needs (``FEATURES_OFF``)."""
    import wasmtime
    from wasmtime import _ffi

    config = wasmtime.Config()
    config.consume_fuel = True
    config.cranelift_nan_canonicalization = True
    for name in FEATURES_OFF:
        if hasattr(wasmtime.Config, name):
            setattr(config, name, False)
    for name in _FFI_OFF:
        setter = getattr(_ffi, name, None)
        if setter is not None:
            setter(config.ptr(), False)
    return wasmtime.Engine(config)


def fingerprint() -> str:
    """The engine's identity for compiled artifacts: wasmtime's version, this
    module's settings and checks, the machine."""
    parts = [
        metadata.version("wasmtime"),
        platform.machine(),
        ENGINE_VERSION,
        *FEATURES_OFF,
        *(
            f"{k}={v}"
            for k, v in sorted(vars(wasm_scan).items())
            if k.isupper() and isinstance(v, int)
        ),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


#: The fixed point of ``twap_of``'s answer.
TWAP_UNIT = 10**9

_MODULES: OrderedDict[bytes, Compiled] = OrderedDict()
_SCANS: OrderedDict[bytes, Layout | InvalidWasmError] = OrderedDict()
_LOCK = threading.Lock()
_ARTIFACTS: list[Artifacts] = []


def _release() -> None:
    """Drop the compiled modules and the engine while wasmtime can still free them
    (at interpreter exit its finalisers run after its library is torn down)."""
    _MODULES.clear()
    _func_type.cache_clear()
    engine.cache_clear()


atexit.register(_release)


def keep_artifacts(path: Path | None) -> None:
    """Keep compiled modules in ``path`` (the node's home names it), or nowhere
    but memory (None)."""
    with _LOCK:
        _ARTIFACTS.clear()
        if path is not None:
            _ARTIFACTS.append(Artifacts(path, fingerprint()))


def forget_compiled() -> None:
    """Drop the modules compiled in memory (as a restart would)."""
    with _LOCK:
        _MODULES.clear()


def check_code(code: bytes) -> Layout:
    """The checked layout of a module ``wasm.store`` may keep (kept by hash, so
    the fee check and the store read the bytes once); InvalidWasmError if it
    is no valid module, lies off the ABI or past a bound."""
    import wasmtime

    if len(code) > MAX_CODE_BYTES:
        raise InvalidWasmError(f"module of {len(code)} bytes exceeds {MAX_CODE_BYTES}")
    key = sha256(code)
    with _LOCK:
        found = _SCANS.get(key)
        if found is not None:
            _SCANS.move_to_end(key)
    if found is None:
        try:
            wasmtime.Module.validate(engine(), code)
            found = wasm_scan.scan(code)
            # Kept without its bodies: the price is all the store needs of them,
            # and 64 layouts of 10,000 bodies would hold tens of MB.
            found.bodies = []
        except wasmtime.WasmtimeError as exc:
            found = InvalidWasmError(f"not a valid WebAssembly module: {_first_line(exc)}")
        except InvalidWasmError as exc:
            found = exc
        except (IndexError, KeyError, ValueError) as exc:
            # A valid module the scan does not read is refused, the same way
            # on every node; never an exception out of the block.
            found = InvalidWasmError(f"the module cannot be read: {type(exc).__name__}")
        with _LOCK:
            _SCANS[key] = found
            while len(_SCANS) > SCANS_KEPT:
                _SCANS.popitem(last=False)
    if isinstance(found, InvalidWasmError):
        raise InvalidWasmError(found.message)  # a new one: the kept one keeps no traceback
    return found


def compile_gas(code: bytes) -> int:
    """Gas the compile of ``code`` costs (``wasm_scan``): what ``wasm.store``
    charges; InvalidWasmError for code it refuses."""
    return check_code(code).price


def load_module(code: bytes) -> Compiled:
    """The compiled module of ``code``: from memory, from the node's disk, or
    checked and compiled (and kept in both); InvalidWasmError if it is none."""
    import wasmtime

    key = sha256(code)
    with _LOCK:
        found = _MODULES.get(key)
        if found is not None:
            _MODULES.move_to_end(key)
            STATS.from_memory += 1
            return found
        artifacts = _ARTIFACTS[0] if _ARTIFACTS else None
    module = artifacts.load(key, engine()) if artifacts is not None else None
    if module is not None:
        compiled = Compiled(module, _kept_layout(code))
        STATS.from_disk += 1
    else:
        layout = check_code(code)
        try:
            module = wasmtime.Module(engine(), code)
        except wasmtime.WasmtimeError as exc:
            raise InvalidWasmError(f"not a valid WebAssembly module: {_first_line(exc)}") from None
        compiled = Compiled(module, layout)
        STATS.compiled += 1
        if artifacts is not None:
            artifacts.save(key, module)
    with _LOCK:
        _MODULES[key] = compiled
        while len(_MODULES) > MODULES_KEPT:
            _MODULES.popitem(last=False)
    return compiled


def compile_module(code: bytes) -> Any:
    """The wasmtime module of ``code``; InvalidWasmError where ``wasm.store``
    would refuse it (the command line checks a module before paying for it)."""
    return load_module(code).module


def _kept_layout(code: bytes) -> Layout:
    """The layout of code whose artifact this node wrote (so it passed
    ``check_code``): its sections, the bodies not decoded again, the exports
    and imports held to the ABI once more (cheap), so that every module a
    call gets has exactly the exports and signatures the call uses."""
    try:
        layout = wasm_scan.layout(code, bodies=False)
        wasm_scan.check_imports(layout)
        wasm_scan.check_exports(layout)
    except (IndexError, KeyError, ValueError) as exc:
        raise InvalidWasmError(f"the module cannot be read: {type(exc).__name__}") from None
    return layout


def is_contract(state: PendingState, address: bytes) -> bool:
    return state.get(contract_key(address)) is not None


def exports_entry(state: PendingState, address: bytes, entry: str) -> bool:
    """Whether the instance at ``address`` exports ``entry`` (False for no
    instance, or code that is no longer a valid contract)."""
    raw = state.get(contract_key(address))
    if raw is None:
        return False
    code = state.get(code_key(decode(raw, "wasm contract")[0]))
    if code is None:
        return False
    try:
        return entry in load_module(code).layout.exports
    except InvalidWasmError:
        return False


def store_code(state: PendingState, code: bytes) -> bytes:
    """Check, compile and keep a module; returns its hash (the same bytes
    twice: one copy)."""
    load_module(code)
    code_hash = sha256(code)
    state.put(code_key(code_hash), code)
    return code_hash


def contract_address(creator: bytes, nonce: int, index: int) -> bytes:
    """A new instance's address: from its creator, the transaction's nonce and the
    message's place in it (so two instances of one transaction differ)."""
    seed = b"focusflow/wasm-contract/" + creator + nonce.to_bytes(8, "big")
    return sha256(seed + index.to_bytes(4, "big"))[:20]


def call(
    state: PendingState,
    env: WasmEnv,
    address: bytes,
    entry: str,
    sender: str | None,
    msg: Any,
    gas: int,
    focus_of: Any = None,
    karma_of: Any = None,
    twap_of: Any = None,
) -> CallResult:
    """Run ``entry`` of the instance at ``address`` with ``msg`` in a child of
    ``state``, merged only if the call returns; raises a WasmError otherwise.

    The load price is charged before the module is loaded: a call without
    the gas for it costs this node no read and no compile."""
    raw = state.get(contract_key(address))
    if raw is None:
        raise UnknownContractError(f"no contract at {encode_address(address)}")
    code_hash = decode(raw, "wasm contract")[0]
    code = state.get(code_key(code_hash))
    if code is None:
        raise WasmError(f"contract {address.hex()}: its code is missing")
    view = state.child()
    document = {
        "env": {
            "chain_id": env.chain_id,
            "height": env.height,
            "time_ms": env.time_ms,
            "contract": address.hex(),
        },
        "sender": sender,
        "msg": msg,
    }
    run = _Run(
        view,
        address,
        gas,
        focus_of or (lambda _cid: 0),
        read_only=entry == "query",
        karma_of=karma_of or (lambda _address: 0),
        twap_of=twap_of or (lambda _base, _quote: None),
    )
    run.charge(LOAD_GAS_PER_BYTE * len(code))
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=True).encode()
    answer = run.call(load_module(code), entry, text)
    state.merge(view)
    return CallResult(answer, run.used(), run.packets)


class _Run:
    """One call: the store, its fuel, and the host functions over a state view."""

    def __init__(
        self,
        view: PendingState,
        address: bytes,
        gas: int,
        focus_of: Any,
        read_only: bool,
        karma_of: Any,
        twap_of: Any,
    ) -> None:
        import wasmtime

        self.view = view
        self.address = address
        self.gas = gas
        self.focus_of = focus_of
        self.karma_of = karma_of
        self.twap_of = twap_of
        self.read_only = read_only
        self.store = wasmtime.Store(engine())
        self.store.set_limits(
            memory_size=MAX_MEMORY,
            table_elements=wasm_scan.MAX_TABLE_ELEMENTS,
            instances=1,
            tables=1,
            memories=1,
        )
        self.store.set_fuel(gas)
        self.instance: Any = None
        #: The instance's memory and allocate, once it is made (a start
        #: function's host calls come before: they find them through the caller).
        self.memory: Any = None
        self.allocate: Any = None
        self.packets: list[tuple[str, bytes]] = []
        #: Pages of memory paid for so far.
        self.pages = 0

    def used(self) -> int:
        return self.gas - self.store.get_fuel()

    def charge(self, amount: int) -> None:
        """Take ``amount`` gas; WasmOutOfGasError (and none left) if it is not there."""
        left = self.store.get_fuel()
        if amount > left:
            self.store.set_fuel(0)
            raise WasmOutOfGasError(f"out of gas: {self.gas} given")
        self.store.set_fuel(left - amount)

    def _charge_memory(self, ctx: Any) -> None:
        """Pay for the pages the memory grew to since the last payment (memory
        never shrinks: its size now is the most it held). ``ctx`` is the store
        or the calling instance."""
        pages = self._memory(ctx).size(ctx)
        if pages > self.pages:
            grown, self.pages = pages - self.pages, pages
            self.charge(MEMORY_GAS_PER_PAGE * grown)

    def _memory(self, ctx: Any) -> Any:
        return self.memory if self.memory is not None else _memory_of(ctx.get)

    def call(self, compiled: Compiled, entry: str, document: bytes) -> bytes:
        import wasmtime

        if entry not in compiled.layout.exports:
            raise InvalidWasmError(f"the contract does not export {entry}")
        self.charge(TABLE_GAS_PER_ELEMENT * compiled.layout.table_elements())
        linker = wasmtime.Linker(engine())
        host: dict[str, Callable[..., Any]] = {
            "db_read": self._db_read,
            "db_write": self._db_write,
            "db_remove": self._db_remove,
            "focus_of": self._focus_of,
            "karma_of": self._karma_of,
            "twap_of": self._twap_of,
            "abort": self._abort,
            "send": self._send,
        }
        for name, (params, results) in HOST_FUNCTIONS.items():
            linker.define_func(
                "env", name, _func_type(params, results), host[name], access_caller=True
            )
        try:
            self.instance = linker.instantiate(self.store, compiled.module)
            exports = self.instance.exports(self.store)
            self.memory = _memory_of(exports.get)
            self.allocate = _func_of(exports.get, "allocate")
            run = _func_of(exports.get, entry)
            self._charge_memory(self.store)
            place = self._write_new(self.store, document)
            packed = run(self.store, place, len(document))
            self._charge_memory(self.store)
            if not isinstance(packed, int):
                raise InvalidWasmError(f"{entry} returned no i64")
            ptr, size = (packed >> 32) & 0xFFFFFFFF, packed & 0xFFFFFFFF
            if size > MAX_ANSWER_BYTES:
                raise WasmTrapError(f"answer of {size} bytes exceeds {MAX_ANSWER_BYTES}")
            if ptr + size > self.memory.data_len(self.store):
                raise WasmTrapError("the answer lies outside the contract's memory")
            return bytes(self.memory.read(self.store, ptr, ptr + size))
        except WasmError:
            raise
        except wasmtime.Trap as trap:
            if trap.trap_code == wasmtime.TrapCode.OUT_OF_FUEL:
                raise WasmOutOfGasError(f"out of gas: {self.gas} given") from None
            raise WasmTrapError(f"the contract trapped: {_first_line(trap)}") from None
        except wasmtime.WasmtimeError as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, WasmError):
                raise cause from None
            raise WasmTrapError(f"the contract failed: {_first_line(exc)}") from None

    # --- memory ---------------------------------------------------------------
    def _read(self, caller: Any, ptr: int, size: int, cap: int, what: str) -> bytes:
        """Bytes of the contract's memory a host function was handed; first pays
        for the memory the call grew since the last payment."""
        self._charge_memory(caller)
        if size > cap:
            raise WasmTrapError(f"{what} of {size} bytes exceeds {cap}")
        memory = self._memory(caller)
        if ptr < 0 or size < 0 or ptr + size > memory.data_len(caller):
            raise WasmTrapError(f"{what} lies outside the contract's memory")
        return bytes(memory.read(caller, ptr, ptr + size))

    def _write_new(self, ctx: Any, data: bytes) -> int:
        """``data`` into a buffer the contract allocates (``ctx`` is the store or
        the calling instance); returns its address."""
        allocate = self.allocate if self.allocate is not None else _func_of(ctx.get, "allocate")
        ptr = allocate(ctx, len(data))
        memory = self._memory(ctx)
        if not isinstance(ptr, int) or ptr < 0 or ptr + len(data) > memory.data_len(ctx):
            raise WasmTrapError("allocate returned a buffer outside the contract's memory")
        memory.write(ctx, data, ptr)
        return ptr

    # --- host functions ---------------------------------------------------------
    def _db_read(self, caller: Any, key_ptr: int, key_len: int) -> int:
        key = self._read(caller, key_ptr, key_len, MAX_KEY_BYTES, "a key")
        self.charge(HOST_CALL_GAS["db_read"] + READ_GAS_PER_BYTE * len(key))
        value = self.view.get(storage_key(self.address, key))
        if value is None:
            return -1
        self.charge(READ_GAS_PER_BYTE * len(value))
        ptr = self._write_new(caller, value)
        return (ptr << 32) | len(value)

    def _db_write(self, caller: Any, kp: int, kl: int, vp: int, vl: int) -> None:
        if self.read_only:
            raise WasmTrapError("a query cannot write")
        key = self._read(caller, kp, kl, MAX_KEY_BYTES, "a key")
        value = self._read(caller, vp, vl, MAX_VALUE_BYTES, "a value")
        self.charge(HOST_CALL_GAS["db_write"] + WRITE_GAS_PER_BYTE * (len(key) + len(value)))
        self.view.put(storage_key(self.address, key), value)

    def _db_remove(self, caller: Any, key_ptr: int, key_len: int) -> None:
        if self.read_only:
            raise WasmTrapError("a query cannot write")
        key = self._read(caller, key_ptr, key_len, MAX_KEY_BYTES, "a key")
        self.charge(HOST_CALL_GAS["db_remove"] + WRITE_GAS_PER_BYTE * len(key))
        self.view.delete(storage_key(self.address, key))

    def _focus_of(self, caller: Any, cid_ptr: int, cid_len: int) -> int:
        text = self._read(caller, cid_ptr, cid_len, 128, "a CID")
        self.charge(HOST_CALL_GAS["focus_of"] + READ_GAS_PER_BYTE * len(text))
        try:
            cid = cid_to_bytes(text.decode("ascii"))
        except (UnicodeDecodeError, FocusflowError):
            return 0
        return int(self.focus_of(cid))

    def _karma_of(self, caller: Any, addr_ptr: int, addr_len: int) -> int:
        text = self._read(caller, addr_ptr, addr_len, 128, "an address")
        self.charge(HOST_CALL_GAS["karma_of"] + READ_GAS_PER_BYTE * len(text))
        try:
            address = decode_address(text.decode("ascii"))
        except (UnicodeDecodeError, FocusflowError):
            return 0
        return int(self.karma_of(address))

    def _twap_of(self, caller: Any, pair_ptr: int, pair_len: int) -> int:
        text = self._read(caller, pair_ptr, pair_len, 2 * 128 + 1, "a pair")
        self.charge(HOST_CALL_GAS["twap_of"] + READ_GAS_PER_BYTE * len(text))
        try:
            base, quote = text.decode("ascii").split(" ")
        except (UnicodeDecodeError, ValueError):
            return -1
        price = self.twap_of(base, quote)
        if price is None:
            return -1
        return min(int(price) * TWAP_UNIT >> 64, 2**63 - 1)

    def _send(
        self, caller: Any, port_ptr: int, port_len: int, data_ptr: int, data_len: int
    ) -> None:
        if self.read_only:
            raise WasmTrapError("a query cannot send packets")
        if len(self.packets) >= MAX_PACKETS:
            raise WasmTrapError(f"a call sends at most {MAX_PACKETS} packets")
        port = self._read(caller, port_ptr, port_len, MAX_PORT_BYTES, "a port")
        data = self._read(caller, data_ptr, data_len, MAX_VALUE_BYTES, "a packet")
        self.charge(HOST_CALL_GAS["send"] + WRITE_GAS_PER_BYTE * (len(port) + len(data)))
        try:
            name = port.decode("ascii")
        except UnicodeDecodeError:
            raise WasmTrapError("a port name is ASCII") from None
        self.packets.append((name, data))

    def _abort(self, caller: Any, msg_ptr: int, msg_len: int) -> None:
        text = self._read(caller, msg_ptr, msg_len, 1024, "an abort message")
        raise WasmAbortError(text.decode("utf-8", "replace"))


@functools.cache
def _func_type(params: tuple[int, ...], results: tuple[int, ...]) -> Any:
    """A host function's wasmtime type, made once (a linker only borrows it)."""
    import wasmtime

    kinds = {wasm_scan.I32: wasmtime.ValType.i32(), wasm_scan.I64: wasmtime.ValType.i64()}
    return wasmtime.FuncType([kinds[p] for p in params], [kinds[r] for r in results])


def _memory_of(get: Callable[[str], Any]) -> Any:
    """The instance's exported memory; InvalidWasmError if it exports none."""
    import wasmtime

    memory = get("memory")
    if not isinstance(memory, wasmtime.Memory):
        raise InvalidWasmError("the contract exports no memory named memory")
    return memory


def _func_of(get: Callable[[str], Any], name: str) -> Any:
    """The instance's exported function ``name``; InvalidWasmError if it is no
    function. Its signature was checked when the module was loaded
    (``check_code``, ``_kept_layout``)."""
    import wasmtime

    func = get(name)
    if not isinstance(func, wasmtime.Func):
        raise InvalidWasmError(f"the contract exports no function {name}")
    return func


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
