"""WebSocket ``/v1/ws``: new blocks, focus changes of chosen particles, tx inclusion.

Blocks are committed on the producer thread; :meth:`Hub.on_block` renders the
block message once, there, and queues the block for the event loop, where one
pump task handles blocks in order (``ws_fanout.BlockPump``, ``/evm``'s too).
The focus changes of every particle any client watches are computed once per
block (ranks included, in one vectorised pass, in a worker thread so the loop
keeps serving) and each client gets its share. Each client has a bounded
queue drained by its own sender task (``ws_fanout.WsConnection``): a client
that cannot keep up is disconnected instead of making the node buffer without
bound.

Caps (:class:`WsLimits`, docs/api.md lists them with the close codes): the
connections in all and per client IP, the particles and transactions one
connection watches, the bytes of one client message (checked before it is
parsed) and the length of a particle list (checked before a CID is decoded).
A connection that watches nothing for ``idle_timeout`` seconds is closed, and
a watched transaction not included within ``tx_watch_blocks`` blocks expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypedDict

import numpy as np
from fastapi import APIRouter, WebSocket

from focusflow.api.jsonbody import parse_json
from focusflow.api.render import cid_text, record_json
from focusflow.api.service import BlockEvent, NodeService
from focusflow.api.state import app_state
from focusflow.api.ws_fanout import CLOSE_TRY_LATER as CLOSE_TRY_LATER
from focusflow.api.ws_fanout import BlockPump, WsConnection
from focusflow.core.cid import cid_to_bytes
from focusflow.core.encoding import decode
from focusflow.core.errors import DecodeError, FocusflowError, InvalidParameterError, require_int

if TYPE_CHECKING:
    from focusflow.chain.focus_view import FocusView

router = APIRouter()

#: Events a slow client may have waiting before it is dropped.
QUEUE_LIMIT = 256

#: Close codes (RFC 6455 section 7.4) and when the node sends them; also
#: CLOSE_TRY_LATER (1013): too many connections, or a client too slow for its events.
CLOSE_POLICY = 1008  # idle: nothing watched for ``idle_timeout`` seconds
CLOSE_TOO_BIG = 1009  # a client message over ``max_message_bytes``


@dataclass(frozen=True)
class WsLimits:
    """Caps of the WebSocket endpoint (defaults documented in docs/api.md)."""

    #: Open connections in all.
    max_connections: int = 512
    #: Open connections from one client IP.
    max_per_client: int = 16
    #: Particles one connection watches.
    max_watched: int = 1000
    #: Transactions one connection waits for.
    max_txs: int = 256
    #: Bytes of one client message (a 1000-CID subscription is about 62 KB).
    max_message_bytes: int = 128 << 10
    #: Seconds a connection may stay open watching nothing.
    idle_timeout: float = 120.0
    #: Blocks a watched transaction is waited for before it expires.
    tx_watch_blocks: int = 600

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_per_client", "max_watched", "max_txs"):
            require_int(name, getattr(self, name), 1)
        require_int("max_message_bytes", self.max_message_bytes, 256)
        if not self.idle_timeout > 0:
            raise InvalidParameterError("idle_timeout must be > 0")
        require_int("tx_watch_blocks", self.tx_watch_blocks, 1)


@dataclass(eq=False)
class _Client(WsConnection):
    blocks: bool = False
    particles: set[bytes] = field(default_factory=set)
    #: Watched transaction hash -> the last height it is waited for.
    txs: dict[bytes, int] = field(default_factory=dict)

    def watches(self) -> bool:
        return self.blocks or bool(self.particles) or bool(self.txs)


@dataclass(frozen=True)
class _BlockEvent:
    message: str
    #: Transaction hash -> (index in the block, code, log) of each receipt.
    receipts: dict[bytes, tuple[int, str, str]]
    view: FocusView
    previous: FocusView


class FocusEntry(TypedDict):
    """A watched particle's focus, as ``focus`` messages list it."""

    cid: str
    focus: float
    focus_q: int
    rank: int


class TxMessage(TypedDict):
    type: Literal["tx"]
    hash: str
    height: int
    index: int
    code: str
    log: str


class TxExpired(TypedDict):
    type: Literal["expired"]
    what: Literal["tx"]
    hash: str
    height: int


