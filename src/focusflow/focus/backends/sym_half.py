"""The scaled symmetric matrix stored once per pair, for the fast series passes.

``ScaledSymmetric`` keeps ``N = sigma (W + W^T) sigma`` in SELL-8 storage with
both ``N_rq`` and ``N_qr``, so a product streams every pair twice (8 bytes a
slot with float32 values). On a two-core machine that stream is the pass's
cost: 31.4M slots at R-MAT scale 20 take 24 ms per Chebyshev term
(bench/tri_cost.py). This layout keeps each pair once, in the row of the
endpoint with fewer entries, pointing at the one with more, so that a pass
streams half the bytes. The row gathers ``x[q]`` as before and also adds
``N_rq x_r`` into ``q``'s sum: the other half of the product. Those adds go to
a buffer private to the pass's partition (no atomics), and a second, short
pass over the particles sums the partitions' buffers and applies the
Chebyshev recurrence. Since a row points at the endpoint with more entries,
the gathers and adds mostly land on hubs, whose values stay in cache.

What it costs: one buffer of ``n`` float64 per partition, zeroed and read once
per pass, so it is used only where that traffic is at most half of what the
layout saves (``worth``); the partition count is fixed when it is built, and
the sums' grouping depends on it, so the results are the same bits for the
same partition count and within rounding of the full layout otherwise. The
exact kernels never use it: their sums keep the full layout's fixed order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numba as nb
import numpy as np

from focusflow.focus.backends.sell import U64, UC, C, group_bounds

if TYPE_CHECKING:
    from focusflow.focus.backends.numba_lap import ScaledSymmetric

#: What a group costs beside its slots, in slots (measured, see ``HalfSymmetric``).
GROUP_SLOTS = 6 * C


@nb.njit(cache=True, parallel=True)
def _count(
    grows: np.ndarray,
    gptr: np.ndarray,
    glen: np.ndarray,
    sidx: np.ndarray,
    sval: np.ndarray,
    bounds: np.ndarray,
    rank: np.ndarray,
    count: np.ndarray,
    self_val: np.ndarray,
) -> None:
    """Per row, the slots kept (a nonzero pointing at a higher-ranked row) and
    the row's own entry (a self-link), which no row points at."""
    for c in nb.prange(bounds.shape[0] - 1):
        for g in range(bounds[c], bounds[c + 1]):
            base = gptr[g]
            for lane in range(C):
                r = grows[g * C + lane]
                if r < 0:
                    continue
                k = 0
                own = 0.0
                for j in range(glen[g]):
                    o = base + j * C + lane
                    v = sval[o]
                    if v == 0.0:
                        continue
                    q = sidx[o]
                    if q == r:
                        own += v
                    elif rank[q] < rank[r]:
                        k += 1
                count[r] = k
                self_val[r] = own


@nb.njit(cache=True, parallel=True)
def _fill(  # noqa: PLR0913 - a numba kernel takes flat arrays
    grows: np.ndarray,
    gptr: np.ndarray,
    glen: np.ndarray,
    sidx: np.ndarray,
    sval: np.ndarray,
    bounds: np.ndarray,
    rank: np.ndarray,
    pos: np.ndarray,
    hgptr: np.ndarray,
    hidx: np.ndarray,
    hval: np.ndarray,
) -> None:
    """The kept slots of every row into its lane of the new groups, in the full
    layout's order; padding points at the row itself with value 0."""
    for c in nb.prange(bounds.shape[0] - 1):
        for g in range(bounds[c], bounds[c + 1]):
            base = gptr[g]
            for lane in range(C):
                r = grows[g * C + lane]
                if r < 0:
                    continue
                p = pos[r]
                hg = p // C
                hl = p % C
                hbase = hgptr[hg]
                width = (hgptr[hg + 1] - hbase) // C
                k = 0
                for j in range(glen[g]):
                    o = base + j * C + lane
                    v = sval[o]
                    q = sidx[o]
                    if v != 0.0 and q != r and rank[q] < rank[r]:
                        d = hbase + k * C + hl
                        hidx[d] = q
                        hval[d] = v
                        k += 1
                for j in range(k, width):
                    d = hbase + j * C + hl
                    hidx[d] = r
                    hval[d] = 0.0


