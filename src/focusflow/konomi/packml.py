"""A PackML-style state machine for long grid operations (face interlocks, bulk loads).

States and commands follow ISA-TR88 (PackML) in reduced form: Idle -start->
Starting -> Execute -> Completing -> Complete -reset-> Idle; ``stop`` from an
active state goes Stopping -> Stopped, ``abort`` (or a failure) goes
Aborting -> Aborted; ``reset`` returns Complete, Stopped and Aborted to Idle.
The machine is sans-io: :func:`run` drives it around a chunked job, checking
for a stop request between chunks.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Iterable
from typing import Any

from focusflow.konomi.errors import InvalidOperationError


class State(enum.Enum):
    """PackML states used by the grid."""

    IDLE = "Idle"
    STARTING = "Starting"
    EXECUTE = "Execute"
    COMPLETING = "Completing"
    COMPLETE = "Complete"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    ABORTING = "Aborting"
    ABORTED = "Aborted"


ACTIVE = {State.STARTING, State.EXECUTE, State.COMPLETING}
_NEXT = {
    ("start", State.IDLE): State.STARTING,
    ("state_complete", State.STARTING): State.EXECUTE,
    ("state_complete", State.EXECUTE): State.COMPLETING,
    ("state_complete", State.COMPLETING): State.COMPLETE,
    ("state_complete", State.STOPPING): State.STOPPED,
    ("state_complete", State.ABORTING): State.ABORTED,
    ("reset", State.COMPLETE): State.IDLE,
    ("reset", State.STOPPED): State.IDLE,
    ("reset", State.ABORTED): State.IDLE,
}


class PackML:
    """The state machine; every transition is recorded in :attr:`history`."""

    def __init__(self) -> None:
        self.state = State.IDLE
        self.history: list[State] = [State.IDLE]
        self.progress = 0.0
        self.error: str | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def _go(self, state: State) -> None:
        self.state = state
        self.history.append(state)

    def command(self, name: str) -> State:
        """Apply a command (start, reset, stop, abort, state_complete); returns the new state."""
        with self._lock:
            if name == "stop" and self.state in ACTIVE:
                self._stop.set()
                self._go(State.STOPPING)
            elif name == "abort" and self.state not in (State.ABORTED, State.ABORTING):
                self._go(State.ABORTING)
            elif (name, self.state) in _NEXT:
                if name == "start":
                    self._stop.clear()
                    self.progress = 0.0
                    self.error = None
                self._go(_NEXT[(name, self.state)])
            else:
                raise InvalidOperationError(
                    f"PackML command {name!r} is not allowed in state {self.state.value}"
                )
            return self.state

    @property
    def stop_requested(self) -> bool:
        """Whether ``stop`` was commanded since the last start."""
        return self._stop.is_set()


def run(
    machine: PackML,
    chunks: Iterable[Any],
    work: Callable[[Any], Any],
    total: int | None = None,
) -> list[Any]:
    """Run ``work`` over ``chunks`` inside the machine: Starting -> Execute -> Complete,
    Stopped when a stop arrives between chunks, Aborted when ``work`` raises."""
    machine.command("start")
    machine.command("state_complete")
    results: list[Any] = []
    try:
        for i, chunk in enumerate(chunks):
            if machine.stop_requested:
                machine.command("state_complete")
                return results
            results.append(work(chunk))
            if total:
                machine.progress = (i + 1) / total
    except Exception as exc:
        machine.error = f"{type(exc).__name__}: {exc}"
        machine.command("abort")
        machine.command("state_complete")
        raise
    if machine.stop_requested:
        machine.command("state_complete")
        return results
    machine.command("state_complete")
    machine.command("state_complete")
    machine.progress = 1.0
    return results
