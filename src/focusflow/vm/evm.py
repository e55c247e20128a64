"""The EVM: Ethereum transactions and calls run by py-evm over the chain state.

py-evm (the Ethereum Foundation's Python implementation) interprets the code
under the Cancun rules; ``evm_state.StateAccountDB`` maps its accounts onto
the chain's keys. This module gives it a block to run in and turns what it
returns into what the chain and the JSON-RPC need: a status, the gas used,
logs, a created contract's address.

Gas is paid in the chain's token, one base unit per wei. The base fee per
gas is the chain parameter ``evm_base_fee`` (fixed; it is burned: no account
receives it) and the tip, ``min(max priority fee, max fee - base fee)`` per
gas, goes to the block's proposer, as on Ethereum after EIP-1559.

Contracts read focus: a precompile at ``FOCUS_ADDRESS`` returns a particle's
committed focus after the parent block, the same value on every node (the
focus a block commits is known to all once it is committed).

Contracts send packets: a precompile at ``ROUTER_ADDRESS`` takes a port and a
packet and records them as a ``Packet`` log of the router's address, which no
contract can forge. The EVM module hands those logs to the in-process router
(``modules.router``) once the transaction has succeeded; a log of a call that
reverted is gone with it, so a packet is sent exactly when the call that sent
it stands.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from focusflow.chain.errors import EvmInvalidError
from focusflow.chain.eth_tx import check_initcode, intrinsic_gas
from focusflow.chain.state import PendingState
from focusflow.vm import evm_trace

#: The Ethereum rules the EVM follows.
FORK = "cancun"
#: Gas of a plain value transfer: what ``eth_estimateGas`` starts from.
TRANSFER_GAS = 21_000
#: py-evm's ECMUL and ECPAIRING precompiles (EIP-196, EIP-197).
ECMUL_ADDRESS = bytes.fromhex("0000000000000000000000000000000000000007")
ECPAIRING_ADDRESS = bytes.fromhex("0000000000000000000000000000000000000008")
#: Their gas on this chain: Ethereum's (EIP-1108) times ``ECMUL_SCALE`` and
#: ``ECPAIRING_SCALE``. py-evm computes them in pure Python (py_ecc), where
#: they ran 10.7x and 26x slower per gas than a loop of the cheapest opcodes
#: (447,000 and 186,000 gas a second against 4.8 million on the dev VM,
#: ``python bench/vm.py --precompiles``): at Ethereum's prices a transaction
#: filling a 30,000,000-gas block with pairings ran 161 s, a block the chain
#: could not make in its time. Scaled, a gas of either costs about what a gas
#: of plain code does. The other precompiles run within 5x of plain code
#: (BLAKE2F through the native ``blake2b-py``, which py-evm uses when present).
ECMUL_SCALE = 10
ECPAIRING_SCALE = 25
ECMUL_GAS = 6_000 * ECMUL_SCALE
ECPAIRING_BASE_GAS = 45_000 * ECPAIRING_SCALE
ECPAIRING_POINT_GAS = 34_000 * ECPAIRING_SCALE
#: The focus precompile: input a particle's binary CID, output its committed
#: focus after the parent block as a uint256 (``round(phi * 10**15)``, the
#: chain's fixed point; 0 for a CID that is not a particle).
FOCUS_ADDRESS = bytes.fromhex("000000000000000000000000000000000000f0c5")
#: Its gas: a cold storage read's, plus a word's hashing per 32 bytes of input.
FOCUS_GAS = 2_100
FOCUS_GAS_PER_WORD = 6
#: Longest input the focus precompile reads (longer CIDs are not particles).
FOCUS_MAX_INPUT = 128

#: The karma precompile: input a neuron's 20-byte address (or one ABI word
#: holding it), output its karma after the parent block as a uint256, in the
#: focus precompile's fixed point (``chain.karma``; 0 for no neuron).
KARMA_ADDRESS = bytes.fromhex("000000000000000000000000000000000000f0c7")
#: Its gas: a cold storage read's, as the focus precompile's.
KARMA_GAS = 2_100

#: The TWAP precompile: input the ASCII text ``"base quote"`` (``"h cyb"``),
#: output the exchange's time-weighted average price of one ``base`` in
#: ``quote`` at the block's time as a uint256 in Q64 fixed point (divide by
#: 2^64); 0 when the pair has no pool or the text names none (``modules.dex``).
TWAP_ADDRESS = bytes.fromhex("000000000000000000000000000000000000f0c8")
#: Its gas: two cold storage reads'.
TWAP_GAS = 4_200
#: Longest input it reads (two denoms and a space).
TWAP_MAX_INPUT = 257

#: The router precompile: input the ABI encoding of ``(string port, bytes
#: packet, uint256 gas)`` (Solidity: ``ROUTER.call(abi.encode("graph", packet,
#: 0))``), sent by ``CALL`` only. ``gas`` is 0 except for a ``wasm/`` port,
#: where it is the EVM gas the contract call may use (taken whole: what the
#: call leaves is not returned).
ROUTER_ADDRESS = bytes.fromhex("000000000000000000000000000000000000f0c6")
ROUTER_INPUT = ("string", "bytes", "uint256")
#: Its gas: a call's plus a log byte's per input byte, plus ``gas``.
ROUTER_GAS = 9_000
ROUTER_GAS_PER_BYTE = 8
#: Longest input the router precompile takes.
ROUTER_MAX_INPUT = 16 * 1024
#: The signature of the log that records a packet: the sender, the port, the
#: packet and the gas its contract call may use.
PACKET_EVENT = "Packet(address,string,bytes,uint256)"
PACKET_ABI = ("address", "string", "bytes", "uint256")

FocusOf = Callable[[bytes], int]
KarmaOf = Callable[[bytes], int]
TwapOf = Callable[[str, str], "int | None"]


def no_focus(_cid: bytes) -> int:
    """The focus reader of a block with no graph: every particle has 0."""
    return 0


def no_twap(_base: str, _quote: str) -> int | None:
    """The TWAP reader of a block with no exchange: no pair has a pool."""
    return None


def no_karma(_address: bytes) -> int:
    """The karma reader of a block with no graph: every neuron has 0."""
    return 0


class EvmValidationError(Exception):
    """The transaction cannot run at all (nonce, balance, gas, fee, initcode size):
    py-evm's reason or ours."""


