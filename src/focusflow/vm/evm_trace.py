"""Opcode traces of Ethereum transactions, as ``debug_traceTransaction`` returns them.

The node keeps no historical state, so a transaction cannot be re-run later
on the state it ran on. A devnet started with ``--anvil`` records instead:
while a :class:`TraceStore` is installed (:func:`install`), every transaction
a block runs (``apply_transaction``) runs with a computation whose opcodes
each append one step (pc, opcode, gas left, the opcode's gas, call depth, the
stack) before they run, geth's ``structLogs``. Elsewhere nothing is recorded
and nothing is slower.

Bounded: one transaction's trace stops recording at ``MAX_TRACE_STEPS`` steps
(``truncated`` says so), a step keeps the top ``MAX_TRACE_STACK`` stack items,
and the store keeps the traces of the last ``MAX_TRACES`` transactions and at
most ``MAX_STORED_STEPS`` steps in all, the oldest dropped first. A
transaction executed twice (a proposal re-run) keeps its last trace.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

#: Steps one transaction's trace records at most.
MAX_TRACE_STEPS = 50_000
#: Stack items (from the top) one step keeps.
MAX_TRACE_STACK = 32
#: Transactions whose traces the store keeps, and steps in all (some 100 MB at
#: most: the oldest traces go first).
MAX_TRACES = 256
MAX_STORED_STEPS = 500_000


@dataclass
class Trace:
    """One transaction's steps: ``(pc, opcode name, gas left, gas cost, depth, stack)``,
    the stack bottom first, as geth writes it."""

    steps: list[tuple[int, str, int, int, int, list[int]]] = field(default_factory=list)
    truncated: bool = False
    #: What the transaction's execution returned (or its revert's data).
    output: bytes = b""


class TraceStore:
    """The traces of the last ``MAX_TRACES`` transactions, by transaction hash."""

    def __init__(self, keep: int = MAX_TRACES, steps: int = MAX_STORED_STEPS) -> None:
        self.keep = keep
        self.max_steps = steps
        self._lock = threading.Lock()
        self._traces: OrderedDict[bytes, Trace] = OrderedDict()
        self._steps = 0

    def put(self, tx_hash: bytes, trace: Trace) -> None:
        with self._lock:
            old = self._traces.pop(tx_hash, None)
            if old is not None:
                self._steps -= len(old.steps)
            self._traces[tx_hash] = trace
            self._steps += len(trace.steps)
            while len(self._traces) > self.keep or (
                self._steps > self.max_steps and len(self._traces) > 1
            ):
                _, dropped = self._traces.popitem(last=False)
                self._steps -= len(dropped.steps)

    def get(self, tx_hash: bytes) -> Trace | None:
        with self._lock:
            return self._traces.get(tx_hash)


#: The installed store: None (nothing recorded) but on an anvil devnet.
_STORE: TraceStore | None = None
#: The trace being recorded by this thread's run.
_current = threading.local()


def install(store: TraceStore | None) -> None:
    """Record every transaction a block runs into ``store`` (None: stop)."""
    global _STORE
    _STORE = store


def installed() -> TraceStore | None:
    return _STORE


def _stack_item(value: int | bytes) -> int:
    return value if isinstance(value, int) else int.from_bytes(value, "big")


def _traced(opcode_fn: Any, name: str) -> Any:
    """``opcode_fn`` that first records one step into the thread's trace."""

    def run(computation: Any) -> Any:
        trace: Trace | None = getattr(_current, "trace", None)
        if trace is None or trace.truncated:
            return opcode_fn(computation=computation)
        if len(trace.steps) >= MAX_TRACE_STEPS:
            trace.truncated = True
            return opcode_fn(computation=computation)
        values = computation._stack.values
        stack = [_stack_item(v) for v in values[-MAX_TRACE_STACK:]]
        pc = max(0, computation.code.program_counter - 1)
        before = computation.get_gas_remaining()
        step = [pc, name, before, 0, computation.msg.depth + 1, stack]
        trace.steps.append(step)  # type: ignore[arg-type]
        try:
            return opcode_fn(computation=computation)
        finally:
            # A call's cost includes the gas its callee used, as geth's does not;
            # the opcodes of the callee are their own steps (depth + 1).
            step[3] = max(0, before - computation.get_gas_remaining())

    return run


@functools.cache
def tracing_state() -> Any:
    """The block state class whose computations record steps (the consensus one's
    rules, precompiles included)."""
    from focusflow.vm.evm import interpreter

    state_class = interpreter()[0]
    base = state_class.computation_class
    opcodes = {}
    for code, fn in base.opcodes.items():
        name = str(getattr(fn, "mnemonic", None) or getattr(fn.__wrapped__, "mnemonic", hex(code)))
        opcodes[code] = _traced(fn, name)

    class TracingComputation(base):  # type: ignore[misc,valid-type]
        pass

    TracingComputation.opcodes = opcodes

    class TracingState(state_class):  # type: ignore[misc,valid-type]
        computation_class = TracingComputation

    return TracingState


def begin() -> Trace:
    """Start recording this thread's next run."""
    trace = Trace()
    _current.trace = trace
    return trace


def end(tx_hash: bytes, trace: Trace) -> None:
    """Stop recording and keep ``trace`` as ``tx_hash``'s."""
    _current.trace = None
    store = _STORE
    if store is not None:
        store.put(tx_hash, trace)
