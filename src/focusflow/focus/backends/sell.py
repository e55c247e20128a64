"""SELL-C-sigma storage of the in-link matrix for the diffusion product.

Pull-style CSR SpMV on a power-law graph spends most of its time in the short
rows: every row is a dependent chain of adds, too short to vectorise. SELL-C
(Kreutzer, Hager, Wellein, Fehske and Bishop, SIAM J. Sci. Comput. 2014) sorts
rows by length, packs them in groups of C and stores each group column-major,
padded to its longest row, so that C rows advance together in SIMD lanes with
C independent sums. Sorting all rows (sigma = n) keeps the padding near 1%
here. Row order inside the storage is free: results are written to ``rows``.
"""

from __future__ import annotations

import numba as nb
import numpy as np

#: Rows per group: 8 float64 sums fill two AVX2 registers.
C = 8


@nb.njit(cache=True)
def _fill(grows, gptr, indptr, indices, weights, dtype_probe):
    total = gptr[-1]
    sidx = np.zeros(total, dtype=np.int32)
    sval = np.zeros(total, dtype=dtype_probe.dtype)
    pos = np.empty(indices.shape[0], dtype=np.int64)
    for g in range(gptr.shape[0] - 1):
        for lane in range(C):
            r = grows[g * C + lane]
            if r < 0:
                continue
            a = indptr[r]
            for j in range(indptr[r + 1] - a):
                o = gptr[g] + j * C + lane
                sidx[o] = indices[a + j]
                sval[o] = weights[a + j]
                pos[a + j] = o
    return sidx, sval, pos


class SellMatrix:
    """A CSR matrix (rows = targets) in SELL-C layout, with an entry map for updates."""

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray, dtype) -> None:
        length = np.diff(indptr)
        rows = np.flatnonzero(length > 0)
        order = rows[np.argsort(-length[rows], kind="stable")]
        groups = (len(order) + C - 1) // C
        self.grows = np.full(groups * C, -1, dtype=np.int64)
        self.grows[: len(order)] = order
        self.glen = length[self.grows[::C]] if groups else np.zeros(0, dtype=np.int64)
        self.gptr = np.zeros(groups + 1, dtype=np.int64)
        np.cumsum(self.glen * C, out=self.gptr[1:])
        self.sidx, self.sval, pos = _fill(
            self.grows, self.gptr, indptr, indices, weights, np.zeros(1, dtype=dtype)
        )
        self.pos = pos.astype(np.int32) if len(self.sidx) < 2**31 else pos
        self.has_row = length > 0

    def update(self, entries: np.ndarray, weights: np.ndarray) -> None:
        """Copy new values of CSR entries ``entries`` (positions in the CSR arrays)."""
        self.sval[self.pos[entries]] = weights[entries]


@nb.njit(cache=True, parallel=True, fastmath=True)
def sell_pull(grows, gptr, glen, sidx, sval, z, out, bounds, scale):
    """``out[r] = scale * sum_j W[j, r] z[j]`` for every row stored; returns the sum."""
    nchunks = bounds.shape[0] - 1
    partial = np.zeros(nchunks)
    for c in nb.prange(nchunks):
        acc = np.zeros(C)
        total = 0.0
        for g in range(bounds[c], bounds[c + 1]):
            for lane in range(C):
                acc[lane] = 0.0
            base = gptr[g]
            for j in range(glen[g]):
                o = base + j * C
                for lane in range(C):
                    acc[lane] += sval[o + lane] * z[sidx[o + lane]]
            for lane in range(C):
                r = grows[g * C + lane]
                if r >= 0:
                    v = acc[lane] * scale
                    out[r] = v
                    total += v
        partial[c] = total
    return partial.sum()


@nb.njit(cache=True)
def csr_pull_add(rows, indptr, indices, weights, z, out, has_base, scale):
    """Overlay rows: add (or, for rows without base entries, set) their sums."""
    total = 0.0
    for k in range(rows.shape[0]):
        r = rows[k]
        acc = 0.0
        for e in range(indptr[r], indptr[r + 1]):
            acc += weights[e] * z[indices[e]]
        v = acc * scale
        if has_base[r]:
            out[r] += v
        else:
            out[r] = v
        total += v
    return total
