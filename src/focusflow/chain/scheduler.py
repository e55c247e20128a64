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
transaction that runs only Python code gains nothing from a thread (it waits
for the lock, and a stale run costs a second one), so only heavy calls are
worth one: by default the scheduler takes the calls of contracts whose last
call ran long and did not conflict (:meth:`Scheduler.learn`), and leaves the
rest to the serial pass. Ethereum transactions are never taken: each reads
the block's running gas total. The speculative runs all finish before the
serial pass begins, so the store's read transaction is never used by two
threads at once (the views take a lock for it).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from focusflow.chain.errors import TxError
from focusflow.chain.module import Ante, BlockContext, BlockSection, Deltas, Handler
from focusflow.chain.state import PendingState

if TYPE_CHECKING:
    from focusflow.chain.execute import Receipt
    from focusflow.chain.tx import Tx

#: Fewest taken transactions in a block for the pool to be used at all.
MIN_PARALLEL = 2
#: Most threads of the pool.
MAX_THREADS = 8
#: Gas a contract's last call used for the default scheduler to run its calls
#: ahead: about 0.2 ms of compiled code (a call that is mostly host functions,
#: such as a counter's 1,400 gas, runs slower on a thread, which waits for
#: Python's lock, than in the serial pass: bench/wasm_blocks.py).
HEAVY_GAS = 1_000_000
#: Contracts whose last calls' gas (and conflicts) the default scheduler keeps.
KEPT_CONTRACTS = 4096
#: Calls of a contract run serially after one of its speculations was stale
#: (a contract every call reads and writes, such as a shared counter).
COOLDOWN_CALLS = 64

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


class SeenSections(dict[str, BlockSection]):
    """A speculative run's own copy of the block's module sections, noting
    whether the run looked one up (``BlockContext.section`` reads through
    ``get`` and ``setdefault``). A speculation merges only writes, fees and
    deltas, so a run that used a section is run again serially; and as each
    run has its own copies, it neither changes the block's sections nor races
    the other runs on them."""

    seen: bool = False

    def get(self, key: str, default: BlockSection | None = None) -> BlockSection | None:  # type: ignore[override]  # dict.get's overloads, one signature here
        self.seen = True
        return super().get(key, default)

    def setdefault(self, key: str, default: BlockSection) -> BlockSection:
        self.seen = True
        return super().setdefault(key, default)

    def __getitem__(self, key: str) -> BlockSection:
        self.seen = True
        return super().__getitem__(key)


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


def takes_native(tx: Tx) -> bool:
    """Every transaction but the self-charging (Ethereum) ones (tests use it)."""
    return not tx.self_charging


class Scheduler:
    """Speculative runs of a block's transactions, merged in block order.

    ``speculable`` chooses the transactions run ahead; by default
    (:meth:`takes_heavy_wasm`) those whose every message is a call of a
    contract whose last call used at least ``HEAVY_GAS`` and whose calls were
    not run again for a conflict since: what the scheduler learns from the
    blocks it builds (:meth:`learn`). The choice is this node's own: it
    changes how soon a block is built, never the block.
    """

    def __init__(
        self,
        speculable: Callable[[Tx], bool] | None = None,
        threads: int | None = None,
        runner: Runner | None = None,
        min_parallel: int = MIN_PARALLEL,
    ) -> None:
        self.speculable = speculable if speculable is not None else self.takes_heavy_wasm
        self.threads = threads or max(1, min(MAX_THREADS, os.cpu_count() or 1))
        self.min_parallel = min_parallel
        self._runner = runner
        self.stats = SchedulerStats()
        #: Contract -> gas of its last call (heavy enough to run ahead or not),
        #: oldest first.
        self._gas: OrderedDict[bytes, int] = OrderedDict()
        #: Contract -> calls left to run serially after a conflict.
        self._cooling: OrderedDict[bytes, int] = OrderedDict()

    def takes_heavy_wasm(self, tx: Tx) -> bool:
        """Only calls of contracts known to run long without conflicts."""
        if tx.self_charging or not tx.msgs:
            return False
        for m in tx.msgs:
            if m.type != "wasm.execute" or not isinstance(m.body, dict):
                return False
            contract = m.body.get("contract")
            if not isinstance(contract, bytes) or contract in self._cooling:
                return False
            if self._gas.get(contract, 0) < HEAVY_GAS:
                return False
        return True

    def built(self, receipt: Receipt, spec: Speculation | None, merged: bool) -> None:
        """A transaction of the block was built: from its speculation
        (``merged``) or run serially; counts it and learns from it."""
        if spec is not None:
            if merged:
                self.stats.merged += 1
            else:
                self.stats.rerun += 1
        self.learn(receipt, spec is not None and not merged)

    def learn(self, receipt: Receipt, rerun: bool) -> None:
        """What a built transaction's receipt says of the contracts it called:
        their gas, and (``rerun``: its speculation was stale) that they conflict."""
        for event in receipt.events:
            if not isinstance(event, dict) or event.get("type") != "wasm.execute":
                continue
            contract = event.get("contract")
            if not isinstance(contract, bytes):
                continue
            self._gas.pop(contract, None)
            self._gas[contract] = int(event.get("gas_used", 0))
            left = COOLDOWN_CALLS if rerun else self._cooling.pop(contract, 1) - 1
            if left > 0:
                self._cooling[contract] = left
            for table in (self._gas, self._cooling):
                while len(table) > KEPT_CONTRACTS:
                    table.popitem(last=False)

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
            sections = SeenSections({k: v.copy() for k, v in ctx.sections.items()})
            spec_ctx = dataclasses.replace(
                ctx,
                state=view,
                fees=0,
                deltas=Deltas(),
                events=[],
                counters=dict(ctx.counters),
                sections=sections,
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
            if sections.seen:
                out.usable = False
            out.reads, out.prefixes = view.reads, view.prefixes
            out.writes, out.fees, out.deltas = view.writes, spec_ctx.fees, spec_ctx.deltas
            return out

        done = self._run(run, taken)
        self.stats.speculated += len(taken)
        return {out.index: out for out in done}
