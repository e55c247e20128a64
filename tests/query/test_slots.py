"""Query slots among clients (``query.slots``), driven by real threads: one slot per
client, a bounded line in arrival order that a busy client does not block, and the
refusals with the seconds to wait."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from focusflow.query.slots import ClientSlots, QueryBusyError


class Holder:
    """A thread that takes a slot for ``client`` and keeps it until told to let go."""

    def __init__(self, slots: ClientSlots, client: str | None, seconds: float = 30.0) -> None:
        self.started = threading.Event()
        self.done = threading.Event()
        self.error: QueryBusyError | None = None
        self._go = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(slots, client, seconds))
        self._thread.start()

    def _run(self, slots: ClientSlots, client: str | None, seconds: float) -> None:
        try:
            with slots.hold(client, seconds):
                self.started.set()
                self._go.wait(10)
        except QueryBusyError as exc:
            self.error = exc
        finally:
            self.done.set()

    def release(self) -> None:
        self._go.set()
        self._thread.join(10)


def _take(slots: ClientSlots, client: str) -> None:
    """Take a slot for ``client`` and give it back at once."""
    with slots.hold(client, 1.0):
        pass


def _until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def test_a_client_holds_one_slot_and_another_client_takes_the_other():
    slots = ClientSlots(2, wait_s=5.0)
    a1 = Holder(slots, "a")
    assert a1.started.wait(5)
    a2 = Holder(slots, "a")
    _until(lambda: slots.waiting() == 1)
    b = Holder(slots, "b")
    assert b.started.wait(5)  # a's second query does not take the free slot
    assert not a2.started.is_set() and slots.running() == 2
    a1.release()
    assert a2.started.wait(5)  # its own first query ended: now it runs
    for h in (a2, b):
        h.release()
    assert slots.running() == 0 and slots.waiting() == 0


def test_a_waiting_client_at_its_limit_does_not_block_the_line():
    slots = ClientSlots(2, wait_s=5.0)
    a1, b1 = Holder(slots, "a"), Holder(slots, "b")
    assert a1.started.wait(5) and b1.started.wait(5)
    a2 = Holder(slots, "a")
    _until(lambda: slots.waiting() == 1)
    c = Holder(slots, "c")
    _until(lambda: slots.waiting() == 2)
    b1.release()  # a is still at its limit: c, behind it in line, goes first
    assert c.started.wait(5)
    assert not a2.started.is_set()
    a1.release()
    assert a2.started.wait(5)
    for h in (a2, c):
        h.release()


def test_past_the_line_s_bounds_a_query_is_refused_with_the_seconds_to_wait():
    slots = ClientSlots(1, max_waiting=2, wait_s=5.0)
    a = Holder(slots, "a", seconds=7.0)
    assert a.started.wait(5)
    # a client waits once at most
    b = Holder(slots, "b")
    _until(lambda: slots.waiting() == 1)
    with pytest.raises(QueryBusyError) as twice:
        _take(slots, "b")
    assert twice.value.code == "query_busy" and 1 <= twice.value.retry_after <= 7
    # and the line holds max_waiting queries of all clients
    c = Holder(slots, "c")
    _until(lambda: slots.waiting() == 2)
    with pytest.raises(QueryBusyError, match="2 queries wait"):
        _take(slots, "d")
    a.release()
    assert b.started.wait(5)
    b.release()
    assert c.started.wait(5)
    c.release()
    assert slots.running() == 0 and slots.waiting() == 0


def test_a_query_that_waits_too_long_is_refused_and_holds_nothing():
    slots = ClientSlots(1, wait_s=0.2)
    a = Holder(slots, "a", seconds=3.0)
    assert a.started.wait(5)
    t0 = time.monotonic()
    with pytest.raises(QueryBusyError, match="no query slot came free") as late:
        _take(slots, "b")
    assert 0.2 <= time.monotonic() - t0 < 2.0
    assert late.value.retry_after in (2, 3)
    assert slots.waiting() == 0 and slots.running() == 1
    a.release()
    with slots.hold("b", 1.0):
        assert slots.running() == 1


def test_callers_in_the_nodes_own_process_are_held_to_the_slots_alone():
    """A caller with no network client (the library, the node itself) is not one
    client whose answers run one at a time: two of its answers run together
    while slots are free, and a third waits for one."""
    slots = ClientSlots(2, wait_s=0.2)
    first, second = Holder(slots, None), Holder(slots, None)
    assert first.started.wait(5) and second.started.wait(5)
    assert slots.running() == 2
    with pytest.raises(QueryBusyError), slots.hold(None, 30):
        pass
    first.release()
    second.release()
    assert first.error is None and second.error is None
