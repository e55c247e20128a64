"""The CPU evaluator of HVM2 books, compiled with numba, on one or many threads.

The net lives in two flat arrays shared by every thread: ``node`` (one 64-bit
pair of auxiliary ports per binary node) and ``vars`` (the substitution map:
for each variable slot, the port it is linked to, ``NONE`` while unlinked, 0
when free). Each *worker* (one per thread) keeps its own active pairs on two
stacks; the high-priority one (LINK VOID ERAS ANNI: rules that shrink the net)
is drained first, which keeps the heap small. Because interaction nets are
strongly confluent, neither the order nor the split between workers changes
the result or the number of interactions, so counts are comparable with
HVM2's runtimes and equal across thread counts.

Many workers share the net the way HVM2's C runtime does: an interaction owns
the two nodes of its active pair outright, so nodes are read and written with
plain loads and stores; the only shared cells are variables, and a link swaps
a variable's content atomically (``atomics.exchange``): whoever arrives
second at a variable finds the first one's port and carries the link on. One
worker (``threads=1``) runs the same code with plain loads and stores.

Memory: a worker takes freed slots back most recent first (its own stack of
the slots it freed, still in its cache), else the next slot of a chunk it
took from the heap's shared bump pointer. A worker that finds no slot stops
and puts its pair back; between rounds it is given other workers' free slots,
and only when none are left anywhere does the run stop with
``hvm_out_of_memory``: a full heap is an error, never an overwrite.

Work is shared between rounds: all workers run at once until each has run dry
or a budget of interactions; a worker that runs dry raises a flag, and a busy
worker that sees it (it looks every 256 interactions) ends the round early if
it has pairs to spare. Between rounds, each idle worker takes the older half
of the busiest worker's pairs (the oldest pairs are the largest pieces of work
in a depth-first order).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import numba
import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

from focusflow.rewrite import numbers
from focusflow.rewrite.atomics import exchange, fetch_add, load
from focusflow.rewrite.errors import HvmOutOfMemoryError, HvmUnsafeCloneError
from focusflow.rewrite.limits import UNLIMITED, Limits
from focusflow.rewrite.parse import Book
from focusflow.rewrite.ports import (
    ANNI,
    CALL,
    COMM,
    CON,
    DUP,
    ERA,
    ERAS,
    FID_MASK,
    HIGH_PAIRS,
    HIGH_PRIORITY,
    LINK,
    NONE,
    NUM,
    OPER,
    OPR,
    PAIR_RULES,
    REF,
    RULES,
    SWIT,
    VAR,
    VOID,
)

if TYPE_CHECKING:
    from numba.core.dispatcher import Dispatcher

#: Default heap: 2^26 node slots (512 MiB) and as many variable slots (256 MiB);
#: pages are only touched as the net grows into them.
DEFAULT_NODES = 1 << 26
DEFAULT_VARS = 1 << 26

# Status codes of a worker.
OK = 0
OOM_NODES = 1
OOM_VARS = 2
OOM_REDEXES = 3
UNSAFE_CLONE = 4
STARVED = 5  # no free slot at hand: the pair went back, the worker waits for slots

# Columns of the per-worker ``wm`` array.
_HI, _LO, _NFREE, _VFREE, _NCUR, _NEND, _VCUR, _VEND, _ITRS, _STATUS, _INFO = range(11)
_WANT_N, _WANT_V, _NRET, _VRET = 11, 12, 13, 14
#: A worker's row is padded to 512 bytes so that no two workers write one cache line.
_WMETA = 64
# Cells of the shared ``gm`` array: the bump pointers, the hungry flag, where
# the owners of the variable chunks start; from ``_GOWN`` on, the owner of
# each chunk of node slots, then of each chunk of variable slots.
_GNPUT, _GVPUT, _HUNGRY, _GVOWN = range(4)
_GOWN = 8

#: Slots a worker takes from the shared bump pointer at a time.
_CHUNK_BITS = 12
_CHUNK = 1 << _CHUNK_BITS
#: Interactions a worker runs in one round before the round ends for sharing.
_ROUND = 1 << 18
#: Interactions one thread runs per call of the kernel, and rounds the threads
#: run per call of the driver, before control comes back to Python: there a
#: Ctrl-C (KeyboardInterrupt) is raised, which a compiled loop never sees, so a
#: program that runs forever can still be stopped. Each costs one call (a few
#: microseconds) per tens of milliseconds of work.
_SLICE = 1 << 22
_SLICE_ROUNDS = 16
#: A worker looks at the hungry flag once per this many interactions (a power of 2).
_LOOK = 256

#: Kernel options: cached compilation, and no reference counting of arrays
#: (the kernels allocate nothing; counting every array handed to a helper made
#: the evaluator several times slower).
_KERNEL: dict[str, Any] = {"cache": True, "_nrt": False}
_F = TypeVar("_F", bound=Callable[..., object])


class _Compile(Protocol):
    """What ``njit(...)`` makes of a kernel: numba's dispatcher of it, called
    with the kernel's own signature."""

    def __call__(self, fn: _F, /) -> Dispatcher[_F]: ...


#: ``njit`` for the kernel options. numba's stubs leave out ``_nrt`` (an option
#: numba reads but does not document), so ``**_KERNEL`` is a plain dict, which
#: makes the decorator's type ambiguous; this gives it back.
_njit = cast(Callable[..., _Compile], njit)
_RESERVED = np.uint64(0xFFFFFFFFFFFFFFFF)  # a node slot allocated but not written yet
_LOW = np.uint64(0xFFFFFFFF)
_SHIFT = np.uint64(32)


