"""WebSocket caps with real clients: the node's app served by uvicorn on loopback.

The app runs over an in-process ``NodeRuntime`` so that the test makes the
blocks (``Chain.produce_block`` then ``after_commit``, as consensus does) and
can count the focus work per block; clients are ``websockets`` connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
import websockets
from websockets.exceptions import ConnectionClosed

from focusflow.api.app import create_app
from focusflow.api.state import state_of
from focusflow.api.ws import CLOSE_POLICY, CLOSE_TOO_BIG, CLOSE_TRY_LATER, WsLimits
from focusflow.chain.focus_view import FocusView
from focusflow.core.cid import cid_from_bytes, cid_to_bytes
from focusflow.node.runtime import NodeRuntime
from focusflow.testing.chains import ALICE, genesis, link, new_chain, particle, tx

T0 = 1_700_000_000_000


class Node:
    """A chain, its runtime and the app served on a loopback port."""

    def __init__(self, path, limits: WsLimits) -> None:
        self.chain = new_chain(path, genesis(focus={"mode": "diffusion"}))
        self.runtime = NodeRuntime(self.chain)
        self.app = create_app(self.runtime, ws_limits=limits)
        self.hub = state_of(self.app).hub
        self.nonce = 0

    def block(self, *pairs: tuple[str, str]) -> None:
        """Commit a block (with ALICE's links, if any) and publish it to the listeners."""
        txs = [tx(ALICE, self.nonce, link(*pairs))] if pairs else []
        self.nonce += bool(pairs)
        result = self.chain.produce_block(txs, time_ms=T0 + 1000 * (self.chain.height + 1))
        self.runtime.after_commit(result)


@contextlib.contextmanager
def serving(node: Node) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(node.app, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"ws://127.0.0.1:{sock.getsockname()[1]}/v1/ws"
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


@pytest.fixture
def make_node(tmp_path):
    made = []

    def make(**limits) -> Node:
        node = Node(tmp_path / f"n{len(made)}", WsLimits(**limits))
        made.append(node)
        return node

    yield make
    for node in made:
        node.chain.close()


async def _next(ws, kind: str, timeout: float = 10.0) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            msg = json.loads(await ws.recv())
            if msg["type"] == kind:
                return msg


async def _closed(ws, timeout: float = 10.0) -> tuple[int, str]:
    """(code, reason) the server closed ``ws`` with."""
    async with asyncio.timeout(timeout):
        with contextlib.suppress(ConnectionClosed):
            while True:
                await ws.recv()
    return ws.close_code, ws.close_reason


def _cid(name: str) -> str:
    return cid_from_bytes(particle(name))


def test_connections_are_capped_in_all_and_per_client_ip(make_node):
    node = make_node(max_connections=3, max_per_client=2)

    async def scenario(url):
        def connect(ip: str):
            return websockets.connect(url, local_addr=(ip, 0))

        async with connect("127.0.0.1") as a, connect("127.0.0.1") as b:
            async with connect("127.0.0.1") as c:
                assert await _closed(c) == (
                    CLOSE_TRY_LATER,
                    "too many connections from this client",
                )
            async with connect("127.0.0.2") as d:  # another client: its own count
                await d.send(json.dumps({"subscribe": "blocks"}))
                assert (await _next(d, "subscribed"))["what"] == "blocks"
                async with connect("127.0.0.3") as e:
                    assert await _closed(e) == (
                        CLOSE_TRY_LATER,
                        "too many connections to this node",
                    )
            for ws in (a, b):  # the refusals left the admitted ones alone
                await ws.send(json.dumps({"subscribe": "blocks"}))
                assert (await _next(ws, "subscribed"))["what"] == "blocks"
        # Closed connections are no longer counted.
        for _ in range(50):
            if not node.hub.per_ip and not node.hub.clients:
                break
            await asyncio.sleep(0.05)
        assert node.hub.per_ip == {} and not node.hub.clients
        async with connect("127.0.0.1") as f:
            await f.send(json.dumps({"subscribe": "blocks"}))
            assert (await _next(f, "subscribed"))["what"] == "blocks"

    with serving(node) as url:
        asyncio.run(scenario(url))


def test_subscriptions_are_capped_and_a_long_list_is_refused_before_decoding(make_node):
    node = make_node(max_watched=5, max_txs=2)

    async def scenario(url):
        async with websockets.connect(url) as ws:
            # Six strings that are not CIDs: the length is refused first.
            await ws.send(json.dumps({"subscribe": "focus", "particles": ["x"] * 6}))
            assert (await _next(ws, "error"))["error"]["code"] == "over_limit"
            await ws.send(json.dumps({"subscribe": "focus", "particles": ["x"]}))
            assert (await _next(ws, "error"))["error"]["code"] == "invalid_cid"
            first = [_cid(f"p{i}") for i in range(4)]
            await ws.send(json.dumps({"subscribe": "focus", "particles": first}))
            await _next(ws, "subscribed")
            more = [_cid("p3"), _cid("p4"), _cid("p5")]  # 6 distinct in all
            await ws.send(json.dumps({"subscribe": "focus", "particles": more}))
            assert (await _next(ws, "error"))["error"]["code"] == "over_limit"
            for i in range(2):
                await ws.send(json.dumps({"subscribe": "tx", "hash": f"{i:064x}"}))
                await _next(ws, "subscribed")
            await ws.send(json.dumps({"subscribe": "tx", "hash": f"{7:064x}"}))
            assert (await _next(ws, "error"))["error"]["code"] == "over_limit"

    with serving(node) as url:
        asyncio.run(scenario(url))
    assert not node.hub.watched  # the client left: nothing is watched any more


def test_a_message_over_the_byte_cap_closes_and_deep_json_is_malformed(make_node):
    node = make_node(max_message_bytes=4096)

    async def scenario(url):
        async with websockets.connect(url) as ws:
            await ws.send("[" * 4000)  # deep nesting under the byte cap
            assert (await _next(ws, "error"))["error"]["code"] == "malformed"
            await ws.send(json.dumps({"subscribe": "blocks"}))  # still served
            assert (await _next(ws, "subscribed"))["what"] == "blocks"
            names = [_cid(f"q{i}") for i in range(100)]  # about 6 KB
            await ws.send(json.dumps({"subscribe": "focus", "particles": names}))
            assert await _closed(ws) == (CLOSE_TOO_BIG, "message over 4096 bytes")

    with serving(node) as url:
        asyncio.run(scenario(url))


def test_a_connection_watching_nothing_expires(make_node):
    node = make_node(idle_timeout=0.5)

    async def scenario(url):
        async with websockets.connect(url) as idle, websockets.connect(url) as busy:
            await busy.send(json.dumps({"subscribe": "blocks"}))
            await _next(busy, "subscribed")
            start = time.monotonic()
            assert await _closed(idle) == (CLOSE_POLICY, "idle: nothing watched for 0.5 s")
            assert time.monotonic() - start < 5
            await asyncio.sleep(1.0)
            await busy.send(json.dumps({"subscribe": "blocks"}))  # still open
            assert (await _next(busy, "subscribed"))["what"] == "blocks"

    with serving(node) as url:
        asyncio.run(scenario(url))


def test_a_watched_transaction_expires_after_its_blocks(make_node):
    node = make_node(tx_watch_blocks=2)

    async def scenario(url):
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"subscribe": "tx", "hash": "ab" * 32}))
            await _next(ws, "subscribed")
            height = node.chain.height
            await asyncio.to_thread(node.block)
            await asyncio.to_thread(node.block)
            expired = await _next(ws, "expired")
            assert expired == {
                "type": "expired",
                "what": "tx",
                "hash": "ab" * 32,
                "height": height + 2,
            }

    with serving(node) as url:
        asyncio.run(scenario(url))


