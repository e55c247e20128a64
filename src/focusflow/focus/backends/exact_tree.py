"""The ``exact-v3`` kernels on CPUs: every sum in chunks of 1,024 values and a fixed tree.

``exact-v2`` sums a vector over 64 fixed chunks, each a chain of n/64
dependent additions, and a row of the graph in one chain over its entries: on
a CPU that is as fast as any order, but a GPU can shorten neither chain
without changing the bits (a block at R-MAT 20 on an H200 spent 0.27 s in
chunk sums and 0.27 s in the hubs' rows: bench/RESULTS.md, ``cuda_exact.py``).
``exact-v3`` fixes the grouping by the data instead of by the CPU:

* a sum over particles (or over the SELL slots of a matrix, in storage order,
  padding adding nothing) is cut into chunks of ``TREE_CHUNK`` values, each
  added in order from 0.0, and the chunk partials are combined by
  ``reduce.tree_sum``;
* a row's products are summed the same way over its stored slots: a row of
  at most ``TREE_CHUNK`` slots (nearly all) in one chain as in ``exact-v2``,
  a hub's in chunks combined by the tree.

Everything else (each product and quotient, the element-wise passes, the
order inside a chunk and a row) is ``exact-v2``'s, and so is the code around
these kernels: ``ExactNumbaOperator`` swaps them in for ``exact-v3``. The
chunk partials are independent, so a GPU sums every chunk at once and then
the tree level by level (``cuda_exact``), with the same bits. A CPU's
threads take a matrix's rows by cost, as ``exact-v2``'s do, adding the
chunks that lie whole in their part as they go and the ones their bounds
cut afterwards (``_slot_sum``): neither the thread count nor the split
changes the bits.

All kernels set ``fastmath=False`` themselves and call only helpers that do
(``reduce.exact_twin`` explains why a callee must set it).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from focusflow.focus.backends.sell import U64, UC, C
from focusflow.focus.reduce import TREE_CHUNK, tree_sum

#: SELL groups in one chunk of slots (``TREE_CHUNK`` slots, ``C`` a group).
GROUPS = TREE_CHUNK // C
#: float64 values in a 64-byte cache line.
_LINE = 8


@nb.njit(cache=True, fastmath=False)
def _most_chunks(glen: np.ndarray, g0: int, g1: int) -> int:
    """Chunks of the longest row among groups ``g0`` to ``g1``: the room a
    work part keeps for a hub row's chunk sums, before their tree. Each part
    asks for its own groups, in its own thread: a maximum over the whole
    matrix before the parallel loop was a serial step of every pass (about
    2 % of one at 16 threads). (Groups are stored longest first, but a
    structure check does not promise it, and these kernels index without
    bounds checks: the largest is taken, not the first.)"""
    most = 1
    for g in range(g0, g1):
        m = (glen[g] + TREE_CHUNK - 1) // TREE_CHUNK
        if m > most:
            most = m
    return most


@nb.njit(cache=True, fastmath=False)
def _whole(bounds: np.ndarray, c: int, groups: int) -> tuple[int, int]:
    """The chunks of ``GROUPS`` groups that lie whole in work part ``c``
    (groups ``bounds[c]`` to ``bounds[c + 1]``; the last chunk may be short)."""
    lo = (bounds[c] + GROUPS - 1) // GROUPS
    end = bounds[c + 1]
    hi = (groups + GROUPS - 1) // GROUPS if end == groups else end // GROUPS
    return lo, max(lo, hi)


@nb.njit(cache=True, fastmath=False)
def _span(
    bounds: np.ndarray, c: int, groups: int, lo: int, hi: int, s: int
) -> tuple[int, int, int]:
    """Span ``s`` of work part ``c``'s groups as ``(first, end, chunk)``: the
    groups before its first whole chunk (``chunk`` -1), each whole chunk
    ``lo..hi-1`` in turn, then the groups after the last (-1). A part with
    no whole chunk is one cut span. The kernels add a whole chunk's terms
    as they go and write a cut span's for ``_slot_sum``, with no test per
    group or lane of which kind it is (that test cost the passes up to 25 %)."""
    end = bounds[c + 1]
    if lo >= hi:
        return bounds[c], end, -1
    if s == 0:
        return bounds[c], min(lo * GROUPS, end), -1
    if s == hi - lo + 1:
        return min(hi * GROUPS, groups), end, -1
    b = lo + s - 1
    return b * GROUPS, min(b * GROUPS + GROUPS, groups), b


@nb.njit(cache=True, fastmath=False)
def _slot_sum(bounds: np.ndarray, groups: int, partial: np.ndarray, terms: np.ndarray) -> float:
    """The sum of a matrix's per-slot terms (``chunked_sum``'s chunks and
    tree), from the partials of the chunks that lay whole in one work part
    (each summed by its thread as it went) and the terms the kernel wrote
    for the chunks cut by a part's bounds.

    The kernels split their threads' work by the rows' cost, as
    ``exact-v2``'s do: split at chunk boundaries, the first chunk (the 1,024
    longest rows) would be one thread's at any thread count; writing every
    term and summing them afterwards cost a matrix pass some per cent more
    (bench/exact_versions.py --kernels)."""
    blocks = partial.shape[0]
    whole = np.zeros(blocks, dtype=np.bool_)
    for c in range(bounds.shape[0] - 1):
        lo, hi = _whole(bounds, c, groups)
        for b in range(lo, hi):
            whole[b] = True
    n = groups * C
    for b in range(blocks):
        if not whole[b]:
            s = 0.0
            for i in range(b * TREE_CHUNK, min(n, (b + 1) * TREE_CHUNK)):
                s += terms[i]
            partial[b] = s
    return tree_sum(partial)


@nb.njit(cache=True, fastmath=False)
def _hub_row(
    acc: np.ndarray,
    part: np.ndarray,
    base: np.uint64,
    length: int,
    sidx: np.ndarray,
    sval: np.ndarray,
    x: np.ndarray,
) -> None:
    """``acc[lane]`` = a group's rows of more than ``TREE_CHUNK`` slots times
    ``x``: each chunk of slots added in order from 0.0, the chunks by the tree.

    Kept out of the kernels' row loop, whose rows of at most one chunk (all
    but the hubs' few groups) then run ``exact-v2``'s loop unchanged: the
    per-chunk bounds in that loop cost the passes 5-25 % on the CPU."""
    chunks = (length + TREE_CHUNK - 1) // TREE_CHUNK
    for ch in range(chunks):
        for lane in range(C):
            acc[lane] = 0.0
        for j in range(U64(ch * TREE_CHUNK), U64(min(length, (ch + 1) * TREE_CHUNK))):
            o = base + j * UC
            for lane in range(UC):
                acc[lane] += sval[o + lane] * x[U64(np.uint32(sidx[o + lane]))]
        for lane in range(C):
            part[lane, ch] = acc[lane]
    for lane in range(C):
        acc[lane] = tree_sum(part[lane, :chunks])


@nb.njit(cache=True, fastmath=False)
def _hub_pair(
    acc0: np.ndarray,
    acc1: np.ndarray,
    part: np.ndarray,
    base: np.uint64,
    length: int,
    sidx: np.ndarray,
    sval: np.ndarray,
    x2: np.ndarray,
) -> None:
    """``_hub_row`` for both columns of ``x2`` in one walk of the slots."""
    chunks = (length + TREE_CHUNK - 1) // TREE_CHUNK
    for ch in range(chunks):
        for lane in range(C):
            acc0[lane] = 0.0
            acc1[lane] = 0.0
        for j in range(U64(ch * TREE_CHUNK), U64(min(length, (ch + 1) * TREE_CHUNK))):
            o = base + j * UC
            for lane in range(UC):
                q = U64(np.uint32(sidx[o + lane]))
                v = sval[o + lane]
                acc0[lane] += v * x2[q, U64(0)]
                acc1[lane] += v * x2[q, U64(1)]
        for lane in range(C):
            part[lane, ch] = acc0[lane]
            part[C + lane, ch] = acc1[lane]
    for lane in range(C):
        acc0[lane] = tree_sum(part[lane, :chunks])
        acc1[lane] = tree_sum(part[C + lane, :chunks])


@nb.njit(cache=True, parallel=True, fastmath=False)
def sell_pull(
    grows: np.ndarray,
    gptr: np.ndarray,
    glen: np.ndarray,
    sidx: np.ndarray,
    sval: np.ndarray,
    z: np.ndarray,
    out: np.ndarray,
    bounds: np.ndarray,
    scale: float,
) -> float:
    """``out[r] = scale * sum_j W[j, r] z[j]`` for every row; returns the sum."""
    groups = glen.shape[0]
    partial = np.zeros((groups + GROUPS - 1) // GROUPS)
    terms = np.empty(groups * C)
    for c in nb.prange(bounds.shape[0] - 1):
        acc = np.zeros(C)
        part = np.empty((C, _most_chunks(glen, bounds[c], bounds[c + 1])))
        lo, hi = _whole(bounds, c, groups)
        spans = hi - lo + 2 if lo < hi else 1
        for s in range(spans):
            g0, g1, b = _span(bounds, c, groups, lo, hi, s)
            run = 0.0
            for g in range(g0, g1):
                length = glen[g]
                base = U64(gptr[g])
                if length <= TREE_CHUNK:
                    for lane in range(C):
                        acc[lane] = 0.0
                    for j in range(U64(length)):
                        o = base + j * UC
                        for lane in range(UC):
                            acc[lane] += sval[o + lane] * z[U64(np.uint32(sidx[o + lane]))]
                else:
                    _hub_row(acc, part, base, length, sidx, sval, z)
                if b >= 0:
                    for lane in range(C):
                        r = grows[g * C + lane]
                        if r >= 0:
                            term = acc[lane] * scale
                            out[r] = term
                            run += term
                else:
                    for lane in range(C):
                        r = grows[g * C + lane]
                        term = 0.0
                        if r >= 0:
                            term = acc[lane] * scale
                            out[r] = term
                        terms[g * C + lane] = term
            if b >= 0:
                partial[b] = run
    return _slot_sum(bounds, groups, partial, terms)


@nb.njit(cache=True, parallel=True, fastmath=False)
def lap_apply(
    grows: np.ndarray,
    gptr: np.ndarray,
    glen: np.ndarray,
    sidx: np.ndarray,
    sval: np.ndarray,
    bounds: np.ndarray,
    diag: np.ndarray,
    x: np.ndarray,
    out: np.ndarray,
) -> None:
    """``out = diag * x - N x``."""
    for c in nb.prange(bounds.shape[0] - 1):
        acc = np.zeros(C)
        part = np.empty((C, _most_chunks(glen, bounds[c], bounds[c + 1])))
        for g in range(bounds[c], bounds[c + 1]):
            length = glen[g]
            base = U64(gptr[g])
            if length <= TREE_CHUNK:
                for lane in range(C):
                    acc[lane] = 0.0
                for j in range(U64(length)):
                    o = base + j * UC
                    for lane in range(UC):
                        acc[lane] += sval[o + lane] * x[U64(np.uint32(sidx[o + lane]))]
            else:
                _hub_row(acc, part, base, length, sidx, sval, x)
            for lane in range(C):
                r = grows[g * C + lane]
                if r >= 0:
                    out[r] = diag[r] * x[r] - acc[lane]


@nb.njit(cache=True, parallel=True, fastmath=False)
def cheb_step(  # noqa: PLR0913 - numba_lap.cheb_step's signature
    grows: np.ndarray,
    gptr: np.ndarray,
    glen: np.ndarray,
    sidx: np.ndarray,
    sval: np.ndarray,
    bounds: np.ndarray,
    diag: np.ndarray,
    scale: float,
    t_cur: np.ndarray,
    t_prev: np.ndarray,
    acc_out: np.ndarray,
    a_k: float,
    a_0: float,
    first: bool,
) -> None:
    """One Chebyshev term (``numba_lap.cheb_step``)."""
    for c in nb.prange(bounds.shape[0] - 1):
        acc = np.zeros(C)
        part = np.empty((C, _most_chunks(glen, bounds[c], bounds[c + 1])))
        for g in range(bounds[c], bounds[c + 1]):
            length = glen[g]
            base = U64(gptr[g])
            if length <= TREE_CHUNK:
                for lane in range(C):
                    acc[lane] = 0.0
                for j in range(U64(length)):
                    o = base + j * UC
                    for lane in range(UC):
                        acc[lane] += sval[o + lane] * t_cur[U64(np.uint32(sidx[o + lane]))]
            else:
                _hub_row(acc, part, base, length, sidx, sval, t_cur)
            for lane in range(C):
                r = grows[g * C + lane]
                if r >= 0:
                    tc = t_cur[r]
                    u = scale * (diag[r] * tc - acc[lane]) - tc
                    if first:
                        t_prev[r] = u
                        acc_out[r] = a_0 * tc + a_k * u
                    else:
                        v = 2.0 * u - t_prev[r]
                        t_prev[r] = v
                        acc_out[r] += a_k * v


@nb.njit(cache=True, parallel=True, fastmath=False)
def cg_product(
    grows: np.ndarray,
    gptr: np.ndarray,
    glen: np.ndarray,
    sidx: np.ndarray,
    sval: np.ndarray,
    bounds: np.ndarray,
    diag_mu: np.ndarray,
    p: np.ndarray,
    ap: np.ndarray,
) -> float:
    """``ap = (diag + mu) p - N p``; returns ``p . ap`` (terms in storage order)."""
    groups = glen.shape[0]
    partial = np.zeros((groups + GROUPS - 1) // GROUPS)
    terms = np.empty(groups * C)
    for c in nb.prange(bounds.shape[0] - 1):
        acc = np.zeros(C)
        part = np.empty((C, _most_chunks(glen, bounds[c], bounds[c + 1])))
        lo, hi = _whole(bounds, c, groups)
        spans = hi - lo + 2 if lo < hi else 1
        for s in range(spans):
            g0, g1, b = _span(bounds, c, groups, lo, hi, s)
            run = 0.0
            for g in range(g0, g1):
                length = glen[g]
                base = U64(gptr[g])
                if length <= TREE_CHUNK:
                    for lane in range(C):
                        acc[lane] = 0.0
                    for j in range(U64(length)):
                        o = base + j * UC
                        for lane in range(UC):
                            acc[lane] += sval[o + lane] * p[U64(np.uint32(sidx[o + lane]))]
                else:
                    _hub_row(acc, part, base, length, sidx, sval, p)
                if b >= 0:
                    for lane in range(C):
                        r = grows[g * C + lane]
                        if r >= 0:
                            v = diag_mu[r] * p[r] - acc[lane]
                            ap[r] = v
                            run += p[r] * v
                else:
                    for lane in range(C):
                        r = grows[g * C + lane]
                        term = 0.0
                        if r >= 0:
                            v = diag_mu[r] * p[r] - acc[lane]
                            ap[r] = v
                            term = p[r] * v
                        terms[g * C + lane] = term
            if b >= 0:
                partial[b] = run
    return _slot_sum(bounds, groups, partial, terms)


@nb.njit(cache=True, parallel=True, fastmath=False)
def pair_step(  # noqa: PLR0912, PLR0913 - numba_lap.pair_step's signature, one pass
    grows: np.ndarray,
    gptr: np.ndarray,
    glen: np.ndarray,
    sidx: np.ndarray,
    sval: np.ndarray,
    bounds: np.ndarray,
    x2: np.ndarray,
    diag_mu: np.ndarray,
    ap: np.ndarray,
    do_cg: bool,
    diag: np.ndarray,
    scale: float,
    t_prev: np.ndarray,
    t_next: np.ndarray,
    acc_out: np.ndarray,
    a_k: float,
    a_0: float,
    first: bool,
    do_heat: bool,
) -> float:
    """A CG product and a Chebyshev term in one pass (``numba_lap.pair_step``)."""
    groups = glen.shape[0]
    partial = np.zeros((groups + GROUPS - 1) // GROUPS)
    terms = np.empty(groups * C)
    for c in nb.prange(bounds.shape[0] - 1):
        acc0 = np.zeros(C)
        acc1 = np.zeros(C)
        part = np.empty((2 * C, _most_chunks(glen, bounds[c], bounds[c + 1])))
        lo, hi = _whole(bounds, c, groups)
        run = 0.0
        for g in range(bounds[c], bounds[c + 1]):
            b = g // GROUPS
            whole = b >= lo and b < hi
            if whole and g % GROUPS == 0:
                run = 0.0
            length = glen[g]
            base = U64(gptr[g])
            if length <= TREE_CHUNK:
                for lane in range(C):
                    acc0[lane] = 0.0
                    acc1[lane] = 0.0
                for j in range(U64(length)):
                    o = base + j * UC
                    for lane in range(UC):
                        q = U64(np.uint32(sidx[o + lane]))
                        v = sval[o + lane]
                        acc0[lane] += v * x2[q, U64(0)]
                        acc1[lane] += v * x2[q, U64(1)]
            else:
                _hub_pair(acc0, acc1, part, base, length, sidx, sval, x2)
            for lane in range(C):
                r = grows[g * C + lane]
                term = 0.0
                if r >= 0:
                    if do_cg:
                        pr = x2[r, 0]
                        w = diag_mu[r] * pr - acc0[lane]
                        ap[r] = w
                        term = pr * w
                    if do_heat:
                        tc = x2[r, 1]
                        u = scale * (diag[r] * tc - acc1[lane]) - tc
                        if first:
                            t_next[r] = u
                            acc_out[r] = a_0 * tc + a_k * u
                        else:
                            v = 2.0 * u - t_prev[r]
                            t_next[r] = v
                            acc_out[r] += a_k * v
                        t_prev[r] = tc
                if whole:
                    run += term
                else:
                    terms[g * C + lane] = term
            if whole:
                partial[b] = run
    return _slot_sum(bounds, groups, partial, terms)


@nb.njit(cache=True, parallel=True, fastmath=False)
def cg_update(
    y: np.ndarray,
    r: np.ndarray,
    p: np.ndarray,
    ap: np.ndarray,
    minv: np.ndarray,
    step: float,
    z: np.ndarray,
) -> tuple[float, float]:
    """``y += step p; r -= step ap; z = minv r``; returns ``(r . z, r . r)``."""
    n = y.shape[0]
    chunks = (n + TREE_CHUNK - 1) // TREE_CHUNK
    rz = np.zeros(chunks)
    rr = np.zeros(chunks)
    for c in nb.prange(chunks):
        a = 0.0
        b = 0.0
        for i in range(c * TREE_CHUNK, min(n, (c + 1) * TREE_CHUNK)):
            y[i] += step * p[i]
            ri = r[i] - step * ap[i]
            r[i] = ri
            zi = minv[i] * ri
            z[i] = zi
            a += ri * zi
            b += ri * ri
        rz[c] = a
        rr[c] = b
    return tree_sum(rz), tree_sum(rr)


@nb.njit(cache=True, parallel=True, fastmath=False)
def cg_start(r: np.ndarray, minv: np.ndarray, z: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """``z = p = minv r``; returns ``(r . z, r . r)``."""
    n = r.shape[0]
    chunks = (n + TREE_CHUNK - 1) // TREE_CHUNK
    rz = np.zeros(chunks)
    rr = np.zeros(chunks)
    for c in nb.prange(chunks):
        a = 0.0
        b = 0.0
        for i in range(c * TREE_CHUNK, min(n, (c + 1) * TREE_CHUNK)):
            ri = r[i]
            zi = minv[i] * ri
            z[i] = zi
            p[i] = zi
            a += ri * zi
            b += ri * ri
        rz[c] = a
        rr[c] = b
    return tree_sum(rz), tree_sum(rr)


@nb.njit(cache=True, parallel=True, fastmath=False)
def springs_rhs(
    phi: np.ndarray, sigma: np.ndarray, mu: float, rhs: np.ndarray, r: np.ndarray, fresh: bool
) -> float:
    """``numba_lap.springs_rhs``: returns ``||mu sigma phi||_2^2``."""
    n = phi.shape[0]
    chunks = (n + TREE_CHUNK - 1) // TREE_CHUNK
    sq = np.zeros(chunks)
    for c in nb.prange(chunks):
        s = 0.0
        for i in range(c * TREE_CHUNK, min(n, (c + 1) * TREE_CHUNK)):
            v = mu * sigma[i] * phi[i]
            if not fresh:
                r[i] += v - rhs[i]
            rhs[i] = v
            s += v * v
        sq[c] = s
    return tree_sum(sq)


@nb.njit(cache=True, parallel=True, fastmath=False)
def finish_diffusion(
    ylink: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    prior: np.ndarray,
    inv_out: np.ndarray,
    z: np.ndarray,
    tele: float,
    nparts: int,
) -> tuple[float, float]:
    """``y = ylink + tele * prior``; returns ``(||y - x||_1, sum y)``, writes
    ``z = y / W`` (``nparts``: the other arithmetics' argument, unused)."""
    n = y.shape[0]
    chunks = (n + TREE_CHUNK - 1) // TREE_CHUNK
    l1 = np.zeros(chunks)
    mass = np.zeros(chunks)
    for c in nb.prange(chunks):
        a = 0.0
        m = 0.0
        for i in range(c * TREE_CHUNK, min(n, (c + 1) * TREE_CHUNK)):
            v = ylink[i] + tele * prior[i]
            y[i] = v
            a += abs(v - x[i])
            m += v
            z[i] = v * inv_out[i]
        l1[c] = a
        mass[c] = m
    return tree_sum(l1), tree_sum(mass)


@nb.njit(cache=True, parallel=True, fastmath=False)
def dot(a: np.ndarray, b: np.ndarray, nparts: int) -> float:
    """``a . b`` (``nparts`` unused, as in ``finish_diffusion``)."""
    n = a.shape[0]
    chunks = (n + TREE_CHUNK - 1) // TREE_CHUNK
    partial = np.zeros(chunks)
    for c in nb.prange(chunks):
        s = 0.0
        for i in range(c * TREE_CHUNK, min(n, (c + 1) * TREE_CHUNK)):
            s += a[i] * b[i]
        partial[c] = s
    return tree_sum(partial)


@nb.njit(cache=True, parallel=True, fastmath=False)
def blend_sum(
    d: np.ndarray,
    s: np.ndarray,
    h: np.ndarray,
    ld: float,
    ls: float,
    lh: float,
    use_s: bool,
    use_h: bool,
    nparts: int,
) -> float:
    """``d = ld d + ls s + lh h`` (``numba_cpu._blend_sum``); returns ``sum(d)``."""
    n = d.shape[0]
    chunks = (n + TREE_CHUNK - 1) // TREE_CHUNK
    partial = np.zeros(chunks)
    for c in nb.prange(chunks):
        m = 0.0
        for i in range(c * TREE_CHUNK, min(n, (c + 1) * TREE_CHUNK)):
            v = ld * d[i]
            if use_s:
                v = v + ls * s[i]
            if use_h:
                v = v + lh * h[i]
            d[i] = v
            m += v
        partial[c] = m
    return tree_sum(partial)


@nb.njit(cache=True, parallel=True, fastmath=False)
def divide_l1(d: np.ndarray, phi: np.ndarray, total: float, nparts: int) -> float:
    """``d /= total``; returns ``||d - phi||_1``."""
    n = d.shape[0]
    chunks = (n + TREE_CHUNK - 1) // TREE_CHUNK
    partial = np.zeros(chunks)
    for c in nb.prange(chunks):
        a = 0.0
        for i in range(c * TREE_CHUNK, min(n, (c + 1) * TREE_CHUNK)):
            v = d[i] / total
            d[i] = v
            a += abs(v - phi[i])
        partial[c] = a
    return tree_sum(partial)


@nb.njit(cache=True, fastmath=False)
def csr_pull_add(
    rows: np.ndarray,
    ptr: np.ndarray,
    indices: np.ndarray,
    weights: np.ndarray,
    z: np.ndarray,
    out: np.ndarray,
    scale: float,
) -> float:
    """``sell.csr_pull_add`` (the overlay's rows added into ``out``) with
    ``exact-v3``'s sums: a row in chunks combined by the tree, and the rows'
    values summed in chunks of rows combined by the tree."""
    count = rows.shape[0]
    partial = np.zeros((count + TREE_CHUNK - 1) // TREE_CHUNK)
    run = 0.0
    for k in range(count):
        lo, hi = ptr[k], ptr[k + 1]
        if hi - lo <= TREE_CHUNK:
            # One chunk: the tree of one partial is that partial, so no
            # arrays per row (an overlay holds a block's many short rows).
            acc = 0.0
            for e in range(lo, hi):
                acc += weights[e] * z[indices[e]]
            v = acc * scale
        else:
            chunks = (hi - lo + TREE_CHUNK - 1) // TREE_CHUNK
            part = np.zeros(chunks)
            for c in range(chunks):
                acc = 0.0
                for e in range(lo + c * TREE_CHUNK, min(hi, lo + (c + 1) * TREE_CHUNK)):
                    acc += weights[e] * z[indices[e]]
                part[c] = acc
            v = tree_sum(part) * scale
        out[rows[k]] += v
        if k % TREE_CHUNK == 0:
            run = 0.0
        run += v
        partial[k // TREE_CHUNK] = run
    return tree_sum(partial)


@nb.njit(cache=True, parallel=True, fastmath=False)
def _record(
    x: np.ndarray,
    gx: np.ndarray,
    x_prev: np.ndarray,
    g_prev: np.ndarray,
    dx: np.ndarray,
    dg: np.ndarray,
    slot: int,
    have_prev: bool,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``anderson._record`` with the Gram products as ``exact-v3`` sums.

    Each chunk's row of ``cross`` and ``rhs`` is padded past a cache line
    from the next: threads adding into neighbouring chunks' rows of one line
    made a call on a small vector (two chunks) three times slower."""
    n = x.shape[0]
    m = dx.shape[0]
    chunks = (n + TREE_CHUNK - 1) // TREE_CHUNK
    wide = (m + _LINE - 1) // _LINE * _LINE + _LINE
    cross = np.zeros((chunks, wide))
    rhs = np.zeros((chunks, wide))
    for c in nb.prange(chunks):
        for i in range(c * TREE_CHUNK, min(n, (c + 1) * TREE_CHUNK)):
            g = gx[i] - x[i]
            if have_prev:
                dx[slot, i] = x[i] - x_prev[i]
                dg[slot, i] = g - g_prev[i]
                d_new = dg[slot, i]
                for j in range(k):
                    cross[c, j] += d_new * dg[j, i]
                    rhs[c, j] += dg[j, i] * g
            x_prev[i] = x[i]
            g_prev[i] = g
    cross_sum = np.zeros(m)
    rhs_sum = np.zeros(m)
    for j in range(k):
        cross_sum[j] = tree_sum(np.ascontiguousarray(cross[:, j]))
        rhs_sum[j] = tree_sum(np.ascontiguousarray(rhs[:, j]))
    return cross_sum, rhs_sum


@nb.njit(cache=True, parallel=True, fastmath=False)
def _mix(
    gx: np.ndarray, dx: np.ndarray, dg: np.ndarray, gamma: np.ndarray, k: int, out: np.ndarray
) -> float:
    """``anderson._mix``: ``out = max(gx - sum_j gamma_j (dx_j + dg_j), 0)``;
    returns ``sum(out)``."""
    n = gx.shape[0]
    chunks = (n + TREE_CHUNK - 1) // TREE_CHUNK
    partial = np.zeros(chunks)
    for c in nb.prange(chunks):
        s = 0.0
        for i in range(c * TREE_CHUNK, min(n, (c + 1) * TREE_CHUNK)):
            v = gx[i]
            for j in range(k):
                v -= gamma[j] * (dx[j, i] + dg[j, i])
            if v < 0.0:
                v = 0.0
            out[i] = v
            s += v
        partial[c] = s
    return tree_sum(partial)


class TreeAnderson:
    """Anderson mixing's two passes in ``exact-v3`` (``base.AndersonKernels``),
    on the host: what the ``exact-v3`` numba operator offers the solver."""

    @staticmethod
    def record(
        x: np.ndarray,
        gx: np.ndarray,
        x_prev: np.ndarray,
        g_prev: np.ndarray,
        dx: np.ndarray,
        dg: np.ndarray,
        slot: int,
        live: bool,
        k: int,
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        cross, rhs = _record(x, gx, x_prev, g_prev, dx, dg, slot, live, k)
        return cross, rhs

    @staticmethod
    def mix(
        gx: np.ndarray, dx: np.ndarray, dg: np.ndarray, gamma: np.ndarray, k: int, out: np.ndarray
    ) -> float:
        return float(_mix(gx, dx, dg, gamma, k, out))