@_njit(inline="always", **_KERNEL)
def _i64(x: Any) -> int:
    """``x`` as a signed 64-bit integer: the kernels do all port arithmetic in
    int64 (a uint64 mixed with an int64 would become a float in numba)."""
    # A kernel's int is numba's int64; to the type checker np.int64 is no int.
    return np.int64(x)  # type: ignore[return-value]


@intrinsic
def _ix_cast(typingctx: Any, i: Any) -> Any:
    """``i`` cast to uint64, as one LLVM cast at the call site."""
    sig = types.uint64(i)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return context.cast(builder, args[0], signature.args[0], types.uint64)

    return sig, codegen


#: A runtime array index that is never negative, as uint64. numba corrects
#: every signed index for a negative value (a sign test, and the dimension's
#: length read back, often from the stack) and an unsigned one not at all: on
#: one thread 1.08-1.16x for the whole evaluator (bench/RESULTS.md). The
#: kernels also index with the worker number cast so (``w = _ix(worker)``), for
#: the same reason. An intrinsic, not an inlined function: inlining one at each
#: of the hundreds of call sites added 12 s to the kernel's first compile.
#: Typed ``Any`` here because the intrinsic's Python signature takes numba's
#: typing context first, which a type checker would hold against ``_ix(i)``.
_ix: Any = _ix_cast


@_njit(inline="always", **_KERNEL)
def _pair_tags(a: int, b: int) -> int:
    """The tag pair of ports ``a`` and ``b``, ``tag_a << 3 | tag_b``: the index
    of their rule in ``PAIR_RULES`` and of its priority bit in ``HIGH_PAIRS``."""
    return ((a & 7) << 3) | (b & 7)


@_njit(inline="always", **_KERNEL)
def _high(a: int, b: int) -> bool:
    """Whether the pair ``(a, b)``'s rule is of high priority (LINK VOID ERAS ANNI)."""
    high: bool = (HIGH_PAIRS >> _pair_tags(a, b)) & 1 != 0
    return high


@_njit(inline="always", **_KERNEL)
def _mk(tag: int, val: int) -> int:
    """The port of ``tag`` and ``val``, as an int64 like every port in the kernel."""
    return ((val & 0x1FFFFFFF) << 3) | tag


@_njit(inline="always", **_KERNEL)
def _mkpair(fst: int, snd: int) -> np.uint64:
    """The pair of two ports, as stored in the node array and the redex stacks."""
    return np.uint64(fst) | (np.uint64(snd) << _SHIFT)


@_njit(inline="always", **_KERNEL)
def _bump(gm: np.ndarray, cell: int, shared: bool) -> int:
    """The start of a fresh chunk of slots from the shared bump pointer ``cell``."""
    if shared:
        old: int = fetch_add(gm, cell, _CHUNK)
        return old
    start: int = gm[_ix(cell)]
    gm[_ix(cell)] = start + _CHUNK
    return start


@_njit(inline="always", **_KERNEL)
def _alloc_node(
    node: np.ndarray, nfree: np.ndarray, wm: np.ndarray, gm: np.ndarray, w: int, shared: bool
) -> int:
    """A free node slot (marked reserved), or -1 when the worker has none at
    hand: its most recently freed slot (still in cache) first, else the next of
    its chunk, else a new chunk."""
    top = wm[w, _NFREE]
    if top > 0:
        wm[w, _NFREE] = top - 1
        loc = _i64(nfree[w, _ix(top - 1)])
    else:
        loc = wm[w, _NCUR]
        if loc >= wm[w, _NEND]:
            loc = _bump(gm, _GNPUT, shared)
            if loc >= node.shape[0]:
                return -1
            wm[w, _NEND] = min(loc + _CHUNK, node.shape[0])
            gm[_ix(_GOWN + (loc >> _CHUNK_BITS))] = _i64(w)
        wm[w, _NCUR] = loc + 1
    node[_ix(loc)] = _RESERVED
    return loc


@_njit(inline="always", **_KERNEL)
def _free_node(
    node: np.ndarray,
    nfree: np.ndarray,
    wm: np.ndarray,
    gm: np.ndarray,
    w: int,
    shared: bool,
    loc: int,
) -> None:
    """Give a node slot back (a node is freed when an interaction consumes it).
    A slot of another worker's chunk waits at the top of the row until the
    round ends, then goes back to that worker: each worker keeps allocating in
    its own chunks, so cache lines are not written by two threads in turn."""
    node[_ix(loc)] = 0
    if shared and gm[_ix(_GOWN + (loc >> _CHUNK_BITS))] != _i64(w):
        top = wm[w, _NRET]
        nfree[w, _ix(nfree.shape[1] - 1 - top)] = loc
        wm[w, _NRET] = top + 1
        return
    top = wm[w, _NFREE]
    nfree[w, _ix(top)] = loc
    wm[w, _NFREE] = top + 1


@_njit(inline="always", **_KERNEL)
def _alloc_var(
    vars_: np.ndarray, vfree: np.ndarray, wm: np.ndarray, gm: np.ndarray, w: int, shared: bool
) -> int:
    """A free variable slot (set to NONE), or -1; the last slot is the root's."""
    top = wm[w, _VFREE]
    if top > 0:
        wm[w, _VFREE] = top - 1
        loc = _i64(vfree[w, _ix(top - 1)])
    else:
        loc = wm[w, _VCUR]
        if loc >= wm[w, _VEND]:
            loc = _bump(gm, _GVPUT, shared)
            if loc >= vars_.shape[0] - 1:
                return -1
            wm[w, _VEND] = min(loc + _CHUNK, vars_.shape[0] - 1)
            gm[_ix(gm[_GVOWN] + (loc >> _CHUNK_BITS))] = _i64(w)
        wm[w, _VCUR] = loc + 1
    vars_[_ix(loc)] = np.uint32(NONE)
    return loc


