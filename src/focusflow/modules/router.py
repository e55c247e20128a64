"""The in-process router: packets from contracts to modules and to other contracts.

A WASM contract sends a packet with ``env.send(port, data)``, an EVM contract
through the router precompile (``vm.evm.ROUTER_ADDRESS``); when its call (its
transaction, for the EVM) returns, the router delivers its packets in order,
in the same block and the same message, at no fee: a packet's effects succeed
or fail with the message that caused it. Ports:

* ``bank``: ``{"send": {"to": "focus1...", "amount": n}}`` moves the
  contract's own tokens; ``{"stake": {"amount": n}}`` bonds them (a contract's
  links need stake, as a neuron's do);
* ``graph``: ``{"link": [["<cid>", "<cid>"], ...]}`` creates cyberlinks with the
  contract as their neuron, under the rules of a ``link`` message (budget of
  stake, burn, at most ``max_links_per_tx`` in the transaction);
* ``names``: ``{"register" | "update": {"name": n, "cid": "<cid>"}}`` and
  ``{"transfer": {"name": n, "to": "focus1..."}}``, the ``name.*`` messages
  with the contract as sender and owner (the fee from its funds);
* ``wasm/<address hex>``: runs that contract's ``execute`` with the packet as
  its message and the sender as its sender, with the gas the sender's call
  left; its own packets follow, at most ``MAX_DEPTH`` calls deep;
* ``evm/<address hex>``: ``{"call": {"data": "0x...", "value": n}}`` runs that
  EVM contract as a transaction of the sender's address, with the gas left
  (``wasm_gas_per_unit`` WASM gas per EVM gas); its router packets follow.

Acknowledgements: each packet's (what it did) is the message's ``packet``
event, and a WASM sender that exports ``reply`` is called with it, so a
contract reads another's answer in the same message.

Capabilities: a packet's source is the port of the contract that sent it,
set by the host, so no contract can speak for another; that port is the
capability every delivery is checked against (funds, stake, link budget and
names are the source's own). The module ports that are not listed
(``validators``, ``upgrades``, ``evm``, ``blobs``) refuse packets
(``port_refused``), and a name that is no port at all is ``unknown_port``.
There are no timeouts: a packet is delivered in the block that sent it or its
message fails.
"""

from __future__ import annotations

import json
from typing import Any

from focusflow.chain.errors import (
    EvmInvalidError,
    EvmRevertedError,
    MalformedMessageError,
    OverLimitError,
    TxError,
)
from focusflow.chain.module import TxContext
from focusflow.core.cid import cid_to_bytes
from focusflow.core.errors import FocusflowError
from focusflow.core.jsontext import too_deep
from focusflow.core.keys import decode_address, encode_address
from focusflow.modules import rewards
from focusflow.modules.accounts import credit, debit, set_account
from focusflow.modules.dex import twap_reader
from focusflow.modules.links import Links
from focusflow.modules.names import Names
from focusflow.vm import wasm

#: Calls deep a chain of contract-to-contract packets may go.
MAX_DEPTH = 4
#: Module ports that take no packets from contracts.
CLOSED_PORTS = ("validators", "upgrades", "evm", "blobs")
_LINKS = Links()
_NAMES = Names()


class UnknownPortError(TxError):
    code = "unknown_port"


class PortRefusedError(TxError):
    code = "port_refused"


def deliver(
    ctx: TxContext, source: bytes, packets: list[tuple[str, bytes]], gas: int, depth: int = 1
) -> int:
    """Deliver ``packets`` sent by the contract at ``source``; returns the gas left
    and raises the error of the first packet that fails (the whole message fails).

    After each packet, a WASM sender that exports ``reply`` is called with its
    acknowledgement (``{"packet", "port", "ack"}``, bytes in it as 0x-hex)
    from the gas left, one call deeper; its own packets follow in turn."""
    replies = wasm.exports_entry(ctx.state, source, wasm.REPLY_ENTRY)
    for port, data in packets:
        doc = _parse(data)
        ack: dict[str, Any]
        index = _delivered(ctx)
        if port == "bank":
            ack = _bank(ctx, source, doc)
        elif port == "graph":
            ack = _graph(ctx, source, doc, index)
        elif port == "names":
            ack = _names(ctx, source, doc)
        elif port.startswith("wasm/"):
            ack, gas = _wasm(ctx, source, port, doc, gas, depth)
        elif port.startswith("evm/"):
            ack, gas = _evm(ctx, source, port, doc, gas, depth)
        elif port in CLOSED_PORTS:
            raise PortRefusedError(f"port {port!r} takes no packets from contracts")
        else:
            raise UnknownPortError(
                f"no port {port!r}: bank, graph, names, wasm/<address> or evm/<address>"
            )
        ctx.emit("packet", source=source, port=port, ack=ack)
        if replies:
            shown = {k: "0x" + v.hex() if isinstance(v, bytes) else v for k, v in ack.items()}
            gas = _reply(ctx, source, {"packet": index, "port": port, "ack": shown}, gas, depth)
    return gas


