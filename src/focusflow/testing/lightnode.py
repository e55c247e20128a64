"""Real nodes on loopback for light-client tests, honest or made to lie.

A node is ``create_app`` over a real runtime and chain, served by uvicorn on a
loopback port. A lying node is the same app behind :class:`Lie`, an ASGI layer
that rewrites the JSON answers of chosen routes before they leave the server
(the test-only "lying mode": the client sees a node that says something else).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import uvicorn

from focusflow.api.app import create_app
from focusflow.api.limits import LimitSettings
from focusflow.chain.block import BlockRecord, sign_certificate
from focusflow.node.runtime import NodeRuntime

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from focusflow.api.service import NodeService
    from focusflow.chain.chain import Chain

from focusflow.testing.chains import ALICE, BOB, VALIDATOR, genesis, link, new_chain, particle, tx

T0 = 1_700_000_000_000
#: ``rewrite(path, answer)``: the changed JSON answer of a route, or None to keep it.
Rewrite = Callable[[str, dict[str, Any]], dict[str, Any] | None]


class Lie:
    """ASGI middleware: ``rewrite(path, answer)`` may return a changed answer."""

    def __init__(self, app: ASGIApp, rewrite: Rewrite) -> None:
        self.app = app
        self.rewrite = rewrite

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        body = bytearray()

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body"):
                return
            data = bytes(body)
            if start.get("status") == 200:
                try:
                    changed = self.rewrite(scope["path"], json.loads(data))
                except ValueError:
                    changed = None
                if changed is not None:
                    data = json.dumps(changed).encode()
            headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
            headers.append((b"content-length", str(len(data)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": data})

        await self.app(scope, receive, capture)


def serve(app: ASGIApp) -> tuple[str, Callable[[], None]]:
    """Serve ``app`` on a loopback port; returns its URL and a stop function."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

    return f"http://127.0.0.1:{sock.getsockname()[1]}", stop


def node_app(chain: Chain, rewrite: Rewrite | None = None) -> ASGIApp:
    """The node's real app over ``chain`` (limits lifted for loopback), lying if asked.

    The node is a NodeRuntime, not a validator: the routes of consensus state
    (``/v1/consensus``) have nothing to answer; the chain's routes are real."""
    node = cast("NodeService", NodeRuntime(chain))
    app = create_app(node, limits=LimitSettings(exempt_loopback=True))
    return app if rewrite is None else Lie(app, rewrite)


def build_chain(
    path: Path | str, blocks: int = 6, fork_at: int | None = None, tag: str = "p"
) -> Chain:
    """A one-validator chain: links and a name registration, ``blocks`` blocks.

    Blocks from ``fork_at`` on carry other links (``tag`` names them), so two
    chains built with different tags and the same ``fork_at`` share their
    first blocks and then diverge, each block certified by the same validator.
    """
    from focusflow.chain import Msg

    chain = new_chain(path, genesis(focus={"mode": "diffusion"}))
    register = Msg("name.register", {"name": "hubname", "cid": particle("hub")})
    for h in range(1, blocks + 1):
        t = tag if fork_at is not None and h >= fork_at else "p"
        txs = [tx(ALICE, h - 1, link((f"{t}{h}", f"{t}{h + 1}"), ("hub", f"{t}{h}")))]
        if h == 2:
            txs.append(tx(BOB, 0, register))
        chain.produce_block(txs, time_ms=_now() - (blocks - h) * 1000)
    return chain


def _now() -> int:
    return int(time.time() * 1000)


__all__ = [
    "T0",
    "VALIDATOR",
    "BlockRecord",
    "Lie",
    "build_chain",
    "node_app",
    "serve",
    "sign_certificate",
]