@_njit(inline="always", **_KERNEL)
def _free_var(
    vars_: np.ndarray,
    vfree: np.ndarray,
    wm: np.ndarray,
    gm: np.ndarray,
    w: int,
    shared: bool,
    loc: int,
) -> None:
    """Give a variable slot back (once both of its ends have been linked); as
    ``_free_node``, to the worker whose chunk it is."""
    vars_[_ix(loc)] = 0
    if shared and gm[_ix(gm[_GVOWN] + (loc >> _CHUNK_BITS))] != _i64(w):
        top = wm[w, _VRET]
        vfree[w, _ix(vfree.shape[1] - 1 - top)] = loc
        wm[w, _VRET] = top + 1
        return
    top = wm[w, _VFREE]
    vfree[w, _ix(top)] = loc
    wm[w, _VFREE] = top + 1


@_njit(inline="always", **_KERNEL)
def _push(
    hi: np.ndarray,
    lo: np.ndarray,
    wm: np.ndarray,
    w: int,
    a: int,
    b: int,
) -> bool:
    """Push the active pair ``(a, b)`` on the stack its rule's priority picks."""
    if _high(a, b):
        top = wm[w, _HI]
        if top >= hi.shape[1]:
            return False
        hi[w, _ix(top)] = _mkpair(a, b)
        wm[w, _HI] = top + 1
    else:
        top = wm[w, _LO]
        if top >= lo.shape[1]:
            return False
        lo[w, _ix(top)] = _mkpair(a, b)
        wm[w, _LO] = top + 1
    return True


@_njit(inline="always", **_KERNEL)
def _take(vars_: np.ndarray, slot: int, shared: bool) -> int:
    """Read a variable for following it. A port found there was written by the
    variable's other end, which is done with it, so no swap is needed: the
    reader is the only one left to touch the slot (HVM2 swaps here)."""
    if shared:
        return _i64(load(vars_, slot))
    return _i64(vars_[_ix(slot)])


@_njit(inline="always", **_KERNEL)
def _swap(vars_: np.ndarray, slot: int, port: int, shared: bool) -> int:
    """Store ``port`` in a variable and return what it held."""
    if shared:
        return _i64(exchange(vars_, slot, np.uint32(port)))
    old = _i64(vars_[_ix(slot)])
    vars_[_ix(slot)] = np.uint32(port)
    return old


@_njit(inline="always", **_KERNEL)
def _enter(
    vars_: np.ndarray,
    vfree: np.ndarray,
    wm: np.ndarray,
    gm: np.ndarray,
    w: int,
    shared: bool,
    p: int,
) -> int:
    """Follow ``p`` through linked variables, freeing the ones passed."""
    while (p & 7) == VAR:
        slot = p >> 3
        x = _take(vars_, slot, shared)
        if x == NONE or x == 0:
            break
        _free_var(vars_, vfree, wm, gm, w, shared, slot)
        p = x
    return p


# Inlined by LLVM (``forceinline``), not by numba as the smaller helpers are:
# numba types an inlined body again at each of _work's fifteen calls, and
# that made the kernel's first compile take 32 s on a 2-core VM, against
# 10 s this way, at the same speed on two threads (0.98-1.07x) and 2 % less
# on one (bench/RESULTS.md). Gathering the calls into one loop instead
# compiled in 12 s but ran 6-18 % slower.
@_njit(forceinline=True, **_KERNEL)
def _link(
    vars_: np.ndarray,
    vfree: np.ndarray,
    hi: np.ndarray,
    lo: np.ndarray,
    wm: np.ndarray,
    gm: np.ndarray,
    w: int,
    shared: bool,
    a: int,
    b: int,
) -> bool:
    """Connect ports ``a`` and ``b``: two principal ports become a redex; a
    variable is substituted, and when its other end was linked already the
    link continues with what that end held.

    A variable that already holds a port was written by its other end, which
    is done with it: it is read without the exchange (a locked instruction on
    x86), which only the first of the two ends to arrive needs."""
    while True:
        if (a & 7) != VAR and (b & 7) == VAR:
            a, b = b, a
        if (a & 7) != VAR:
            return _push(hi, lo, wm, w, a, b)
        b = _enter(vars_, vfree, wm, gm, w, shared, b)
        slot = a >> 3
        old = _take(vars_, slot, shared)
        if old == NONE:
            old = _swap(vars_, slot, b, shared)
        if old == NONE:
            return True
        _free_var(vars_, vfree, wm, gm, w, shared, slot)
        a = old


@_njit(inline="always", **_KERNEL)
def _relocate(p: int, nloc: np.ndarray, vloc: np.ndarray, w: int) -> int:
    """A port of a definition, moved to the slots its copy was given."""
    t = p & 7
    if t >= CON:
        return _mk(t, nloc[w, _ix(p >> 3)])
    if t == VAR:
        return _mk(VAR, vloc[w, _ix(p >> 3)])
    return p


