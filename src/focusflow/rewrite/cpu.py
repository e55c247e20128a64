"""A single-threaded evaluator of HVM2 books, compiled with numba.

The net lives in two flat arrays: ``node`` (one 64-bit pair of auxiliary ports
per binary node) and ``vars`` (the substitution map: for each variable slot,
the port it is linked to, ``NONE`` while unlinked, 0 when free). Active pairs
wait on two stacks; the high-priority one (LINK VOID ERAS ANNI: rules that
shrink the net) is drained first, which keeps the heap small. Because
interaction nets are strongly confluent, the order changes neither the result
nor the number of interactions, so counts are comparable with HVM2's runtimes.

The heap is bounded: allocation takes the most recently freed slot (a stack of
freed slots, so memory just touched is reused while it is in cache), else the
next never-used one; a full heap (or a full redex stack) stops the run with
``hvm_out_of_memory`` instead of overwriting anything.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from focusflow.rewrite import numbers
from focusflow.rewrite.errors import HvmOutOfMemoryError, HvmUnsafeCloneError
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
    HIGH_PRIORITY,
    LINK,
    NONE,
    NUM,
    OPER,
    OPR,
    REF,
    RULES,
    SWIT,
    VAR,
    VOID,
)

#: Default heap: 2^26 node slots (512 MiB) and as many variable slots (256 MiB);
#: pages are only touched as the net grows into them.
DEFAULT_NODES = 1 << 26
DEFAULT_VARS = 1 << 26

# Status codes of ``_normalize``.
OK = 0
OOM_NODES = 1
OOM_VARS = 2
OOM_REDEXES = 3
UNSAFE_CLONE = 4

# Slots of the ``meta`` array the kernel keeps its counters in.
_HI, _LO, _NPUT, _VPUT, _ITRS, _STATUS, _INFO, _NFREE, _VFREE = range(9)
_META = 9
#: Kernel options: cached compilation, and no reference counting of arrays
#: (the kernels allocate nothing; counting every array handed to a helper made
#: the evaluator several times slower).
_KERNEL: dict[str, Any] = {"cache": True, "_nrt": False}
_RESERVED = np.uint64(0xFFFFFFFFFFFFFFFF)  # a node slot allocated but not written yet


@njit(inline="always", **_KERNEL)
def _i64(x: Any) -> int:
    """``x`` as a signed 64-bit integer: the kernels do all port arithmetic in
    int64 (a uint64 mixed with an int64 would become a float in numba)."""
    return np.int64(x)  # type: ignore[return-value]


@njit(inline="always", **_KERNEL)
def _mk(tag: int, val: int) -> int:
    """The port of ``tag`` and ``val``, as an int64 like every port in the kernel."""
    return ((val & 0x1FFFFFFF) << 3) | tag


@njit(inline="always", **_KERNEL)
def _mkpair(fst: int, snd: int) -> np.uint64:
    """The pair of two ports, as stored in the node array and the redex stacks."""
    return np.uint64(fst) | (np.uint64(snd) << np.uint64(32))


@njit(inline="always", **_KERNEL)
def _alloc_node(node: np.ndarray, nfree: np.ndarray, meta: np.ndarray) -> int:
    """A free node slot (marked reserved), or -1 when the heap is full: the
    most recently freed slot (still in cache) first, else the next unused."""
    top = meta[_NFREE]
    if top > 0:
        meta[_NFREE] = top - 1
        loc = nfree[top - 1]
    else:
        loc = meta[_NPUT]
        if loc >= node.shape[0]:
            return -1
        meta[_NPUT] = loc + 1
    node[loc] = _RESERVED
    return loc


@njit(inline="always", **_KERNEL)
def _free_node(node: np.ndarray, nfree: np.ndarray, meta: np.ndarray, loc: int) -> None:
    """Give a node slot back (a node is freed when an interaction consumes it)."""
    node[loc] = 0
    nfree[meta[_NFREE]] = loc
    meta[_NFREE] += 1


@njit(inline="always", **_KERNEL)
def _alloc_var(vars_: np.ndarray, vfree: np.ndarray, meta: np.ndarray) -> int:
    """A free variable slot (set to NONE), or -1; the last slot is the root's."""
    top = meta[_VFREE]
    if top > 0:
        meta[_VFREE] = top - 1
        loc = vfree[top - 1]
    else:
        loc = meta[_VPUT]
        if loc >= vars_.shape[0] - 1:
            return -1
        meta[_VPUT] = loc + 1
    vars_[loc] = np.uint32(NONE)
    return loc


