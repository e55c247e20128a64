"""The ``fork`` schedule of the CUDA evaluator: HVM2's own schedule, on the
rules and shared memory of the ``local`` kernel (``kernels/hvm.cu``,
``hvm_fork_round``, says how a launch works).

Each thread keeps its bag of pending pairs across launches and reduces it
depth first, in its block's shared memory; work spreads along the program's
``&!`` marks, down a tree of blocks (a SEED launch) and of a block's threads
(GROW), and a thread that gave work away waits at its mark until every
thread waits, when all marks go down by one. ``Modes`` picks each launch's
mode from what the one before it did, as HVM2's host loop does.

It is the fastest schedule on wide fork-join programs (HVM2's bitonic sort of
2^19 numbers, the sums) and, like HVM2's own runtime, far slower than
``spread`` where a program forks less than the GPU has threads (bitonic sort
of 2^14 numbers): work then spreads only when every thread waits
(bench/RESULTS.md).
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from focusflow.rewrite.cpu import Normalized
from focusflow.rewrite.cuda_base import (
    BAG,
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
from focusflow.rewrite.limits import UNLIMITED, Limits
from focusflow.rewrite.parse import Book
from focusflow.rewrite.ports import REF

#: The kernel's launch modes (M_SEED, M_GROW, M_WORK).
SEED, GROW, WORK = 0, 1, 2
#: Launches in a row without an interaction before a run is called stuck: each
#: lowering of the marks costs two (a SEED and a GROW launch), and a thread's
#: mark is at most its bag's size.
MOST_IDLE = 4 * BAG + 16
#: Launches in a row in which a thread found its region full and none did an
#: interaction, each with the regions moved, before the heap is called full.
MOST_SHORT = 8
#: The control words the host reads after each launch: [1] status, [2] its
#: detail, [4..5] interactions, [6] a thread could not go on (CTL_BLOCKED),
#: [7] pairs left for the next launch (CTL_SAVED), [8] a thread has work above
#: its mark (CTL_READY), [16] a thread found its region full (the tally's
#: SHORT_FLAG); [6:] is cleared before each launch.
CTL_WORDS = 32
BLOCKED, SAVED, READY, SHORT = 6, 7, 8, 16
#: Status of a run that cannot go on (the kernel's ST_BAG).
ST_STUCK = 5
#: When ``auto`` hands a fork run over to ``spread`` (``RateWatch``): a run
#: slower than this over the last window, as (seconds, M interactions a second
#: per multiprocessor); 0.75 and 7.5 are 99 and 990 M a second on an H200's
#: 132. On an H200 the short window handed over bitonic sort of 2^10 numbers
#: (12 M a second under fork) after 5 ms, the long one radix sort of 2^14
#: numbers after 16 ms, and kept bitonic sort of 2^18 and 2^19 numbers to the
#: end (their slowest 5 ms ran at 2,350 and 3,430 M a second). Windows of 5
#: and 10 ms handed radix sorts over later, and their rounds then took longer
#: (bench/RESULTS.md).
HANDOFF_WINDOWS = ((0.003, 0.75), (0.005, 7.5))


@dataclass
class Modes:
    """HVM2's choice of each launch's mode (its ``inbetween`` kernel), from
    whether the launch before it did any interaction.

    Modes go SEED, GROW, WORK and stay at WORK while it works. A launch that
    does nothing means every thread waits at its mark: the next launch is a
    SEED that lowers every mark by one (``lower``) and is ``down``: SEED
    launches then repeat while they work, and one that does nothing goes up
    to GROW again.

    One case departs from HVM2: a SEED or GROW launch (not down) that did
    nothing while some thread had work above its mark (``ready``) goes on to
    WORK. In those launches only a thread with an idle partner works, so
    where every thread has work (one thread alone, a block of a few) HVM2's
    rule would lower the marks and seed again for ever.
    """

    mode: int = SEED
    down: bool = False
    lower: bool = False

    def next(self, worked: bool, ready: bool) -> None:
        """Move on after a launch that did (or did not) do an interaction,
        and after which some thread had (or had not) work above its mark."""
        self.lower = False
        if not worked and ready and self.mode != WORK and not self.down:
            self.mode = WORK
            return
        if not self.down:
            self.mode = min(self.mode + 1, WORK)
        if not worked:
            if self.mode == SEED:
                self.mode, self.down = GROW, False
            else:
                self.mode, self.down, self.lower = SEED, True, True


@dataclass
class _Stalls:
    """Launches in a row that did no interaction: all of them, and those in
    which a thread found its region full."""

    idle: int = 0
    short: int = 0

    def after(self, did: int, head: np.ndarray, mode: int) -> int:
        """The status that stops a run after a launch of ``mode`` that did
        ``did`` interactions and left the control words ``head``; 0 to go on."""
        if did:
            self.idle = self.short = 0
            return 0
        self.idle += 1
        if head[SHORT]:
            self.short += 1
            return int(head[SHORT]) if self.short > MOST_SHORT else 0
        if (mode == WORK and head[BLOCKED]) or self.idle > MOST_IDLE:
            return ST_STUCK
        return 0


def _shape(count: int, geo: Geometry) -> tuple[int, int]:
    """Blocks and live threads for ``count`` regions: a power of two of full
    blocks, at most ``geo.fork_blocks``, or one block with ``count`` live
    threads."""
    if count < geo.block:
        return 1, count
    blocks = 1 << int(np.log2(min(geo.fork_blocks, count // geo.block)))
    return blocks, blocks * geo.block


class Watch(Protocol):
    """What tells a fork run, after each launch, to hand its net over."""

    def slow(self, seconds: float, interactions: int) -> bool:
        """Whether a run that has done ``interactions`` after ``seconds``
        should hand over now."""
        ...


@dataclass
class RateWatch:
    """When a fork run should hand its net over to the rounds of ``spread``
    (the ``auto`` schedule): once its interactions over the last ``window``
    seconds, for any of ``windows`` (window, M interactions a second), fall
    below that rate.

    ``fork`` runs a program that forks wider than the GPU's threads at
    3,500-10,000 M interactions a second on an H200, and one that forks
    narrower (bitonic sort of 2^10 to 2^14 numbers, radix sort) at 5-1,500,
    where ``spread`` runs it at 1,200-2,000 (bench/RESULTS.md): the window
    keeps a run's short idle stretches (a join's lowering of the marks) from
    handing it over. ``for_device`` scales the rates to a GPU's
    multiprocessors."""

    windows: tuple[tuple[float, float], ...]
    _times: list[float] = field(default_factory=lambda: [0.0], init=False, repr=False)
    _done: list[int] = field(default_factory=lambda: [0], init=False, repr=False)

    @classmethod
    def for_device(cls, multiprocessors: int) -> RateWatch:
        return cls(tuple((w, per_sm * multiprocessors) for w, per_sm in HANDOFF_WINDOWS))

    def slow(self, seconds: float, interactions: int) -> bool:
        """Record that the run has done ``interactions`` after ``seconds``
        (calls in order of time); whether it should hand over."""
        self._times.append(seconds)
        self._done.append(interactions)
        for window, mips in self.windows:
            if seconds < window:
                continue
            # the last point at least a window back
            at = bisect.bisect_right(self._times, seconds - window) - 1
            span = seconds - self._times[at]
            if interactions - self._done[at] < mips * 1e6 * span:
                return True
        return False


@dataclass(frozen=True)
class Handoff:
    """A fork run its watch stopped, for the rounds of another schedule to
    go on with: the heap (every port in it global, as after every launch),
    the threads' bags (``BAG`` pairs a thread, ``counts`` of them held), the
    interactions and launches so far, the ``time.perf_counter()`` of the
    run's start, and the geometry its kernel was built for (whose module
    gathers the bags)."""

    node: Any
    subst: Any
    root: int
    bags: Any
    counts: Any
    interactions: int
    rounds: int
    started: float
    geometry: Geometry


def normalize_fork(
    book: Book,
    nodes: int,
    vars_: int,
    threads: int | None = None,
    trace: list[tuple[int, bool, int, int, float]] | None = None,
    limits: Limits = UNLIMITED,
    geometry: Geometry | None = None,
) -> Normalized:
    """Run ``@main`` of ``book`` to normal form under the ``fork`` schedule;
    the same result and interaction count as ``cpu.normalize``. ``threads``
    (regions) defaults to as many as the heap allows, at most the
    geometry's ``fork_threads``. ``trace`` gets, for each launch: its mode,
    whether it went down, its interactions, the pairs it left and its
    seconds. ``limits`` is checked after each launch. ``geometry``: the
    kernel's shape, by default the largest the device holds."""
    net = fork_until(book, nodes, vars_, threads, trace, limits, geometry=geometry)
    assert isinstance(net, Normalized)  # no watch: the run goes to the end
    return net


