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

import time
from dataclasses import dataclass

import numpy as np

from focusflow.rewrite.cpu import Normalized
from focusflow.rewrite.cuda_base import (
    BAG,
    LOCAL_BLOCK,
    LOCAL_SLOTS,
    SHARED_BYTES,
    _book_arrays,
    _compact,
    _cupy,
    _heap,
    _module,
    _raise,
    _regions,
)
from focusflow.rewrite.limits import UNLIMITED, Limits
from focusflow.rewrite.parse import Book
from focusflow.rewrite.ports import REF

#: Blocks of the widest run: as many as a block has threads, so that a SEED
#: launch's tree of blocks is as deep as a GROW launch's tree of threads.
MOST_BLOCKS = LOCAL_BLOCK
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


def _shape(count: int) -> tuple[int, int]:
    """Blocks and live threads for ``count`` regions: a power of two of full
    blocks, at most ``MOST_BLOCKS``, or one block with ``count`` live threads."""
    if count < LOCAL_BLOCK:
        return 1, count
    blocks = 1 << int(np.log2(min(MOST_BLOCKS, count // LOCAL_BLOCK)))
    return blocks, blocks * LOCAL_BLOCK


def normalize_fork(
    book: Book,
    nodes: int,
    vars_: int,
    threads: int | None = None,
    trace: list[tuple[int, bool, int, int, float]] | None = None,
    limits: Limits = UNLIMITED,
) -> Normalized:
    """Run ``@main`` of ``book`` to normal form under the ``fork`` schedule;
    the same result and interaction count as ``cpu.normalize``. ``threads``
    (regions) defaults to as many as the heap allows, at most 16,384.
    ``trace`` gets, for each launch: its mode, whether it went down, its
    interactions, the pairs it left and its seconds. ``limits`` is checked
    after each launch."""
    cupy = _cupy()
    function = _module(True).get_function("hvm_fork_round")
    function.max_dynamic_shared_size_bytes = SHARED_BYTES
    heap = _regions(book, nodes, vars_, threads, LOCAL_SLOTS, MOST_BLOCKS * LOCAL_BLOCK)
    nodes, vars_, count = heap.nodes, heap.vars_, heap.count
    blocks, live = _shape(count)
    node, subst, root = _heap(cupy, nodes, vars_)
    slots = blocks * LOCAL_BLOCK
    bags = [cupy.zeros(slots * BAG, dtype=cupy.uint64) for _ in range(2)]
    counts = [cupy.zeros(slots, dtype=cupy.uint32) for _ in range(2)]
    marks = cupy.zeros(slots, dtype=cupy.uint32)
    bags[0][0] = np.uint64((root << 32) | REF)  # the boot redex: @main (id 0) ~ ROOT
    counts[0][0] = 1
    ctl = cupy.zeros(CTL_WORDS, dtype=cupy.uint32)
    cursors = cupy.zeros(2 * count, dtype=cupy.uint32)
    scratch = cupy.zeros(2 * count * heap.width, dtype=cupy.uint32)
    book_args = _book_arrays(cupy, book)
    shift = 0

    def launch(modes: Modes) -> None:
        function((blocks,), (LOCAL_BLOCK,),
                 (node, subst, ctl, cursors, scratch, np.uint32(heap.width), *book_args,
                  np.uint32(root), np.uint32(heap.region_n), np.uint32(heap.region_v),
                  np.uint32(live), np.uint32(count), np.uint32(shift), bags[0], counts[0],
                  bags[1], counts[1], marks, np.uint32(modes.mode), np.uint32(modes.down),
                  np.uint32(modes.lower)),
                 shared_mem=SHARED_BYTES)  # fmt: skip

    modes = Modes()
    rounds = interactions = status = detail = 0
    idle = short = 0
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
        limits.check(interactions, time.perf_counter() - start)
        if did:
            idle = short = 0
        else:
            idle += 1
            if head[SHORT]:
                short += 1
                shift = (shift + 7919) % count  # other regions take the pairs next launch
                if short > MOST_SHORT:
                    status = int(head[SHORT])
                    break
            elif (modes.mode == WORK and head[BLOCKED]) or idle > MOST_IDLE:
                status = ST_STUCK
                break
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
