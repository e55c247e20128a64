"""WebSocket ``/v1/ws``: new blocks, focus changes of chosen particles, tx inclusion.

Blocks are committed on the producer thread; :meth:`Hub.on_block` renders what
every subscriber may want once, there, and hands it to the event loop. Each
client has a bounded queue drained by its own sender task: a client that
cannot keep up is disconnected (close code 1013) instead of making the node
buffer without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from focusflow.api.render import cid_text, record_json
from focusflow.core.cid import cid_to_bytes
from focusflow.core.encoding import decode
from focusflow.core.errors import FocusflowError

router = APIRouter()

#: Events a slow client may have waiting before it is dropped.
QUEUE_LIMIT = 256
#: Particles one connection may watch.
MAX_WATCHED = 1000


@dataclass(eq=False)
class _Client:
    socket: WebSocket
    queue: asyncio.Queue
    blocks: bool = False
    particles: set[bytes] = field(default_factory=set)
    txs: set[bytes] = field(default_factory=set)
    dropped: bool = False


class Hub:
    def __init__(self, node) -> None:
        self.node = node
        self.loop: asyncio.AbstractEventLoop | None = None
        self.clients: set[_Client] = set()

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    # producer thread
    def on_block(self, event) -> None:
        if self.loop is None or not self.clients:
            return
        block = {
            "type": "block",
            "block": record_json(event.result.record, event.result.events),
            "focus": {"iterations": event.view.iterations, "seconds": event.view.seconds},
        }
        receipts = {r.tx_hash: (i, r.code, r.log) for i, r in enumerate(event.result.receipts)}
        self.loop.call_soon_threadsafe(
            self._dispatch, json.dumps(block), receipts, event.view, event.previous
        )

    # event loop
    def _dispatch(self, block_msg: str, receipts: dict, view, previous) -> None:
        height = view.height
        for client in list(self.clients):
            if client.blocks:
                self._put(client, block_msg)
            if client.particles and view.q is not previous.q:
                changed = _changed(client.particles, view, previous)
                if changed:
                    self._put(
                        client,
                        json.dumps({"type": "focus", "height": height, "particles": changed}),
                    )
            for tx_hash in client.txs & receipts.keys():
                client.txs.discard(tx_hash)
                index, code, log = receipts[tx_hash]
                self._put(client, json.dumps(_tx_msg(tx_hash, height, index, code, log)))

    def _put(self, client: _Client, message: str) -> None:
        try:
            client.queue.put_nowait(message)
        except asyncio.QueueFull:
            client.dropped = True
            client.queue = asyncio.Queue(maxsize=1)
            client.queue.put_nowait(None)


def _changed(watched: set[bytes], view, previous) -> list[dict[str, Any]]:
    out = []
    for cid in watched:
        i = view.particle_index(cid)
        if i < 0:
            continue
        old = int(previous.q[i]) if i < len(previous.q) else None
        new = int(view.q[i])
        if old != new:
            out.append(
                {
                    "cid": cid_text(cid),
                    "focus": new / view.scale,
                    "focus_q": new,
                    "rank": view.rank(i),
                }
            )
    return out


def _tx_msg(tx_hash: bytes, height: int, index: int, code: str, log: str) -> dict:
    return {
        "type": "tx",
        "hash": tx_hash.hex(),
        "height": height,
        "index": index,
        "code": code,
        "log": log,
    }


def _error(code: str, message: str) -> str:
    return json.dumps({"type": "error", "error": {"code": code, "message": message}})


@router.websocket("/v1/ws")
async def websocket(socket: WebSocket) -> None:
    hub: Hub = socket.app.state.hub
    await socket.accept()
    client = _Client(socket, asyncio.Queue(maxsize=QUEUE_LIMIT))
    hub.clients.add(client)
    sender = asyncio.create_task(_send_loop(client))
    try:
        while True:
            text = await socket.receive_text()
            reply = _command(hub, client, text)
            if reply is not None:
                hub._put(client, reply)
    except WebSocketDisconnect:
        pass
    finally:
        hub.clients.discard(client)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender


async def _send_loop(client: _Client) -> None:
    while True:
        message = await client.queue.get()
        if message is None or client.dropped:
            await client.socket.close(code=1013, reason="client too slow; events dropped")
            return
        await client.socket.send_text(message)


def _command(hub: Hub, client: _Client, text: str) -> str | None:
    try:
        cmd = json.loads(text)
    except ValueError:
        return _error("malformed", "commands are JSON objects")
    if not isinstance(cmd, dict):
        return _error("malformed", "commands are JSON objects")
    if "unsubscribe" in cmd:
        what = cmd["unsubscribe"]
        if what == "blocks":
            client.blocks = False
        elif what == "focus":
            client.particles.clear()
        elif what == "tx":
            client.txs.clear()
        else:
            return _error("malformed", "unsubscribe takes blocks, focus or tx")
        return json.dumps({"type": "unsubscribed", "what": what})
    what = cmd.get("subscribe")
    if what == "blocks":
        client.blocks = True
        return json.dumps({"type": "subscribed", "what": "blocks"})
    if what == "focus":
        cids = cmd.get("particles")
        if not isinstance(cids, list) or not all(isinstance(c, str) for c in cids):
            return _error("malformed", "focus takes particles: a list of CIDs")
        try:
            raw = {cid_to_bytes(c) for c in cids}
        except FocusflowError as exc:
            return _error(exc.code, exc.message)
        if len(client.particles | raw) > MAX_WATCHED:
            return _error("over_limit", f"one connection watches at most {MAX_WATCHED} particles")
        client.particles |= raw
        view = hub.node.view
        now = []
        for c in raw:
            i = view.particle_index(c)
            if i >= 0:
                q = int(view.q[i])
                now.append(
                    {
                        "cid": cid_text(c),
                        "focus": q / view.scale,
                        "focus_q": q,
                        "rank": view.rank(i),
                    }
                )
        return json.dumps(
            {"type": "subscribed", "what": "focus", "height": view.height, "particles": now}
        )
    if what == "tx":
        h = cmd.get("hash")
        try:
            tx_hash = bytes.fromhex(h) if isinstance(h, str) and len(h) == 64 else None
        except ValueError:
            tx_hash = None
        if tx_hash is None:
            return _error("malformed", "tx takes hash: 64 hex digits")
        with hub.node.chain.reader() as r:
            raw = r.index(b"t" + tx_hash)
        hub._put(client, json.dumps({"type": "subscribed", "what": "tx", "hash": h.lower()}))
        if raw is not None:
            height, index, code, log, _ = decode(raw, "receipt")
            return json.dumps(_tx_msg(tx_hash, height, index, code, log))
        client.txs.add(tx_hash)
        return None
    return _error("malformed", "send {subscribe: blocks|focus|tx} or {unsubscribe: ...}")