class Hub:
    """Every WebSocket client of one app, and the per-block fan-out to them."""

    def __init__(self, node: NodeService, limits: WsLimits | None = None) -> None:
        self.node = node
        self.limits = limits or WsLimits()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.clients: set[_Client] = set()
        self.per_ip: dict[str, int] = {}
        #: How many clients watch each particle (changed on the event loop only).
        self.watched: dict[bytes, int] = {}
        #: Focus-change computations run, one per block with watchers (tests, metrics).
        self.focus_passes = 0
        self._pump: BlockPump[_BlockEvent] = BlockPump("websocket pump", self._dispatch)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start serving on ``loop`` (called from the app's lifespan, on that loop)."""
        self.loop = loop
        self._pump.attach(loop)

    async def detach(self) -> None:
        await self._pump.detach()

    # --- connections (event loop) ----------------------------------------------
    def admit(self, ip: str) -> str | None:
        """Why a new connection from ``ip`` is refused, or None (then it is counted)."""
        if len(self.clients) >= self.limits.max_connections:
            return "too many connections to this node"
        if self.per_ip.get(ip, 0) >= self.limits.max_per_client:
            return "too many connections from this client"
        self.per_ip[ip] = self.per_ip.get(ip, 0) + 1
        return None

    def add(self, client: _Client) -> None:
        self.clients.add(client)

    def remove(self, client: _Client) -> None:
        if client in self.clients:
            self.clients.discard(client)
            self.unwatch(client, client.particles)
        self.release(client.ip)

    def release(self, ip: str) -> None:
        """Uncount a connection from ``ip`` that :meth:`admit` counted (this
        endpoint's or ``/evm``'s, which shares the caps)."""
        left = self.per_ip.get(ip, 0) - 1
        if left > 0:
            self.per_ip[ip] = left
        else:
            self.per_ip.pop(ip, None)

    def watch(self, client: _Client, particles: set[bytes]) -> None:
        for cid in particles - client.particles:
            self.watched[cid] = self.watched.get(cid, 0) + 1
        client.particles |= particles

    def unwatch(self, client: _Client, particles: set[bytes]) -> None:
        for cid in particles & client.particles:
            left = self.watched.get(cid, 0) - 1
            if left > 0:
                self.watched[cid] = left
            else:
                self.watched.pop(cid, None)
        client.particles -= particles

    # --- blocks ------------------------------------------------------------------
    def on_block(self, event: BlockEvent) -> None:
        """Producer thread: render the block message once and queue the block."""
        if self.loop is None or not self.clients:
            return
        block = {
            "type": "block",
            "block": record_json(event.result.record, event.result.events),
            "focus": {"iterations": event.view.iterations, "seconds": event.view.seconds},
        }
        receipts = {r.tx_hash: (i, r.code, r.log) for i, r in enumerate(event.result.receipts)}
        self._pump.offer(_BlockEvent(json.dumps(block), receipts, event.view, event.previous))

    async def _dispatch(self, item: _BlockEvent) -> None:
        view, previous = item.view, item.previous
        changes: dict[bytes, FocusEntry] = {}
        if self.watched and view.q is not previous.q:
            watched = list(self.watched)
            changes = await asyncio.to_thread(focus_changes, watched, view, previous)
            self.focus_passes += 1
        height = view.height
        for client in list(self.clients):
            if client.blocks:
                client.put(item.message)
            if changes and client.particles:
                mine = [changes[c] for c in client.particles if c in changes]
                if mine:
                    doc = {"type": "focus", "height": height, "particles": mine}
                    client.put(json.dumps(doc))
            self._deliver_txs(client, item.receipts, height)

    def _deliver_txs(
        self, client: _Client, receipts: dict[bytes, tuple[int, str, str]], height: int
    ) -> None:
        for tx_hash in [h for h in client.txs if h in receipts]:
            del client.txs[tx_hash]
            index, code, log_text = receipts[tx_hash]
            client.put(json.dumps(_tx_msg(tx_hash, height, index, code, log_text)))
        for tx_hash in [h for h, last in client.txs.items() if last <= height]:
            del client.txs[tx_hash]
            client.put(json.dumps(_tx_expired(tx_hash, height)))


def focus_changes(
    watched: list[bytes], view: FocusView, previous: FocusView
) -> dict[bytes, FocusEntry]:
    """``{cid: {cid, focus, focus_q, rank}}`` of the watched particles whose focus changed.

    One pass for all clients: the particles are looked up once, compared as
    arrays, and the changed ones ranked in one vectorised search.
    """
    index = np.fromiter((view.particle_index(c) for c in watched), np.int64, len(watched))
    known = np.flatnonzero(index >= 0)
    idx = index[known]
    new = view.q[idx]
    old_len = len(previous.q)
    in_old = idx < old_len
    old = np.zeros(len(idx), dtype=view.q.dtype)
    old[in_old] = previous.q[idx[in_old]]
    changed = np.flatnonzero(~in_old | (old != new))
    return _entries([watched[k] for k in known[changed]], view, idx[changed])


def _entries(cids: list[bytes], view: FocusView, idx: np.ndarray) -> dict[bytes, FocusEntry]:
    ranks = view.ranks(idx).tolist() if len(idx) else []
    out: dict[bytes, FocusEntry] = {}
    for cid, i, rank in zip(cids, idx.tolist(), ranks, strict=True):
        q = int(view.q[i])
        out[cid] = {"cid": cid_text(cid), "focus": q / view.scale, "focus_q": q, "rank": rank}
    return out


def current_focus(cids: list[bytes], view: FocusView) -> list[FocusEntry]:
    """The focus entries of those of ``cids`` that are particles of ``view`` now."""
    index = np.fromiter((view.particle_index(c) for c in cids), np.int64, len(cids))
    known = np.flatnonzero(index >= 0)
    return list(_entries([cids[k] for k in known], view, index[known]).values())


def _tx_msg(tx_hash: bytes, height: int, index: int, code: str, log_text: str) -> TxMessage:
    return {
        "type": "tx",
        "hash": tx_hash.hex(),
        "height": height,
        "index": index,
        "code": code,
        "log": log_text,
    }


def _tx_expired(tx_hash: bytes, height: int) -> TxExpired:
    return {"type": "expired", "what": "tx", "hash": tx_hash.hex(), "height": height}


def _error(code: str, message: str) -> str:
    return json.dumps({"type": "error", "error": {"code": code, "message": message}})


@router.websocket("/v1/ws")
async def websocket(socket: WebSocket) -> None:
    hub = app_state(socket).hub
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
        hub.add(client)
        sender = asyncio.create_task(client.send_loop("client too slow; events dropped"))
        await _receive_loop(hub, client)
    finally:
        hub.remove(client)
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender


async def _receive_loop(hub: Hub, client: _Client) -> None:
    """Read commands until the client leaves, idles out or sends too much."""
    limits = hub.limits
    while True:
        timeout = None if client.watches() else limits.idle_timeout
        try:
            message = await asyncio.wait_for(client.socket.receive(), timeout)
        except TimeoutError:
            reason = f"idle: nothing watched for {limits.idle_timeout:g} s"
            await client.close(CLOSE_POLICY, reason)
            return
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            client.put(_error("malformed", "commands are JSON text messages"))
            continue
        # Bytes before parsing: a character is at least one byte, so a text
        # of more characters than the cap is over it without encoding it.
        if len(text) > limits.max_message_bytes or (
            len(text) * 4 > limits.max_message_bytes
            and len(text.encode()) > limits.max_message_bytes
        ):
            await client.close(CLOSE_TOO_BIG, f"message over {limits.max_message_bytes} bytes")
            return
        reply = await _command(hub, client, text)
        if reply is not None:
            client.put(reply)


async def _command(hub: Hub, client: _Client, text: str) -> str | None:
    try:
        cmd = parse_json(text)
    except DecodeError:
        return _error("malformed", "commands are JSON objects")
    if not isinstance(cmd, dict):
        return _error("malformed", "commands are JSON objects")
    if "unsubscribe" in cmd:
        return _unsubscribe(hub, client, cmd["unsubscribe"])
    what = cmd.get("subscribe")
    if what == "blocks":
        client.blocks = True
        return json.dumps({"type": "subscribed", "what": "blocks"})
    if what == "focus":
        return await _subscribe_focus(hub, client, cmd.get("particles"))
    if what == "tx":
        return _subscribe_tx(hub, client, cmd.get("hash"))
    return _error("malformed", "send {subscribe: blocks|focus|tx} or {unsubscribe: ...}")


def _unsubscribe(hub: Hub, client: _Client, what: object) -> str:
    if what == "blocks":
        client.blocks = False
    elif what == "focus":
        hub.unwatch(client, set(client.particles))
    elif what == "tx":
        client.txs.clear()
    else:
        return _error("malformed", "unsubscribe takes blocks, focus or tx")
    return json.dumps({"type": "unsubscribed", "what": what})


async def _subscribe_focus(hub: Hub, client: _Client, cids: object) -> str:
    cap = hub.limits.max_watched
    if not isinstance(cids, list):
        return _error("malformed", "focus takes particles: a list of CIDs")
    # The list's length before any CID in it is decoded.
    if len(cids) > cap:
        return _error("over_limit", f"one connection watches at most {cap} particles")
    if not all(isinstance(c, str) for c in cids):
        return _error("malformed", "focus takes particles: a list of CIDs")
    try:
        raw = {cid_to_bytes(c) for c in cids}
    except FocusflowError as exc:
        return _error(exc.code, exc.message)
    if len(client.particles | raw) > cap:
        return _error("over_limit", f"one connection watches at most {cap} particles")
    hub.watch(client, raw)
    view = hub.node.view
    now = await asyncio.to_thread(current_focus, sorted(raw), view)
    return json.dumps(
        {"type": "subscribed", "what": "focus", "height": view.height, "particles": now}
    )


def _subscribe_tx(hub: Hub, client: _Client, h: object) -> str | None:
    if not isinstance(h, str) or len(h) != 64:
        return _error("malformed", "tx takes hash: 64 hex digits")
    try:
        tx_hash = bytes.fromhex(h)
    except ValueError:
        return _error("malformed", "tx takes hash: 64 hex digits")
    if tx_hash not in client.txs and len(client.txs) >= hub.limits.max_txs:
        return _error("over_limit", f"one connection waits for at most {hub.limits.max_txs} txs")
    with hub.node.chain.reader() as r:
        raw = r.index(b"t" + tx_hash)
    client.put(json.dumps({"type": "subscribed", "what": "tx", "hash": h.lower()}))
    if raw is not None:
        height, index, code, log_text, _ = decode(raw, "receipt")
        return json.dumps(_tx_msg(tx_hash, height, index, code, log_text))
    client.txs[tx_hash] = hub.node.view.height + hub.limits.tx_watch_blocks
    return None