@_njit(inline="always", **_KERNEL)
def _alloc_many(  # noqa: PLR0913 - the heap's arrays and the worker's scratch
    node: np.ndarray,
    vars_: np.ndarray,
    nfree: np.ndarray,
    vfree: np.ndarray,
    wm: np.ndarray,
    gm: np.ndarray,
    nloc: np.ndarray,
    vloc: np.ndarray,
    w: int,
    shared: bool,
    nlen: int,
    vlen: int,
) -> int:
    """Take ``nlen`` node and ``vlen`` variable slots into the worker's scratch,
    all or none: on a shortfall the ones taken go back and the worker is marked
    as wanting that many (OOM_NODES or OOM_VARS names which ran out)."""
    for i in range(nlen):
        loc = _alloc_node(node, nfree, wm, gm, w, shared)
        if loc < 0:
            for j in range(i):
                _free_node(node, nfree, wm, gm, w, shared, nloc[w, _ix(j)])
            wm[w, _WANT_N] = nlen
            wm[w, _WANT_V] = vlen
            return OOM_NODES
        nloc[w, _ix(i)] = loc
    for i in range(vlen):
        loc = _alloc_var(vars_, vfree, wm, gm, w, shared)
        if loc < 0:
            for j in range(i):
                _free_var(vars_, vfree, wm, gm, w, shared, vloc[w, _ix(j)])
            for j in range(nlen):
                _free_node(node, nfree, wm, gm, w, shared, nloc[w, _ix(j)])
            wm[w, _WANT_N] = nlen
            wm[w, _WANT_V] = vlen
            return OOM_VARS
        vloc[w, _ix(i)] = loc
    return OK


