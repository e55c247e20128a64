"""The CUDA evaluator of HVM2 books, through CuPy (``kernels/hvm.cu``).

The net's layout and rules are the CPU evaluator's (``cpu.py``); the
scheduling is bulk-synchronous: each launch is a round in which every thread
reduces its share of the pending pairs, and what it could not finish (pairs
found through another thread's variable, a full local stack, a spent budget)
goes to the next round's bag, kept there by rule (``BINS``) so that the lanes
of a warp start on one rule. The host reads back one small control array a
round.
The kernel's header comment says why the memory accesses are safe.

Memory: the heap is cut into one region of node slots and one of variable
slots per thread, each thread allocating only in its own; a region must hold
the largest definition a thread may copy, which sets how many threads (and
regions) a heap of a given size can have.

Under the ``local`` schedule, a block's threads make their nodes and
variables in the block's shared memory (the kernel's second half says how a
node leaves it): a narrow program's chains then run at shared-memory latency.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from focusflow.rewrite.cpu import Normalized
from focusflow.rewrite.cuda_base import (
    BAG,
    BINS,
    DEFAULT_NODES,
    DEFAULT_VARS,
    Geometry,
    _book_arrays,
    _compact,
    _cupy,
    _heap,
    _module,
    _raise,
    _regions,
    device_geometry,
)
from focusflow.rewrite.cuda_fork import Handoff, RateWatch, fork_until, normalize_fork
from focusflow.rewrite.errors import HvmBackendUnavailableError, HvmOutOfMemoryError
from focusflow.rewrite.limits import UNLIMITED, Limits
from focusflow.rewrite.parse import Book
from focusflow.rewrite.ports import REF
from focusflow.rewrite.schedules import DEFAULT_SCHEDULE, SCHEDULES

#: Words of a bag's tally: its bins' counts, then whether a thread went short.
TALLY = 16
#: Threads per block, and the most threads (regions) of a run.
BLOCK = 256
MAX_THREADS = 1 << 17

#: Interactions of a whole round, shared among the threads that have work:
#: few threads run longer rounds (a narrow net pays fewer launches), many
#: threads at least ``MIN_BUDGET`` each.
ROUND = 1 << 22
MIN_BUDGET = 256
MAX_BUDGET = 1 << 12
#: The ``local`` schedule's kernel (``hvm_block_round``, with the shared slots
#: of ``cuda_base``): the most threads, and the interactions a thread may do a
#: round. A fixed 1,024 ran stress fastest at both 4,096 and 16,384 chains on
#: an H200 (bench/RESULTS.md): longer rounds leave threads running alone,
#: shorter ones copy out more often.
LOCAL_MAX_THREADS = 1 << 15
LOCAL_BUDGET = 1 << 10

#: ``auto``: the widest round (pairs it starts with) at which the local kernel
#: is tried, and how many rounds in a row must have started with exactly that
#: many pairs first; the interactions a thread does in that trial round; the
#: trials a run may lose before it keeps to ``spread``.
AUTO_LOCAL_PAIRS = LOCAL_MAX_THREADS
AUTO_STEADY_ROUNDS = 16
AUTO_TRIAL_BUDGET = 1 << 5
AUTO_TRIALS = 1


def available() -> tuple[bool, str]:
    """Whether CuPy imports and sees a GPU; the reason in words if not."""
    try:
        cupy = _cupy()
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - ImportError, or whatever a broken CUDA install raises
        return False, f"CuPy or a CUDA driver is missing ({type(exc).__name__}: {exc})"
    if count < 1:
        return False, "no CUDA GPU found"
    try:
        device_geometry()
    except HvmBackendUnavailableError as exc:
        return False, str(exc)
    return True, cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()


def operate(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``numbers.operate`` of each pair of words, computed by the kernel's own
    ``operate`` (to compare the GPU's numbers with the reference)."""
    cupy = _cupy()
    da = cupy.asarray(a.astype(np.uint32))
    db = cupy.asarray(b.astype(np.uint32))
    out = cupy.zeros_like(da)
    n = int(da.size)
    _module().get_function("hvm_operate")(((n + BLOCK - 1) // BLOCK,), (BLOCK,),
                                          (da, db, out, np.uint32(n)))  # fmt: skip
    return cast("np.ndarray", cupy.asnumpy(out))


@dataclass(frozen=True)
class _Kernel:
    """What a schedule launches: the kernel, its block, the lowest global
    heap address (the ``local`` kernel's shared slots take those below), the
    most threads, the shared memory a block takes, and a fixed budget (0:
    ``ROUND`` shared among the threads that have work)."""

    function: Any
    block: int
    low: int
    most_threads: int
    shared: int
    budget: int

    def budget_for(self, launched: int) -> int:
        return self.budget or min(MAX_BUDGET, max(MIN_BUDGET, ROUND // launched))


def _kernel(schedule: str, geo: Geometry, low: int = 1) -> _Kernel:
    """The kernel of a single schedule, built for ``geo``; ``low``: where the
    spreading kernels' regions start (above the local kernel's shared
    addresses when they share a heap with it)."""
    if schedule == "local":
        function = _module(True, geo).get_function("hvm_block_round")
        function.max_dynamic_shared_size_bytes = geo.shared_bytes
        return _Kernel(function, geo.block, geo.slots, LOCAL_MAX_THREADS, geo.shared_bytes,
                       LOCAL_BUDGET)  # fmt: skip
    function = _module(schedule == "chains", geo).get_function("hvm_round")
    return _Kernel(function, BLOCK, low, MAX_THREADS, 0, 0)


class _Auto:
    """Which kernel runs each round of an ``auto`` run, and with what budget.

    The local kernel runs a net of few long sequential chains (HVM2's stress
    test) 10x faster than ``spread``, whose every step waits a launch, but a
    wide or growing net up to 50x slower: its threads each keep their own
    pairs, so the work does not spread. Under ``spread``, k chains that each
    take a step a round start every round with exactly k pairs, while the
    width of other nets moves from round to round (a bitonic sort's narrow
    phases alternate between 8,192 and 16,384 pairs for hundreds of rounds).
    So ``auto`` runs ``spread``, and once ``AUTO_STEADY_ROUNDS`` rounds in a
    row started with the same number of pairs, at most ``AUTO_LOCAL_PAIRS``,
    it runs one round of the local kernel with a short budget, and keeps to
    that kernel if the round did more interactions a second than the
    ``spread`` rounds before it. A width that moves out of a factor of 2 of
    that one, or outgrows the local kernel, goes back to ``spread``. After
    ``AUTO_TRIALS`` lost trials none is made: a trial costs 10-80 ``spread``
    rounds and changes the order of the work after it (trying wherever the
    width held within a factor of 2 made small sorts 15-40 % slower on an
    H200).
    """

    def __init__(self, local: _Kernel, spread: _Kernel) -> None:
        self.local, self.spread = local, spread
        self.on_local = False
        self.widths: list[int] = []
        self.rates: list[float] = []
        self.tried: int | None = None  # the width of the last trial
        self.trial = False
        self.lost = 0

    def pick(self, pending: int, launched: int) -> tuple[_Kernel, int]:
        """The kernel of the next round, and its budget a thread."""
        if self.on_local and (pending > AUTO_LOCAL_PAIRS or not self._near(pending, self.tried)):
            self.on_local = False
            self.widths.clear()
            self.rates.clear()
        if self.on_local:
            return self.local, self.local.budget
        steady = len(self.widths) >= AUTO_STEADY_ROUNDS and all(
            w == pending for w in self.widths[-AUTO_STEADY_ROUNDS:]
        )
        self.trial = (
            steady
            and self.lost < AUTO_TRIALS
            and pending <= AUTO_LOCAL_PAIRS
            and pending != self.tried
        )
        if self.trial:
            self.tried = pending
            return self.local, AUTO_TRIAL_BUDGET
        return self.spread, self.spread.budget_for(launched)

    def record(self, pending: int, interactions: int, seconds: float) -> None:
        """What the round just run did: the pairs it started with, its
        interactions and its time."""
        rate = interactions / max(seconds, 1e-9)
        if self.trial:
            recent = self.rates[-AUTO_STEADY_ROUNDS:]
            self.on_local = rate > sum(recent) / len(recent)
            self.lost += not self.on_local
            self.trial = False
        elif not self.on_local:
            self.widths.append(pending)
            self.rates.append(rate)
            del self.widths[:-AUTO_STEADY_ROUNDS], self.rates[:-AUTO_STEADY_ROUNDS]

    def kernels(self) -> tuple[_Kernel, ...]:
        return self.local, self.spread

    @staticmethod
    def _near(width: int, other: int | None) -> bool:
        return other is not None and other <= 2 * width and width <= 2 * other


class _Fixed:
    """The one kernel of every other schedule."""

    def __init__(self, kernel: _Kernel) -> None:
        self.kernel = kernel

    def pick(self, pending: int, launched: int) -> tuple[_Kernel, int]:
        return self.kernel, self.kernel.budget_for(launched)

    def kernels(self) -> tuple[_Kernel, ...]:
        return (self.kernel,)

    def record(self, pending: int, interactions: int, seconds: float) -> None:
        return None


def _policy(schedule: str, geo: Geometry) -> tuple[_Auto | _Fixed, _Kernel]:
    """The schedule's choice of kernel a round, and the kernel whose heap
    layout (lowest region address, most threads) the run takes."""
    if schedule == "auto":
        spread = _kernel("spread", geo, low=geo.slots)
        return _Auto(_kernel("local", geo), spread), spread
    k = _kernel(schedule, geo)
    return _Fixed(k), k


def normalize_cuda(
    book: Book,
    nodes: int = DEFAULT_NODES,
    vars_: int = DEFAULT_VARS,
    threads: int | None = None,
    schedule: str = DEFAULT_SCHEDULE,
    limits: Limits = UNLIMITED,
    geometry: Geometry | None = None,
) -> Normalized:
    """Run ``@main`` of ``book`` to normal form on the GPU under ``schedule``
    (``SCHEDULES``); the same result and interaction count as
    ``cpu.normalize`` under each. ``threads`` (regions) defaults to as many as
    the heap allows, at most ``MAX_THREADS`` (``LOCAL_MAX_THREADS``).
    ``limits`` is checked after each launch. ``geometry``: the shared-memory
    kernels' shape (``cuda_base.GEOMETRIES``), by default the largest the
    device holds; every one gives the same result and count.

    ``auto`` starts under ``fork`` and hands the net over to the rounds of
    ``spread`` (and ``local``, ``_Auto``) once ``fork`` runs it slowly
    (``cuda_fork.RateWatch``); a fork run that stops with an error (a
    definition of more pairs than a thread's bag holds) starts again under
    the rounds, which give the error themselves if the net cannot run."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; there are: {', '.join(SCHEDULES)}")
    geo = geometry or device_geometry()
    if schedule == "fork":
        return normalize_fork(book, nodes, vars_, threads, limits=limits, geometry=geo)
    policy, layout = _policy(schedule, geo)
    if schedule != "auto":
        return _rounds(book, nodes, vars_, threads, policy, layout, limits)
    cupy = _cupy()
    sms = int(cupy.cuda.runtime.getDeviceProperties(0)["multiProcessorCount"])
    started = time.perf_counter()
    run: Normalized | Handoff | None
    try:
        run = fork_until(book, nodes, vars_, threads, limits=limits,
                         watch=RateWatch.for_device(sms), geometry=geo)  # fmt: skip
    except HvmOutOfMemoryError:
        run = None  # out of the except clause first: its traceback holds the fork run's heap
    if run is None:
        return _rounds(book, nodes, vars_, threads, policy, layout, limits, started=started)
    if isinstance(run, Normalized):
        return run
    return _rounds(book, nodes, vars_, threads, policy, layout, limits, handoff=run)


def _start(cupy: Any, nodes: int, vars_: int, bag: Any, seg: int, ctl: Any,
           handoff: Handoff | None) -> tuple[Any, Any, int, int, int, int]:  # fmt: skip
    """The heap (node, variable slots, root) a run in rounds starts on, with
    its first pairs in ``bag`` (``seg`` pairs a bin) and their tally in
    ``ctl``: a fresh heap and the boot redex, or what a fork run handed over
    (the kernel's ``hvm_gather`` bins its pairs by rule; its first launch in
    a process, which loads it, falls in the run's time). Then the pairs, the
    interactions and the launches so far."""
    if handoff is None:
        node, subst, root = _heap(cupy, nodes, vars_)
        bag[0] = np.uint64((root << 32) | REF)  # the boot redex: @main (id 0) ~ ROOT
        ctl[8] = 1  # at the start of bin 0
        return node, subst, root, 1, 0, 0
    # the kernels add to the run's 64-bit count in ctl[4..5]
    ctl[4:6] = cupy.asarray(np.array([handoff.interactions], dtype=np.uint64).view(np.uint32))
    slots = int(handoff.counts.size)
    gather = _module(True, handoff.geometry).get_function("hvm_gather")  # the fork kernel's
    gather(((slots * BAG + BLOCK - 1) // BLOCK,), (BLOCK,),
           (handoff.bags, handoff.counts, np.uint32(slots), bag, np.uint32(seg * BINS), ctl,
            ctl[8 : 8 + TALLY]))  # fmt: skip
    head = cupy.asnumpy(ctl)
    if head[1]:
        raise HvmOutOfMemoryError(f"the fork run's pairs overfill a bin of {seg} pending redexes")
    pending = int(head[8 : 8 + BINS].astype(np.int64).sum())
    return handoff.node, handoff.subst, handoff.root, pending, handoff.interactions, handoff.rounds


def _rounds(
    book: Book,
    nodes: int,
    vars_: int,
    threads: int | None,
    policy: _Auto | _Fixed,
    layout: _Kernel,
    limits: Limits,
    handoff: Handoff | None = None,
    started: float | None = None,
) -> Normalized:
    """A run in rounds, each one launch of the kernel ``policy`` picks, on a
    heap cut as ``layout`` needs: from the boot redex, or from where a fork
    run left its net (``handoff``). ``started``: when the run began (before
    a fork run that failed), for its time and its limit."""
    cupy = _cupy()
    low = layout.low
    heap = _regions(book, nodes, vars_, threads, layout.low, layout.most_threads)
    nodes, vars_, count, width = heap.nodes, heap.vars_, heap.count, heap.width
    region_n, region_v = heap.region_n, heap.region_v
    cap = max(nodes, 1 << 20)
    # a kernel reads a bag's pairs up to its tally's counts only: no need to
    # clear 8 GiB (milliseconds, inside the run's time after a handoff)
    bags = [cupy.empty(cap, dtype=cupy.uint64), cupy.empty(cap, dtype=cupy.uint64)]
    seg = cap // BINS
    # [1] status, [2] its detail, [4..5] interactions (a 64-bit count), then
    # the two bags' tallies (each bin's pairs; whether a thread found its
    # region full), read back with the rest in one copy a round
    ctl = cupy.zeros(8 + 2 * TALLY, dtype=cupy.uint32)
    # (offset in ctl, view) of the input bag's tally and of the output bag's
    tallies = [(at, ctl[at : at + TALLY]) for at in (8, 8 + TALLY)]
    node, subst, root, pending, interactions, rounds = _start(cupy, nodes, vars_, bags[0], seg,
                                                             ctl, handoff)  # fmt: skip
    if handoff is not None:
        started = handoff.started
    cursors = cupy.zeros(2 * count, dtype=cupy.uint32)
    scratch = cupy.zeros(2 * count * width, dtype=cupy.uint32)
    book_args = _book_arrays(cupy, book)

    def launch(k: _Kernel, pending: int, launched: int, budget: int) -> None:
        k.function(((launched + k.block - 1) // k.block,), (k.block,),
                   (node, subst, bags[0], np.uint32(pending), bags[1], np.uint32(cap), ctl,
                    cursors, scratch, np.uint32(width), *book_args, np.uint32(root),
                    np.uint32(region_n), np.uint32(region_v), np.uint32(budget),
                    np.uint32(launched), np.uint32(count), np.uint32(shift),
                    np.uint32(low), tallies[0][1], tallies[1][1]),
                   shared_mem=k.shared)  # fmt: skip

    # CUDA loads a kernel at its first launch (milliseconds): an empty launch
    # of each does that before the clock starts, and before ``auto`` times a
    # trial round of the local kernel against rounds of the other.
    shift = 0
    for k in policy.kernels():
        launch(k, 0, 1, 0)
    status = detail = 0
    cupy.cuda.runtime.deviceSynchronize()
    start = time.perf_counter() if started is None else started
    while pending:
        launched = min(count, pending)
        k, budget = policy.pick(pending, launched)
        tallies[1][1].fill(0)
        began = time.perf_counter()
        launch(k, pending, launched, budget)
        rounds += 1
        head = cupy.asnumpy(ctl)
        out = head[tallies[1][0] : tallies[1][0] + TALLY]
        pending = int(out[:BINS].astype(np.int64).sum())
        status, detail = int(head[1]), int(head[2])
        done = int(head[4]) | (int(head[5]) << 32)
        if status:
            break
        if out[BINS]:
            if done == interactions:  # every thread that had work found its region full
                status = int(out[BINS])
                break
            shift = (shift + 7919) % count  # other regions take the pairs next round
        policy.record(launched, done - interactions, time.perf_counter() - began)
        interactions = done
        if pending:
            limits.check(interactions, time.perf_counter() - start)
        bags.reverse()
        tallies.reverse()
    seconds = time.perf_counter() - start
    if status:
        _raise(status, detail, book, interactions, heap, {
            3: f"{seg} pending redexes of one rule",
            5: f"a thread's {BAG} pending redexes of one kind",
        })  # fmt: skip
    live_node, live_subst, live_root = _compact(cupy, node, subst, root)
    return Normalized(live_node, live_subst, live_root, interactions, seconds, count, rounds)
