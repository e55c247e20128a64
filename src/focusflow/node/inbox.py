"""What the consensus task takes, one step at a time, and the queue it waits on.

Three parts feed the consensus driver (consensus_driver.py): gossip intake
(checked proposals and votes, gossip_intake.py), block sync (blocks applied:
start above them, block_sync.py) and the driver's own timers and decisions.
Each input is a small record whose ``kind`` names it in the log line of a step
that failed. The inbox is bounded: putting never waits, and gossip beyond
INBOX_SIZE waiting inputs is dropped, to be recovered by the ``round`` request
(peer_requests.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import ClassVar

from focusflow.consensus import PollMessage, Proposal, Timeout, Vote

#: Inputs waiting for the consensus task; gossip beyond this is dropped.
INBOX_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class StartHeight:
    """Start the height after the chain's head (at startup and after a decision)."""

    kind: ClassVar[str] = "start"


@dataclass(frozen=True, slots=True)
class Synced:
    """Block sync applied blocks: start the next height unless consensus is
    already running one above the chain's head."""

    kind: ClassVar[str] = "synced"


@dataclass(frozen=True, slots=True)
class Received:
    """A consensus message from ``sender`` (``raw``: its encoding), checked for
    the height running when it arrived."""

    kind: ClassVar[str] = "msg"
    sender: bytes
    message: Proposal | Vote | PollMessage
    raw: bytes


@dataclass(frozen=True, slots=True)
class TimeoutDue:
    """A timeout the state machine scheduled has expired."""

    kind: ClassVar[str] = "timeout"
    timeout: Timeout


InboxItem = StartHeight | Synced | Received | TimeoutDue


class Inbox:
    """The consensus task's bounded queue: putting never waits, and drops
    what does not fit."""

    def __init__(self, size: int = INBOX_SIZE) -> None:
        self.size = size
        self._queue: asyncio.Queue[InboxItem] = asyncio.Queue(size)

    def open(self) -> None:
        """Start empty, for the event loop the node starts on."""
        self._queue = asyncio.Queue(self.size)

    def put(self, item: InboxItem) -> None:
        """Queue ``item``, or drop it when the inbox is full."""
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(item)

    async def get(self) -> InboxItem:
        """The next input, waiting for one."""
        return await self._queue.get()

    def __len__(self) -> int:
        return self._queue.qsize()


__all__ = ["INBOX_SIZE", "Inbox", "InboxItem", "Received", "StartHeight", "Synced", "TimeoutDue"]