@_njit(**_KERNEL)
def _work(  # noqa: C901, PLR0912, PLR0913, PLR0915 - one kernel: the whole rule set on flat arrays
    node: np.ndarray,
    vars_: np.ndarray,
    nfree: np.ndarray,
    vfree: np.ndarray,
    hi: np.ndarray,
    lo: np.ndarray,
    wm: np.ndarray,
    gm: np.ndarray,
    roots: np.ndarray,
    node_start: np.ndarray,
    def_nodes: np.ndarray,
    rbag_start: np.ndarray,
    def_rbag: np.ndarray,
    def_vars: np.ndarray,
    safe: np.ndarray,
    root_port: int,
    nloc: np.ndarray,
    vloc: np.ndarray,
    worker: int | np.int64,
    shared: bool,
    budget: int | np.int64,
) -> None:
    """Worker ``w`` reduces its own pairs until it has none, has run ``budget``
    interactions, is stopped (a status in ``wm``), or, when ``shared``, sees
    another worker hungry while it has pairs to spare."""
    w = _ix(worker)
    itrs = wm[w, _ITRS]
    steps = 0
    while steps < budget:
        if wm[w, _HI] > 0:
            wm[w, _HI] -= 1
            redex = hi[w, _ix(wm[w, _HI])]
        elif wm[w, _LO] > 0:
            wm[w, _LO] -= 1
            redex = lo[w, _ix(wm[w, _LO])]
        else:
            break
        a = _i64(redex & _LOW)
        b = _i64(redex >> _SHIFT)
        rule = PAIR_RULES[_pair_tags(a, b)]
        if (a & 7) == REF and b == root_port:
            rule = CALL
        elif (b & 7) < (a & 7):
            a, b = b, a
        ok = True
        status = OK
        if rule == LINK:
            ok = _link(vars_, vfree, hi, lo, wm, gm, w, shared, a, b)
            itrs -= 1  # LINK is not an interaction
        elif rule == VOID:
            pass
        elif rule == CALL and not ((b & 7) == DUP and safe[_ix((a >> 3) & FID_MASK)]):
            fid = (a >> 3) & FID_MASK
            if (b & 7) == DUP:
                wm[w, _STATUS] = UNSAFE_CLONE
                wm[w, _INFO] = fid
                break
            n0 = node_start[_ix(fid)]
            nlen = node_start[_ix(fid + 1)] - n0
            status = _alloc_many(node, vars_, nfree, vfree, wm, gm, nloc, vloc, w, shared,
                                 nlen, _i64(def_vars[_ix(fid)]))  # fmt: skip
            if status == OK:
                for i in range(nlen):
                    pr = def_nodes[_ix(n0 + i)]
                    f = _relocate(_i64(pr & _LOW), nloc, vloc, w)
                    s = _relocate(_i64(pr >> _SHIFT), nloc, vloc, w)
                    node[_ix(nloc[w, _ix(i)])] = _mkpair(f, s)
                for r in range(rbag_start[_ix(fid)], rbag_start[_ix(fid + 1)]):
                    pr = def_rbag[_ix(r)]
                    f = _relocate(_i64(pr & _LOW), nloc, vloc, w)
                    s = _relocate(_i64(pr >> _SHIFT), nloc, vloc, w)
                    ok = ok and _link(vars_, vfree, hi, lo, wm, gm, w, shared, f, s)
                r0 = _relocate(_i64(roots[_ix(fid)]), nloc, vloc, w)
                ok = ok and _link(vars_, vfree, hi, lo, wm, gm, w, shared, r0, b)
        elif rule in (ERAS, CALL):  # CALL here: a safe REF meets a DUP
            pr = node[_ix(b >> 3)]
            _free_node(node, nfree, wm, gm, w, shared, b >> 3)
            ok = _link(vars_, vfree, hi, lo, wm, gm, w, shared, a, _i64(pr & _LOW))
            ok = ok and _link(vars_, vfree, hi, lo, wm, gm, w, shared, a,
                              _i64(pr >> _SHIFT))  # fmt: skip
        elif rule == ANNI:
            pa = node[_ix(a >> 3)]
            pb = node[_ix(b >> 3)]
            _free_node(node, nfree, wm, gm, w, shared, a >> 3)
            _free_node(node, nfree, wm, gm, w, shared, b >> 3)
            ok = _link(vars_, vfree, hi, lo, wm, gm, w, shared, _i64(pa & _LOW),
                       _i64(pb & _LOW))  # fmt: skip
            ok = ok and _link(vars_, vfree, hi, lo, wm, gm, w, shared,
                              _i64(pa >> _SHIFT), _i64(pb >> _SHIFT))  # fmt: skip
        elif rule == COMM:
            status = _alloc_many(node, vars_, nfree, vfree, wm, gm, nloc, vloc, w, shared, 4, 4)
            if status == OK:
                pa = node[_ix(a >> 3)]
                pb = node[_ix(b >> 3)]
                _free_node(node, nfree, wm, gm, w, shared, a >> 3)
                _free_node(node, nfree, wm, gm, w, shared, b >> 3)
                ta = a & 7
                tb = b & 7
                v0 = _mk(VAR, vloc[w, 0])
                v1 = _mk(VAR, vloc[w, 1])
                v2 = _mk(VAR, vloc[w, 2])
                v3 = _mk(VAR, vloc[w, 3])
                node[_ix(nloc[w, 0])] = _mkpair(v0, v1)
                node[_ix(nloc[w, 1])] = _mkpair(v2, v3)
                node[_ix(nloc[w, 2])] = _mkpair(v0, v2)
                node[_ix(nloc[w, 3])] = _mkpair(v1, v3)
                ok = _link(vars_, vfree, hi, lo, wm, gm, w, shared,
                           _mk(tb, nloc[w, 0]), _i64(pa & _LOW))  # fmt: skip
                ok = ok and _link(vars_, vfree, hi, lo, wm, gm, w, shared,
                                  _mk(tb, nloc[w, 1]), _i64(pa >> _SHIFT))  # fmt: skip
                ok = ok and _link(vars_, vfree, hi, lo, wm, gm, w, shared,
                                  _mk(ta, nloc[w, 2]), _i64(pb & _LOW))  # fmt: skip
                ok = ok and _link(vars_, vfree, hi, lo, wm, gm, w, shared,
                                  _mk(ta, nloc[w, 3]), _i64(pb >> _SHIFT))  # fmt: skip
        elif rule == OPER:
            pr = node[_ix(b >> 3)]
            b1 = _i64(pr & _LOW)
            b2 = _enter(vars_, vfree, wm, gm, w, shared, _i64(pr >> _SHIFT))
            if (b1 & 7) == NUM:
                _free_node(node, nfree, wm, gm, w, shared, b >> 3)
                word = numbers.operate(np.uint32(a >> 3), np.uint32(b1 >> 3))
                ok = _link(vars_, vfree, hi, lo, wm, gm, w, shared,
                           _mk(NUM, _i64(word)), b2)  # fmt: skip
            else:
                # the number moves into the operator, which waits on b1: the
                # operator's slot is reused for the new node
                node[_ix(b >> 3)] = _mkpair(a, b2)
                ok = _link(vars_, vfree, hi, lo, wm, gm, w, shared, b1,
                           _mk(OPR, b >> 3))  # fmt: skip
        elif rule == SWIT:
            n = ((a >> 3) >> 5) & 0xFFFFFF
            status = _alloc_many(node, vars_, nfree, vfree, wm, gm, nloc, vloc, w, shared,
                                 1 if n == 0 else 2, 0)  # fmt: skip
            if status == OK:
                pr = node[_ix(b >> 3)]
                _free_node(node, nfree, wm, gm, w, shared, b >> 3)
                b1 = _i64(pr & _LOW)
                b2 = _i64(pr >> _SHIFT)
                outer = nloc[w, 0]
                if n == 0:
                    node[_ix(outer)] = _mkpair(b2, _mk(ERA, 0))
                else:
                    inner = nloc[w, 1]
                    node[_ix(inner)] = _mkpair(_mk(NUM, ((n - 1) << 5) | 1), b2)
                    node[_ix(outer)] = _mkpair(_mk(ERA, 0), _mk(CON, inner))
                ok = _link(vars_, vfree, hi, lo, wm, gm, w, shared,
                           _mk(CON, outer), b1)  # fmt: skip
        if status != OK:
            # no slots at hand: the pair goes back untouched; with one worker
            # nobody can give any, so the heap is full
            if _high(a, b):
                wm[w, _HI] += 1
            else:
                wm[w, _LO] += 1
            wm[w, _STATUS] = STARVED if shared else status
            break
        itrs += 1
        steps += 1
        if not ok:
            wm[w, _STATUS] = OOM_REDEXES
            break
        spare = wm[w, _HI] + wm[w, _LO] >= 2
        if shared and (steps & (_LOOK - 1)) == 0 and spare and load(gm, _HUNGRY) != 0:
            break
    wm[w, _ITRS] = itrs
    if shared and wm[w, _HI] + wm[w, _LO] == 0:
        exchange(gm, _HUNGRY, 1)


@_njit(**_KERNEL)
def _split(stack: np.ndarray, wm: np.ndarray, col: int, src: int, dst: int) -> None:
    """Move the older half of worker ``src``'s stack ``col`` to the empty ``dst``."""
    n = wm[src, col]
    k = n // 2
    for i in range(k):
        stack[dst, i] = stack[src, i]
    for i in range(n - k):
        stack[src, i] = stack[src, k + i]
    wm[src, col] = n - k
    wm[dst, col] = k


