"""Ethereum JSON-RPC over a WebSocket at ``/evm``, with ``eth_subscribe``.

What ethers' ``WebSocketProvider``, web3.py's ``WebSocketProvider`` and
wallets open: every method of ``POST /evm`` (one request or a batch per
message), plus the subscriptions of the Ethereum pub/sub API:

* ``eth_subscribe ["newHeads"]``: each new block's header;
* ``eth_subscribe ["logs", {"address": ..., "topics": [...]}]``: each log of a
  new block that passes the filter, one notification per log;
* ``eth_unsubscribe [id]``: true when the subscription was there.

Notifications are ``{"jsonrpc": "2.0", "method": "eth_subscription",
"params": {"subscription": id, "result": ...}}``, for blocks in order, once
the block's focus is published (when ``POST /evm`` serves it too).

Blocks come from the producer thread (:meth:`EvmSubscriptions.on_block`);
one pump task on the event loop (``ws_fanout.BlockPump``, as ``/v1/ws``'s)
renders each block's header and logs once, in a worker thread, and hands every
client its share. The connection caps are
``/v1/ws``'s (the same ``Hub`` counts both, per client IP and in all), as are
the message size cap and the idle timeout (a connection with no subscription
that sends nothing for ``idle_timeout`` seconds is closed); a connection holds
at most ``MAX_SUBSCRIPTIONS``, and one whose queue of notifications fills is
closed (1013) rather than buffered without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, WebSocket

from focusflow.api.evm_budget import Budget
from focusflow.api.jsonbody import parse_json
from focusflow.api.routes_evm import (
    EvmRpc,
    RpcError,
    address_filter,
    answer,
    encode,
    respond,
    topic_filter,
    valid_id,
)
from focusflow.api.service import NodeService
from focusflow.api.state import app_state
from focusflow.api.ws import CLOSE_POLICY, CLOSE_TOO_BIG, Hub
from focusflow.api.ws_fanout import CLOSE_TRY_LATER, BlockPump, WsConnection
from focusflow.core.errors import DecodeError

router = APIRouter()

#: Subscriptions one connection may hold.
MAX_SUBSCRIPTIONS = 32
#: Messages (answers and notifications) a client may have waiting.
QUEUE_LIMIT = 1024
#: Header fields a ``newHeads`` notification leaves out of a block.
_NOT_HEADER = ("transactions", "uncles", "withdrawals", "totalDifficulty", "size")


@dataclass
class _Subscription:
    kind: str
    addresses: set[bytes] | None = None
    topics: list[set[bytes] | None] = field(default_factory=list)


@dataclass(eq=False)
class _Client(WsConnection):
    subscriptions: dict[str, _Subscription] = field(default_factory=dict)


class EvmSubscriptions:
    """The ``/evm`` WebSocket clients of one app, and the per-block fan-out."""

    def __init__(self, node: NodeService, hub: Hub) -> None:
        self.rpc = EvmRpc(node)
        self.hub = hub
        self.loop: asyncio.AbstractEventLoop | None = None
        self.clients: set[_Client] = set()
        self._pump: BlockPump[int] = BlockPump("evm subscriptions", self._dispatch)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._pump.attach(loop)

    async def detach(self) -> None:
        await self._pump.detach()

    def on_block(self, event: Any) -> None:
        """Producer thread: queue the block's height for the pump."""
        if self.loop is None or not any(c.subscriptions for c in list(self.clients)):
            return
        self._pump.offer(event.result.record.block.height)

    async def _dispatch(self, height: int) -> None:
        clients = [c for c in self.clients if c.subscriptions]
        if not clients:
            return
        header, logs = await asyncio.to_thread(self._render, height)
        if header is None:
            return
        for client in clients:
            for sub_id, sub in list(client.subscriptions.items()):
                if sub.kind == "newHeads":
                    client.put(_notification(sub_id, header))
                    continue
                for item, raw in logs:
                    if _passes(raw, sub):
                        client.put(_notification(sub_id, item))

    def _render(
        self, height: int
    ) -> tuple[dict[str, Any] | None, list[tuple[dict[str, Any], tuple[bytes, list[bytes]]]]]:
        """The block's header and every log with its raw parts (one render for all)."""
        block = self.rpc._block_json(height, False)
        if block is None:
            return None, []
        header = {k: v for k, v in block.items() if k not in _NOT_HEADER}
        logs = [
            (
                item,
                (
                    bytes.fromhex(item["address"][2:]),
                    [bytes.fromhex(t[2:]) for t in item["topics"]],
                ),
            )
            for item in self.rpc.block_logs(height, None, [])
        ]
        return header, logs


