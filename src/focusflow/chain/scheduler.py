"""The block scheduler: transactions run against a read view, write-sets merge in order.

A block's transactions are executed twice over in the worst case and once in
the usual one. First, every transaction the scheduler takes (``speculable``)
runs at once, each against a view of the state as the block found it
(:class:`ReadView`), on a pool of threads; each run records the keys and key
prefixes it read and keeps its writes, fee, graph deltas and receipt as a
write-set (:class:`Speculation`), touching nothing shared. Then the block is
built in order, as before: a transaction whose speculation read nothing that
an earlier transaction of the block wrote, and assumed its right place in
the block, has its write-set merged as it is; any other transaction (a
conflict, one not taken, one whose run failed unexpectedly) runs again,
serially, on the state as the earlier transactions left it. Each transaction
thus sees exactly the state it would have seen in a serial run, so the block,
its receipts and its one state root are the same bits whatever the threads
did and in whatever order they finished; the scheduler changes when work
happens, never what it computes (tests/chain/test_scheduler.py).

What runs in parallel: WASM calls (wasmtime runs compiled code without
Python's global lock; host functions take it back) and signature checks. A
transaction that runs only Python code gains nothing from a thread, so by
default the scheduler takes transactions with a WASM call and leaves the rest
to the serial pass; Ethereum transactions are never taken, since each reads
the block's running gas total. The speculative runs all finish before the
serial pass begins, so the store's read transaction is never used by two
threads at once (the views take a lock for it).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from focusflow.chain.errors import TxError
from focusflow.chain.module import Ante, BlockContext, Deltas, Handler
from focusflow.chain.state import PendingState

if TYPE_CHECKING:
    from focusflow.chain.execute import Receipt
    from focusflow.chain.tx import Tx

#: Message types whose transactions the default scheduler takes: they run WASM.
PARALLEL_KINDS = frozenset({"wasm.execute", "wasm.instantiate"})
#: Fewest taken transactions in a block for the pool to be used at all.
MIN_PARALLEL = 2
#: Most threads of the pool.
MAX_THREADS = 8

Runner = Callable[[Callable[[int], "Speculation"], Sequence[int]], Iterable["Speculation"]]


class ReadView(PendingState):
    """A transaction's view of the block-start state: reads the frozen base
    (under the store's lock) and records every key and prefix it looked up
    below its own writes."""

    def __init__(self, base: PendingState, lock: threading.Lock) -> None:
        super().__init__(self._base_get, self._base_scan)
        self._base = base
        self._lock = lock
        self.reads: set[bytes] = set()
        self.prefixes: list[bytes] = []

    def _base_get(self, key: bytes) -> bytes | None:
        self.reads.add(key)
        with self._lock:
            return self._base.get(key)

    def _base_scan(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        self.prefixes.append(prefix)
        with self._lock:
            return self._base.scan(prefix)


@dataclass
class Speculation:
    """What one transaction did against the block-start state."""

    #: The transaction's index in the block that the run assumed.
    index: int
    reads: set[bytes] = field(default_factory=set)
    prefixes: list[bytes] = field(default_factory=list)
    writes: dict[bytes, bytes | None] = field(default_factory=dict)
    fees: int = 0
    deltas: Deltas = field(default_factory=Deltas)
    receipt: Receipt | None = None
    #: The refusal that keeps it out of the block, when the run raised one.
    error: TxError | None = None
    #: False when the run ended in an error no transaction may raise (then it
    #: is run again serially, where that error surfaces as it would have).
    usable: bool = True

    def holds(self, index: int, written: set[bytes]) -> bool:
        """Whether merging this run equals running the transaction now, at
        ``index``, after the block's earlier transactions wrote ``written``."""
        if not self.usable or self.index != index:
            return False
        if not self.reads.isdisjoint(written):
            return False
        return not any(k.startswith(p) for p in self.prefixes for k in written)


@dataclass
class SchedulerStats:
    """Counts over the blocks a scheduler built (for tests, benches and metrics)."""

    speculated: int = 0
    merged: int = 0
    rerun: int = 0


def takes_wasm(tx: Tx) -> bool:
    """The default choice: a native transaction with a WASM call."""
    return not tx.self_charging and any(m.type in PARALLEL_KINDS for m in tx.msgs)


def takes_native(tx: Tx) -> bool:
    """Every transaction but the self-charging (Ethereum) ones (tests use it)."""
    return not tx.self_charging


class Scheduler:
    """Speculative runs of a block's transactions, merged in block order."""

    def __init__(
        self,
        speculable: Callable[[Tx], bool] = takes_wasm,
        threads: int | None = None,
        runner: Runner | None = None,
        min_parallel: int = MIN_PARALLEL,
    ) -> None:
        self.speculable = speculable
        self.threads = threads or max(1, min(MAX_THREADS, os.cpu_count() or 1))
        self.min_parallel = min_parallel
        self._runner = runner
        self.stats = SchedulerStats()

    def _run(self, fn: Callable[[int], Speculation], items: Sequence[int]) -> list[Speculation]:
        """The runs, on a pool made for this block: its threads end with it, so
        none is left when the chain forks its checkpoint writer."""
        if self._runner is not None:
            return list(self._runner(fn, items))
        workers = min(self.threads, len(items))
        with ThreadPoolExecutor(workers, thread_name_prefix="scheduler") as pool:
            return list(pool.map(fn, items))

    def speculate(
        self,
        ctx: BlockContext,
        handlers: Mapping[str, Handler],
        ante: Ante,
        txs: Sequence[Tx],
        verified: bool,
    ) -> dict[int, Speculation]:
        """Run the transactions it takes against the block-start state; the
        speculations by position in ``txs`` (none when too few are taken)."""
        from focusflow.chain.execute import execute_tx

        taken = [i for i, tx in enumerate(txs) if self.speculable(tx)]
        if len(taken) < self.min_parallel:
            return {}
        base = ctx.state.frozen()
        lock = threading.Lock()

        def run(position: int) -> Speculation:
            view = ReadView(base, lock)
            spec_ctx = dataclasses.replace(
                ctx,
                state=view,
                fees=0,
                deltas=Deltas(),
                events=[],
                counters=dict(ctx.counters),
            )
            out = Speculation(position)
            try:
                out.receipt = execute_tx(
                    spec_ctx, handlers, ante, txs[position], position, verified
                )
            except TxError as exc:
                out.error = exc
            except Exception:  # noqa: BLE001 - any other error: the serial pass runs it again
                out.usable = False
            out.reads, out.prefixes = view.reads, view.prefixes
            out.writes, out.fees, out.deltas = view.writes, spec_ctx.fees, spec_ctx.deltas
            return out

        done = self._run(run, taken)
        self.stats.speculated += len(taken)
        return {out.index: out for out in done}