def _env(ctx: TxContext) -> wasm.WasmEnv:
    block = ctx.block
    return wasm.WasmEnv(block.chain_id, block.height, block.time_ms)


def _reply(ctx: TxContext, source: bytes, doc: dict[str, Any], gas: int, depth: int) -> int:
    """The sender's ``reply`` with one acknowledgement; returns the gas left."""
    _, left = _run_contract(ctx, source, wasm.REPLY_ENTRY, None, doc, gas, depth)
    return left


def _run_contract(
    ctx: TxContext,
    address: bytes,
    entry: str,
    sender: str | None,
    doc: Any,
    gas: int,
    depth: int,
) -> tuple[wasm.CallResult, int]:
    """``entry`` of the WASM instance at ``address`` one call deeper, then its
    own packets; returns its result and the gas left."""
    if depth >= MAX_DEPTH:
        raise OverLimitError(f"packets and replies call contracts at most {MAX_DEPTH} deep")
    if gas <= 0:
        raise wasm.WasmOutOfGasError(f"no gas left for a packet's {entry}")
    block = ctx.block
    result = wasm.call(
        ctx.state,
        _env(ctx),
        address,
        entry,
        sender,
        doc,
        gas,
        block.focus_of,
        block.karma_of,
        twap_reader(ctx.state, ctx.block.time_ms, ctx.params),
    )
    return result, deliver(ctx, address, result.packets, gas - result.gas_used, depth + 1)


def _delivered(ctx: TxContext) -> int:
    """Packets the transaction delivered so far: the index of the next one."""
    return sum(1 for event in ctx.events if event.get("type") == "packet")


def _parse(data: bytes) -> Any:
    if too_deep(data, 32):
        raise MalformedMessageError("a packet nests deeper than 32 levels")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise MalformedMessageError("a packet is the UTF-8 text of a JSON value") from None


def _one_key(doc: Any, kinds: tuple[str, ...]) -> tuple[str, Any]:
    if not isinstance(doc, dict) or len(doc) != 1 or next(iter(doc)) not in kinds:
        raise MalformedMessageError(f"a packet here is one of {', '.join(kinds)}")
    kind = next(iter(doc))
    return kind, doc[kind]


def _amount(body: Any) -> int:
    value = body.get("amount") if isinstance(body, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**63:
        raise MalformedMessageError("amount must be a positive integer below 2^63")
    return value


def _bank(ctx: TxContext, source: bytes, doc: Any) -> dict[str, Any]:
    kind, body = _one_key(doc, ("send", "stake"))
    amount = _amount(body)
    if kind == "send":
        try:
            to = decode_address(body.get("to"))
        except (FocusflowError, TypeError, AttributeError):
            raise MalformedMessageError("send.to must be a focus1... address") from None
        debit(ctx.state, source, amount, "a packet's send")
        credit(ctx.state, to, amount)
        return {"sent": amount, "to": encode_address(to)}
    account = debit(ctx.state, source, amount, "a packet's stake")
    tenure = rewards.on_bonded_change(
        ctx.state, ctx.params, ctx.height, source, account.bonded, account.bonded + amount
    )
    account.bonded += amount
    set_account(ctx.state, source, account)
    ctx.deltas.stakes[source] = account.bonded
    out = {"staked": amount, "bonded": account.bonded}
    return out | {"tenure_minted": tenure} if tenure else out


def _graph(ctx: TxContext, source: bytes, doc: Any, index: int) -> dict[str, Any]:
    _, pairs = _one_key(doc, ("link",))
    if not isinstance(pairs, list):
        raise MalformedMessageError("link is a list of [from, to] CID pairs")
    links = []
    for pair in pairs:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(c, str) for c in pair)
        ):
            raise MalformedMessageError("link is a list of [from, to] CID pairs")
        try:
            links.append([cid_to_bytes(c) for c in pair])
        except FocusflowError as exc:
            raise MalformedMessageError(f"link: {exc.message}") from None
    _LINKS.add(ctx, source, links, packet=index)
    return {"linked": len(links)}