@njit(inline="always", **_KERNEL)
def _free_var(vars_: np.ndarray, vfree: np.ndarray, meta: np.ndarray, loc: int) -> None:
    """Give a variable slot back (once both of its ends have been linked)."""
    vars_[loc] = 0
    vfree[meta[_VFREE]] = loc
    meta[_VFREE] += 1


@njit(inline="always", **_KERNEL)
def _push(
    rules: np.ndarray,
    high: np.ndarray,
    hi: np.ndarray,
    lo: np.ndarray,
    meta: np.ndarray,
    a: int,
    b: int,
) -> bool:
    """Push the active pair ``(a, b)`` on the stack its rule's priority picks."""
    rule = rules[a & 7, b & 7]
    if high[rule]:
        top = meta[_HI]
        if top >= hi.shape[0]:
            return False
        hi[top] = _mkpair(a, b)
        meta[_HI] = top + 1
    else:
        top = meta[_LO]
        if top >= lo.shape[0]:
            return False
        lo[top] = _mkpair(a, b)
        meta[_LO] = top + 1
    return True


@njit(inline="always", **_KERNEL)
def _enter(vars_: np.ndarray, vfree: np.ndarray, meta: np.ndarray, p: int) -> int:
    """Follow ``p`` through linked variables, freeing the ones passed."""
    while (p & 7) == VAR:
        slot = p >> 3
        x = _i64(vars_[slot])
        if x == NONE or x == 0:
            break
        _free_var(vars_, vfree, meta, slot)
        p = x
    return p


@njit(inline="always", **_KERNEL)
def _link(
    rules: np.ndarray,
    high: np.ndarray,
    vars_: np.ndarray,
    vfree: np.ndarray,
    hi: np.ndarray,
    lo: np.ndarray,
    meta: np.ndarray,
    a: int,
    b: int,
) -> bool:
    """Connect ports ``a`` and ``b``: two principal ports become a redex; a
    variable is substituted, and when its other end was linked already the
    link continues with what that end held."""
    while True:
        if (a & 7) != VAR and (b & 7) == VAR:
            a, b = b, a
        if (a & 7) != VAR:
            return _push(rules, high, hi, lo, meta, a, b)
        b = _enter(vars_, vfree, meta, b)
        slot = a >> 3
        old = _i64(vars_[slot])
        vars_[slot] = np.uint32(b)
        if old == NONE:
            return True
        _free_var(vars_, vfree, meta, slot)
        a = old