def fork_until(
    book: Book,
    nodes: int,
    vars_: int,
    threads: int | None = None,
    trace: list[tuple[int, bool, int, int, float]] | None = None,
    limits: Limits = UNLIMITED,
    watch: Watch | None = None,
    geometry: Geometry | None = None,
) -> Normalized | Handoff:
    """``normalize_fork``, handing the net over where ``watch`` says the run
    is slow. A status that stops the run raises its error: the kernel may
    have lost a pair then, so another schedule must start again."""
    cupy = _cupy()
    geo = geometry or device_geometry()
    function = _module(True, geo).get_function("hvm_fork_round")
    function.max_dynamic_shared_size_bytes = geo.shared_bytes
    heap = _regions(book, nodes, vars_, threads, geo.slots, geo.fork_threads)
    nodes, vars_, count = heap.nodes, heap.vars_, heap.count
    blocks, live = _shape(count, geo)
    node, subst, root = _heap(cupy, nodes, vars_)
    slots = blocks * geo.block
    bags = [cupy.zeros(slots * BAG, dtype=cupy.uint64) for _ in range(2)]
    counts = [cupy.zeros(slots, dtype=cupy.uint32) for _ in range(2)]
    marks = cupy.zeros(slots, dtype=cupy.uint32)
    ctl = cupy.zeros(CTL_WORDS, dtype=cupy.uint32)
    cursors = cupy.zeros(2 * count, dtype=cupy.uint32)
    scratch = cupy.zeros(2 * count * heap.width, dtype=cupy.uint32)
    book_args = _book_arrays(cupy, book)
    shift = 0

    def launch(modes: Modes) -> None:
        function((blocks,), (geo.block,),
                 (node, subst, ctl, cursors, scratch, np.uint32(heap.width), *book_args,
                  np.uint32(root), np.uint32(heap.region_n), np.uint32(heap.region_v),
                  np.uint32(live), np.uint32(count), np.uint32(shift), bags[0], counts[0],
                  bags[1], counts[1], marks, np.uint32(modes.mode), np.uint32(modes.down),
                  np.uint32(modes.lower)),
                 shared_mem=geo.shared_bytes)  # fmt: skip

    # CUDA loads a kernel at its first launch (milliseconds, which a watch
    # would count against the run): one launch on the empty bags does it first
    launch(Modes(mode=WORK))
    bags[0][0] = np.uint64((root << 32) | REF)  # the boot redex: @main (id 0) ~ ROOT
    counts[0][0] = 1
    modes = Modes()
    rounds = interactions = status = detail = 0
    stalls = _Stalls()
    cupy.cuda.runtime.deviceSynchronize()
    start = time.perf_counter()
    while True:
        ctl[BLOCKED:].fill(0)
        began = time.perf_counter()
        launch(modes)
        rounds += 1
        head = cupy.asnumpy(ctl)
        status, detail = int(head[1]), int(head[2])
        done = int(head[4]) | (int(head[5]) << 32)
        did, interactions = done - interactions, done
        if trace is not None:
            trace.append((modes.mode, modes.down, did, int(head[SAVED]),
                          time.perf_counter() - began))  # fmt: skip
        if status or not head[SAVED]:
            break
        elapsed = time.perf_counter() - start
        limits.check(interactions, elapsed)
        if watch is not None and watch.slow(elapsed, interactions):
            return Handoff(node, subst, root, bags[1], counts[1], interactions, rounds, start,
                           geo)  # fmt: skip
        status = stalls.after(did, head, modes.mode)
        if status:
            break
        # Each launch, each thread allocates in another region. A thread that
        # works alone for many launches (a narrow phase) would otherwise fill
        # its one region while the rest of the heap stood empty: bitonic sort
        # of 2^14 numbers stopped so after 29 M interactions in regions of
        # 16,383 slots, and moving on made radix sort of 2^19 numbers 1.6-1.7x
        # faster, at 1-2 % on bitonic sorts (bench/RESULTS.md).
        shift = (shift + 7919) % count
        modes.next(did > 0, bool(head[READY]))
        bags.reverse()
        counts.reverse()
    seconds = time.perf_counter() - start
    if status:
        _raise(
            status,
            detail,
            book,
            interactions,
            heap,
            {ST_STUCK: f"a thread's {BAG} pending redexes"},
        )
    live_node, live_subst, live_root = _compact(cupy, node, subst, root)
    return Normalized(live_node, live_subst, live_root, interactions, seconds, live, rounds)
