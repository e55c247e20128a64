"""Committed blocks fanned out to WebSocket clients: what ``/v1/ws`` and ``/evm`` share.

Blocks are committed on the producer thread and turned into messages on the
event loop. :class:`BlockPump` is the bridge: :meth:`BlockPump.offer`, from
any thread, queues an item for the loop in a queue of ``PUMP_LIMIT`` (a loop
that falls that far behind skips the oldest, with a warning, rather than
holding blocks without bound), and one task hands each item in order to the
endpoint's ``dispatch``, logging one that fails and going on with the next.

:class:`WsConnection` is one client's outgoing side: a bounded queue drained
by one sender task (:meth:`WsConnection.send_loop`). A client that cannot keep
up is closed with 1013 rather than buffered for: its queue is swapped for one
holding only the close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from fastapi import WebSocket

log = logging.getLogger("focusflow.api")

#: Blocks waiting for a pump before the oldest is skipped.
PUMP_LIMIT = 64
#: RFC 6455 section 7.4: try again later (too many connections, a client too slow).
CLOSE_TRY_LATER = 1013

T = TypeVar("T")


class BlockPump(Generic[T]):
    """Items from the producer thread, handed in order to ``dispatch`` on the loop.

    ``what`` names the endpoint in the log's warnings (``websocket pump``,
    ``evm subscriptions``)."""

    def __init__(self, what: str, dispatch: Callable[[T], Awaitable[None]]) -> None:
        self.what = what
        self.dispatch = dispatch
        self.loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[T] | None = None
        self._task: asyncio.Task[None] | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start pumping on ``loop`` (called from the app's lifespan, on that loop)."""
        self.loop = loop
        self._queue = asyncio.Queue(maxsize=PUMP_LIMIT)
        self._task = loop.create_task(self._run())

    async def detach(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def offer(self, item: T) -> None:
        """Any thread: queue ``item`` for the loop (nothing before :meth:`attach`)."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._enqueue, item)

    def _enqueue(self, item: T) -> None:
        assert self._queue is not None
        if self._queue.full():
            self._queue.get_nowait()
            log.warning("%s behind: a block was skipped", self.what)
        self._queue.put_nowait(item)

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            item = await self._queue.get()
            try:
                await self.dispatch(item)
            except Exception:
                log.exception("%s dispatch failed", self.what)


@dataclass(eq=False)
class WsConnection:
    """One client's socket and its queue of messages to send (None: close it)."""

    socket: WebSocket
    ip: str
    queue: asyncio.Queue[str | None]
    dropped: bool = False

    def put(self, message: str | None) -> None:
        """Queue ``message``; a full queue drops the client (closed with 1013)."""
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped = True
            self.queue = asyncio.Queue(maxsize=1)
            self.queue.put_nowait(None)

    async def send_loop(self, dropped_reason: str) -> None:
        """Send what is queued, in order, until the client is dropped."""
        while True:
            message = await self.queue.get()
            if message is None or self.dropped:
                await self.socket.close(code=CLOSE_TRY_LATER, reason=dropped_reason)
                return
            await self.socket.send_text(message)

    async def close(self, code: int, reason: str) -> None:
        """Close the socket, whatever state it is in."""
        with contextlib.suppress(Exception):
            await self.socket.close(code=code, reason=reason)


__all__ = ["CLOSE_TRY_LATER", "PUMP_LIMIT", "BlockPump", "WsConnection"]