class EvmCallFailedError(Exception):
    """``estimate_gas``'s call fails even at the cap: ``outcome`` says how."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.error or "execution failed")
        self.outcome = outcome


class EvmStoppedError(Exception):
    """An RPC run cut short by its :class:`Allowance` (its gas or runs spent, or
    its ``stop`` check true): it has no outcome. Blocks never take an allowance."""


def _never() -> bool:
    return False


@dataclass
class Allowance:
    """What the EVM runs of one RPC request may still spend (``eth_call``,
    ``eth_estimateGas``; never a block's, whose bound is its gas limit alone):
    gas over all its runs, a number of runs, and ``stop``, which the interpreter
    asks before each gas charge (every opcode) so that the caller can end a run
    on its wall-time budget or when its client is gone."""

    gas: int
    runs: int
    stop: Callable[[], bool] = _never


@dataclass(frozen=True)
class EvmBlock:
    """The block a transaction or call runs in, as the EVM's opcodes see it."""

    chain_id: int
    number: int
    #: Seconds since the epoch.
    timestamp: int
    coinbase: bytes
    gas_limit: int
    base_fee: int
    #: ``PREVRANDAO``: the block's own hash chain stands in for the beacon's.
    prev_randao: bytes = b"\0" * 32
    #: Hashes of the previous blocks, newest first (``BLOCKHASH``; at most 256).
    prev_hashes: tuple[bytes, ...] = ()
    #: The committed focus of a particle after the parent block (the precompile's).
    focus_of: FocusOf = no_focus
    #: A neuron's karma after the parent block (the karma precompile's).
    karma_of: KarmaOf = no_karma
    #: A pair's TWAP, Q64, or None without a pool (the TWAP precompile's).
    twap_of: TwapOf = no_twap


@dataclass
class Outcome:
    """What one transaction or call did."""

    #: 1 when the execution succeeded, 0 when it reverted or ran out of gas.
    status: int
    gas_used: int
    output: bytes
    #: ``(address, topics, data)`` of each log, in order (none when it failed).
    logs: list[tuple[bytes, list[int], bytes]] = field(default_factory=list)
    #: Address of the contract a creation made (None otherwise or when it failed).
    contract: bytes | None = None
    #: Why it failed ("" when it succeeded): a revert's reason or the EVM's error.
    error: str = ""


@functools.cache
def interpreter() -> tuple[Any, Any, Any]:
    """``(state class, VM class, transaction builder)``, imported on first use: py-evm
    takes most of a second to import, and it raises the interpreter's recursion
    limit to 100,000 (``core.jsontext`` says why JSON does not mind)."""
    # py-evm warns on every SELFDESTRUCT that the opcode is deprecated; it is
    # part of the Cancun rules and contracts use it, so the warning says nothing.
    warnings.filterwarnings(
        "ignore", message="SELFDESTRUCT opcode present", category=DeprecationWarning
    )
    from eth.precompiles.ecmul import ecmul
    from eth.precompiles.ecpairing import ecpairing
    from eth.vm.forks.cancun import CancunVM
    from eth.vm.forks.cancun.computation import CancunComputation
    from eth.vm.forks.cancun.state import CancunState
    from eth.vm.forks.cancun.transactions import CancunTransactionBuilder
    from eth_typing import Address

    from focusflow.vm.evm_state import StateAccountDB

    class ChainComputation(CancunComputation):
        # py-evm reads the precompiles from this class attribute.
        _precompiles = {  # noqa: RUF012
            **CancunComputation.get_precompiles(),
            Address(ECMUL_ADDRESS): ecmul(gas_cost=ECMUL_GAS),
            Address(ECPAIRING_ADDRESS): ecpairing(
                gas_cost_base=ECPAIRING_BASE_GAS, gas_cost_per_point=ECPAIRING_POINT_GAS
            ),
            Address(FOCUS_ADDRESS): _focus_precompile,
            Address(ROUTER_ADDRESS): _router_precompile,
            Address(KARMA_ADDRESS): _karma_precompile,
            Address(TWAP_ADDRESS): _twap_precompile,
        }

    class ChainState(CancunState):
        account_db_class = StateAccountDB
        computation_class = ChainComputation

    return ChainState, CancunVM, CancunTransactionBuilder


def _focus_precompile(computation: Any) -> Any:
    """The focus of the particle whose CID is the input (``FOCUS_ADDRESS``)."""
    cid = computation.msg.data_as_bytes
    words = (len(cid) + 31) // 32
    computation.consume_gas(FOCUS_GAS + FOCUS_GAS_PER_WORD * words, reason="focus precompile")
    value = 0 if len(cid) > FOCUS_MAX_INPUT else computation.state.focus_of(cid)
    computation.output = int(value).to_bytes(32, "big")
    return computation


def _karma_precompile(computation: Any) -> Any:
    """The karma of the neuron whose address is the input (``KARMA_ADDRESS``):
    20 bytes, or a 32-byte word with 12 zero bytes first; anything else is no
    neuron (0)."""
    data = computation.msg.data_as_bytes
    computation.consume_gas(KARMA_GAS, reason="karma precompile")
    address = None
    if len(data) == 20:
        address = data
    elif len(data) == 32 and not any(data[:12]):
        address = data[12:]
    value = 0 if address is None else computation.state.karma_of(address)
    computation.output = int(value).to_bytes(32, "big")
    return computation


def _twap_precompile(computation: Any) -> Any:
    """The TWAP of the pair whose ``"base quote"`` text is the input (``TWAP_ADDRESS``)."""
    data = computation.msg.data_as_bytes
    computation.consume_gas(TWAP_GAS, reason="twap precompile")
    value = None
    if len(data) <= TWAP_MAX_INPUT:
        try:
            base, quote = bytes(data).decode("ascii").split(" ")
        except (UnicodeDecodeError, ValueError):
            pass
        else:
            value = computation.state.twap_of(base, quote)
    computation.output = int(value or 0).to_bytes(32, "big")
    return computation


@functools.cache
def packet_topic() -> int:
    """The first topic of a ``Packet`` log: the keccak of ``PACKET_EVENT``."""
    from eth_hash.auto import keccak

    return int.from_bytes(keccak(PACKET_EVENT.encode()), "big")


def _router_precompile(computation: Any) -> Any:
    """Record the packet of the input as a ``Packet`` log (``ROUTER_ADDRESS``).

    The sender is the calling contract (or the transaction's signer when it
    calls the router itself): ``DELEGATECALL`` and ``CALLCODE`` would let a
    contract send in the name of whoever called it, and a static call may
    change nothing, so those fail, as does an input that is no ``(string,
    bytes)`` or a port that is not UTF-8.
    """
    from eth.exceptions import VMError, WriteProtection
    from eth_abi.abi import decode as abi_decode
    from eth_abi.abi import encode as abi_encode
    from eth_abi.exceptions import DecodingError

    msg = computation.msg
    if msg.is_static:
        raise WriteProtection("the router sends no packet from a static call")
    if bytes(msg.storage_address) != ROUTER_ADDRESS:
        raise VMError("the router takes packets by CALL only")
    data = msg.data_as_bytes
    if len(data) > ROUTER_MAX_INPUT:
        raise VMError(f"a packet's input is at most {ROUTER_MAX_INPUT} bytes")
    computation.consume_gas(ROUTER_GAS + ROUTER_GAS_PER_BYTE * len(data), reason="router")
    try:
        port, packet, gas = abi_decode(list(ROUTER_INPUT), data, strict=True)
    except (DecodingError, UnicodeDecodeError):
        raise VMError(
            "the router's input is abi.encode(string port, bytes packet, uint256 gas)"
        ) from None
    if gas and not port.startswith(("wasm/", "evm/")):
        raise VMError("a packet carries gas to a wasm/ or evm/ port only")
    computation.consume_gas(gas, reason="a packet's contract call")
    record = abi_encode(list(PACKET_ABI), [bytes(msg.sender), port, packet, gas])
    computation.add_log_entry(ROUTER_ADDRESS, (packet_topic(),), record)
    return computation


def packets_of(logs: list[tuple[bytes, list[int], bytes]]) -> list[tuple[bytes, str, bytes, int]]:
    """``(sender, port, packet, gas)`` of each ``Packet`` log of the router, in
    log order: what a successful transaction sent."""
    from eth_abi.abi import decode as abi_decode

    found = []
    for address, topics, data in logs:
        if address == ROUTER_ADDRESS and topics[:1] == [packet_topic()]:
            sender, port, packet, gas = abi_decode(list(PACKET_ABI), data)
            found.append((bytes.fromhex(sender[2:]), port, bytes(packet), int(gas)))
    return found


def _context(block: EvmBlock) -> Any:
    from eth.vm.execution_context import ExecutionContext
    from eth_typing import Address, BlockNumber, Hash32

    return ExecutionContext(
        coinbase=Address(block.coinbase),
        timestamp=block.timestamp,
        block_number=BlockNumber(block.number),
        difficulty=0,
        mix_hash=Hash32(block.prev_randao),
        gas_limit=block.gas_limit,
        prev_hashes=[Hash32(h) for h in block.prev_hashes],
        chain_id=block.chain_id,
        base_fee_per_gas=block.base_fee,
        excess_blob_gas=0,
    )


@functools.cache
def _stoppable_state() -> Any:
    """The state class of an RPC run: its computations ask the state's ``stop``
    before every gas charge and raise :class:`EvmStoppedError` when it says so (an
    exception no computation catches, unlike py-evm's VMError)."""
    state_class, _, _ = interpreter()

    from eth_typing import Address

    base = state_class.computation_class

    # py-evm's classes come from interpreter(), imported on first use: values
    # of type Any here, which mypy takes as no base class (here and below).
    class StoppableComputation(base):  # type: ignore[misc,valid-type]
        _precompiles = {  # noqa: RUF012
            **base.get_precompiles(),
            Address(ECPAIRING_ADDRESS): _stoppable_ecpairing,
        }

        def consume_gas(self, amount: int, reason: str) -> None:
            _check_stop(self.state)
            super().consume_gas(amount, reason)

    class StoppableState(state_class):  # type: ignore[misc,valid-type]
        computation_class = StoppableComputation

    return StoppableState


def _check_stop(owner: Any) -> None:
    """EvmStoppedError when ``owner``'s ``stop`` (a run's state's, an allowance's) says so."""
    if owner.stop():
        raise EvmStoppedError("the run was stopped: the request's time is up or its client gone")


def _stoppable_ecpairing(computation: Any) -> Any:
    """ECPAIRING (``0x08``) as py-evm computes it, one point at a time with the
    run's stop check between points: each point is a third of a second of pure
    Python that no gas charge would interrupt. Same gas (this chain's,
    ``ECPAIRING_BASE_GAS`` and ``ECPAIRING_POINT_GAS``), same answer, same
    failures as a block's run."""
    from eth.exceptions import VMError
    from eth.precompiles.ecpairing import _process_point
    from eth_utils.exceptions import ValidationError
    from py_ecc.fields import optimized_bn128_FQ12 as FQ12
    from py_ecc.optimized_bn128.optimized_pairing import final_exponentiate

    data = bytes(computation.msg.data)
    if len(data) % 192:
        raise VMError("Invalid ECPAIRING parameters")
    points = len(data) // 192
    gas = ECPAIRING_BASE_GAS + points * ECPAIRING_POINT_GAS
    computation.consume_gas(gas, reason="ECPAIRING Precompile")
    exponent = FQ12.one()
    try:
        for i in range(points):
            _check_stop(computation.state)
            exponent = _process_point(data[192 * i : 192 * (i + 1)], exponent)
    except ValidationError:
        raise VMError("Invalid ECPAIRING parameters") from None
    paired = final_exponentiate(exponent) == FQ12.one()
    computation.output = bytes(31) + (b"\x01" if paired else b"\x00")
    return computation


def _new_state(
    state: PendingState,
    block: EvmBlock,
    stop: Callable[[], bool] | None = None,
    *,
    traced: bool = False,
) -> Any:
    from eth.constants import BLANK_ROOT_HASH

    if traced:
        state_class = evm_trace.tracing_state()
    else:
        state_class = interpreter()[0] if stop is None else _stoppable_state()
    vm_state = state_class(state, _context(block), BLANK_ROOT_HASH)
    vm_state.focus_of = block.focus_of
    vm_state.karma_of = block.karma_of
    vm_state.twap_of = block.twap_of
    vm_state.stop = stop
    return vm_state


@functools.cache
def _pyevm_errors() -> tuple[type[Exception], ...]:
    """What py-evm raises, outside any execution, on input it refuses: its
    validation errors and a VMError no computation caught (EIP-3860's initcode
    limit is one, raised before the creation's computation starts)."""
    from eth.exceptions import VMError
    from eth_utils.exceptions import ValidationError

    return (ValidationError, VMError)


def _run(vm_state: Any, tx: Any) -> Any:
    """py-evm's ``apply_transaction``, its refusals as :class:`EvmValidationError`
    (deterministic: the same input gives the same refusal on every node)."""
    try:
        return vm_state.apply_transaction(tx)
    except _pyevm_errors() as exc:
        raise EvmValidationError(f"py-evm refuses it: {type(exc).__name__}: {exc}") from None


def _check_initcode(to: bytes | None, data: bytes) -> None:
    try:
        check_initcode(to, data)
    except EvmInvalidError as exc:
        raise EvmValidationError(exc.message) from None


def _outcome(vm_class: Any, tx: Any, computation: Any) -> Outcome:
    gas_used = int(vm_class.finalize_gas_used(tx, computation))
    if computation.is_error:
        return Outcome(0, gas_used, bytes(computation.output), error=_reason(computation))
    logs = [
        (bytes(address), [int(t) for t in topics], bytes(data))
        for address, topics, data in computation.get_log_entries()
    ]
    created = None
    msg = computation.msg
    if msg.is_create:
        created = bytes(msg.storage_address)
    return Outcome(1, gas_used, bytes(computation.output), logs, created)


def _reason(computation: Any) -> str:
    """A failed execution's error as one line: a revert with its message when the
    output is a Solidity ``Error(string)``."""
    error = computation.error
    name = type(error).__name__
    output = bytes(computation.output)
    if name == "Revert" and output[:4] == bytes.fromhex("08c379a0") and len(output) >= 68:
        try:
            length = int.from_bytes(output[36:68], "big")
            text = output[68 : 68 + length].decode("utf-8", "replace")
            return f"execution reverted: {text}"
        except (ValueError, OverflowError):
            pass
    if name == "Revert":
        return "execution reverted"
    detail = str(error)
    return f"{name}: {detail}" if detail else name


def apply_transaction(
    state: PendingState, block: EvmBlock, tx: Any, trace_key: bytes | None = None
) -> Outcome:
    """Run a signed transaction into ``state``: nonce, gas purchase, execution,
    refund and tip. Raises :class:`EvmValidationError` (and changes nothing)
    when it cannot run at all; an execution that fails is an ``Outcome`` with
    status 0 whose gas is still paid. ``trace_key``: what a recorded trace is
    kept under (the transaction's hash when None)."""
    from eth_utils.exceptions import ValidationError

    _, vm_class, _ = interpreter()
    traced = evm_trace.installed() is not None  # an anvil devnet records traces
    vm_state = _new_state(state, block, traced=traced)
    try:
        vm_state.validate_transaction(tx)
    except ValidationError as exc:
        raise EvmValidationError(str(exc)) from None
    _check_initcode(tx.to, tx.data)
    if not traced:
        computation = _run(vm_state, tx)
    else:
        trace = evm_trace.begin()
        try:
            computation = _run(vm_state, tx)
            trace.output = bytes(computation.output)
        finally:
            evm_trace.end(bytes(tx.hash) if trace_key is None else trace_key, trace)
    vm_state._account_db.flush()
    return _outcome(vm_class, tx, computation)


def impersonated(
    chain_id: int,
    nonce: int,
    sender: bytes,
    to: bytes | None,
    value: int,
    data: bytes,
    gas: int,
    max_fee: int,
) -> Any:
    """An EIP-1559 transaction of ``sender`` that nobody signed (an anvil devnet's
    ``anvil_impersonateAccount``): for :func:`apply_transaction`, which runs it
    as the signed one, with no tip."""
    from eth.vm.spoof import SpoofTransaction

    unsigned = interpreter()[2].new_unsigned_dynamic_fee_transaction(
        chain_id=chain_id,
        nonce=nonce,
        max_priority_fee_per_gas=0,
        max_fee_per_gas=max_fee,
        gas=gas,
        to=to or b"",
        value=value,
        data=data,
        access_list=(),
    )
    return SpoofTransaction(unsigned, from_=sender)


def call(
    state: PendingState,
    block: EvmBlock,
    *,
    sender: bytes,
    to: bytes | None,
    data: bytes = b"",
    value: int = 0,
    gas: int | None = None,
    allowance: Allowance | None = None,
) -> Outcome:
    """Run a call that signs nothing and pays no gas (``eth_call``) in a child
    of ``state``, which it leaves unchanged; the base fee is taken as 0.

    With an ``allowance`` the run takes at most the gas it has left and one of
    its runs, and stops when its ``stop`` says so (:class:`EvmStoppedError`, also
    when the call ran out of the gas the allowance cut it to)."""
    from eth.vm.spoof import SpoofTransaction

    _, vm_class, builder = interpreter()
    limit = block.gas_limit if gas is None else gas
    _check_initcode(to, data)
    cut = allowance is not None and allowance.gas < limit
    if allowance is not None:
        _check_stop(allowance)
        if allowance.runs <= 0:
            raise EvmStoppedError("the request's EVM runs are spent")
        allowance.runs -= 1
        limit = min(limit, allowance.gas)
    view = state.child()
    stop = None if allowance is None else allowance.stop
    vm_state = _new_state(view, dataclasses.replace(block, base_fee=0), stop)
    unsigned = builder.create_unsigned_transaction(
        nonce=vm_state.get_nonce(sender),
        gas_price=0,
        gas=limit,
        to=to if to is not None else b"",
        value=value,
        data=data,
    )
    tx = SpoofTransaction(unsigned, from_=sender)
    need = intrinsic_gas(tx)
    if limit < need:
        if cut:
            raise EvmStoppedError("the request's gas budget is spent")
        raise EvmValidationError(f"gas {limit} is below the intrinsic gas {need}")
    out = _outcome(vm_class, tx, _run(vm_state, tx))
    if allowance is not None:
        allowance.gas -= out.gas_used
        if cut and not out.status and out.gas_used >= limit:
            raise EvmStoppedError("the request's gas budget is spent")
    return out


def contract_call(
    state: PendingState,
    block: EvmBlock,
    *,
    sender: bytes,
    to: bytes,
    data: bytes,
    value: int,
    gas: int,
) -> Outcome:
    """A call from a contract of the other VM (a router packet to ``evm/<to>``):
    run as a transaction of ``sender`` that pays no gas price (the packet's gas
    was paid by the message that sent it), its value from ``sender``'s
    balance, its nonce the sender's next. Its writes reach ``state`` only when
    it succeeds; :class:`EvmValidationError` where it cannot run at all (gas
    below the intrinsic 21,000, value over the balance)."""
    from eth.vm.spoof import SpoofTransaction
    from eth_utils.exceptions import ValidationError

    _, vm_class, builder = interpreter()
    view = state.child()
    vm_state = _new_state(view, dataclasses.replace(block, base_fee=0))
    unsigned = builder.create_unsigned_transaction(
        nonce=vm_state.get_nonce(sender), gas_price=0, gas=gas, to=to, value=value, data=data
    )
    tx = SpoofTransaction(unsigned, from_=sender)
    try:
        vm_state.validate_transaction(tx)
    except ValidationError as exc:
        raise EvmValidationError(str(exc)) from None
    computation = _run(vm_state, tx)
    vm_state._account_db.flush()
    outcome = _outcome(vm_class, tx, computation)
    if outcome.status:
        state.merge(view)
    return outcome


def estimate_gas(
    state: PendingState,
    block: EvmBlock,
    *,
    sender: bytes,
    to: bytes | None,
    data: bytes = b"",
    value: int = 0,
    cap: int | None = None,
    allowance: Allowance | None = None,
) -> int:
    """The least gas limit under which the call succeeds (a bisection, as geth's);
    :class:`EvmValidationError` when it cannot run at all, :class:`EvmCallFailedError`
    when it fails at the cap.

    With an ``allowance``, each run spends of it; when it is spent after the
    run at the cap succeeded, the answer is the least gas found to succeed so
    far (an upper bound: enough, if not the least); before, :class:`EvmStoppedError`.
    """
    hi = block.gas_limit if cap is None else min(cap, block.gas_limit)

    def run(gas: int) -> Outcome:
        return call(
            state, block, sender=sender, to=to, data=data, value=value, gas=gas,
            allowance=allowance,
        )  # fmt: skip

    def succeeds(gas: int) -> bool:
        try:
            return bool(run(gas).status)
        except EvmValidationError:
            return False  # below the intrinsic gas

    top = run(hi)
    if not top.status:
        raise EvmCallFailedError(top)
    lo = max(TRANSFER_GAS - 1, top.gas_used - 1)
    # What it used is nearly always enough with the 1/64 a call keeps back
    # (EIP-150) on top: one run usually narrows the search to a few steps.
    guess = min(hi, top.gas_used * 64 // 63 + TRANSFER_GAS // 10)
    try:
        if guess < hi and succeeds(guess):
            hi = guess
        while lo + 1 < hi:
            mid = (lo + hi) // 2
            if succeeds(mid):
                hi = mid
            else:
                lo = mid
    except EvmStoppedError:
        pass  # hi succeeded: enough, if perhaps not the least
    return hi
