"""Fan-out of cube events to every WebSocket connection, in one process or many.

:class:`LocalBus` delivers within a process. :class:`RedisBus` also publishes
each event on a Redis channel and delivers what other server processes publish
there, so a client attached to a cube sees the events of every process that
serves it, and each process applies the others' block and template changes
(``on_remote``) to its own in-memory grid. Events carry the id of the process
that made them; a process does not deliver its own events twice.

``emit`` may be called from any thread (REST handlers run in a thread pool):
events hop onto the bus's event loop before delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from focusflow.konomi.extras import import_extra

CHANNEL = "konomi:events"
logger = logging.getLogger(__name__)

#: An event as the bus carries it: a JSON object whose ``event`` field names its
#: kind (docs/konomi.md lists them). Events of other processes arrive as they
#: were published over Redis, so whoever reads one checks the fields it uses.
Event = dict[str, Any]


class LocalBus:
    """In-process fan-out to subscriber queues."""

    def __init__(self) -> None:
        self.origin = uuid.uuid4().hex
        self._queues: set[asyncio.Queue[Event]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.on_remote: Callable[[Event], None] | None = None

    async def start(self) -> None:
        """Bind to the running event loop."""
        self._loop = asyncio.get_running_loop()

    async def close(self) -> None:
        """Stop delivering."""
        self._queues.clear()

    def subscribe(self) -> asyncio.Queue[Event]:
        """A new queue that receives every event from now on."""
        q: asyncio.Queue[Event] = asyncio.Queue(maxsize=1000)
        self._queues.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[Event]) -> None:
        """Stop delivering to ``q``."""
        self._queues.discard(q)

    def _deliver(self, event: Event) -> None:
        for q in list(self._queues):
            if q.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
            q.put_nowait(event)

    def _local(self, event: Event) -> None:
        self._deliver(event)

    def emit(self, event: Event) -> None:
        """Publish an event (thread-safe; dropped when the bus is not started)."""
        event = {**event, "origin": self.origin, "ts": time.time()}
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._local(event)
        else:
            loop.call_soon_threadsafe(self._local, event)


class RedisBus(LocalBus):
    """:class:`LocalBus` plus a Redis pub/sub channel shared by all server processes."""

    def __init__(self, url: str, channel: str = CHANNEL) -> None:
        super().__init__()
        self._aioredis = import_extra("redis.asyncio", "Redis fan-out (--redis redis://...)")
        self.url = url
        self.channel = channel
        # Objects of the redis extra, which is imported only when configured.
        self._redis: Any = None
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Connect, subscribe, and start relaying other processes' events."""
        await super().start()
        self._redis = self._aioredis.from_url(self.url)
        self._pubsub = self._redis.pubsub()
        await self._pubsub.subscribe(self.channel)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._pubsub is not None
        async for msg in self._pubsub.listen():
            if msg.get("type") != "message":
                continue
            try:
                event = json.loads(msg["data"])
            except (TypeError, ValueError):
                continue
            if event.get("origin") != self.origin:
                if self.on_remote is not None:
                    try:
                        self.on_remote(event)
                    except Exception:
                        logger.exception("applying a remote event failed: %s", event.get("event"))
                self._deliver(event)

    def _local(self, event: Event) -> None:
        self._deliver(event)
        if self._redis is not None:
            task = asyncio.ensure_future(self._redis.publish(self.channel, json.dumps(event)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Unsubscribe and disconnect."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
        await super().close()


def open_bus(url: str | None) -> LocalBus:
    """A Redis bus for a ``redis://`` URL, else an in-process one."""
    return RedisBus(url) if url else LocalBus()
