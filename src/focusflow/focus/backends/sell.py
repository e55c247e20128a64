"""SELL-C-sigma storage of a CSR matrix for pull-style products.

Pull-style CSR SpMV on a power-law graph spends most of its time in the short
rows: every row is a dependent chain of adds, too short to vectorise. SELL-C
(Kreutzer, Hager, Wellein, Fehske and Bishop, SIAM J. Sci. Comput. 2014) sorts
rows by length, packs them in groups of C and stores each group column-major,
padded to its longest row, so that C rows advance together (SIMD lanes on a
CPU, the 32 threads of a warp on a GPU) with C independent sums. Sorting all
rows (sigma = n) keeps the padding near 1% on R-MAT graphs. Row order inside
the storage is free: results are written to ``grows``.

Every row is stored, empty ones too (as zero-length groups at the end), so a
product writes every output entry and no entry depends on a buffer having been
zeroed before. On GPUs, rows longer than ``long_row`` are left out of the
groups and listed in ``long_rows``: one thread per row would leave a warp
running a hub's hundred thousand entries alone while the rest of the GPU idles;
those rows are summed by many warps instead.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from focusflow.core.structure import Check
from focusflow.focus.reduce import ordered_sum
from focusflow.graph.csr import balanced_chunks, radix_argsort

#: Lanes of the CPU kernel: 8 float64 sums fill two AVX2 registers.
C = 8
#: The CPU kernels index with unsigned integers: numba wraps a negative signed
#: index around (``a[-1]``), and that check turned every load of the slot
#: arrays into a masked gather. Unsigned, the slots load as plain vectors, and
#: a product takes about a quarter less time (bench/RESULTS.md, tri_cost.py).
#: Slot indices are never negative (``check_structure``).
U64 = np.uint64
UC = np.uint64(C)


def group_bounds(gptr: np.ndarray, parts: int, group_slots: int) -> np.ndarray:
    """Group boundaries of ``parts`` contiguous ranges of about equal cost, a
    group costing its slots plus ``group_slots``: the reads and writes of its
    rows' own values, which ``balanced_chunks`` of the slots alone ignores. A
    degree-sorted matrix has its short rows, so most of its groups, at the end,
    and a split by slots left that thread the longer part (R-MAT 20 on two
    cores: the diffusion pull 12.0 ms split by slots, 9.6 with 4 slots a lane
    per group)."""
    cost = gptr + group_slots * np.arange(len(gptr), dtype=np.int64)
    return balanced_chunks(cost, parts)


#: Chunks of groups (equal slots each) that fill the storage in parallel.
_FILL_PARTS = 64


@nb.njit(cache=True, parallel=True)
def _fill(
    grows: np.ndarray,
    gptr: np.ndarray,
    c: int,
    indptr: np.ndarray,
    indices: np.ndarray,
    weights: np.ndarray,
    dtype_probe: np.ndarray,
    bounds: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The groups' slots (padding 0) and each CSR entry's slot (-1: a long
    row's), in parallel over chunks of groups holding equal slots; a group's
    slots are written in storage order (its rows advance together)."""
    total = gptr[-1]
    sidx = np.empty(total, dtype=np.int32)
    sval = np.empty(total, dtype=dtype_probe.dtype)
    pos = np.empty(indices.shape[0], dtype=np.int64)
    for e in nb.prange(indices.shape[0]):
        pos[e] = -1
    for t in nb.prange(bounds.shape[0] - 1):
        start = np.empty(c, dtype=np.int64)
        count = np.empty(c, dtype=np.int64)
        for g in range(bounds[t], bounds[t + 1]):
            base = gptr[g]
            width = (gptr[g + 1] - base) // c
            for lane in range(c):
                r = grows[g * c + lane]
                start[lane] = indptr[r] if r >= 0 else 0
                count[lane] = indptr[r + 1] - indptr[r] if r >= 0 else 0
            for j in range(width):
                o = base + j * c
                for lane in range(c):
                    if j < count[lane]:
                        e = start[lane] + j
                        sidx[o + lane] = indices[e]
                        sval[o + lane] = weights[e]
                        pos[e] = o + lane
                    else:
                        sidx[o + lane] = 0
                        sval[o + lane] = 0
    return sidx, sval, pos