def _target(port: str, prefix: str) -> bytes:
    try:
        target = bytes.fromhex(port[len(prefix) :])
    except ValueError:
        target = b""
    if len(target) != 20:
        raise UnknownPortError(f"no port {port!r}: {prefix} takes a 40-digit hex address")
    return target


def _names(ctx: TxContext, source: bytes, doc: Any) -> dict[str, Any]:
    """A name registered, pointed or handed on with the contract as its owner,
    under a ``name.*`` message's rules (the fee from the contract's funds)."""
    kind, body = _one_key(doc, ("register", "update", "transfer"))
    if not isinstance(body, dict):
        raise MalformedMessageError(f"{kind} takes an object")
    message = dict(body)
    if kind in ("register", "update"):
        cid = message.get("cid")
        if not isinstance(cid, str):
            raise MalformedMessageError(f"{kind}.cid is a CID string")
        try:
            message["cid"] = cid_to_bytes(cid)
        except FocusflowError as exc:
            raise MalformedMessageError(f"{kind}.cid: {exc.message}") from None
    else:
        try:
            message["to"] = decode_address(message.get("to"))
        except (FocusflowError, TypeError, AttributeError):
            raise MalformedMessageError("transfer.to must be a focus1... address") from None
    as_owner = TxContext(
        ctx.block, source, ctx.tx_index, ctx.msg_index, ctx.state,
        deltas=ctx.deltas, events=ctx.events, tx=ctx.tx,
    )  # fmt: skip
    _NAMES.handlers()[f"name.{kind}"](as_owner, message)
    return {kind: message.get("name")}


def _wasm(
    ctx: TxContext, source: bytes, port: str, doc: Any, gas: int, depth: int
) -> tuple[dict[str, Any], int]:
    target = _target(port, "wasm/")
    result, left = _run_contract(ctx, target, "execute", encode_address(source), doc, gas, depth)
    return {"gas_used": result.gas_used, "answer": result.answer[:1024]}, left


def _evm(
    ctx: TxContext, source: bytes, port: str, doc: Any, gas: int, depth: int
) -> tuple[dict[str, Any], int]:
    """An EVM contract called as a transaction of the sending contract's
    address (``vm.evm.contract_call``), with the WASM gas left converted at
    ``wasm_gas_per_unit`` WASM gas per EVM gas; a call that reverts fails the
    message. Its own router packets follow, one call deeper."""
    from focusflow.modules.evm import evm_block
    from focusflow.modules.wasm import WasmParams
    from focusflow.vm.evm import EvmValidationError, contract_call, packets_of

    target = _target(port, "evm/")
    _, body = _one_key(doc, ("call",))
    data, value = _call_fields(body)
    if depth >= MAX_DEPTH:
        raise OverLimitError(f"packets and replies call contracts at most {MAX_DEPTH} deep")
    gas_params = WasmParams.of(ctx.params)
    per_gas = max(gas_params.wasm_gas_per_unit, 1)
    evm_gas = min(gas // per_gas, ctx.params.evm_block_gas_limit)
    block = evm_block(ctx.block)
    try:
        out = contract_call(
            ctx.state, block, sender=source, to=target, data=data, value=value, gas=evm_gas
        )
    except EvmValidationError as exc:
        raise EvmInvalidError(f"the EVM refuses the packet's call: {exc}") from None
    if not out.status:
        raise EvmRevertedError(f"the packet's call to {port}: {out.error}")
    # A packet's own gas was consumed by the call that sent it (the router
    # precompile charges it), so it is carried, not taken again from ``left``.
    for sender, sub_port, packet, sub_gas in packets_of(out.logs):
        carried = min(sub_gas * per_gas, gas_params.wasm_max_gas)
        deliver(ctx, sender, [(sub_port, packet)], carried, depth + 1)
    left = gas - out.gas_used * per_gas
    ack = {"gas_used": out.gas_used, "output": "0x" + out.output[:1024].hex()}
    return ack, left


def _call_fields(body: Any) -> tuple[bytes, int]:
    """``(calldata, value)`` of an ``evm/`` packet's ``call``."""
    if not isinstance(body, dict) or set(body) - {"data", "value"}:
        raise MalformedMessageError('call takes {"data": "0x...", "value": n}')
    text = body.get("data", "0x")
    if not isinstance(text, str) or not text.startswith("0x"):
        raise MalformedMessageError("call.data is 0x-prefixed hex")
    try:
        data = bytes.fromhex(text[2:])
    except ValueError:
        raise MalformedMessageError("call.data is 0x-prefixed hex") from None
    value = body.get("value", 0)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**255:
        raise MalformedMessageError("call.value is a non-negative integer")
    return data, value