@_njit(**_KERNEL)
def _share_work(hi: np.ndarray, lo: np.ndarray, wm: np.ndarray) -> None:
    """Give each worker without pairs half of the busiest worker's."""
    workers = wm.shape[0]
    for dst in range(workers):
        if wm[dst, _HI] + wm[dst, _LO] > 0:
            continue
        src = 0
        for v in range(workers):
            if wm[v, _HI] + wm[v, _LO] > wm[src, _HI] + wm[src, _LO]:
                src = v
        if wm[src, _LO] >= 2:
            _split(lo, wm, _LO, src, dst)
        elif wm[src, _HI] >= 2:
            _split(hi, wm, _HI, src, dst)


@_njit(inline="always", **_KERNEL)
def _hand_back(
    free: np.ndarray,
    wm: np.ndarray,
    gm: np.ndarray,
    w: int,
    col_free: int,
    col_ret: int,
    owners: int,
) -> None:
    """Hand the slots worker ``w`` freed in other workers' chunks (the top of
    its row ``free``) to their owners (``gm[owners + chunk]``)."""
    for k in range(wm[w, col_ret]):
        loc = free[w, free.shape[1] - 1 - k]
        owner = gm[owners + (loc >> _CHUNK_BITS)]
        free[owner, wm[owner, col_free]] = loc
        wm[owner, col_free] += 1
    wm[w, col_ret] = 0


@_njit(**_KERNEL)
def _give_back(nfree: np.ndarray, vfree: np.ndarray, wm: np.ndarray, gm: np.ndarray) -> None:
    """Hand the slots each worker freed in other workers' chunks to their owners."""
    for w in range(wm.shape[0]):
        _hand_back(nfree, wm, gm, w, _NFREE, _NRET, _GOWN)
        _hand_back(vfree, wm, gm, w, _VFREE, _VRET, gm[_GVOWN])


@_njit(inline="always", **_KERNEL)
def _transfer(
    free: np.ndarray,
    wm: np.ndarray,
    src: int,
    dst: int,
    col_free: int,
    col_cur: int,
    col_end: int,
    want: int,
) -> int:
    """Move ``src``'s free slots (freed ones, then the rest of its chunk) to
    ``dst`` until ``dst`` holds twice ``want`` and a chunk; returns how many
    slots ``dst`` then has at hand."""
    while wm[dst, col_free] < 2 * want + _CHUNK and wm[src, col_free] > 0:
        wm[src, col_free] -= 1
        free[dst, wm[dst, col_free]] = free[src, wm[src, col_free]]
        wm[dst, col_free] += 1
    while wm[dst, col_free] < 2 * want + _CHUNK and wm[src, col_cur] < wm[src, col_end]:
        free[dst, wm[dst, col_free]] = wm[src, col_cur]
        wm[src, col_cur] += 1
        wm[dst, col_free] += 1
    have: int = wm[dst, col_free] + wm[dst, col_end] - wm[dst, col_cur]
    return have


@_njit(**_KERNEL)
def _feed(nfree: np.ndarray, vfree: np.ndarray, wm: np.ndarray, dst: int) -> int:
    """Give the starved worker ``dst`` other workers' free slots until it holds
    what it asked for twice over: OK, or OOM_NODES / OOM_VARS when the whole
    heap cannot give it what it asked for."""
    have_n = have_v = 0
    for src in range(wm.shape[0]):
        if src != dst:
            have_n = _transfer(nfree, wm, src, dst, _NFREE, _NCUR, _NEND, wm[dst, _WANT_N])
            have_v = _transfer(vfree, wm, src, dst, _VFREE, _VCUR, _VEND, wm[dst, _WANT_V])
    if have_n < wm[dst, _WANT_N]:
        return OOM_NODES
    if have_v < wm[dst, _WANT_V]:
        return OOM_VARS
    return OK


@njit(parallel=True, cache=True)
def _drive(  # noqa: PLR0913 - the net's arrays, as _work takes them
    node: np.ndarray,
    vars_: np.ndarray,
    nfree: np.ndarray,
    vfree: np.ndarray,
    hi: np.ndarray,
    lo: np.ndarray,
    wm: np.ndarray,
    gm: np.ndarray,
    roots: np.ndarray,
    node_start: np.ndarray,
    def_nodes: np.ndarray,
    rbag_start: np.ndarray,
    def_rbag: np.ndarray,
    def_vars: np.ndarray,
    safe: np.ndarray,
    root_port: int,
    nloc: np.ndarray,
    vloc: np.ndarray,
    most_rounds: int,
) -> int:
    """Run rounds of all workers at once until no pair is left, one stops, or
    ``most_rounds`` have run (a later call goes on from there); returns the
    number of rounds."""
    workers = wm.shape[0]
    rounds = 0
    while rounds < most_rounds:
        gm[_HUNGRY] = 0
        # the worker, the sharing flag and the budget go in as int64, bool and
        # int64 values: as prange's unsigned index and as constants (which
        # numba types as literals) each made numba compile `_work` anew, half
        # a minute apiece, where this reuses the one-thread compile
        for w in prange(workers):
            _work(node, vars_, nfree, vfree, hi, lo, wm, gm, roots, node_start,
                  def_nodes, rbag_start, def_rbag, def_vars, safe, root_port, nloc, vloc,
                  np.int64(w), workers > 1, np.int64(_ROUND))  # fmt: skip
        rounds += 1
        _give_back(nfree, vfree, wm, gm)
        for w in range(workers):
            if wm[w, _STATUS] == STARVED:
                wm[w, _STATUS] = _feed(nfree, vfree, wm, w)
        pending = 0
        for w in range(workers):
            if wm[w, _STATUS] != OK:
                return rounds
            pending += wm[w, _HI] + wm[w, _LO]
        if pending == 0:
            return rounds
        _share_work(hi, lo, wm)
    return rounds


