"""CSR snapshots of the weighted cybergraph, built once and then patched per block.

A snapshot holds the aggregated edge weights ``w(p, q)`` (ARCHITECTURE.md 3.1) as
CSR by source (out-links) and by target (in-links), in an *internal* particle
order: particles are relabelled by degree, hubs first, so that the gathers of
an SpMV hit a compact, cache-resident block of the focus vector.

Rebuilding the CSR after every block costs as much as a cold focus solve, so
blocks *patch* it instead: links whose ``(p, q)`` pair already exists add to
that entry in place; new pairs go to a small overlay that kernels read beside
the base arrays; weight changes (stake moves, a neuron's neudeg growing) are
recomputed exactly from the links of each touched entry, so a neuron whose stake
drops to zero leaves exactly zero behind, never rounding dust. When the overlay
grows past a fraction of the base, the owner rebuilds (compaction).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numba as nb
import numpy as np

from focusflow.graph.csr import (
    build_csr,
    find_entries,
    gather,
    positions_in,
    row_sums,
    transpose_csr,
    transpose_maps,
)
from focusflow.graph.links import flush_tiny

LinkWeightFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class PatchInfo:
    """What a patch changed, for consumers that keep state derived from the rows.

    ``sources`` are internal ids of rows whose out-weights changed; ``old_*`` hold
    those rows as they were before the patch (CSR over ``sources``), so an
    incremental solver can subtract the old contribution and add the new one.
    ``base_entries`` are the positions in ``out_*`` whose weight was rewritten,
    for consumers that keep their own copy of the base values. ``version_before``
    is the snapshot's version the patch started from: a consumer that last saw
    another version has missed a patch and must re-derive its state.
    """

    n_before: int
    n_after: int
    sources: np.ndarray
    old_ptr: np.ndarray
    old_indices: np.ndarray
    old_weights: np.ndarray
    old_out_weight: np.ndarray
    base_entries: np.ndarray | None = None
    version_before: int = -1


def _empty_csr(n: int):
    return (
        np.zeros(n + 1, dtype=np.int64),
        np.empty(0, dtype=np.int32),
        np.empty(0, dtype=np.float64),
    )


@nb.njit(cache=True)
def _gather_entry_links(entry_link_ptr, entry_link_ids, entries):
    total = 0
    for k in range(entries.shape[0]):
        e = entries[k]
        total += entry_link_ptr[e + 1] - entry_link_ptr[e]
    ids = np.empty(total, dtype=np.int64)
    owner = np.empty(total, dtype=np.int64)
    j = 0
    for k in range(entries.shape[0]):
        e = entries[k]
        for t in range(entry_link_ptr[e], entry_link_ptr[e + 1]):
            ids[j] = entry_link_ids[t]
            owner[j] = k
            j += 1
    return ids, owner


@nb.njit(cache=True)
def _rows_of(indptr, indices, weights, rows):
    """Copy some CSR rows into a compact CSR over ``rows``."""
    ptr = np.zeros(rows.shape[0] + 1, dtype=np.int64)
    for k in range(rows.shape[0]):
        r = rows[k]
        ptr[k + 1] = ptr[k] + indptr[r + 1] - indptr[r]
    idx = np.empty(ptr[-1], dtype=np.int32)
    w = np.empty(ptr[-1], dtype=np.float64)
    for k in range(rows.shape[0]):
        r = rows[k]
        j = ptr[k]
        for e in range(indptr[r], indptr[r + 1]):
            idx[j] = indices[e]
            w[j] = weights[e]
            j += 1
    return ptr, idx, w


def _concat_rows(a, b):
    """Row-wise concatenation of two compact CSRs over the same rows."""
    pa, ia, wa = a
    pb, ib, wb = b
    rows = len(pa) - 1
    ptr = pa + pb
    idx = np.empty(ptr[-1], dtype=np.int32)
    w = np.empty(ptr[-1], dtype=np.float64)
    la = np.diff(pa)
    lb = np.diff(pb)
    row_of_a = np.repeat(np.arange(rows), la)
    row_of_b = np.repeat(np.arange(rows), lb)
    pos_a = ptr[row_of_a] + (np.arange(len(ia)) - pa[row_of_a])
    pos_b = ptr[row_of_b] + la[row_of_b] + (np.arange(len(ib)) - pb[row_of_b])
    idx[pos_a], w[pos_a] = ia, wa
    idx[pos_b], w[pos_b] = ib, wb
    return ptr, idx, w


def _unique(values: np.ndarray, return_inverse: bool = False):
    """Sorted distinct values by sorting (numpy's hash-based unique is several
    times slower on the integer keys of a patch)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    first = np.empty(len(ordered), dtype=bool)
    first[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    uniq = ordered[first]
    if not return_inverse:
        return uniq
    inverse = np.empty(len(values), dtype=np.int64)
    inverse[order] = np.cumsum(first) - 1
    return uniq, inverse


def _index_type(bound: int) -> type:
    return np.int32 if bound < 2**31 else np.int64


def degree_order(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Internal index of each particle: by total degree, descending, ties by id."""
    deg = np.bincount(src, minlength=n) + np.bincount(dst, minlength=n)
    iperm = np.argsort(-deg, kind="stable")
    perm = np.empty(n, dtype=np.int64)
    perm[iperm] = np.arange(n, dtype=np.int64)
    return perm


class Snapshot:
    """The weighted graph ``w(p, q)`` as base CSR plus overlay, in internal order.

    Attribute names follow scipy: ``out_*`` is the CSR with rows = sources,
    ``in_*`` the CSR of the transpose (rows = targets). ``perm[particle]`` is the
    internal index, ``iperm[internal]`` the particle id.
    """

    def __init__(
        self,
        n: int,
        src: np.ndarray,
        dst: np.ndarray,
        link_weights: np.ndarray,
        order: str = "degree",
    ) -> None:
        src = np.asarray(src, dtype=np.int64)
        dst = np.asarray(dst, dtype=np.int64)
        if order == "degree":
            perm = degree_order(n, src, dst)
        elif order == "none":
            perm = np.arange(n, dtype=np.int64)
        else:
            raise ValueError(f"unknown order {order!r}: use 'degree' or 'none'")
        self.n = n
        self.perm = perm
        self.iperm = np.empty(n, dtype=np.int64)
        self.iperm[perm] = np.arange(n, dtype=np.int64)
        weights_in = flush_tiny(np.asarray(link_weights, dtype=np.float64))
        keep = src != dst
        all_kept = bool(keep.all())
        kept = None if all_kept else np.flatnonzero(keep)
        isrc = gather(perm, src if all_kept else src[kept]).astype(np.int32)
        idst = gather(perm, dst if all_kept else dst[kept]).astype(np.int32)
        indptr, indices, weights, entry_of_kept, elptr, elids = build_csr(
            n, isrc, idst, weights_in if all_kept else weights_in[kept]
        )
        del isrc, idst
        self.out_indptr, self.out_indices, self.out_w = indptr, indices, weights
        t_indptr, t_indices, t_to_e, e_to_t = transpose_maps(n, indptr, indices)
        # Maps between entries and links are kept as int32 while they fit: they
        # are most of the snapshot's memory after the matrices themselves.
        small = _index_type(max(len(src), len(indices)) + 1)
        self.in_indptr, self.in_indices = t_indptr, t_indices
        self.in_w = gather(weights, t_to_e)
        self.in_to_out = t_to_e.astype(small)
        self.out_to_in = e_to_t.astype(small)
        del t_to_e, e_to_t
        self.out_weight = row_sums(indptr, weights)
        self.entry_link_ptr = elptr.astype(small)
        if all_kept:
            self.entry_link_ids = elids.astype(small)
            self.link_entry = entry_of_kept.astype(small)
        else:
            self.entry_link_ids = kept[elids].astype(small)
            self.link_entry = np.full(len(src), -1, dtype=small)
            self.link_entry[kept] = entry_of_kept
        self.base_links = len(src)
        self.n_links = len(src)
        self.base_n = n
        #: Incremented by every patch, so holders of derived state notice missed ones.
        self.version = 0
        # Links added after the build: entry code per link (>= 0 base entry,
        # -(k + 2) overlay entry k, -1 dropped self-link).
        self.late_entry = np.empty(0, dtype=np.int64)
        self.ov_src = np.empty(0, dtype=np.int32)
        self.ov_dst = np.empty(0, dtype=np.int32)
        self.ov_w = np.empty(0, dtype=np.float64)
        self._rebuild_overlay_csr()

    # --- shape -------------------------------------------------------------
    @property
    def nnz(self) -> int:
        """Stored entries, base plus overlay (duplicate links are merged)."""
        return len(self.out_indices) + len(self.ov_src)

    @property
    def overlay_nnz(self) -> int:
        return len(self.ov_src)

    def dangling(self) -> np.ndarray:
        """Mask of particles with no outgoing weight (internal order)."""
        return self.out_weight <= 0.0

    def to_particle_order(self, vec: np.ndarray) -> np.ndarray:
        """A vector indexed by internal id, re-indexed by particle id."""
        return vec[self.perm]

    def to_internal_order(self, vec: np.ndarray) -> np.ndarray:
        return vec[self.iperm]

    def to_scipy(self):
        """The whole weight matrix (base + overlay) as scipy CSR, particle order."""
        import scipy.sparse as sp

        base = sp.csr_matrix(
            (self.out_w, self.out_indices, self.out_indptr), shape=(self.n, self.n)
        )
        if len(self.ov_src):
            ov = sp.csr_matrix(
                (self.ov_out_w, self.ov_out_indices, self.ov_out_indptr),
                shape=(self.n, self.n),
            )
            base = base + ov
        back = self.perm
        return base[back][:, back].tocsr()

    # --- patching ----------------------------------------------------------
    def _rebuild_overlay_csr(self) -> None:
        n = self.n
        if not len(self.ov_src):
            self.ov_out_indptr, self.ov_out_indices, self.ov_out_w = _empty_csr(n)
            self.ov_in_indptr, self.ov_in_indices, self.ov_in_w = _empty_csr(n)
            self.ov_entry_at = np.empty(0, dtype=np.int64)
            return
        indptr, indices, weights, pos_of_entry, _, _ = build_csr(
            n, self.ov_src, self.ov_dst, self.ov_w
        )
        self.ov_out_indptr, self.ov_out_indices, self.ov_out_w = indptr, indices, weights
        self.ov_entry_at = np.empty(len(pos_of_entry), dtype=np.int64)
        self.ov_entry_at[pos_of_entry] = np.arange(len(pos_of_entry), dtype=np.int64)
        t = transpose_csr(n, indptr, indices, weights)
        self.ov_in_indptr, self.ov_in_indices, self.ov_in_w = t[0], t[1], t[2]

    def _grow(self, n_new: int) -> None:
        extra = n_new - self.n
        if extra <= 0:
            return
        tail = np.arange(self.n, n_new, dtype=np.int64)
        self.perm = np.concatenate([self.perm, tail])
        self.iperm = np.concatenate([self.iperm, tail])
        for name in ("out_indptr", "in_indptr", "ov_out_indptr", "ov_in_indptr"):
            arr = getattr(self, name)
            setattr(self, name, np.concatenate([arr, np.full(extra, arr[-1])]))
        self.out_weight = np.concatenate([self.out_weight, np.zeros(extra)])
        self.n = n_new

    def _entry_codes_of_new(self, psrc: np.ndarray, pdst: np.ndarray) -> np.ndarray:
        """Entry code of each new link, creating overlay entries for unseen pairs."""
        codes = np.full(len(psrc), -1, dtype=np.int64)
        live = psrc != pdst
        base_hit = find_entries(self.out_indptr, self.out_indices, psrc, pdst)
        codes[live & (base_hit >= 0)] = base_hit[live & (base_hit >= 0)]
        rest = np.flatnonzero(live & (base_hit < 0))
        if len(rest) and len(self.ov_src):
            pos = find_entries(self.ov_out_indptr, self.ov_out_indices, psrc[rest], pdst[rest])
            hit = pos >= 0
            codes[rest[hit]] = -(self.ov_entry_at[pos[hit]] + 2)
            rest = rest[~hit]
        if len(rest):
            keys = psrc[rest] * np.int64(self.n) + pdst[rest]
            uniq, inverse = _unique(keys, return_inverse=True)
            first = len(self.ov_src)
            codes[rest] = -(first + inverse + 2)
            self.ov_src = np.concatenate([self.ov_src, (uniq // self.n).astype(np.int32)])
            self.ov_dst = np.concatenate([self.ov_dst, (uniq % self.n).astype(np.int32)])
            self.ov_w = np.concatenate([self.ov_w, np.zeros(len(uniq))])
        return codes

    def patch(
        self,
        n_new: int,
        new_src: np.ndarray,
        new_dst: np.ndarray,
        touched_links: np.ndarray,
        link_weight: LinkWeightFn,
        old_rows: bool = True,
    ) -> PatchInfo:
        """Add links ``n_links..n_links+len(new_src)`` and re-weigh ``touched_links``.

        ``old_rows=False`` skips copying the touched rows as they were (the
        ``old_*`` fields come back empty): they cost as much as the rows are
        long, and only residual-keeping consumers need them.

        ``new_src``/``new_dst`` are particle ids of the new links, whose global
        link ids continue from ``n_links``. ``touched_links`` are older link ids
        whose weight may have changed; ``link_weight(ids)`` gives current weights.
        Every step is vectorised over the batch: the cost follows the links and
        entries touched, plus one pass over the (small) overlay.
        """
        n_before = self.n
        version_before = self.version
        self._grow(n_new)
        psrc = self.perm[np.asarray(new_src, dtype=np.int64)]
        pdst = self.perm[np.asarray(new_dst, dtype=np.int64)]
        new_codes = self._entry_codes_of_new(psrc, pdst)
        self.late_entry = np.concatenate([self.late_entry, new_codes])
        self.n_links += len(new_src)

        old = np.asarray(touched_links, dtype=np.int64)
        old_codes = np.full(len(old), -1, dtype=np.int64)
        in_base = old < self.base_links
        old_codes[in_base] = self.link_entry[old[in_base]]
        old_codes[~in_base] = self.late_entry[old[~in_base] - self.base_links]
        codes = _unique(np.concatenate([new_codes, old_codes]))
        base_entries = codes[codes >= 0]
        ov_entries = -codes[codes <= -2] - 2

        base_rows = np.searchsorted(self.out_indptr, base_entries, side="right") - 1
        sources = _unique(np.concatenate([base_rows, self.ov_src[ov_entries]]).astype(np.int64))
        if old_rows:
            before = _concat_rows(
                _rows_of(self.out_indptr, self.out_indices, self.out_w, sources),
                _rows_of(self.ov_out_indptr, self.ov_out_indices, self.ov_out_w, sources),
            )
        else:
            before = (
                np.zeros(len(sources) + 1, dtype=np.int64),
                np.empty(0, dtype=np.int32),
                np.empty(0),
            )
        old_out_weight = self.out_weight[sources].copy()

        # Exact recompute: every touched entry is the sum of its links' weights.
        touched_codes = np.concatenate([base_entries, -(ov_entries + 2)])
        order = np.argsort(touched_codes)
        sorted_codes = touched_codes[order]
        ids, owner = _gather_entry_links(self.entry_link_ptr, self.entry_link_ids, base_entries)
        late_pos = positions_in(sorted_codes, self.late_entry)
        late_mask = late_pos >= 0
        late_ids = np.flatnonzero(late_mask) + self.base_links
        late_owner = order[late_pos[late_mask]]
        ids = np.concatenate([ids, late_ids])
        owner = np.concatenate([owner, late_owner])
        sums = np.bincount(
            owner, weights=link_weight(ids) if len(ids) else None, minlength=len(touched_codes)
        )
        nb_base = len(base_entries)
        self.out_w[base_entries] = sums[:nb_base]
        self.in_w[self.out_to_in[base_entries]] = sums[:nb_base]
        self.ov_w[ov_entries] = sums[nb_base:]
        self._rebuild_overlay_csr()
        self.version += 1
        base_sum = _rows_sum(self.out_indptr, self.out_w, sources)
        ov_sum = _rows_sum(self.ov_out_indptr, self.ov_out_w, sources)
        self.out_weight[sources] = base_sum + ov_sum
        return PatchInfo(
            n_before=n_before,
            n_after=self.n,
            sources=sources,
            old_ptr=before[0],
            old_indices=before[1],
            old_weights=before[2],
            old_out_weight=old_out_weight,
            base_entries=base_entries,
            version_before=version_before,
        )


@nb.njit(cache=True, parallel=True)
def _rows_sum(indptr, weights, rows):
    out = np.zeros(rows.shape[0], dtype=np.float64)
    for k in nb.prange(rows.shape[0]):
        r = rows[k]
        s = 0.0
        for e in range(indptr[r], indptr[r + 1]):
            s += weights[e]
        out[k] = s
    return out
