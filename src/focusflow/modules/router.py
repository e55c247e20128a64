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
* ``wasm/<address hex>``: runs that contract's ``execute`` with the packet as
  its message and the sender as its sender, with the gas the sender's call
  left; its own packets follow, at most ``MAX_DEPTH`` calls deep.

Capabilities: a packet's source is the port of the contract that sent it,
set by the host, so no contract can speak for another; the module ports that
are not listed (``validators``, ``names``, ``upgrades``, ``evm``) refuse
packets (``port_refused``), and a name that is no port at all is
``unknown_port``. The acknowledgement of each packet (what it did) is the
message's ``packet`` event.
"""

from __future__ import annotations

import json
from typing import Any

from focusflow.chain.errors import MalformedMessageError, OverLimitError, TxError
from focusflow.chain.module import TxContext
from focusflow.core.cid import cid_to_bytes
from focusflow.core.errors import FocusflowError
from focusflow.core.jsontext import too_deep
from focusflow.core.keys import decode_address, encode_address
from focusflow.modules.accounts import credit, debit, set_account
from focusflow.modules.links import Links
from focusflow.vm import wasm

#: Calls deep a chain of contract-to-contract packets may go.
MAX_DEPTH = 4
#: Module ports that take no packets from contracts.
CLOSED_PORTS = ("validators", "names", "upgrades", "evm", "blobs")
_LINKS = Links()


class UnknownPortError(TxError):
    code = "unknown_port"


class PortRefusedError(TxError):
    code = "port_refused"


def deliver(
    ctx: TxContext, source: bytes, packets: list[tuple[str, bytes]], gas: int, depth: int = 1
) -> int:
    """Deliver ``packets`` sent by the contract at ``source``; returns the gas left
    and raises the error of the first packet that fails (the whole message fails)."""
    for port, data in packets:
        doc = _parse(data)
        ack: dict[str, Any]
        if port == "bank":
            ack = _bank(ctx, source, doc)
        elif port == "graph":
            ack = _graph(ctx, source, doc, _delivered(ctx))
        elif port.startswith("wasm/"):
            ack, gas = _wasm(ctx, source, port, doc, gas, depth)
        elif port in CLOSED_PORTS:
            raise PortRefusedError(f"port {port!r} takes no packets from contracts")
        else:
            raise UnknownPortError(f"no port {port!r}: bank, graph or wasm/<address>")
        ctx.emit("packet", source=source, port=port, ack=ack)
    return gas


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
    account.bonded += amount
    set_account(ctx.state, source, account)
    ctx.deltas.stakes[source] = account.bonded
    return {"staked": amount, "bonded": account.bonded}


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


def _wasm(
    ctx: TxContext, source: bytes, port: str, doc: Any, gas: int, depth: int
) -> tuple[dict[str, Any], int]:
    try:
        target = bytes.fromhex(port[len("wasm/") :])
    except ValueError:
        target = b""
    if len(target) != 20:
        raise UnknownPortError(f"no port {port!r}: wasm/ takes a 40-digit hex address")
    if depth >= MAX_DEPTH:
        raise OverLimitError(f"packets call contracts at most {MAX_DEPTH} deep")
    if gas <= 0:
        raise wasm.WasmOutOfGasError("no gas left for the packet's call")
    block = ctx.block
    env = wasm.WasmEnv(block.chain_id, block.height, block.time_ms)
    result = wasm.call(
        ctx.state,
        env,
        target,
        "execute",
        encode_address(source),
        doc,
        gas,
        block.focus_of,
        block.karma_of,
    )
    left = deliver(ctx, target, result.packets, gas - result.gas_used, depth + 1)
    return {"gas_used": result.gas_used, "answer": result.answer[:1024]}, left
