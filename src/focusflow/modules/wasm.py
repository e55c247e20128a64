"""WASM: contracts uploaded, instantiated and called as chain messages (``vm.wasm``).

Messages
    ``wasm.store``        ``{"code": bytes}``: keep a module (its hash is its id)
    ``wasm.instantiate``  ``{"code": hash, "msg": bytes, "label": str, "gas": n}``:
                          a new instance; its ``instantiate`` runs with ``msg``
    ``wasm.execute``      ``{"contract": address, "msg": bytes, "gas": n}``: its
                          ``execute`` runs with ``msg``

``msg`` is the UTF-8 text of a JSON value (at most ``MAX_MSG_BYTES``, nested at
most ``MAX_MSG_DEPTH`` deep), handed to the contract inside the call's
document. ``gas`` is the most the call may use; it is paid by the
transaction's fee: one base unit buys ``wasm_gas_per_unit`` gas, and a
transaction must pay, beyond its size's minimum fee, for the gas of all its
WASM messages (``insufficient_fee`` otherwise): the calls' ``gas``, and for
each ``wasm.store`` the price of compiling its module (``vm.wasm.compile_gas``,
computed from the module's bytes alone). Unused gas is not refunded,
as on Cosmos chains. A call that fails (trap, out of gas, the contract's own
abort) fails its message with the error's code; the fee stays paid. The
packets a call sends (``env.send``) are delivered by ``modules.router`` once
it returns, within the same message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from focusflow.chain.errors import (
    BlockFullError,
    GenesisError,
    InsufficientFeeError,
    MalformedMessageError,
    OverLimitError,
)
from focusflow.chain.module import BlockContext, Deltas, Handler, MessageBody, TxContext
from focusflow.chain.module_params import ModuleParams, param_section
from focusflow.chain.params import ChainParams
from focusflow.chain.state import PendingState
from focusflow.chain.tx import Msg
from focusflow.core.encoding import encode
from focusflow.core.jsontext import too_deep
from focusflow.core.keys import encode_address
from focusflow.modules import router
from focusflow.modules.accounts import address_field, field, only_fields
from focusflow.modules.dex import twap_reader
from focusflow.vm import wasm

MESSAGES = ("wasm.store", "wasm.instantiate", "wasm.execute")
#: Largest message text and its deepest nesting.
MAX_MSG_BYTES = 64 << 10
MAX_MSG_DEPTH = 32
MAX_LABEL = 64
#: Longest answer a receipt's event keeps (longer ones are cut, and say so).
MAX_EVENT_ANSWER = 1024


@param_section
@dataclass(frozen=True)
class WasmParams(ModuleParams):
    """WASM's gas (docs/wasm.md): the genesis's ``wasm_*``."""

    SECTION = "wasm"
    OMITTED_AT_DEFAULT = frozenset({"wasm_block_gas_limit"})
    POSITIVE = frozenset({"wasm_gas_per_unit"})

    #: WASM gas one base unit of fee buys.
    wasm_gas_per_unit: int = 1_000
    #: Most gas one WASM call may be given.
    wasm_max_gas: int = 1_000_000_000
    #: WASM gas one block may hold: what its transactions ask (calls' gas,
    #: stores' compile prices) and what Ethereum transactions' packets carry
    #: to contracts. At about one gas a nanosecond, a block of WASM runs a few
    #: seconds at most, as one of EVM gas at ``evm_block_gas_limit`` does.
    wasm_block_gas_limit: int = 5_000_000_000

    def check(self) -> None:
        """A block must hold the largest WASM call."""
        if self.wasm_block_gas_limit < self.wasm_max_gas:
            raise GenesisError(
                f"params.wasm_block_gas_limit={self.wasm_block_gas_limit} must be at least "
                f"wasm_max_gas={self.wasm_max_gas}: a call given the most gas would fit no block"
            )


def _msg(body: dict[str, Any]) -> Any:
    text = field(body, "msg", bytes)
    if len(text) > MAX_MSG_BYTES:
        raise OverLimitError(f"msg of {len(text)} bytes exceeds {MAX_MSG_BYTES}")
    if too_deep(text, MAX_MSG_DEPTH):
        raise MalformedMessageError(f"msg nests deeper than {MAX_MSG_DEPTH} levels")
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise MalformedMessageError("msg is not the UTF-8 text of a JSON value") from None


def gas_fee(msgs: Sequence[Msg], params: ChainParams) -> int:
    """What a transaction's WASM messages add to its minimum fee: their gas
    (a call's ``gas``, a store's compile price), ``wasm_gas_per_unit`` to a
    base unit, rounded up."""
    asked = sum(_gas_of(m) for m in msgs if m.type in MESSAGES)
    return -(-asked // WasmParams.of(params).wasm_gas_per_unit)


def _gas_of(m: Msg) -> int:
    """The gas one WASM message asks the fee for (0 for a body its handler refuses)."""
    body = m.body if isinstance(m.body, dict) else {}
    if m.type == "wasm.store":
        code = body.get("code")
        if not isinstance(code, bytes):
            return 0
        try:
            return wasm.compile_gas(code)
        except wasm.WasmError:
            return 0
    gas = body.get("gas")
    return gas if isinstance(gas, int) and not isinstance(gas, bool) and gas > 0 else 0


#: The block counter of the WASM gas its transactions asked for and its
#: Ethereum transactions' packets carried (``wasm_block_gas_limit``).
GAS_COUNTER = "wasm_gas"


def block_gas(msgs: Sequence[Msg], params: ChainParams) -> int:
    """The WASM gas a transaction's messages may use: what the block holds for
    it. A call asking more than ``wasm_max_gas`` fails its message at once
    (``over_limit``), so it holds no more than that."""
    most = WasmParams.of(params).wasm_max_gas
    return sum(
        _gas_of(m) if m.type == "wasm.store" else min(_gas_of(m), most)
        for m in msgs
        if m.type in MESSAGES
    )


def reserve_block_gas(ctx: BlockContext, gas: int) -> None:
    """Count ``gas`` carried into contract calls from outside a WASM message (an
    Ethereum transaction's packet) against the block's WASM gas; OverLimitError,
    which fails the message that carries it, when the block has not that much left."""
    used = ctx.counters.get(GAS_COUNTER, 0)
    limit = WasmParams.of(ctx.params).wasm_block_gas_limit
    if used + gas > limit:
        raise OverLimitError(
            f"a packet's {gas} WASM gas exceeds what the block has left "
            f"({limit - used} of wasm_block_gas_limit={limit})"
        )
    ctx.counters[GAS_COUNTER] = used + gas


def _check_fee(ctx: TxContext) -> None:
    """The transaction's fee pays its size's minimum and all its WASM gas."""
    tx, params = ctx.tx, ctx.params
    if tx is None:
        return
    need = params.min_fee(len(tx.encoded)) + gas_fee(tx.msgs, params)
    if tx.fee < need:
        raise InsufficientFeeError(
            f"fee {tx.fee} does not pay for the transaction's WASM gas: it needs {need}"
        )


def _gas(ctx: TxContext, body: dict[str, Any]) -> int:
    """The call's gas, checked against the cap and against what the fee paid for."""
    gas: int = field(body, "gas", int)
    most = WasmParams.of(ctx.params).wasm_max_gas
    if not 0 < gas <= most:
        raise OverLimitError(f"gas must be in [1, {most}], got {gas}")
    _check_fee(ctx)
    return gas


def _answer(result: wasm.CallResult) -> dict[str, Any]:
    cut = len(result.answer) > MAX_EVENT_ANSWER
    return {
        "gas_used": result.gas_used,
        "answer": result.answer[:MAX_EVENT_ANSWER],
        "answer_cut": cut,
    }


def env_of(ctx: BlockContext) -> wasm.WasmEnv:
    return wasm.WasmEnv(ctx.chain_id, ctx.height, ctx.time_ms)


class Wasm:
    name = "wasm"

    def handlers(self) -> Mapping[str, Handler]:
        return {
            "wasm.store": self.store,
            "wasm.instantiate": self.instantiate,
            "wasm.execute": self.execute,
        }

    def init_genesis(self, state: PendingState, genesis: Any, deltas: Deltas) -> None:
        """Nothing: no contract exists at genesis."""

    def end_block(self, ctx: BlockContext) -> None:
        """Nothing at the end of a block."""

    def room(self, ctx: BlockContext, tx: Any) -> Mapping[str, int]:
        """The block's WASM gas this transaction takes (``BlockRoom``): what its
        messages ask for, which the fee pays in advance whatever they use."""
        asked = block_gas(tx.msgs, ctx.params)
        if not asked:
            return {}
        limit = WasmParams.of(ctx.params).wasm_block_gas_limit
        if asked > limit:
            raise OverLimitError(
                f"the transaction asks {asked} WASM gas, over wasm_block_gas_limit={limit}"
            )
        used = ctx.counters.get(GAS_COUNTER, 0)
        if used + asked > limit:
            raise BlockFullError(
                f"the transaction's {asked} WASM gas exceeds what the block has left "
                f"({limit - used} of {limit})"
            )
        return {GAS_COUNTER: asked}

    def store(self, ctx: TxContext, body: MessageBody) -> None:
        """Check the module, then the fee for its compile, then compile and keep it."""
        only_fields(body, "code")
        code = field(body, "code", bytes)
        price = wasm.compile_gas(code)
        _check_fee(ctx)
        code_hash = wasm.store_code(ctx.state, code)
        ctx.emit("wasm.store", code=code_hash, size=len(code), gas_used=price)

    def instantiate(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "code", "msg", "label", "gas")
        code_hash = field(body, "code", bytes, size=32)
        label = field(body, "label", str)
        if len(label) > MAX_LABEL:
            raise MalformedMessageError(f"label longer than {MAX_LABEL} characters")
        msg = _msg(body)
        gas = _gas(ctx, body)
        if ctx.state.get(wasm.code_key(code_hash)) is None:
            raise wasm.WasmError(f"no code {code_hash.hex()}: store it first (wasm.store)")
        nonce = ctx.tx.nonce if ctx.tx is not None else 0
        address = wasm.contract_address(ctx.sender, nonce, ctx.msg_index)
        if ctx.state.get(wasm.contract_key(address)) is not None:
            raise wasm.WasmError(f"a contract exists at {address.hex()} already")
        ctx.state.put(wasm.contract_key(address), encode([code_hash, ctx.sender, label]))
        result = wasm.call(
            ctx.state, env_of(ctx.block), address, "instantiate",
            encode_address(ctx.sender), msg, gas, ctx.block.focus_of, ctx.block.karma_of,
            twap_reader(ctx.state, ctx.block.time_ms, ctx.params),
        )  # fmt: skip
        ctx.emit("wasm.instantiate", contract=address, code=code_hash, **_answer(result))
        router.deliver(ctx, address, result.packets, gas - result.gas_used)

    def execute(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "contract", "msg", "gas")
        address = address_field(body, "contract")
        msg = _msg(body)
        gas = _gas(ctx, body)
        result = wasm.call(
            ctx.state, env_of(ctx.block), address, "execute",
            encode_address(ctx.sender), msg, gas, ctx.block.focus_of, ctx.block.karma_of,
            twap_reader(ctx.state, ctx.block.time_ms, ctx.params),
        )  # fmt: skip
        ctx.emit("wasm.execute", contract=address, **_answer(result))
        router.deliver(ctx, address, result.packets, gas - result.gas_used)