@njit(**_KERNEL)
def _normalize(  # noqa: C901, PLR0912, PLR0913, PLR0915 - one kernel: the whole rule set on flat arrays
    node: np.ndarray,
    vars_: np.ndarray,
    nfree: np.ndarray,
    vfree: np.ndarray,
    hi: np.ndarray,
    lo: np.ndarray,
    meta: np.ndarray,
    rules: np.ndarray,
    high: np.ndarray,
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
) -> None:
    """Reduce until no active pair is left, or stop with a status in ``meta``."""
    itrs = meta[_ITRS]
    while True:
        if meta[_HI] > 0:
            meta[_HI] -= 1
            redex = hi[meta[_HI]]
        elif meta[_LO] > 0:
            meta[_LO] -= 1
            redex = lo[meta[_LO]]
        else:
            break
        a = _i64(redex & np.uint64(0xFFFFFFFF))
        b = _i64(redex >> np.uint64(32))
        rule = rules[a & 7, b & 7]
        if (a & 7) == REF and b == root_port:
            rule = CALL
        elif (b & 7) < (a & 7):
            a, b = b, a
        ok = True
        if rule == LINK:
            ok = _link(rules, high, vars_, vfree, hi, lo, meta, a, b)
            itrs -= 1  # LINK is not an interaction
        elif rule == VOID:
            pass
        elif rule == CALL and not ((b & 7) == DUP and safe[(a >> 3) & FID_MASK]):
            fid = (a >> 3) & FID_MASK
            if (b & 7) == DUP:
                meta[_STATUS] = UNSAFE_CLONE
                meta[_INFO] = fid
                break
            n0 = node_start[fid]
            nlen = node_start[fid + 1] - n0
            vlen = _i64(def_vars[fid])
            for i in range(nlen):
                nloc[i] = _alloc_node(node, nfree, meta)
                if nloc[i] < 0:
                    meta[_STATUS] = OOM_NODES
                    break
            if meta[_STATUS] != OK:
                break
            for i in range(vlen):
                vloc[i] = _alloc_var(vars_, vfree, meta)
                if vloc[i] < 0:
                    meta[_STATUS] = OOM_VARS
                    break
            if meta[_STATUS] != OK:
                break
            for i in range(nlen):
                pr = def_nodes[n0 + i]
                f = _i64(pr & np.uint64(0xFFFFFFFF))
                s = _i64(pr >> np.uint64(32))
                tf = f & 7
                if tf >= CON:
                    f = _mk(tf, nloc[f >> 3])
                elif tf == VAR:
                    f = _mk(VAR, vloc[f >> 3])
                ts = s & 7
                if ts >= CON:
                    s = _mk(ts, nloc[s >> 3])
                elif ts == VAR:
                    s = _mk(VAR, vloc[s >> 3])
                node[nloc[i]] = _mkpair(f, s)
            for r in range(rbag_start[fid], rbag_start[fid + 1]):
                pr = def_rbag[r]
                f = _i64(pr & np.uint64(0xFFFFFFFF))
                s = _i64(pr >> np.uint64(32))
                tf = f & 7
                if tf >= CON:
                    f = _mk(tf, nloc[f >> 3])
                elif tf == VAR:
                    f = _mk(VAR, vloc[f >> 3])
                ts = s & 7
                if ts >= CON:
                    s = _mk(ts, nloc[s >> 3])
                elif ts == VAR:
                    s = _mk(VAR, vloc[s >> 3])
                ok = ok and _link(rules, high, vars_, vfree, hi, lo, meta, f, s)
            r0 = _i64(roots[fid])
            tr = r0 & 7
            if tr >= CON:
                r0 = _mk(tr, nloc[r0 >> 3])
            elif tr == VAR:
                r0 = _mk(VAR, vloc[r0 >> 3])
            ok = ok and _link(rules, high, vars_, vfree, hi, lo, meta, r0, b)
        elif rule in (ERAS, CALL):  # CALL here: a safe REF meets a DUP
            pr = node[b >> 3]
            _free_node(node, nfree, meta, b >> 3)
            b1 = _i64(pr & np.uint64(0xFFFFFFFF))
            b2 = _i64(pr >> np.uint64(32))
            ok = _link(rules, high, vars_, vfree, hi, lo, meta, a, b1)
            ok = ok and _link(rules, high, vars_, vfree, hi, lo, meta, a, b2)
        elif rule == ANNI:
            pa = node[a >> 3]
            pb = node[b >> 3]
            _free_node(node, nfree, meta, a >> 3)
            _free_node(node, nfree, meta, b >> 3)
            ok = _link(
                rules,
                high,
                vars_,
                vfree,
                hi,
                lo,
                meta,
                _i64(pa & np.uint64(0xFFFFFFFF)),
                _i64(pb & np.uint64(0xFFFFFFFF)),
            )
            ok = ok and _link(
                rules,
                high,
                vars_,
                vfree,
                hi,
                lo,
                meta,
                _i64(pa >> np.uint64(32)),
                _i64(pb >> np.uint64(32)),
            )
        elif rule == COMM:
            for i in range(4):
                nloc[i] = _alloc_node(node, nfree, meta)
                if nloc[i] < 0:
                    meta[_STATUS] = OOM_NODES
                    break
            if meta[_STATUS] != OK:
                break
            for i in range(4):
                vloc[i] = _alloc_var(vars_, vfree, meta)
                if vloc[i] < 0:
                    meta[_STATUS] = OOM_VARS
                    break
            if meta[_STATUS] != OK:
                break
            pa = node[a >> 3]
            pb = node[b >> 3]
            _free_node(node, nfree, meta, a >> 3)
            _free_node(node, nfree, meta, b >> 3)
            ta = a & 7
            tb = b & 7
            v0 = _mk(VAR, vloc[0])
            v1 = _mk(VAR, vloc[1])
            v2 = _mk(VAR, vloc[2])
            v3 = _mk(VAR, vloc[3])
            node[nloc[0]] = _mkpair(v0, v1)
            node[nloc[1]] = _mkpair(v2, v3)
            node[nloc[2]] = _mkpair(v0, v2)
            node[nloc[3]] = _mkpair(v1, v3)
            ok = _link(
                rules,
                high,
                vars_,
                vfree,
                hi,
                lo,
                meta,
                _mk(tb, nloc[0]),
                _i64(pa & np.uint64(0xFFFFFFFF)),
            )
            ok = ok and _link(
                rules,
                high,
                vars_,
                vfree,
                hi,
                lo,
                meta,
                _mk(tb, nloc[1]),
                _i64(pa >> np.uint64(32)),
            )
            ok = ok and _link(
                rules,
                high,
                vars_,
                vfree,
                hi,
                lo,
                meta,
                _mk(ta, nloc[2]),
                _i64(pb & np.uint64(0xFFFFFFFF)),
            )
            ok = ok and _link(
                rules,
                high,
                vars_,
                vfree,
                hi,
                lo,
                meta,
                _mk(ta, nloc[3]),
                _i64(pb >> np.uint64(32)),
            )
        elif rule == OPER:
            pr = node[b >> 3]
            b1 = _i64(pr & np.uint64(0xFFFFFFFF))
            b2 = _enter(vars_, vfree, meta, _i64(pr >> np.uint64(32)))
            if (b1 & 7) == NUM:
                _free_node(node, nfree, meta, b >> 3)
                word = numbers.operate(np.uint32(a >> 3), np.uint32(b1 >> 3))
                ok = _link(rules, high, vars_, vfree, hi, lo, meta, _mk(NUM, _i64(word)), b2)
            else:
                # the number moves into the operator, which waits on b1: the
                # operator's slot is reused for the new node
                node[b >> 3] = _mkpair(a, b2)
                ok = _link(rules, high, vars_, vfree, hi, lo, meta, b1, _mk(OPR, b >> 3))
        elif rule == SWIT:
            pr = node[b >> 3]
            _free_node(node, nfree, meta, b >> 3)
            b1 = _i64(pr & np.uint64(0xFFFFFFFF))
            b2 = _i64(pr >> np.uint64(32))
            n = ((a >> 3) >> 5) & 0xFFFFFF
            if n == 0:
                loc = _alloc_node(node, nfree, meta)
                if loc < 0:
                    meta[_STATUS] = OOM_NODES
                    break
                node[loc] = _mkpair(b2, _mk(ERA, 0))
                ok = _link(rules, high, vars_, vfree, hi, lo, meta, _mk(CON, loc), b1)
            else:
                outer = _alloc_node(node, nfree, meta)
                inner = _alloc_node(node, nfree, meta)
                if outer < 0 or inner < 0:
                    meta[_STATUS] = OOM_NODES
                    break
                node[inner] = _mkpair(_mk(NUM, ((n - 1) << 5) | 1), b2)
                node[outer] = _mkpair(_mk(ERA, 0), _mk(CON, inner))
                ok = _link(rules, high, vars_, vfree, hi, lo, meta, _mk(CON, outer), b1)
        itrs += 1
        if not ok:
            meta[_STATUS] = OOM_REDEXES
            break
    meta[_ITRS] = itrs