def _passes(raw: tuple[bytes, list[bytes]], sub: _Subscription) -> bool:
    address, topics = raw
    if sub.addresses is not None and address not in sub.addresses:
        return False
    for i, want in enumerate(sub.topics):
        if want is not None and (i >= len(topics) or topics[i] not in want):
            return False
    return True


def _notification(sub_id: str, result: Any) -> str:
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "method": "eth_subscription",
            "params": {"subscription": sub_id, "result": result},
        }
    )


@router.websocket("/evm")
async def evm_socket(socket: WebSocket) -> None:
    """Ethereum JSON-RPC over a WebSocket (module docstring)."""
    subs = app_state(socket).evm_subscriptions
    hub = subs.hub
    ip = socket.client.host if socket.client else "unknown"
    refused = hub.admit(ip)
    if refused is not None:
        await socket.accept()
        await socket.close(code=CLOSE_TRY_LATER, reason=refused)
        return
    client = _Client(socket, ip, asyncio.Queue(maxsize=QUEUE_LIMIT))
    sender = None
    try:  # from here the connection is counted: every way out uncounts it
        await socket.accept()
        subs.clients.add(client)
        sender = asyncio.create_task(client.send_loop("client too slow; messages dropped"))
        await _receive_loop(subs, client)
    finally:
        subs.clients.discard(client)
        hub.release(ip)
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender


async def _receive_loop(subs: EvmSubscriptions, client: _Client) -> None:
    limits = subs.hub.limits
    while True:
        timeout = None if client.subscriptions else limits.idle_timeout
        try:
            message = await asyncio.wait_for(client.socket.receive(), timeout)
        except TimeoutError:
            reason = f"idle: no subscription for {limits.idle_timeout:g} s"
            await client.close(CLOSE_POLICY, reason)
            return
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            text = (message.get("bytes") or b"").decode("utf-8", "replace")
        # Bytes before parsing: a character is at least one byte.
        if len(text) > limits.max_message_bytes or (
            len(text) * 4 > limits.max_message_bytes
            and len(text.encode()) > limits.max_message_bytes
        ):
            await client.close(CLOSE_TOO_BIG, f"message over {limits.max_message_bytes} bytes")
            return
        client.put((await _handle(subs, client, text)).decode())


async def _handle(subs: EvmSubscriptions, client: _Client, text: str) -> bytes:
    """The answer to one message: a request or batch under its own budget, as
    ``POST /evm`` answers it, the pub/sub methods beside the others."""
    rpc = EvmRpc(subs.rpc.node, Budget.start(client.ip))
    try:
        payload = parse_json(text)
    except DecodeError:
        error = RpcError(-32700, "parse error").to_json()
        return encode(rpc.budget, {"jsonrpc": "2.0", "id": None, "error": error})

    async def one(rpc: EvmRpc, request: Any) -> dict[str, Any]:
        return await _one(rpc, client, request)

    return await respond(rpc, payload, one)


async def _one(rpc: EvmRpc, client: _Client, request: Any) -> dict[str, Any]:
    method = request.get("method") if isinstance(request, dict) else None
    if (
        method not in ("eth_subscribe", "eth_unsubscribe")
        or request.get("jsonrpc") != "2.0"
        or not valid_id(request.get("id"))
    ):
        return await answer(rpc, request)
    rid = request.get("id")
    params = request.get("params", [])
    try:
        if not isinstance(params, list):
            raise RpcError(-32602, "params must be a list")
        if method == "eth_unsubscribe":
            sub_id = params[0] if params and isinstance(params[0], str) else ""
            result: Any = client.subscriptions.pop(sub_id, None) is not None
        else:
            result = _subscribe(client, params)
    except RpcError as exc:
        return {"jsonrpc": "2.0", "id": rid, "error": exc.to_json()}
    return {"jsonrpc": "2.0", "id": rid, "result": result}


def _subscribe(client: _Client, params: list[Any]) -> str:
    kind = params[0] if params else None
    if kind == "newHeads" and len(params) == 1:
        sub = _Subscription("newHeads")
    elif kind == "logs" and len(params) <= 2:
        flt = params[1] if len(params) == 2 else {}
        if not isinstance(flt, dict) or set(flt) - {"address", "topics"}:
            raise RpcError(-32602, "a logs subscription's filter has address and topics only")
        addresses = address_filter(flt.get("address"))
        sub = _Subscription("logs", addresses, topic_filter(flt.get("topics")))
    else:
        raise RpcError(-32602, 'subscribe to ["newHeads"] or ["logs", {address, topics}]')
    if len(client.subscriptions) >= MAX_SUBSCRIPTIONS:
        raise RpcError(-32005, f"one connection holds at most {MAX_SUBSCRIPTIONS} subscriptions")
    sub_id = "0x" + secrets.token_hex(16)
    client.subscriptions[sub_id] = sub
    return sub_id
