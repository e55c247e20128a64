"""CSR snapshots of the weighted cybergraph, built once and then patched per block.

A snapshot holds the aggregated edge weights ``w(p, q)`` (docs/architecture.md §3.1) as
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

A patch costs what the block touched, never O(particles): the overlay is kept
as two sorted key arrays (``src << 32 | dst`` and ``dst << 32 | src``) merged
with each block's new pairs, touched rows' out-weights move by the change of
their entries (recomputed exactly only where they cancel), and the overlay's
full CSR with an ``n + 1`` row pointer is built on first use after a patch, for
the consumers that want it. At 10^8 links and 8M particles a block of 10^5
links spent 0.2 s of its 0.3 s patch rebuilding that CSR, before any consumer
looked at it.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, overload

import numpy as np

from focusflow.core.errors import InvalidParameterError
from focusflow.core.lazy import lazy_njit
from focusflow.core.structure import Check, rows_of
from focusflow.graph.column import Column, SortedIndex
from focusflow.graph.csr import (
    build_csr,
    check_csr,
    find_entries,
    gather,
    id_array,
    positions_in,
    radix_argsort,
    row_sums,
    search_sorted,
    transpose_maps,
)
from focusflow.graph.links import flush_tiny

if TYPE_CHECKING:
    # ``nb`` is bound when the first kernel compiles (``core.lazy``), so that
    # importing this module does not import numba; this line is also what
    # marks the module as one of kernels for ``core.kernel_cache``
    import numba as nb
    import scipy.sparse as sp

LinkWeightFn = Callable[[np.ndarray], np.ndarray]

#: Some rows of a CSR, compact: ``(ptr, indices, weights)``, row ``k`` at
#: ``ptr[k]:ptr[k+1]``.
CompactRows = tuple[np.ndarray, np.ndarray, np.ndarray]

#: Pair keys put the row in the high 32 bits: particle ids stay below 2^31, and
#: keys keep their order when the particle count grows.
KEY_SHIFT = np.int64(32)
KEY_MASK = np.int64(0xFFFFFFFF)
#: A touched row whose out-weight dropped below this fraction of its old value
#: is summed again from its entries: the running update would leave rounding
#: dust where the exact answer is (near) zero.
_CANCEL = 1e-3


def pair_keys(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``rows << 32 | cols`` as int64: sorting the keys sorts by row, then column."""
    return (np.asarray(rows, dtype=np.int64) << KEY_SHIFT) | np.asarray(cols, dtype=np.int64)


@dataclass(frozen=True)
class PatchInfo:
    """What a patch changed, for consumers that keep state derived from the rows.

    ``sources`` are internal ids of rows whose out-weights changed; ``old_*`` hold
    those rows as they were before the patch (CSR over ``sources``), so an
    incremental solver can subtract the old contribution and add the new one.
    ``base_entries`` are the positions in ``out_*`` whose weight was rewritten,
    for consumers that keep their own copy of the base values, and
    ``overlay_entries`` the same for ``ov_*`` (entries past the old overlay's
    end are new pairs). ``changes`` lists every entry whose weight moved as
    internal ``(src, dst, new - old)``, for consumers that keep sums of the
    weights (the symmetric matrix ``W + W^T`` of springs and heat on a GPU).
    ``version_before`` is the snapshot's version the patch started from: a
    consumer that last saw another version has missed a patch and must
    re-derive its state.
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
    overlay_entries: np.ndarray | None = None
    changes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def check_structure(self, check: Check, snap: Snapshot) -> None:
        """A record of a patch of ``snap`` (kept by the graph for consumers
        that fall behind): its rows, entries and changes index ``snap``'s
        arrays, which the operators update through them without bounds
        checks (base entries stay valid until a rebuild, which drops the
        records)."""
        a = check.fields(self, PatchInfo, PatchInfo.__dataclass_fields__)
        n_before = check.integer("n_before", a["n_before"], 0, snap.n)
        n_after = check.integer("n_after", a["n_after"], n_before, snap.n)
        check.integer("version_before", a["version_before"], 0, snap.version - 1)
        m = len(check.array("sources", a["sources"], np.int64, lo=0, hi=n_after))
        idx = check.array("old_indices", a["old_indices"], np.int32, lo=0, hi=n_after)
        ptr = a["old_ptr"]
        rows = len(ptr) - 1 if type(ptr) is np.ndarray and len(ptr) == 1 else m
        check.pointer("old_ptr", ptr, rows, len(idx), np.int64)
        check.array("old_weights", a["old_weights"], np.float64, len(idx), finite=True)
        check.array("old_out_weight", a["old_out_weight"], np.float64, m, finite=True)
        nnz = len(snap.out_indices)
        check.optional_array("base_entries", a["base_entries"], np.int64, lo=0, hi=nnz)
        check.optional_array(
            "overlay_entries", a["overlay_entries"], np.int64, lo=0, hi=len(snap.ov_src)
        )
        changes = a["changes"]
        if changes is not None:
            check.instance("changes", changes, tuple)
            if len(changes) != 3:
                check.fail("changes", "is not (rows, columns, changes)")
            k = len(check.array("changes[0]", changes[0], np.int64, lo=0, hi=n_after))
            check.array("changes[1]", changes[1], np.int64, k, lo=0, hi=n_after)
            check.array("changes[2]", changes[2], np.float64, k, finite=True)


def merge_patches(records: list[PatchInfo]) -> PatchInfo:
    """One record for consecutive patches (``records[k + 1]`` starts at the version
    ``records[k]`` left), for consumers that read the current values of what
    changed: the union of the touched sources and entries, and all changes.

    The rows as they were (``old_*``) do not merge (each patch's are relative
    to the one before), so the merged record has none.
    """
    for a, b in itertools.pairwise(records):
        if b.version_before != a.version_before + 1:
            raise ValueError("patch records must be consecutive")
    empty_i = np.empty(0, dtype=np.int64)

    def union(name: str) -> np.ndarray:
        parts = [getattr(r, name) for r in records if getattr(r, name) is not None]
        return np.unique(np.concatenate(parts)) if parts else empty_i

    changes = [r.changes for r in records if r.changes is not None]
    merged: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    if len(changes) == len(records):
        rows, columns, amounts = (np.concatenate(part) for part in zip(*changes, strict=True))
        merged = (rows, columns, amounts)
    return PatchInfo(
        n_before=records[0].n_before,
        n_after=records[-1].n_after,
        sources=union("sources"),
        old_ptr=np.zeros(1, dtype=np.int64),
        old_indices=np.empty(0, dtype=np.int32),
        old_weights=np.empty(0),
        old_out_weight=np.empty(0),
        base_entries=union("base_entries"),
        version_before=records[0].version_before,
        overlay_entries=union("overlay_entries"),
        changes=merged,
    )


@lazy_njit(cache=True, parallel=True)
def _gather_ranges(
    values: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``values[lo[k]:hi[k]]`` for every k, concatenated, and the k of each.

    Parallel: the ranges sit at random places of arrays with 10^8 entries, and
    each is a cache miss or two.
    """
    k = lo.shape[0]
    start = np.zeros(k + 1, dtype=np.int64)
    for i in range(k):
        start[i + 1] = start[i] + hi[i] - lo[i]
    out = np.empty(start[k], dtype=values.dtype)
    owner = np.empty(start[k], dtype=np.int64)
    for i in nb.prange(k):
        j = start[i]
        for t in range(lo[i], hi[i]):
            out[j] = values[t]
            owner[j] = i
            j += 1
    return out, owner