@dataclass
class Normalized:
    """A net reduced to normal form (or as far as it got) and what it took."""

    node: np.ndarray
    vars: np.ndarray
    root: int
    interactions: int
    seconds: float


def normalize(book: Book, nodes: int = DEFAULT_NODES, vars_: int = DEFAULT_VARS) -> Normalized:
    """Run ``@main`` of ``book`` to normal form in a heap of ``nodes`` node
    slots and ``vars_`` variable slots; raise ``HvmOutOfMemoryError`` when the
    net outgrows it."""
    nodes = max(int(nodes), 2)
    vars_ = min(max(int(vars_), 2), 1 << 29)  # a variable slot is a 29-bit port value
    node = np.zeros(nodes, dtype=np.uint64)
    subst = np.zeros(vars_, dtype=np.uint32)
    stack = max(nodes, 1024)
    hi = np.empty(stack, dtype=np.uint64)
    lo = np.empty(stack, dtype=np.uint64)
    meta = np.zeros(_META, dtype=np.int64)
    meta[_NPUT] = 1
    meta[_VPUT] = 1
    root_slot = vars_ - 1
    root = (root_slot << 3) | VAR
    subst[root_slot] = NONE
    hi[0] = np.uint64((root << 32) | REF)  # the boot redex: @main (id 0) ~ ROOT
    meta[_HI] = 1
    # scratch: the slots of one CALL's (or COMM's) new nodes and variables
    nloc = np.zeros(max(4, int(np.diff(book.node_start).max(initial=0))), dtype=np.int64)
    vloc = np.zeros(max(4, int(book.vars.max(initial=0))), dtype=np.int64)
    nfree = np.empty(nodes, dtype=np.int64)
    vfree = np.empty(vars_, dtype=np.int64)
    arrays = (RULES, HIGH_PRIORITY, book.roots, book.node_start, book.nodes, book.rbag_start,
              book.rbag, book.vars, book.safe)  # fmt: skip
    # The first call in a process loads (or compiles) the kernel: make it on an
    # empty redex stack, so that the time measured is the reduction's only.
    idle = np.zeros(_META, dtype=np.int64)
    _normalize(node, subst, nfree, vfree, hi, lo, idle, *arrays, root, nloc, vloc)
    start = time.perf_counter()
    _normalize(node, subst, nfree, vfree, hi, lo, meta, *arrays, root, nloc, vloc)
    seconds = time.perf_counter() - start
    status = int(meta[_STATUS])
    if status in (OOM_NODES, OOM_VARS, OOM_REDEXES):
        what = {OOM_NODES: f"{nodes} node slots", OOM_VARS: f"{vars_} variable slots",
                OOM_REDEXES: f"{stack} pending redexes"}[status]  # fmt: skip
        raise HvmOutOfMemoryError(
            f"the net outgrew the heap ({what}) after {int(meta[_ITRS])} interactions"
        )
    if status == UNSAFE_CLONE:
        raise HvmUnsafeCloneError(
            f"attempt to clone a non-affine global reference: @{book.names[int(meta[_INFO])]} "
            "met a duplicator, and it contains or refers to duplicators"
        )
    return Normalized(node, subst, root, int(meta[_ITRS]), seconds)