def test_ranks_are_computed_once_per_block_not_per_subscriber(make_node, monkeypatch):
    """Twelve clients watching the same particles: one rank per changed particle per block."""
    node = make_node()
    node.block(*[(f"r{i}", f"r{i + 1}") for i in range(30)])
    ranked = []
    real = FocusView.ranks

    def counted(self, indices):
        ranked.append(len(indices))
        return real(self, indices)

    monkeypatch.setattr(FocusView, "ranks", counted)
    watched = [_cid(f"r{i}") for i in range(31)]

    async def scenario(url):
        clients = [await websockets.connect(url) for _ in range(12)]
        try:
            for ws in clients:
                await ws.send(json.dumps({"subscribe": "focus", "particles": watched}))
                await _next(ws, "subscribed")
            ranked.clear()
            await asyncio.to_thread(node.block, ("r30", "r0"), ("r5", "r0"))
            got = [await _next(ws, "focus") for ws in clients]
        finally:
            for ws in clients:
                await ws.close()
        return got

    with serving(node) as url:
        got = asyncio.run(scenario(url))
    changed = len(got[0]["particles"])
    assert changed > 0 and all(m == got[0] for m in got)
    view = node.runtime.view
    for entry in got[0]["particles"]:
        i = view.particle_index(cid_to_bytes(entry["cid"]))
        assert entry["rank"] == int(real(view, [i])[0]) and entry["focus_q"] == int(view.q[i])
    assert sum(ranked) == changed, f"ranked {sum(ranked)} for {changed} changed particles"
    assert node.hub.focus_passes == 1
