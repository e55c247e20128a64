"""Query slots shared fairly among the node's clients.

A node runs a few Datalog answers at once (each may take its full time limit,
30 s by default). Handed out first come, first served, one client's two long
queries held both slots and every other client was refused for as long. Here a
client (whoever :func:`focusflow.api.routes_query` says asked: a token's
subject, else an address) runs at most ``per_client`` answers at a time. A
query that cannot start waits in a bounded queue, in arrival order, for at most
``wait_s``; a waiting query whose client is at its limit lets the ones behind
it go first, so a busy client never blocks another. Past the bound (the queue
full, or its client waiting already) or past the wait, it is refused with
``query_busy`` and the seconds until the soonest running answer must end.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from focusflow.core.errors import FocusflowError

#: Answers one client runs at a time.
PER_CLIENT = 1
#: Queries waiting for a slot, all clients together, and of one client.
MAX_WAITING = 8
WAITING_PER_CLIENT = 1
#: Seconds a query waits for a slot before it is refused.
WAIT_S = 10.0


class QueryBusyError(FocusflowError):
    """No query slot for this client now: try again after ``retry_after`` seconds."""

    code = "query_busy"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class _Waiter:
    ticket: int
    client: str


class ClientSlots:
    """``slots`` answers at once, shared among clients (module docstring)."""

    def __init__(
        self,
        slots: int,
        *,
        per_client: int = PER_CLIENT,
        max_waiting: int = MAX_WAITING,
        waiting_per_client: int = WAITING_PER_CLIENT,
        wait_s: float = WAIT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.slots = slots
        self.per_client = per_client
        self.max_waiting = max_waiting
        self.waiting_per_client = waiting_per_client
        self.wait_s = wait_s
        self.clock = clock
        self._cond = threading.Condition()
        self._running: Counter[str] = Counter()
        #: ticket -> the time its answer must end by (for ``retry_after``).
        self._ends: dict[int, float] = {}
        self._queue: list[_Waiter] = []
        self._tickets = itertools.count()
        self._locals = itertools.count()

    @contextmanager
    def hold(self, client: str | None, seconds: float) -> Iterator[None]:
        """A slot for ``client``'s answer of at most ``seconds``, for the block;
        QueryBusyError when there is none within the bounds. A None client (a
        caller in the node's own process, not one of the network's) counts as
        a client of its own for each answer: only the slots bound it."""
        if client is None:
            client = f"\0local {next(self._locals)}"
        ticket = self._acquire(client, seconds)
        try:
            yield
        finally:
            self._release(client, ticket)

    def running(self) -> int:
        with self._cond:
            return sum(self._running.values())

    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)

    def _acquire(self, client: str, seconds: float) -> int:
        with self._cond:
            me = _Waiter(next(self._tickets), client)
            if self._next() is None and self._may_start(client):
                return self._start(me, seconds)
            if len(self._queue) >= self.max_waiting:
                raise self._busy(f"every query slot is taken and {self.max_waiting} queries wait")
            if sum(w.client == client for w in self._queue) >= self.waiting_per_client:
                raise self._busy("this client's queries hold their slots and their place in line")
            self._queue.append(me)
            deadline = self.clock() + self.wait_s
            try:
                while self._next() is not me:
                    left = deadline - self.clock()
                    if left <= 0:
                        raise self._busy(f"no query slot came free in {self.wait_s:g} s")
                    self._cond.wait(left)
            finally:
                self._queue.remove(me)
                self._cond.notify_all()
            return self._start(me, seconds)

    def _next(self) -> _Waiter | None:
        """The first waiter in line that may start now, if any."""
        return next((w for w in self._queue if self._may_start(w.client)), None)

    def _may_start(self, client: str) -> bool:
        free = self.slots - sum(self._running.values())
        return free > 0 and self._running[client] < self.per_client

    def _start(self, me: _Waiter, seconds: float) -> int:
        self._running[me.client] += 1
        self._ends[me.ticket] = self.clock() + seconds
        return me.ticket

    def _release(self, client: str, ticket: int) -> None:
        with self._cond:
            self._running[client] -= 1
            if not self._running[client]:
                del self._running[client]
            self._ends.pop(ticket, None)
            self._cond.notify_all()

    def _busy(self, why: str) -> QueryBusyError:
        """``query_busy`` with the whole seconds until the soonest running answer
        must end (its time limit): a slot is free by then at the latest."""
        now = self.clock()
        soonest = min(self._ends.values(), default=now)
        wait = max(1, math.ceil(soonest - now))
        return QueryBusyError(f"{why}; try again in {wait} s", retry_after=wait)
