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

Gas is wasmtime's fuel (about one unit per instruction) plus a fixed price
per host call and per byte it moves; a call that runs out traps, and so do
the module's own traps, a memory over ``MAX_MEMORY`` and a stack overflow.
Any such failure leaves the state as it was: writes reach the chain state
only when the call returns. Floats are deterministic (NaNs canonicalised);
threads and relaxed SIMD are off.
"""

from __future__ import annotations

import atexit
import functools
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from focusflow.chain.state import PendingState
from focusflow.core.cid import cid_to_bytes
from focusflow.core.encoding import decode
from focusflow.core.errors import FocusflowError
from focusflow.core.hashing import sha256
from focusflow.core.keys import decode_address, encode_address

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
#: Linear memory a call may grow to (bytes).
MAX_MEMORY = 16 << 20
#: Gas of a host call, and per byte it reads or writes (storage writes cost more:
#: every node keeps them).
HOST_CALL_GAS = 1_000
READ_GAS_PER_BYTE = 3
WRITE_GAS_PER_BYTE = 30
#: Packets one call may send, and the longest port name.
MAX_PACKETS = 16
MAX_PORT_BYTES = 64
#: Modules compiled and kept per process, most recently used last.
MODULES_KEPT = 32


class WasmError(FocusflowError):
    """A contract's call failed: ``code`` says how (see the subclasses)."""

    code = "wasm_error"


class WasmTrapError(WasmError):
    """The module trapped: unreachable, out of bounds, a stack overflow, memory over the cap."""

    code = "wasm_trap"


class WasmOutOfGasError(WasmError):
    """The call used all the gas it was given."""

    code = "wasm_out_of_gas"


class WasmAbortError(WasmError):
    """The contract ended the call with its own error (``env.abort``)."""

    code = "wasm_abort"


class UnknownContractError(WasmError):
    """No contract instance at the address."""

    code = "unknown_contract"


class InvalidWasmError(WasmError):
    """Bytes that are no valid module, or a module without the ABI's exports."""

    code = "invalid_wasm"


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


def code_key(code_hash: bytes) -> bytes:
    return CODE_PREFIX + code_hash


def contract_key(address: bytes) -> bytes:
    return CONTRACT_PREFIX + address


def storage_key(address: bytes, key: bytes) -> bytes:
    return STORE_PREFIX + address + key


@functools.cache
def engine() -> Any:
    """The process's wasmtime engine: fuel on, deterministic floats, no threads."""
    import wasmtime

    config = wasmtime.Config()
    config.consume_fuel = True
    config.cranelift_nan_canonicalization = True
    config.wasm_threads = False
    config.wasm_relaxed_simd = False
    return wasmtime.Engine(config)


#: The fixed point of ``twap_of``'s answer.
TWAP_UNIT = 10**9

_MODULES: OrderedDict[bytes, Any] = OrderedDict()
_MODULES_LOCK = threading.Lock()


def _release() -> None:
    """Drop the compiled modules and the engine while wasmtime can still free them
    (at interpreter exit its finalisers run after its library is torn down)."""
    _MODULES.clear()
    engine.cache_clear()


atexit.register(_release)


def compile_module(code: bytes) -> Any:
    """The compiled module of ``code`` (kept by hash); InvalidWasmError if it is none
    or lacks an export the ABI needs."""
    import wasmtime

    key = sha256(code)
    with _MODULES_LOCK:
        module = _MODULES.get(key)
        if module is not None:
            _MODULES.move_to_end(key)
            return module
    try:
        module = wasmtime.Module(engine(), code)
    except wasmtime.WasmtimeError as exc:
        raise InvalidWasmError(f"not a valid WebAssembly module: {_first_line(exc)}") from None
    exports = {e.name for e in module.exports}
    missing = [n for n in ("memory", "allocate", *ENTRY_POINTS) if n not in exports]
    if missing:
        raise InvalidWasmError(f"the module does not export {', '.join(missing)}")
    with _MODULES_LOCK:
        _MODULES[key] = module
        while len(_MODULES) > MODULES_KEPT:
            _MODULES.popitem(last=False)
    return module


def is_contract(state: PendingState, address: bytes) -> bool:
    return state.get(contract_key(address)) is not None


def exports_entry(state: PendingState, address: bytes, entry: str) -> bool:
    """Whether the instance at ``address`` exports ``entry`` (False for no instance)."""
    raw = state.get(contract_key(address))
    if raw is None:
        return False
    code = state.get(code_key(decode(raw, "wasm contract")[0]))
    if code is None:
        return False
    return any(e.name == entry for e in compile_module(code).exports)