class SellMatrix:
    """A CSR matrix (rows = outputs) in SELL-C layout, with an entry map for updates.

    ``long_row``: rows with more entries than this go to ``long_rows`` instead
    (their entries stay in the CSR arrays the caller keeps); ``pos[e]`` is the
    SELL position of CSR entry ``e``, or -1 for entries of long rows.
    """

    def __init__(
        self,
        indptr: np.ndarray,
        indices: np.ndarray,
        weights: np.ndarray,
        dtype: type[np.floating],
        c: int = C,
        long_row: int | None = None,
    ) -> None:
        self.c = c
        length = np.diff(indptr)
        # longest first, ties in row order (a stable sort of max - length)
        order = radix_argsort(length.max(initial=0) - length)
        if long_row is not None:
            self.long_rows = order[length[order] > long_row]
            order = order[length[order] <= long_row]
        else:
            self.long_rows = np.empty(0, dtype=np.int64)
        groups = (len(order) + c - 1) // c
        self.grows = np.full(groups * c, -1, dtype=np.int64)
        self.grows[: len(order)] = order
        self.glen = length[self.grows[::c]] if groups else np.zeros(0, dtype=np.int64)
        self.gptr = np.zeros(groups + 1, dtype=np.int64)
        np.cumsum(self.glen * c, out=self.gptr[1:])
        self.sidx, self.sval, pos = _fill(
            self.grows,
            self.gptr,
            c,
            indptr,
            indices,
            weights,
            np.zeros(1, dtype=dtype),
            balanced_chunks(self.gptr, _FILL_PARTS),
        )
        self.pos = pos.astype(np.int32) if len(self.sidx) < 2**31 else pos
        #: Whether a copy may share ``sval`` (see __deepcopy__).
        self._values_shared = False

    def __deepcopy__(self, memo: dict[int, object]) -> SellMatrix:
        """A copy sharing the layout arrays, never written once built, and the
        values until either copy's :meth:`update` (which copies them first):
        the chain copies its focus state for every block it checks."""
        twin = object.__new__(type(self))
        twin.__dict__.update(self.__dict__)
        twin._values_shared = self._values_shared = True
        memo[id(self)] = twin
        return twin

    def check_structure(self, check: Check, rows: int, cols: int, nnz: int, dtype: type) -> None:
        """The layout ``sell_pull`` reads without bounds checks: ``C`` lanes,
        every row of ``rows`` stored once (in a group's lane or as a long
        row; -1 pads the last group), each group's slots ``glen * C`` from
        ``gptr``, slot indices in ``[0, cols)``, finite values >= 0 of
        ``dtype``, and the entry map of the ``nnz`` CSR entries within the
        slots (-1: a long row's entry)."""
        a = check.fields(
            self,
            SellMatrix,
            ("c", "long_rows", "grows", "glen", "gptr", "sidx", "sval", "pos", "_values_shared"),
        )
        check.instance("_values_shared", a["_values_shared"], bool)
        check.integer("c", a["c"], C, C)
        grows = check.array("grows", a["grows"], np.int64, lo=-1, hi=rows)
        if len(grows) % C:
            check.fail("grows", f"has {len(grows)} lanes, not whole groups of {C}")
        groups = len(grows) // C
        long_rows = check.array("long_rows", a["long_rows"], np.int64, lo=0, hi=rows)
        stored = np.bincount(np.concatenate([grows[grows >= 0], long_rows]), minlength=rows)
        wrong = np.flatnonzero(stored != 1)
        if len(wrong):
            r = int(wrong[0])
            check.fail("grows", f"stores row {r} {stored[r]} times, not once")
        glen = check.array("glen", a["glen"], np.int64, groups, lo=0)
        gptr = check.array("gptr", a["gptr"], np.int64, groups + 1)
        if gptr[0] != 0:
            check.fail("gptr[0]", f"= {gptr[0]}, not 0")
        check.equal("gptr", np.diff(gptr), glen * C, "each group's slots: glen * C")
        total = int(gptr[-1])
        check.array("sidx", a["sidx"], np.int32, total, lo=0, hi=cols)
        check.array("sval", a["sval"], dtype, total, finite=True, nonneg=True)
        check.array("pos", a["pos"], (np.int32, np.int64), nnz, lo=-1, hi=total)

    def update(self, entries: np.ndarray, weights: np.ndarray) -> None:
        """Copy new values of CSR entries ``entries`` (positions in the CSR arrays)."""
        at = self.pos[entries]
        keep = at >= 0
        if self._values_shared:
            self.sval = self.sval.copy()
            self._values_shared = False
        self.sval[at[keep]] = weights[entries[keep]]


@nb.njit(cache=True, parallel=True, fastmath=True)
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
    nchunks = bounds.shape[0] - 1
    partial = np.zeros(nchunks)
    for c in nb.prange(nchunks):
        acc = np.zeros(C)
        total = 0.0
        for g in range(bounds[c], bounds[c + 1]):
            for lane in range(C):
                acc[lane] = 0.0
            base = U64(gptr[g])
            for j in range(U64(glen[g])):
                o = base + j * UC
                for lane in range(UC):
                    acc[lane] += sval[o + lane] * z[U64(np.uint32(sidx[o + lane]))]
            for lane in range(C):
                r = grows[g * C + lane]
                if r >= 0:
                    v = acc[lane] * scale
                    out[r] = v
                    total += v
        partial[c] = total
    return ordered_sum(partial)


@nb.njit(cache=True)
def csr_pull_add(
    rows: np.ndarray,
    ptr: np.ndarray,
    indices: np.ndarray,
    weights: np.ndarray,
    z: np.ndarray,
    out: np.ndarray,
    scale: float,
) -> float:
    """Add the sums of some extra rows (the overlay) into ``out``; returns their sum.

    Row ``rows[k]`` holds entries ``ptr[k]:ptr[k+1]`` (a compact CSR over the
    overlay's rows, see ``Snapshot.overlay_in_rows``).
    """
    total = 0.0
    for k in range(rows.shape[0]):
        r = rows[k]
        acc = 0.0
        for e in range(ptr[k], ptr[k + 1]):
            acc += weights[e] * z[indices[e]]
        v = acc * scale
        out[r] += v
        total += v
    return total