@lazy_njit(cache=True)
def _rows_of(
    indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray, rows: np.ndarray
) -> CompactRows:
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


@lazy_njit(cache=True)
def _key_rows_of(
    keys: np.ndarray, at: np.ndarray, weights: np.ndarray, rows: np.ndarray
) -> CompactRows:
    """Rows ``rows`` of a matrix held as sorted pair keys, as a compact CSR.

    ``at[k]`` is the entry (index into ``weights``) of the ``k``-th sorted key.
    """
    lo = np.searchsorted(keys, rows << KEY_SHIFT)
    hi = np.searchsorted(keys, (rows + 1) << KEY_SHIFT)
    ptr = np.zeros(rows.shape[0] + 1, dtype=np.int64)
    for k in range(rows.shape[0]):
        ptr[k + 1] = ptr[k] + hi[k] - lo[k]
    idx = np.empty(ptr[-1], dtype=np.int32)
    w = np.empty(ptr[-1], dtype=np.float64)
    for k in range(rows.shape[0]):
        j = ptr[k]
        for e in range(lo[k], hi[k]):
            idx[j] = keys[e] & KEY_MASK
            w[j] = weights[at[e]]
            j += 1
    return ptr, idx, w


def _compact_of_keys(
    keys: np.ndarray, at: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(rows, ptr, indices, weights)`` of the non-empty rows of a keyed matrix."""
    row = keys >> KEY_SHIFT
    starts = np.flatnonzero(row[1:] != row[:-1]) + 1
    first = np.concatenate([[0], starts]).astype(np.int64) if len(keys) else starts
    ptr = np.concatenate([first, [len(keys)]]).astype(np.int64)
    return (
        row[first],
        ptr,
        (keys & KEY_MASK).astype(np.int32),
        weights[at],
    )


def _csr_of_keys(
    n: int, keys: np.ndarray, at: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full CSR (``n + 1`` row pointer) of a keyed matrix."""
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys >> KEY_SHIFT, minlength=n), out=indptr[1:])
    return indptr, (keys & KEY_MASK).astype(np.int32), weights[at]


def _concat_rows(a: CompactRows, b: CompactRows) -> CompactRows:
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


