"""Compressed sparse rows built from link columns in O(links), with numba.

Scipy's COO->CSR conversion sorts and allocates several temporaries; one
counting scatter by row followed by parallel per-row sorts does the same in a
fraction of the time and memory, and gives what scipy does not: for every link
the position of its (aggregated) entry, so that a stake change can be applied
in place later.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from focusflow.core.lazy import lazy_njit
from focusflow.core.structure import Check

if TYPE_CHECKING:
    # ``nb`` is bound when the first kernel compiles (``core.lazy``), so that
    # importing this module does not import numba; this line is also what
    # marks the module as one of kernels for ``core.kernel_cache``
    import numba as nb


@functools.cache
def _max_parts() -> int:
    """Parts of a parallel counting sort: a few per core keeps both cores busy."""
    import numba

    threads: int = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]  # not in numba's stubs
    return max(2, 2 * threads)


def id_array(values: npt.ArrayLike) -> np.ndarray:
    """An id column as it is if int32 (the graph's columns), else as int64.

    Particle and link ids stay below 2^31; an int64 copy of an int32 column is
    8 more bytes per link written and read again, at 10^7 links a tenth of a
    second for nothing.
    """
    values = np.asarray(values)
    return values if values.dtype == np.int32 else values.astype(np.int64)


@lazy_njit(cache=True)
def stable_counting_argsort(
    keys: np.ndarray, nbins: int, within: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``within`` (indices into ``keys``) stably sorted by key.

    Returns ``(order, indptr)`` with ``keys[order]`` non-decreasing and
    ``indptr[b]:indptr[b+1]`` the slice of bin ``b``.
    """
    m = within.shape[0]
    indptr = np.zeros(nbins + 1, dtype=np.int64)
    for k in range(m):
        indptr[keys[within[k]] + 1] += 1
    for b in range(nbins):
        indptr[b + 1] += indptr[b]
    fill = indptr[:-1].copy()
    order = np.empty(m, dtype=np.int64)
    for k in range(m):
        i = within[k]
        b = keys[i]
        order[fill[b]] = i
        fill[b] += 1
    return order, indptr


def radix_argsort(keys: np.ndarray) -> np.ndarray:
    """Stable argsort of int64 keys by least-significant-digit radix sort.

    A block's patch sorts several arrays of 10^5 keys (pair keys, entry codes,
    rows); numpy's stable argsort takes 7 ms for each. This sorts ``keys - min``
    in 11-bit digits and stops after the digits the key range needs (three
    passes for entry codes of 10^8 entries); each pass is split among the
    threads (a count per thread and digit, then every thread scatters its own
    part, which keeps the sort stable).
    """
    import numba

    keys = np.asarray(keys, dtype=np.int64)
    return _radix_argsort(keys, max(1, min(numba.get_num_threads(), len(keys) // 4096)))


@lazy_njit(cache=True, parallel=True)
def _radix_argsort(keys: np.ndarray, parts: int) -> np.ndarray:
    m = keys.shape[0]
    order = np.arange(m)
    if m < 2:
        return order
    lo = keys[0]
    hi = keys[0]
    for i in range(m):
        k = keys[i]
        lo = min(lo, k)
        hi = max(hi, k)
    span = np.uint64(hi - lo)
    bits = 0
    while bits < 64 and (span >> np.uint64(bits)) != np.uint64(0):
        bits += 1
    shifted = np.empty(m, dtype=np.uint64)
    for i in nb.prange(m):
        shifted[i] = np.uint64(keys[i] - lo)
    tmp = np.empty(m, dtype=np.int64)
    ktmp = np.empty(m, dtype=np.uint64)
    digit = 11
    nbins = 1 << digit
    mask = np.uint64(nbins - 1)
    step = (m + parts - 1) // parts
    count = np.empty((parts, nbins), dtype=np.int64)
    shift = 0
    while shift < bits:
        s = np.uint64(shift)
        for t in nb.prange(parts):
            for b in range(nbins):
                count[t, b] = 0
            for i in range(t * step, min(m, (t + 1) * step)):
                count[t, (shifted[i] >> s) & mask] += 1
        total = 0
        for b in range(nbins):
            for t in range(parts):
                c = count[t, b]
                count[t, b] = total
                total += c
        for t in nb.prange(parts):
            for i in range(t * step, min(m, (t + 1) * step)):
                k = shifted[i]
                d = (k >> s) & mask
                j = count[t, d]
                tmp[j] = order[i]
                ktmp[j] = k
                count[t, d] = j + 1
        order, tmp = tmp, order
        shifted, ktmp = ktmp, shifted
        shift += digit
    return order


def balanced_chunks(indptr: np.ndarray, nchunks: int) -> np.ndarray:
    """Row boundaries of ``nchunks`` contiguous row ranges holding equal nonzeros.

    Degree-sorted graphs put all hubs in the first rows; splitting ``prange`` by
    rows would hand one thread nearly all the work.
    """
    n = len(indptr) - 1
    nnz = int(indptr[-1])
    targets = (np.arange(1, nchunks, dtype=np.float64) * nnz / nchunks).astype(np.int64)
    cuts = np.searchsorted(indptr, targets, side="left")
    bounds = np.concatenate([[0], np.clip(cuts, 0, n), [n]]).astype(np.int64)
    return np.maximum.accumulate(bounds)


@lazy_njit(cache=True, parallel=True)
def counting_positions(keys: np.ndarray, nbins: int, nparts: int) -> tuple[np.ndarray, np.ndarray]:
    """Stable counting sort as positions: ``pos[i]`` is where element ``i`` goes.

    The input is cut into ``nparts`` contiguous parts, each counted and then
    scattered by its own thread; part ``t`` writes after parts ``< t`` inside
    every bin, which keeps the sort stable.
    """
    m = keys.shape[0]
    step = (m + nparts - 1) // nparts
    counts = np.zeros((nparts, nbins), dtype=np.int64)
    for t in nb.prange(nparts):
        for i in range(t * step, min(m, (t + 1) * step)):
            counts[t, keys[i]] += 1
    indptr = np.zeros(nbins + 1, dtype=np.int64)
    for b in range(nbins):
        total = indptr[b]
        for t in range(nparts):
            c = counts[t, b]
            counts[t, b] = total
            total += c
        indptr[b + 1] = total
    pos = np.empty(m, dtype=np.int64)
    for t in nb.prange(nparts):
        for i in range(t * step, min(m, (t + 1) * step)):
            k = keys[i]
            pos[i] = counts[t, k]
            counts[t, k] += 1
    return indptr, pos


@lazy_njit(cache=True, parallel=True)
def _scatter_rows(
    dst: np.ndarray, w: np.ndarray, pos: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = dst.shape[0]
    cols = np.empty(m, dtype=np.int32)
    vals = np.empty(m, dtype=np.float64)
    links = np.empty(m, dtype=np.int64)
    for i in nb.prange(m):
        j = pos[i]
        cols[j] = dst[i]
        vals[j] = w[i]
        links[j] = i
    return cols, vals, links


@lazy_njit(cache=True)
def _sort_row(cols: np.ndarray, vals: np.ndarray, links: np.ndarray, a: int, b: int) -> None:
    """Sort one row by column: insertion sort for short rows, argsort for long ones."""
    if b - a <= 32:
        for j in range(a + 1, b):
            c = cols[j]
            v = vals[j]
            k = links[j]
            i = j - 1
            while i >= a and cols[i] > c:
                cols[i + 1] = cols[i]
                vals[i + 1] = vals[i]
                links[i + 1] = links[i]
                i -= 1
            cols[i + 1] = c
            vals[i + 1] = v
            links[i + 1] = k
    else:
        o = np.argsort(cols[a:b])
        cols[a:b] = cols[a:b][o]
        vals[a:b] = vals[a:b][o]
        links[a:b] = links[a:b][o]


@lazy_njit(cache=True, parallel=True)
def _sort_rows_count_unique(
    indptr: np.ndarray, cols: np.ndarray, vals: np.ndarray, links: np.ndarray, bounds: np.ndarray
) -> np.ndarray:
    n = indptr.shape[0] - 1
    uniq = np.zeros(n, dtype=np.int64)
    for c in nb.prange(bounds.shape[0] - 1):
        for r in range(bounds[c], bounds[c + 1]):
            a = indptr[r]
            b = indptr[r + 1]
            if b - a > 1:
                _sort_row(cols, vals, links, a, b)
            u = 0
            for j in range(a, b):
                if j == a or cols[j] != cols[j - 1]:
                    u += 1
            uniq[r] = u
    return uniq


@lazy_njit(cache=True, parallel=True)
def _compact_rows(
    indptr: np.ndarray,
    cols: np.ndarray,
    vals: np.ndarray,
    links: np.ndarray,
    out_indptr: np.ndarray,
    bounds: np.ndarray,
    link_entry: np.ndarray,
    entry_link_ptr: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    nnz = out_indptr[-1]
    indices = np.empty(nnz, dtype=np.int32)
    weights = np.zeros(nnz, dtype=np.float64)
    for c in nb.prange(bounds.shape[0] - 1):
        for r in range(bounds[c], bounds[c + 1]):
            e = out_indptr[r] - 1
            for j in range(indptr[r], indptr[r + 1]):
                if j == indptr[r] or cols[j] != cols[j - 1]:
                    e += 1
                    indices[e] = cols[j]
                    entry_link_ptr[e] = j
                weights[e] += vals[j]
                link_entry[links[j]] = e
    entry_link_ptr[nnz] = cols.shape[0]
    return indices, weights


def _parts(m: int, nbins: int) -> int:
    """Parts of a counting sort: each part holds ``nbins`` counters, so small
    inputs over many bins (a block's overlay over all particles) use one."""
    return int(max(1, min(_max_parts(), m // max(nbins, 1))))


def build_csr(
    n: int, src: np.ndarray, dst: np.ndarray, w: np.ndarray, nchunks: int = 64
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Aggregated CSR of the links ``src -> dst`` (duplicates summed).

    Returns ``indptr, indices, weights, link_entry, entry_link_ptr, entry_link_ids``:
    ``link_entry[i]`` is the entry of link ``i`` and ``entry_link_ids[ptr[e]:ptr[e+1]]``
    the links summed into entry ``e``. Rows hold their columns in ascending order.
    """
    src = np.ascontiguousarray(src, dtype=np.int32)
    dst = np.ascontiguousarray(dst, dtype=np.int32)
    w = np.ascontiguousarray(w, dtype=np.float64)
    indptr, pos = counting_positions(src, n, _parts(len(src), n))
    cols, vals, links = _scatter_rows(dst, w, pos)
    del pos
    bounds = balanced_chunks(indptr, nchunks)
    uniq = _sort_rows_count_unique(indptr, cols, vals, links, bounds)
    out_indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(uniq, out=out_indptr[1:])
    link_entry = np.empty(len(src), dtype=np.int64)
    entry_link_ptr = np.empty(int(out_indptr[-1]) + 1, dtype=np.int64)
    indices, weights = _compact_rows(
        indptr, cols, vals, links, out_indptr, bounds, link_entry, entry_link_ptr
    )
    return out_indptr, indices, weights, link_entry, entry_link_ptr, links


@lazy_njit(cache=True, parallel=True)
def _scatter_transpose(
    indptr: np.ndarray, pos: np.ndarray, nnz: int
) -> tuple[np.ndarray, np.ndarray]:
    n = indptr.shape[0] - 1
    t_indices = np.empty(nnz, dtype=np.int32)
    t_to_e = np.empty(nnz, dtype=np.int64)
    for r in nb.prange(n):
        for e in range(indptr[r], indptr[r + 1]):
            j = pos[e]
            t_indices[j] = r
            t_to_e[j] = e
    return t_indices, t_to_e


def transpose_maps(
    n: int, indptr: np.ndarray, indices: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(t_indptr, t_indices, t_to_entry, entry_to_t)``: the transposed pattern
    and the position maps both ways (``entry_to_t`` is the counting sort itself)."""
    t_indptr, pos = counting_positions(indices, n, _parts(len(indices), n))
    t_indices, t_to_e = _scatter_transpose(indptr, pos, len(indices))
    return t_indptr, t_indices, t_to_e, pos


@lazy_njit(cache=True, parallel=True)
def gather(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``values[index]`` on all cores."""
    out = np.empty(index.shape[0], dtype=values.dtype)
    for i in nb.prange(index.shape[0]):
        out[i] = values[index[i]]
    return out


def transpose_csr(
    n: int, indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(t_indptr, t_indices, t_weights, t_to_entry)`` of the transposed matrix."""
    t_indptr, pos = counting_positions(indices, n, _parts(len(indices), n))
    t_indices, t_to_e = _scatter_transpose(indptr, pos, len(indices))
    return t_indptr, t_indices, gather(weights, t_to_e), t_to_e


@lazy_njit(cache=True, parallel=True)
def find_entries(
    indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray, cols: np.ndarray
) -> np.ndarray:
    """Position of each ``(row, col)`` in a CSR with sorted rows, or -1 when absent.

    Parallel: at 10^8 entries each search is a few cache misses into arrays far
    larger than the caches, and a block brings 10^5 of them.
    """
    out = np.empty(rows.shape[0], dtype=np.int64)
    for k in nb.prange(rows.shape[0]):
        r = rows[k]
        c = cols[k]
        lo = indptr[r]
        hi = indptr[r + 1]
        while lo < hi:
            mid = (lo + hi) >> 1
            if indices[mid] < c:
                lo = mid + 1
            else:
                hi = mid
        out[k] = lo if lo < indptr[r + 1] and indices[lo] == c else -1
    return out


@lazy_njit(cache=True, parallel=True)
def row_sums(indptr: np.ndarray, weights: np.ndarray) -> np.ndarray:
    n = indptr.shape[0] - 1
    out = np.zeros(n, dtype=np.float64)
    for r in nb.prange(n):
        s = 0.0
        for e in range(indptr[r], indptr[r + 1]):
            s += weights[e]
        out[r] = s
    return out


@lazy_njit(cache=True, parallel=True)
def search_sorted(sorted_keys: np.ndarray, values: np.ndarray, right: bool) -> np.ndarray:
    """``np.searchsorted(sorted_keys, values, side="right" if right else "left")``
    on all cores: a block's 10^5 searches into arrays of 10^7-10^8 entries are
    cache misses, which threads overlap."""
    out = np.empty(values.shape[0], dtype=np.int64)
    m = sorted_keys.shape[0]
    for k in nb.prange(values.shape[0]):
        v = values[k]
        lo = 0
        hi = m
        while lo < hi:
            mid = (lo + hi) >> 1
            if sorted_keys[mid] < v or (right and sorted_keys[mid] == v):
                lo = mid + 1
            else:
                hi = mid
        out[k] = lo
    return out


@lazy_njit(cache=True, parallel=True)
def positions_in(sorted_keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of each value in ``sorted_keys`` (ascending, distinct), or -1 when absent.

    What ``np.isin`` plus ``np.searchsorted`` answer together, without sorting
    ``values``: a binary search per value, in parallel.
    """
    out = search_sorted(sorted_keys, values, False)
    m = sorted_keys.shape[0]
    for k in nb.prange(values.shape[0]):
        p = out[k]
        if p >= m or sorted_keys[p] != values[k]:
            out[k] = -1
    return out


def check_csr(
    check: Check,
    names: tuple[str, str],
    indptr: object,
    indices: object,
    rows: int,
    cols: int,
    nnz: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A CSR pattern as the kernels read it: an int64 row pointer of ``rows + 1``
    entries from 0, non-decreasing, ending at the length of ``indices``
    (``nnz`` when given), and int32 column indices in ``[0, cols)``.

    The kernels loop ``indptr[r]:indptr[r+1]`` and gather ``x[indices[e]]``
    without bounds checks. Returns ``(indptr, indices)``.
    """
    idx = check.array(names[1], indices, np.int32, nnz, lo=0, hi=cols)
    ptr = check.indptr(names[0], indptr, rows, len(idx))
    return ptr, idx