@dataclass
class Normalized:
    """A net reduced to normal form (or as far as it got) and what it took."""

    node: np.ndarray
    vars: np.ndarray
    root: int
    interactions: int
    seconds: float
    threads: int = 1
    rounds: int = 1  # rounds of work sharing (one with one thread)


def max_threads() -> int:
    """The most threads the CPU evaluator can run on (numba's pool: the CPU's
    cores unless ``NUMBA_NUM_THREADS`` says fewer)."""
    return int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]  # not in numba's stubs


class CpuNet:
    """A heap the CPU evaluator reduces, kept between runs.

    ``normalize`` makes one, boots ``@main ~ ROOT`` and runs it once. HVM2's
    IO driver (``focusflow.rewrite.io_driver``) runs it many times: between
    runs it reads the net, takes slots for the values it hands back
    (``alloc``), boots a new redex (``boot``) and runs again, as HVM2's C
    runtime does between its normalisations.
    """

    def __init__(self, book: Book, nodes: int = DEFAULT_NODES, vars_: int = DEFAULT_VARS,
                 threads: int = 1, limits: Limits = UNLIMITED) -> None:  # fmt: skip
        """An empty heap of ``nodes`` node slots and ``vars_`` variable slots
        for ``book``, reduced on ``threads`` threads (at most ``max_threads()``);
        its last variable slot is the root. ``limits`` bounds the interactions
        and seconds of all its runs together."""
        self.book = book
        self.limits = limits
        self.workers = workers = max(1, min(int(threads), max_threads()))
        self.nodes = nodes = max(int(nodes), 2)
        self.vars_ = vars_ = min(max(int(vars_), 2), 1 << 29)  # a slot is a 29-bit port value
        self.node = np.zeros(nodes, dtype=np.uint64)
        self.subst = np.zeros(vars_, dtype=np.uint32)
        # each worker may come to hold every pending pair and every free slot
        self.stack = stack = max(nodes, 1024)
        self.hi = np.empty((workers, stack), dtype=np.uint64)
        self.lo = np.empty((workers, stack), dtype=np.uint64)
        self.nfree = np.empty((workers, nodes), dtype=np.uint32)
        self.vfree = np.empty((workers, vars_), dtype=np.uint32)
        self.wm = np.zeros((workers, _WMETA), dtype=np.int64)
        node_chunks = -(-nodes // _CHUNK)
        self.gm = gm = np.zeros(_GOWN + node_chunks + -(-vars_ // _CHUNK), dtype=np.int64)
        gm[_GNPUT] = 1  # slot 0 is never allocated
        gm[_GVPUT] = 1
        gm[_GVOWN] = _GOWN + node_chunks
        self.root_slot = vars_ - 1
        self.root = (self.root_slot << 3) | VAR
        self.subst[self.root_slot] = NONE
        # scratch: the slots of one CALL's (or COMM's) new nodes and variables
        # (rows padded by 64 entries, so that no two workers write one cache line)
        width = 64 + max(4, int(np.diff(book.node_start).max(initial=0)),
                         int(book.vars.max(initial=0)))  # fmt: skip
        self.nloc = np.zeros((workers, width), dtype=np.int64)
        self.vloc = np.zeros((workers, width), dtype=np.int64)
        self._arrays = (book.roots, book.node_start, book.nodes,
                        book.rbag_start, book.rbag, book.vars, book.safe)  # fmt: skip
        self.seconds = 0.0
        self.rounds = 0
        self._warm = False

    @property
    def interactions(self) -> int:
        """Interactions of every run so far."""
        return int(self.wm[:, _ITRS].sum())

    def boot(self, a: int, b: int) -> None:
        """Add the redex ``(a, b)`` (ports) for the next run. With ``b`` the
        root, the root is unlinked first: the redex's result becomes the root,
        and a reference booted against it is expanded (HVM2's ``boot_redex``)."""
        if b == self.root:
            self.subst[self.root_slot] = NONE
        stack, col = (self.hi, _HI) if HIGH_PRIORITY[RULES[a & 7, b & 7]] else (self.lo, _LO)
        top = int(self.wm[0, col])
        if top >= stack.shape[1]:
            raise HvmOutOfMemoryError(f"the net outgrew the heap ({self.stack} pending redexes)")
        stack[0, top] = np.uint64(a | (b << 32))
        self.wm[0, col] = top + 1

    def alloc(self, nodes: int, vars_: int) -> tuple[np.ndarray, np.ndarray]:
        """Take ``nodes`` node slots and ``vars_`` variable slots (each set to
        NONE) between runs; HvmOutOfMemoryError when the heap has not that many."""
        locs_n = np.empty(nodes, dtype=np.int64)
        locs_v = np.empty(vars_, dtype=np.int64)
        for locs, one in ((locs_n, True), (locs_v, False)):
            status = _host_alloc(self.node, self.subst, self.nfree, self.vfree, self.wm, self.gm,
                                 locs, one)  # fmt: skip
            if status != OK:
                self._raise(status)
        return locs_n, locs_v

    def run(self) -> None:
        """Reduce the booted redexes to normal form; raise on a full heap, an
        unsafe clone or a limit passed (the net is then as far as it got)."""
        wm, gm, limits = self.wm, self.gm, self.limits
        args = (self.node, self.subst, self.nfree, self.vfree, self.hi, self.lo)
        tail = (*self._arrays, self.root, self.nloc, self.vloc)
        # A kernel call takes one starred tuple: mypy lays the elements of a
        # second one onto the wrong parameters.
        net = (*args, wm, gm, *tail)
        if not self._warm:
            # The first call in a process loads (or compiles) the kernel: make
            # it with no pairs, so that the time measured is the reduction's only.
            idle = np.zeros_like(wm)
            if self.workers == 1:
                _work(*(*args, idle, gm, *tail), 0, False, 1)
            else:
                numba.set_num_threads(self.workers)
                _drive(*(*args, idle, gm.copy(), *tail), _SLICE_ROUNDS)
            self._warm = True
        start = time.perf_counter()
        try:
            if self.workers == 1:
                while True:
                    left = limits.left(self.interactions)
                    budget = _SLICE if left is None else min(_SLICE, left)
                    _work(*net, 0, False, budget)
                    if wm[0, _STATUS] != OK or wm[0, _HI] + wm[0, _LO] == 0:
                        break
                    limits.check(self.interactions, self.seconds + time.perf_counter() - start)
                rounds = 1
            else:
                numba.set_num_threads(self.workers)
                rounds = 0
                while True:
                    rounds += _drive(*net, _SLICE_ROUNDS)
                    if (wm[:, _STATUS] != OK).any() or (wm[:, _HI] + wm[:, _LO]).sum() == 0:
                        break
                    limits.check(self.interactions, self.seconds + time.perf_counter() - start)
        finally:
            self.seconds += time.perf_counter() - start
        self.rounds += int(rounds)
        statuses = [int(s) for s in wm[:, _STATUS] if s != OK]
        if statuses:
            self._raise(statuses[0])

    def _raise(self, status: int) -> None:
        interactions = self.interactions
        if status in (OOM_NODES, OOM_VARS, OOM_REDEXES):
            what = {OOM_NODES: f"{self.nodes} node slots", OOM_VARS: f"{self.vars_} variable slots",
                    OOM_REDEXES: f"{self.stack} pending redexes"}[status]  # fmt: skip
            raise HvmOutOfMemoryError(
                f"the net outgrew the heap ({what}) after {interactions} interactions"
            )
        fid = int(self.wm[self.wm[:, _STATUS] == UNSAFE_CLONE][0, _INFO])
        raise HvmUnsafeCloneError(
            f"attempt to clone a non-affine global reference: @{self.book.names[fid]} "
            "met a duplicator, and it contains or refers to duplicators"
        )

    def normalized(self) -> Normalized:
        """The net as it stands and what it took."""
        return Normalized(self.node, self.subst, self.root, self.interactions, self.seconds,
                          self.workers, max(self.rounds, 1))  # fmt: skip


@_njit(**_KERNEL)
def _host_alloc(
    node: np.ndarray,
    vars_: np.ndarray,
    nfree: np.ndarray,
    vfree: np.ndarray,
    wm: np.ndarray,
    gm: np.ndarray,
    out: np.ndarray,
    nodes: bool,
) -> int:
    """Fill ``out`` with free node (or variable) slots between runs, as worker
    0 takes them, given other workers' free slots when its own run out; OK,
    or OOM_NODES / OOM_VARS with none taken."""
    for i in range(out.shape[0]):
        loc = _alloc_node(node, nfree, wm, gm, 0, False) if nodes else _alloc_var(
            vars_, vfree, wm, gm, 0, False)  # fmt: skip
        if loc < 0 and wm.shape[0] > 1:
            wm[0, _WANT_N if nodes else _WANT_V] = out.shape[0] - i
            _feed(nfree, vfree, wm, 0)
            loc = _alloc_node(node, nfree, wm, gm, 0, False) if nodes else _alloc_var(
                vars_, vfree, wm, gm, 0, False)  # fmt: skip
        if loc < 0:
            for j in range(i):
                if nodes:
                    _free_node(node, nfree, wm, gm, 0, False, out[j])
                else:
                    _free_var(vars_, vfree, wm, gm, 0, False, out[j])
            return OOM_NODES if nodes else OOM_VARS
        out[i] = loc
    return OK


def normalize(
    book: Book,
    nodes: int = DEFAULT_NODES,
    vars_: int = DEFAULT_VARS,
    threads: int = 1,
    limits: Limits = UNLIMITED,
) -> Normalized:
    """Run ``@main`` of ``book`` to normal form in a heap of ``nodes`` node
    slots and ``vars_`` variable slots on ``threads`` threads (at most
    ``max_threads()``); raise ``HvmOutOfMemoryError`` when the net outgrows it,
    ``HvmInteractionLimitError`` / ``HvmTimeoutError`` past ``limits``."""
    net = CpuNet(book, nodes, vars_, threads, limits)
    net.boot(REF, net.root)  # @main (definition 0) ~ ROOT
    net.run()
    return net.normalized()


def prepare() -> float:
    """Compile (or load from numba's cache) the one-thread and the many-thread
    kernels now, by running a two-interaction program on each: compiling them
    takes minutes on a small machine, which a first ``hvm run`` or test should
    not pay. Returns the seconds it took."""
    from focusflow.rewrite.parse import load_book

    start = time.perf_counter()
    book = load_book("@main = a & @f ~ (1 a)\n@f = (x x)")
    for threads in (1, 2):
        normalize(book, nodes=1 << 10, vars_=1 << 10, threads=threads)
    return time.perf_counter() - start