def _firsts(ordered: np.ndarray) -> np.ndarray:
    """Mask of the first of each run of equal values in a sorted array."""
    first = np.empty(len(ordered), dtype=bool)
    first[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    return first


@overload
def _unique(values: np.ndarray, return_inverse: Literal[False] = False) -> np.ndarray: ...


@overload
def _unique(values: np.ndarray, return_inverse: Literal[True]) -> tuple[np.ndarray, np.ndarray]: ...


def _unique(
    values: np.ndarray, return_inverse: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values by sorting (numpy's hash-based unique is several
    times slower on the integer keys of a patch)."""
    order = radix_argsort(np.asarray(values, dtype=np.int64))
    ordered = values[order]
    first = _firsts(ordered)
    uniq: np.ndarray = ordered[first]
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


#: Particle and link ids stay below 2^31: pair keys hold a row in 32 bits and
#: the link columns are int32.
_MAX_ID = 2**31 - 1
#: The attributes a snapshot has (``__init__`` sets them all).
_SNAPSHOT_FIELDS = (
    "n",
    "perm",
    "iperm",
    "out_indptr",
    "out_indices",
    "out_w",
    "in_indptr",
    "in_indices",
    "in_w",
    "in_to_out",
    "out_to_in",
    "patchable",
    "out_weight",
    "entry_link_ptr",
    "entry_link_ids",
    "link_entry",
    "base_links",
    "n_links",
    "base_n",
    "version",
    "_late",
    "_late_by_code",
    "_ov_cols",
    "_ov_out",
    "_ov_in",
    "_ov_in_done",
    "_ov_cache",
    "_weights_shared",
    "_room",
)
#: The particle-sized arrays ``_grow`` lengthens, and what it appends: the new
#: particles keep their own ids (``perm``, ``iperm``), own no base entries
#: (the row pointers repeat their last value) and weigh nothing yet.
_GROWN_FIELDS = ("perm", "iperm", "out_indptr", "in_indptr", "out_weight")
#: Arrays a snapshot never writes in place once built (``_grow`` replaces the
#: row pointers and permutations by longer ones): its copies share them.
_SHARED_FIELDS = frozenset(
    {
        "perm",
        "iperm",
        "out_indptr",
        "out_indices",
        "in_indptr",
        "in_indices",
        "in_to_out",
        "out_to_in",
        "entry_link_ptr",
        "entry_link_ids",
        "link_entry",
    }
)
#: The base entries' weights, rewritten in place by patches: copies share
#: them until one of them patches (``Snapshot._own_weights``).
_COPY_ON_WRITE_FIELDS = frozenset({"out_w", "in_w"})


@dataclass(frozen=True)
class SnapshotState:
    """What a patched snapshot holds that its links do not decide.

    The structure of the base CSR, its transpose and every map between entries
    and links follow from the links it was built from (the first
    ``base_links`` links over ``base_n`` particles), and the late links'
    entries from the overlay's pairs; :meth:`Snapshot.restored` builds them
    again. What a patch history decides is kept: the base entries' weights
    and the particles' out-weights (each moved by additions, so their bits
    depend on the blocks that made them), the overlay's pairs in the order
    they were added (internal ids) with their weights, the particle count the
    snapshot has grown to and its version.
    """

    base_n: int
    base_links: int
    n: int
    version: int
    #: ``out_w``: one per base entry, in CSR order.
    entry_weights: np.ndarray
    #: ``out_weight``: one per particle, internal order.
    row_weights: np.ndarray
    overlay_src: np.ndarray
    overlay_dst: np.ndarray
    overlay_weights: np.ndarray


class _OverlayPart:
    """One array of an overlay CSR, read through ``Snapshot._overlay`` (which
    builds the CSR once per patch, when a consumer first asks)."""

    def __init__(self, kind: str, index: int) -> None:
        self.kind = kind
        self.index = index

    @overload
    def __get__(self, snap: None, owner: type | None = None) -> _OverlayPart: ...

    @overload
    def __get__(self, snap: Snapshot, owner: type | None = None) -> np.ndarray: ...

    def __get__(
        self, snap: Snapshot | None, owner: type | None = None
    ) -> _OverlayPart | np.ndarray:
        if snap is None:  # looked up on the class (help(), introspection)
            return self
        return snap._overlay(self.kind)[self.index]


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
        *,
        patchable: bool = True,
    ) -> None:
        """``patchable=False`` builds a static snapshot for a one-shot solve:
        without the maps between entries and links and between the two CSRs,
        which only :meth:`patch` reads (five int32 arrays: 20 bytes a link,
        and a tenth of the build's time, bench/static_snapshot.py); patching
        one raises."""
        src, dst = id_array(src), id_array(dst)
        if order == "degree":
            perm = degree_order(n, src, dst)
        elif order == "none":
            perm = np.arange(n, dtype=np.int64)
        else:
            raise InvalidParameterError(f"unknown order {order!r}: use 'degree' or 'none'")
        self.n = n
        self.perm = perm
        self.iperm = np.empty(n, dtype=np.int64)
        self.iperm[perm] = np.arange(n, dtype=np.int64)
        weights_in = flush_tiny(np.asarray(link_weights, dtype=np.float64))
        keep = src != dst
        all_kept = bool(keep.all())
        kept = None if all_kept else np.flatnonzero(keep)
        perm32 = perm.astype(np.int32)  # internal ids < 2^31 (_MAX_ID), gathered as such
        isrc = gather(perm32, src if all_kept else src[kept])
        idst = gather(perm32, dst if all_kept else dst[kept])
        del perm32
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
        self.patchable = patchable
        self.out_weight = row_sums(indptr, weights)
        if not patchable:
            none: np.ndarray = np.empty(0, dtype=small)
            self.in_to_out = self.out_to_in = none
            self.entry_link_ptr = self.entry_link_ids = self.link_entry = none
        else:
            self.in_to_out = t_to_e.astype(small)
            self.out_to_in = e_to_t.astype(small)
            self.entry_link_ptr = elptr.astype(small)
            if kept is None:
                self.entry_link_ids = elids.astype(small)
                self.link_entry = entry_of_kept.astype(small)
            else:
                self.entry_link_ids = kept[elids].astype(small)
                self.link_entry = np.full(len(src), -1, dtype=small)
                self.link_entry[kept] = entry_of_kept
        del t_to_e, e_to_t
        self.base_links = len(src)
        self.n_links = len(src)
        self.base_n = n
        #: Incremented by every patch, so holders of derived state notice missed ones.
        self.version = 0
        # Links added after the build: entry code per link (>= 0 base entry,
        # -(k + 2) overlay entry k, -1 dropped self-link).
        self._late = Column(np.int64)
        # The same links sorted by entry code (ids ascending within a code), so a
        # patch finds the late links of the entries it touches by binary search.
        self._late_by_code = SortedIndex()
        self._ov_cols = (Column(np.int32), Column(np.int32), Column(np.float64))
        # The overlay's entries sorted by (src, dst) and by (dst, src): keys and
        # the entry index of each key.
        self._ov_out = SortedIndex()
        self._ov_in = SortedIndex()
        # Overlay entries not yet merged into the in-keys: merged when a consumer
        # asks for the in-direction (the CUDA backend never does).
        self._ov_in_done = 0
        self._ov_cache: dict[str, tuple[np.ndarray, ...]] = {}
        #: Whether a copy may share ``out_w`` and ``in_w`` (see __deepcopy__).
        self._weights_shared = False
        #: The buffers ``_grow`` made, with room past the arrays they hold.
        self._room: dict[str, np.ndarray] = {}

    def __deepcopy__(self, memo: dict[int, object]) -> Snapshot:
        """A copy that shares the link-sized arrays.

        A validator copies the chain's focus state for every block it proposes
        or checks; copying the matrices cost more than the block's solve at
        10^7 links. The structure arrays are never written once built, so the
        two share them; the base weights are shared until either patches
        (which copies them first); the overlay's columns share their
        buffers as :class:`Column` copies do; the rest (particle-sized and
        overlay-sized) is copied.
        """
        twin = object.__new__(Snapshot)
        memo[id(self)] = twin
        for name, value in self.__dict__.items():
            if name in _SHARED_FIELDS or name in _COPY_ON_WRITE_FIELDS:
                memo[id(value)] = value
                twin.__dict__[name] = value
            elif name == "_room":
                # The shared arrays' buffers stay shared (see _extend); the
                # copied arrays are no longer views of theirs.
                twin._room = dict(value)
            else:
                twin.__dict__[name] = copy.deepcopy(value, memo)
        twin._weights_shared = self._weights_shared = True
        return twin

    def state(self) -> SnapshotState:
        """What :meth:`restored` needs besides the links (views, not copies)."""
        if not self.patchable:
            raise ValueError("a static snapshot (patchable=False) has no state to keep")
        return SnapshotState(
            base_n=self.base_n,
            base_links=self.base_links,
            n=self.n,
            version=self.version,
            entry_weights=self.out_w,
            row_weights=self.out_weight,
            overlay_src=self.ov_src,
            overlay_dst=self.ov_dst,
            overlay_weights=self.ov_w,
        )

    @classmethod
    def restored(
        cls, state: SnapshotState, src: np.ndarray, dst: np.ndarray, order: str = "degree"
    ) -> Snapshot:
        """The snapshot whose :meth:`state` was ``state``, over the graph's
        links ``src -> dst`` (every link, particle ids, int32).

        The base is built as the rebuild that made it did, from the first
        ``base_links`` links over ``base_n`` particles (the same structure,
        bit for bit: it depends on the links alone), then it takes the kept
        weights, grows to ``n`` particles, takes the overlay's pairs and finds
        the entry of every later link, which is what the patches that brought
        them found. StructureError names what does not fit: a base link past
        the base's particles, a weight count other than the base's entries,
        an overlay pair twice or already in the base, a later link whose pair
        is in neither, an overlay entry no link holds.
        """
        check = Check()
        bl, base_n, n = state.base_links, state.base_n, state.n
        m = len(src)
        if not 0 <= bl <= m:
            check.fail("base_links", f"= {bl} is outside [0, {m}] links")
        if not 0 <= base_n <= n <= _MAX_ID:
            check.fail("base_n", f"= {base_n} is not within [0, n = {n}]")
        base_src, base_dst = src[:bl], dst[:bl]
        check.bounds("base link sources", base_src, 0, base_n)
        check.bounds("base link targets", base_dst, 0, base_n)
        snap = cls(base_n, base_src, base_dst, np.zeros(bl), order=order)
        nnz = len(snap.out_indices)
        check.array("entry_weights", state.entry_weights, np.float64, nnz)
        check.array("row_weights", state.row_weights, np.float64, n)
        snap.out_w = state.entry_weights
        snap.in_w = snap.out_w[snap.in_to_out]
        snap._grow(n)
        snap.out_weight = state.row_weights
        ov_src = check.array("overlay_src", state.overlay_src, np.int32, lo=0, hi=n)
        n_ov = len(ov_src)
        ov_dst = check.array("overlay_dst", state.overlay_dst, np.int32, n_ov, lo=0, hi=n)
        check.array("overlay_weights", state.overlay_weights, np.float64, n_ov)
        keys = pair_keys(ov_src, ov_dst)
        by_key = radix_argsort(keys)
        sorted_keys = keys[by_key]
        twice = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])
        if len(twice):
            check.fail(f"overlay_src[{int(by_key[twice[0] + 1])}]", "repeats an overlay pair")
        held_by_base = find_entries(
            snap.out_indptr, snap.out_indices, ov_src.astype(np.int64), ov_dst.astype(np.int64)
        )
        in_base = np.flatnonzero(held_by_base >= 0)
        if len(in_base):
            check.fail(f"overlay_src[{int(in_base[0])}]", "is a pair the base holds")
        for col, part in zip(snap._ov_cols, (ov_src, ov_dst, state.overlay_weights), strict=True):
            col.extend(part)
        snap._ov_out.merge(sorted_keys, by_key)
        late_src = check.array("late link sources", src[bl:], np.int32, lo=0, hi=n)
        late_dst = check.array("late link targets", dst[bl:], np.int32, m - bl, lo=0, hi=n)
        psrc = gather(snap.perm, late_src.astype(np.int64))
        pdst = gather(snap.perm, late_dst.astype(np.int64))
        codes = find_entries(snap.out_indptr, snap.out_indices, psrc, pdst)
        rest = np.flatnonzero(codes < 0)
        if len(rest):
            pos = positions_in(sorted_keys, pair_keys(psrc[rest], pdst[rest]))
            lost = np.flatnonzero(pos < 0)
            if len(lost):
                at = bl + int(rest[lost[0]])
                check.fail(f"link {at}", "is in neither the base nor the overlay")
            codes[rest] = -(by_key[pos] + 2)
        held = np.bincount(-codes[codes < 0] - 2, minlength=n_ov)
        empty = np.flatnonzero(held == 0)
        if len(empty):
            check.fail(f"overlay_src[{int(empty[0])}]", "is an overlay entry no link holds")
        snap._late.extend(codes)
        by_code = radix_argsort(codes)
        snap._late_by_code.merge(codes[by_code], by_code + bl)
        snap.n_links = m
        snap.version = check.integer("version", state.version, 0)
        return snap

    def __getstate__(self) -> dict[str, object]:
        """The fields without ``_grow``'s spare room (a pickle holds the arrays)."""
        state = self.__dict__.copy()
        state["_room"] = {}
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        """A pickle's fields, with no spare room whatever it says: room is
        only ever memory ``_grow`` made in this process (a pickle from a peer
        that named buffers there could make a growth write into another
        field's array)."""
        self.__dict__.update(state)
        self.__dict__["_room"] = {}

    def _own_weights(self) -> None:
        """Make ``out_w`` and ``in_w`` this snapshot's own before writing them."""
        if self._weights_shared:
            self.out_w = self.out_w.copy()
            self.in_w = self.in_w.copy()
            self._weights_shared = False

    # --- structure -----------------------------------------------------------
    def check_structure(self, check: Check) -> None:  # noqa: PLR0915 - one check per array, in a row
        """Every array of the snapshot, as the kernels and patches index them.

        The CSRs both ways (row pointers, column indices in ``[0, n)``, finite
        weights >= 0), the permutation and its inverse (the tail that ``_grow``
        appended keeps particles' own ids), the entry maps between the two
        CSRs (inverse permutations that pair each entry with its transpose)
        and between entries and links (each link of an entry maps back to
        it), the late links' entry codes and their sorted index, and the
        overlay's columns, key indexes and cached CSRs. Each of these is read
        through ``gather``/``find_entries``/``_gather_ranges`` or a kernel
        loop without bounds checks. How it relates to the graph (links and
        particles counted) is the graph's check.
        """
        a = check.fields(self, Snapshot, _SNAPSHOT_FIELDS)
        if a["patchable"] is not True:
            check.fail("patchable", f"= {a['patchable']!r}: a static snapshot holds no patch maps")
        n = check.integer("n", a["n"], 0, _MAX_ID)
        base_n = check.integer("base_n", a["base_n"], 0, n)
        perm = check.permutation("perm", a["perm"], n)
        grown = np.flatnonzero(perm[base_n:] != np.arange(base_n, n))
        if len(grown):
            i = base_n + int(grown[0])
            check.fail(f"perm[{i}]", f"= {perm[i]}: a particle added after the build keeps its id")
        check.inverse("iperm", a["iperm"], perm)
        out_ptr, out_idx = check_csr(
            check, ("out_indptr", "out_indices"), a["out_indptr"], a["out_indices"], n, n
        )
        nnz = len(out_idx)
        check.array("out_w", a["out_w"], np.float64, nnz, finite=True, nonneg=True)
        in_ptr, in_idx = check_csr(
            check, ("in_indptr", "in_indices"), a["in_indptr"], a["in_indices"], n, n, nnz
        )
        check.array("in_w", a["in_w"], np.float64, nnz, finite=True, nonneg=True)
        small = (np.int32, np.int64)
        in_to_out = check.permutation("in_to_out", a["in_to_out"], nnz, small)
        check.inverse("out_to_in", a["out_to_in"], in_to_out, small)
        check.equal("in_indices", in_idx, rows_of(out_ptr)[in_to_out], "the row of its out-entry")
        check.equal(
            "in_to_out", out_idx[in_to_out], rows_of(in_ptr), "its entry's column is its row"
        )
        check.array("out_weight", a["out_weight"], np.float64, n, finite=True, nonneg=True)
        base_links = check.integer("base_links", a["base_links"], 0, _MAX_ID)
        n_links = check.integer("n_links", a["n_links"], base_links, _MAX_ID)
        link_entry = check.array("link_entry", a["link_entry"], small, base_links, lo=-1, hi=nnz)
        ids = check.array("entry_link_ids", a["entry_link_ids"], small, lo=0, hi=base_links)
        eptr = check.pointer("entry_link_ptr", a["entry_link_ptr"], nnz, len(ids), small)
        if np.any(np.bincount(ids, minlength=base_links) > 1):
            check.fail("entry_link_ids", "names a link twice")
        check.equal("entry_link_ids", link_entry[ids], rows_of(eptr), "its link's entry")
        if int(np.count_nonzero(link_entry >= 0)) != len(ids):
            check.fail("link_entry", "maps links to entries that do not list them")
        check.integer("version", a["version"], 0)

        cols = a["_ov_cols"]
        check.instance("_ov_cols", cols, tuple)
        if len(cols) != 3:
            check.fail("_ov_cols", "is not (sources, targets, weights)")
        ov_src = Column.check_structure(cols[0], check.at("_ov_cols[0]"), np.int32, lo=0, hi=n)
        n_ov = len(ov_src)
        ov_dst = Column.check_structure(cols[1], check.at("_ov_cols[1]"), np.int32, lo=0, hi=n)
        ov_w = Column.check_structure(
            cols[2], check.at("_ov_cols[2]"), np.float64, finite=True, nonneg=True
        )
        if not len(ov_dst) == len(ov_w) == n_ov:
            check.fail("_ov_cols", "are not of one length")
        keys, at = SortedIndex.check_structure(a["_ov_out"], check.at("_ov_out"), n_ov)
        check.permutation("_ov_out.values", at, n_ov)
        check.equal("_ov_out.keys", keys, pair_keys(ov_src[at], ov_dst[at]), "its entry's pair")
        done = check.integer("_ov_in_done", a["_ov_in_done"], 0, n_ov)
        keys, at = SortedIndex.check_structure(a["_ov_in"], check.at("_ov_in"), done)
        check.permutation("_ov_in.values", at, done)
        check.equal("_ov_in.keys", keys, pair_keys(ov_dst[at], ov_src[at]), "its entry's pair")

        late = Column.check_structure(
            a["_late"], check.at("_late"), np.int64, lo=-(n_ov + 1), hi=nnz
        )
        if len(late) != n_links - base_links:
            check.fail(
                "_late", f"holds {len(late)} links, not the {n_links - base_links} late ones"
            )
        live = int(np.count_nonzero(late != -1))
        codes, owners = SortedIndex.check_structure(
            a["_late_by_code"], check.at("_late_by_code"), live
        )
        check.array("_late_by_code.values", owners, np.int64, lo=base_links, hi=n_links)
        if np.any(np.bincount(owners - base_links, minlength=len(late)) > 1):
            check.fail("_late_by_code.values", "names a link twice")
        check.equal("_late_by_code.keys", codes, late[owners - base_links], "its link's code")

        check.instance("_weights_shared", a["_weights_shared"], bool)
        room = a["_room"]
        check.instance("_room", room, dict)
        for name, buf in room.items():
            if name not in _GROWN_FIELDS:
                check.fail("_room", f"holds {name!r}, not an array that grows")
            check.instance(f"_room[{name!r}]", buf, np.ndarray)
        cache = a["_ov_cache"]
        check.instance("_ov_cache", cache, dict)
        for kind, got in cache.items():
            field = f"_ov_cache[{kind!r}]"
            size = {"out": 3, "in": 3, "in_rows": 4}.get(kind)
            if size is None:
                check.fail("_ov_cache", f"holds {kind!r}, not an overlay form")
            check.instance(field, got, tuple)
            if len(got) != size:
                check.fail(field, f"holds {len(got)} arrays, not {size}")
            if size == 3:
                ptr, idx, w = got
                check_csr(check, (f"{field}[0]", f"{field}[1]"), ptr, idx, n, n, n_ov)
            else:
                rows, ptr, idx, w = got
                check.array(f"{field}[0]", rows, np.int64, lo=0, hi=n)
                check.array(f"{field}[2]", idx, np.int32, n_ov, lo=0, hi=n)
                check.indptr(f"{field}[1]", ptr, len(rows), n_ov)
            check.array(f"{field}[{size - 1}]", w, np.float64, n_ov, finite=True, nonneg=True)

    # --- views of the growable columns ----------------------------------------
    # The overlay's entries and the late links' entry codes are read through
    # their columns on every access, never kept as attributes: a view kept
    # beside its column's buffer is deep-copied (a proposal's focus state) or
    # pickled as an array of its own, and a patch that then added weight to an
    # existing overlay entry wrote into that detached copy, which the next new
    # overlay pair replaced by the buffer's stale values: a node restarted from
    # a pickled checkpoint once committed other roots.
    @property
    def ov_src(self) -> np.ndarray:
        """Internal source of each overlay entry (a view of its column)."""
        return self._ov_cols[0].values

    @property
    def ov_dst(self) -> np.ndarray:
        """Internal target of each overlay entry (a view of its column)."""
        return self._ov_cols[1].values

    @property
    def ov_w(self) -> np.ndarray:
        """Weight of each overlay entry; patches write through this view into the column."""
        return self._ov_cols[2].values

    @property
    def late_entry(self) -> np.ndarray:
        """Entry code of each link added after the build (a view of its column)."""
        return self._late.values

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
        """A vector indexed by internal id, re-indexed by particle id.

        ``vec`` may be longer than the snapshot: particles added since keep
        their own ids as internal ids (as ``_grow`` numbers them), so its
        entries past ``n`` are already in particle order.
        """
        head = vec[self.perm]
        return head if len(vec) <= self.n else np.concatenate([head, vec[self.n :]])

    def internal_ids(self, ids: np.ndarray) -> np.ndarray:
        """Internal ids of particles ``ids``; particles added since the snapshot
        last grew keep their own ids (as ``_grow`` will number them)."""
        ids = np.asarray(ids, dtype=np.int64)
        if not len(ids) or ids.max() < self.n:
            return gather(self.perm, ids)
        out = ids.copy()
        old = np.flatnonzero(out < self.n)
        out[old] = gather(self.perm, out[old])
        return out

    def to_internal_order(self, vec: np.ndarray) -> np.ndarray:
        return vec[self.iperm]

    def to_scipy(self) -> sp.csr_matrix:
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
    def _overlay(self, kind: str) -> tuple[np.ndarray, ...]:
        """The overlay in one of its derived forms, built once per patch."""
        got = self._ov_cache.get(kind)
        if got is None:
            if kind == "out":
                got = _csr_of_keys(self.n, self._ov_out.keys, self._ov_out.values, self.ov_w)
            elif kind == "in":
                self._merge_in_keys()
                got = _csr_of_keys(self.n, self._ov_in.keys, self._ov_in.values, self.ov_w)
            else:
                self._merge_in_keys()
                got = _compact_of_keys(self._ov_in.keys, self._ov_in.values, self.ov_w)
            self._ov_cache[kind] = got
        return got

    def _merge_in_keys(self) -> None:
        """Bring the (dst, src)-sorted keys up to date with the overlay's entries."""
        first = self._ov_in_done
        if first == len(self.ov_src):
            return
        entries = np.arange(first, len(self.ov_src), dtype=np.int64)
        in_keys = pair_keys(self.ov_dst[first:], self.ov_src[first:])
        order = radix_argsort(in_keys)
        self._ov_in.merge(in_keys[order], entries[order])
        self._ov_in_done = len(self.ov_src)

    # The overlay's full CSRs (``n + 1`` row pointers), built on first use
    # after each patch: rows = sources (out) or targets (in).
    ov_out_indptr = _OverlayPart("out", 0)
    ov_out_indices = _OverlayPart("out", 1)
    ov_out_w = _OverlayPart("out", 2)
    ov_in_indptr = _OverlayPart("in", 0)
    ov_in_indices = _OverlayPart("in", 1)
    ov_in_w = _OverlayPart("in", 2)

    def overlay_keys(self, direction: str) -> tuple[np.ndarray, np.ndarray]:
        """The overlay's entries as sorted ``pair_keys`` and their weights, in
        O(overlay): rows are sources (``"out"``) or targets (``"in"``). The
        full CSRs (``ov_out_indptr``...) are these with an ``n + 1`` row
        pointer; a consumer that builds that pointer elsewhere (on a GPU)
        takes these instead."""
        if direction == "out":
            keyed = self._ov_out
        elif direction == "in":
            self._merge_in_keys()
            keyed = self._ov_in
        else:
            raise ValueError(f"direction {direction!r} is neither 'out' nor 'in'")
        return keyed.keys, self.ov_w[keyed.values]

    def overlay_in_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The overlay's in-links as ``(rows, ptr, indices, weights)`` over its rows only.

        Row ``rows[k]`` holds ``indices[ptr[k]:ptr[k+1]]`` (ascending): what a
        product needs, in O(overlay) instead of an O(particles) row pointer.
        """
        rows, ptr, indices, weights = self._overlay("in_rows")
        return rows, ptr, indices, weights

    def _grow(self, n_new: int) -> None:
        extra = n_new - self.n
        if extra <= 0:
            return
        tail = np.arange(self.n, n_new, dtype=np.int64)
        self._ov_cache.clear()
        self._extend("perm", tail)
        self._extend("iperm", tail)
        for name in ("out_indptr", "in_indptr"):
            self._extend(name, np.full(extra, getattr(self, name)[-1]))
        self._extend("out_weight", np.zeros(extra))
        self.n = n_new

    def _extend(self, name: str, tail: np.ndarray) -> None:
        """Field ``name`` followed by ``tail``: written past its end when it
        starts a buffer ``_grow`` made with room enough, else into a new buffer
        with room for an eighth more. A block's new particles then cost what
        they add, not a copy of five particle-sized arrays.

        A copy of this snapshot shares ``perm``, ``iperm`` and the row
        pointers and their buffer; what either writes past its end is the same
        (ids that keep their number, the last pointer of the base both share),
        so neither changes a value the other reads."""
        arr = getattr(self, name)
        n, k = len(arr), len(tail)
        buf = self._room.get(name)
        if (
            buf is None
            or arr.base is not buf
            or arr.ctypes.data != buf.ctypes.data
            or len(buf) < n + k
            or arr.dtype != buf.dtype
        ):
            buf = np.empty(n + k + max(k, n // 8), dtype=arr.dtype)
            buf[:n] = arr
            self._room[name] = buf
        buf[n : n + k] = tail
        setattr(self, name, buf[: n + k])

    def _entry_codes_of_new(self, psrc: np.ndarray, pdst: np.ndarray) -> np.ndarray:
        """Entry code of each new link, creating overlay entries for unseen pairs."""
        codes = np.full(len(psrc), -1, dtype=np.int64)
        live = psrc != pdst
        base_hit = find_entries(self.out_indptr, self.out_indices, psrc, pdst)
        codes[live & (base_hit >= 0)] = base_hit[live & (base_hit >= 0)]
        rest = np.flatnonzero(live & (base_hit < 0))
        if len(rest) and len(self.ov_src):
            pos = positions_in(self._ov_out.keys, pair_keys(psrc[rest], pdst[rest]))
            hit = pos >= 0
            codes[rest[hit]] = -(self._ov_out.values[pos[hit]] + 2)
            rest = rest[~hit]
        if len(rest):
            uniq, inverse = _unique(pair_keys(psrc[rest], pdst[rest]), return_inverse=True)
            first = len(self.ov_src)
            codes[rest] = -(first + inverse + 2)
            entries = np.arange(first, first + len(uniq), dtype=np.int64)
            new_src = (uniq >> KEY_SHIFT).astype(np.int32)
            new_dst = (uniq & KEY_MASK).astype(np.int32)
            parts: tuple[np.ndarray, ...] = (new_src, new_dst, np.zeros(len(uniq)))
            for col, part in zip(self._ov_cols, parts, strict=True):
                col.extend(part)
            self._ov_out.merge(uniq, entries)
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
        if not self.patchable:
            raise ValueError("a static snapshot (patchable=False) cannot be patched: rebuild it")
        n_before = self.n
        version_before = self.version
        self._grow(n_new)
        psrc = gather(self.perm, np.asarray(new_src, dtype=np.int64))
        pdst = gather(self.perm, np.asarray(new_dst, dtype=np.int64))
        new_codes = self._entry_codes_of_new(psrc, pdst)
        self._late.extend(new_codes)
        live = np.flatnonzero(new_codes != -1)
        by_code = live[radix_argsort(new_codes[live])]
        sorted_new = new_codes[by_code]
        self._late_by_code.merge(sorted_new, by_code + self.n_links)
        self.n_links += len(new_src)

        old = np.asarray(touched_links, dtype=np.int64)
        old_codes = np.full(len(old), -1, dtype=np.int64)
        in_base = old < self.base_links
        old_codes[in_base] = self.link_entry[old[in_base]]
        old_codes[~in_base] = self.late_entry[old[~in_base] - self.base_links]
        if len(old_codes):
            codes = _unique(np.concatenate([sorted_new, old_codes]))
            codes = codes[codes != -1]
        else:
            codes = sorted_new[_firsts(sorted_new)]
        # Sorted codes: overlay entries (codes <= -2) first, then base entries.
        n_ov = int(np.searchsorted(codes, -1))
        ov_entries = -codes[:n_ov] - 2
        base_entries = codes[n_ov:]

        base_rows = search_sorted(self.out_indptr, base_entries, True) - 1
        entry_rows = np.concatenate([self.ov_src[ov_entries], base_rows]).astype(np.int64)
        sources, row_of_entry = _unique(entry_rows, return_inverse=True)
        if old_rows:
            before = _concat_rows(
                _rows_of(self.out_indptr, self.out_indices, self.out_w, sources),
                _key_rows_of(self._ov_out.keys, self._ov_out.values, self.ov_w, sources),
            )
        else:
            before = (
                np.zeros(len(sources) + 1, dtype=np.int64),
                np.empty(0, dtype=np.int32),
                np.empty(0),
            )
        old_out_weight = self.out_weight[sources].copy()
        held = np.concatenate([self.ov_w[ov_entries], self.out_w[base_entries]])
        if len(old):
            sums = self._entry_sums(codes, n_ov, base_entries, link_weight)
            change = sums - held
        else:
            # Only new links: no older link's weight moved, so a touched entry
            # grows by the weights of its new links (all >= 0, nothing cancels).
            at = np.cumsum(_firsts(sorted_new)) - 1
            first_id = self.n_links - len(new_src)
            change = np.bincount(at, weights=link_weight(by_code + first_id), minlength=len(codes))
            sums = held + change
        self._ov_cols[2].writable()[ov_entries] = sums[:n_ov]
        if len(base_entries):
            self._own_weights()
        self.out_w[base_entries] = sums[n_ov:]
        self.in_w[gather(self.out_to_in, base_entries)] = sums[n_ov:]
        self._ov_cache.clear()
        self.version += 1
        self.out_weight[sources] = self._row_weights(sources, old_out_weight, row_of_entry, change)
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
            overlay_entries=ov_entries,
            changes=(
                entry_rows,
                np.concatenate(
                    [self.ov_dst[ov_entries], gather(self.out_indices, base_entries)]
                ).astype(np.int64),
                change,
            ),
        )

    def _entry_sums(
        self,
        codes: np.ndarray,
        n_ov: int,
        base_entries: np.ndarray,
        link_weight: LinkWeightFn,
    ) -> np.ndarray:
        """Each touched entry summed again from all its links' current weights
        (base links first, then late links by id): exact where stakes moved."""
        ids, owner = _gather_ranges(
            self.entry_link_ids,
            gather(self.entry_link_ptr, base_entries),
            gather(self.entry_link_ptr, base_entries + 1),
        )
        late = self._late_by_code
        late_ids, late_owner = _gather_ranges(
            late.values,
            search_sorted(late.keys, codes, False),
            search_sorted(late.keys, codes, True),
        )
        ids = np.concatenate([ids, late_ids])
        owner = np.concatenate([owner + n_ov, late_owner])
        return np.bincount(
            owner, weights=link_weight(ids) if len(ids) else None, minlength=len(codes)
        )

    def _row_weights(
        self,
        rows: np.ndarray,
        old: np.ndarray,
        row_of_entry: np.ndarray,
        change: np.ndarray,
    ) -> np.ndarray:
        """New out-weights of ``rows``: old plus the change of their entries.

        Summing a hub's 10^5 entries again for every block read half the matrix
        per block; a row whose weight (nearly) cancels is summed from its
        entries, so a neuron whose stake went to zero leaves exactly zero.
        """
        new = old + np.bincount(row_of_entry, weights=change, minlength=len(rows))
        redo = np.flatnonzero(new < _CANCEL * old)
        if len(redo):
            again = rows[redo]
            ptr, _, ov_w = _key_rows_of(self._ov_out.keys, self._ov_out.values, self.ov_w, again)
            owner = np.repeat(np.arange(len(again)), np.diff(ptr))
            ov_sum = np.bincount(owner, weights=ov_w, minlength=len(again))
            new[redo] = _rows_sum(self.out_indptr, self.out_w, again) + ov_sum
        return new


@lazy_njit(cache=True, parallel=True)
def _rows_sum(indptr: np.ndarray, weights: np.ndarray, rows: np.ndarray) -> np.ndarray:
    out = np.zeros(rows.shape[0], dtype=np.float64)
    for k in nb.prange(rows.shape[0]):
        r = rows[k]
        s = 0.0
        for e in range(indptr[r], indptr[r + 1]):
            s += weights[e]
        out[k] = s
    return out