def store_code(state: PendingState, code: bytes) -> bytes:
    """Check and keep a module; returns its hash (the same bytes twice: one copy)."""
    if len(code) > MAX_CODE_BYTES:
        raise InvalidWasmError(f"module of {len(code)} bytes exceeds {MAX_CODE_BYTES}")
    compile_module(code)
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
    ``state``, merged only if the call returns; raises a WasmError otherwise."""
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
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=True).encode()
    answer = run.call(compile_module(code), entry, text)
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
        self.store.set_limits(memory_size=MAX_MEMORY)
        self.store.set_fuel(gas)
        self.instance: Any = None
        self.packets: list[tuple[str, bytes]] = []

    def used(self) -> int:
        return self.gas - self.store.get_fuel()

    def _charge(self, amount: int) -> None:
        left = self.store.get_fuel()
        if amount > left:
            self.store.set_fuel(0)
            raise WasmOutOfGasError(f"out of gas: {self.gas} given")
        self.store.set_fuel(left - amount)

    def call(self, module: Any, entry: str, document: bytes) -> bytes:
        import wasmtime

        linker = wasmtime.Linker(engine())
        i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
        host: dict[str, tuple[list[Any], list[Any], Callable[..., Any]]] = {
            "db_read": ([i32, i32], [i64], self._db_read),
            "db_write": ([i32, i32, i32, i32], [], self._db_write),
            "db_remove": ([i32, i32], [], self._db_remove),
            "focus_of": ([i32, i32], [i64], self._focus_of),
            "karma_of": ([i32, i32], [i64], self._karma_of),
            "twap_of": ([i32, i32], [i64], self._twap_of),
            "abort": ([i32, i32], [], self._abort),
            "send": ([i32, i32, i32, i32], [], self._send),
        }
        for name, (params, results, fn) in host.items():
            ty = wasmtime.FuncType(params, results)
            linker.define_func("env", name, ty, fn, access_caller=True)
        try:
            self.instance = linker.instantiate(self.store, module)
            exports = self.instance.exports(self.store)
            place = self._write_new(exports.__getitem__, self.store, document)
            packed = exports[entry](self.store, place, len(document))
            ptr, size = (packed >> 32) & 0xFFFFFFFF, packed & 0xFFFFFFFF
            if size > MAX_ANSWER_BYTES:
                raise WasmTrapError(f"answer of {size} bytes exceeds {MAX_ANSWER_BYTES}")
            return bytes(exports["memory"].read(self.store, ptr, ptr + size))
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
        if size > cap:
            raise WasmTrapError(f"{what} of {size} bytes exceeds {cap}")
        memory = caller.get("memory")
        if ptr < 0 or size < 0 or ptr + size > memory.data_len(caller):
            raise WasmTrapError(f"{what} lies outside the contract's memory")
        return bytes(memory.read(caller, ptr, ptr + size))

    @staticmethod
    def _write_new(get: Any, ctx: Any, data: bytes) -> int:
        """``data`` into a buffer the contract allocates (``get`` finds its exports,
        ``ctx`` is the store or the calling instance); returns its address."""
        ptr = int(get("allocate")(ctx, len(data)))
        memory = get("memory")
        if ptr < 0 or ptr + len(data) > memory.data_len(ctx):
            raise WasmTrapError("allocate returned a buffer outside the contract's memory")
        memory.write(ctx, data, ptr)
        return ptr

    # --- host functions ---------------------------------------------------------
    def _db_read(self, caller: Any, key_ptr: int, key_len: int) -> int:
        key = self._read(caller, key_ptr, key_len, MAX_KEY_BYTES, "a key")
        self._charge(HOST_CALL_GAS + READ_GAS_PER_BYTE * len(key))
        value = self.view.get(storage_key(self.address, key))
        if value is None:
            return -1
        self._charge(READ_GAS_PER_BYTE * len(value))
        ptr = self._write_new(caller.get, caller, value)
        return (ptr << 32) | len(value)

    def _db_write(self, caller: Any, kp: int, kl: int, vp: int, vl: int) -> None:
        if self.read_only:
            raise WasmTrapError("a query cannot write")
        key = self._read(caller, kp, kl, MAX_KEY_BYTES, "a key")
        value = self._read(caller, vp, vl, MAX_VALUE_BYTES, "a value")
        self._charge(HOST_CALL_GAS + WRITE_GAS_PER_BYTE * (len(key) + len(value)))
        self.view.put(storage_key(self.address, key), value)

    def _db_remove(self, caller: Any, key_ptr: int, key_len: int) -> None:
        if self.read_only:
            raise WasmTrapError("a query cannot write")
        key = self._read(caller, key_ptr, key_len, MAX_KEY_BYTES, "a key")
        self._charge(HOST_CALL_GAS + WRITE_GAS_PER_BYTE * len(key))
        self.view.delete(storage_key(self.address, key))

    def _focus_of(self, caller: Any, cid_ptr: int, cid_len: int) -> int:
        text = self._read(caller, cid_ptr, cid_len, 128, "a CID")
        self._charge(HOST_CALL_GAS + READ_GAS_PER_BYTE * len(text))
        try:
            cid = cid_to_bytes(text.decode("ascii"))
        except (UnicodeDecodeError, FocusflowError):
            return 0
        return int(self.focus_of(cid))

    def _karma_of(self, caller: Any, addr_ptr: int, addr_len: int) -> int:
        text = self._read(caller, addr_ptr, addr_len, 128, "an address")
        self._charge(HOST_CALL_GAS + READ_GAS_PER_BYTE * len(text))
        try:
            address = decode_address(text.decode("ascii"))
        except (UnicodeDecodeError, FocusflowError):
            return 0
        return int(self.karma_of(address))

    def _twap_of(self, caller: Any, pair_ptr: int, pair_len: int) -> int:
        text = self._read(caller, pair_ptr, pair_len, 2 * 128 + 1, "a pair")
        self._charge(HOST_CALL_GAS + READ_GAS_PER_BYTE * len(text))
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
        self._charge(HOST_CALL_GAS + WRITE_GAS_PER_BYTE * (len(port) + len(data)))
        try:
            name = port.decode("ascii")
        except UnicodeDecodeError:
            raise WasmTrapError("a port name is ASCII") from None
        self.packets.append((name, data))

    def _abort(self, caller: Any, msg_ptr: int, msg_len: int) -> None:
        text = self._read(caller, msg_ptr, msg_len, 1024, "an abort message")
        raise WasmAbortError(text.decode("utf-8", "replace"))


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