@nb.njit(cache=True, parallel=True, fastmath=True)
def half_product(
    grows: np.ndarray,
    gptr: np.ndarray,
    glen: np.ndarray,
    sidx: np.ndarray,
    sval: np.ndarray,
    bounds: np.ndarray,
    x: np.ndarray,
    bufs: np.ndarray,
) -> None:
    """``bufs[p] += N x`` for the rows of partition ``p`` and the pairs they
    hold: each row's own sum into its entry, each pair's other half into the
    entry of the row it points at. ``bufs`` enter zero (``half_cheb`` leaves
    them so)."""
    for p in nb.prange(bounds.shape[0] - 1):
        b = bufs[p]
        acc = np.zeros(C)
        xr = np.zeros(C)
        for g in range(bounds[p], bounds[p + 1]):
            for lane in range(C):
                acc[lane] = 0.0
                r = grows[g * C + lane]
                xr[lane] = x[r] if r >= 0 else 0.0
            base = U64(gptr[g])
            for j in range(U64(glen[g])):
                o = base + j * UC
                for lane in range(UC):
                    acc[lane] += sval[o + lane] * x[U64(np.uint32(sidx[o + lane]))]
                for lane in range(UC):
                    b[U64(np.uint32(sidx[o + lane]))] += sval[o + lane] * xr[lane]
            for lane in range(C):
                r = grows[g * C + lane]
                if r >= 0:
                    b[r] += acc[lane]


@nb.njit(cache=True, parallel=True, fastmath=True)
def half_cheb(
    bufs: np.ndarray,
    diag: np.ndarray,
    scale: float,
    t_cur: np.ndarray,
    t_prev: np.ndarray,
    acc_out: np.ndarray,
    a_k: float,
    a_0: float,
    first: bool,
) -> None:
    """The Chebyshev term of ``numba_lap.cheb_step`` from the summed buffers
    (``diag`` less the self-links' values), zeroing them for the next pass."""
    parts = bufs.shape[0]
    for r in nb.prange(t_cur.shape[0]):
        s = 0.0
        for p in range(parts):
            s += bufs[p, r]
            bufs[p, r] = 0.0
        tc = t_cur[r]
        u = scale * (diag[r] * tc - s) - tc
        if first:
            t_prev[r] = u
            acc_out[r] = a_0 * tc + a_k * u
        else:
            v = 2.0 * u - t_prev[r]
            t_prev[r] = v
            acc_out[r] += a_k * v


class HalfSymmetric:
    """``N`` of a ``ScaledSymmetric`` with each pair once (module docstring)."""

    def __init__(self, sym: ScaledSymmetric, parts: int) -> None:
        grows, gptr, glen, sidx, sval, bounds = (
            sym.grows,
            sym.gptr,
            sym.glen,
            sym.sidx,
            sym.sval,
            sym.bounds,
        )
        diag = sym.diag
        n = len(diag)
        rank = np.empty(n, dtype=np.int64)
        rank[grows[:n]] = np.arange(n)
        count = np.zeros(n, dtype=np.int64)
        self_val = np.zeros(n)
        _count(grows, gptr, glen, sidx, sval, bounds, rank, count, self_val)
        order = np.argsort(-count, kind="stable")
        pos = np.empty(n, dtype=np.int64)
        pos[order] = np.arange(n)
        groups = (n + C - 1) // C
        self.grows = np.full(groups * C, -1, dtype=np.int64)
        self.grows[:n] = order
        self.glen = count[self.grows[::C]] if groups else np.zeros(0, dtype=np.int64)
        self.gptr = np.zeros(groups + 1, dtype=np.int64)
        np.cumsum(self.glen * C, out=self.gptr[1:])
        size = int(self.gptr[-1])
        # zeros: the last group's lanes past n point at row 0 with value 0
        self.sidx = np.zeros(size, dtype=np.int32)
        self.sval = np.zeros(size, dtype=sval.dtype)
        _fill(grows, gptr, glen, sidx, sval, bounds, rank, pos, self.gptr, self.sidx, self.sval)
        # A group's own reads and adds of its rows' values cost about as much
        # as 6 slots a lane (R-MAT 20: partitions split by slots alone took
        # 11.4 and 20.1 ms; with the group cost, 16.5 and 15.8).
        self.bounds = group_bounds(self.gptr, parts, GROUP_SLOTS)
        self.diag = diag - self_val
        self.bufs = np.zeros((len(self.bounds) - 1, n))

    @staticmethod
    def worth(nnz: int, n: int, parts: int) -> bool:
        """Whether the buffers' traffic (``parts`` vectors of ``n`` float64, read
        and zeroed per pass) is at most half the bytes the layout saves (half
        of ``nnz`` slots of at least 8 bytes)."""
        return 16 * parts * n <= 2 * nnz

    def step(
        self,
        scale: float,
        t_cur: np.ndarray,
        t_prev: np.ndarray,
        acc_out: np.ndarray,
        a_k: float,
        a_0: float,
        first: bool,
    ) -> None:
        """One term, as ``numba_lap.cheb_step`` computes it."""
        half_product(self.grows, self.gptr, self.glen, self.sidx, self.sval, self.bounds,
                     t_cur, self.bufs)  # fmt: skip
        half_cheb(self.bufs, self.diag, scale, t_cur, t_prev, acc_out, a_k, a_0, first)
