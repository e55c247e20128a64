"""The cybergraph: particles, neurons with stake, and the links between them.

Everything lives in columns of dense ids (``KeyTable`` turns them back into CIDs
and addresses). Link weights follow go-cyber's rule, restated in
docs/architecture.md §3.1: a neuron's stake is spread evenly over its links, so its
per-link stake is ``stake / neudeg`` and moving stake (or adding a link) changes
every link of that neuron at once. Links from plain edge lists carry no neuron
and keep their own weight.

Self-links are dropped when they arrive: they carry no weight and do not dilute
the neuron's other links (they are not counted in neudeg).

A graph may carry a per-link *factor* (``enable_factors``; a chain's Hebbian
rule, docs/focus.md) that multiplies each link's weight. A graph without one
computes exactly the weights it did before factors existed, and a factor of 1
leaves a weight's bits as they are.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from focusflow.core.cid import validate_cids
from focusflow.core.errors import InvalidParameterError
from focusflow.core.structure import Check
from focusflow.graph.column import Column
from focusflow.graph.csr import gather, id_array, stable_counting_argsort
from focusflow.graph.links import (
    ANONYMOUS,
    Cyberlink,
    FactorBatch,
    LinkBatch,
    StakeBatch,
    flush_tiny,
)
from focusflow.graph.log import DeltaLog
from focusflow.graph.snapshot import PatchInfo, Snapshot, SnapshotState, merge_patches
from focusflow.graph.tables import Key, KeyTable

#: The attributes a graph has (``__init__`` sets them all).
_GRAPH_FIELDS = (
    "particles",
    "neurons",
    "require_cids",
    "default_stake",
    "order",
    "compact_ratio",
    "log",
    "_src",
    "_dst",
    "_neuron",
    "_weight",
    "_stake",
    "_neudeg",
    "_factor",
    "_dirty_links",
    "_snapshot",
    "_epoch",
    "_dirty_neurons",
    "_patches",
    "_neuron_link_order",
    "_neuron_link_ptr",
    "dropped_self_links",
    "skipped_invalid",
)

#: Patch records kept for consumers that fall behind (an engine whose graph
#: another reader refreshed); each is about as large as its block.
KEPT_PATCHES = 8


def _check_stakes(stakes: np.ndarray) -> None:
    if not np.all(np.isfinite(stakes)):
        raise InvalidParameterError("stake must be a finite number")
    if np.any(stakes < 0):
        bad = float(stakes[stakes < 0][0])
        raise InvalidParameterError(f"stake must be >= 0, got {bad}")


@dataclass(frozen=True)
class GraphState:
    """What a graph holds besides its particles' keys: neurons, stakes, links
    and its snapshot's patch state (``Snapshot.state``). A chain commits the
    particles' keys in its state, so a focus checkpoint keeps only this
    (chain/focus_state_format.py); :meth:`Cybergraph.load_state` builds the
    graph again from both."""

    neurons: Sequence[Key]
    stakes: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    neuron: np.ndarray
    weight: np.ndarray
    snapshot: SnapshotState | None
    #: Each link's factor (``Cybergraph.enable_factors``), None without them.
    factor: np.ndarray | None = None


class Cybergraph:
    """A growing cybergraph with its delta log and a patched CSR snapshot.

    ``require_cids`` makes every new particle key pass CID validation (bostrom
    data); plain edge lists use any strings as particle keys.
    """

    def __init__(
        self,
        *,
        require_cids: bool = True,
        default_stake: float = 1.0,
        order: str = "degree",
        compact_ratio: float = 0.1,
    ) -> None:
        self.particles = KeyTable()
        self.neurons = KeyTable()
        self.require_cids = require_cids
        self.default_stake = float(default_stake)
        self.order = order
        self.compact_ratio = compact_ratio
        self.log = DeltaLog()
        self._src = Column(np.int32)
        self._dst = Column(np.int32)
        self._neuron = Column(np.int32)
        self._weight = Column(np.float64)
        self._stake = Column(np.float64)
        self._neudeg = Column(np.int64)
        #: Per-link weight factors (None: none, every weight as staked) and
        #: the links whose factor changed since the snapshot was last patched.
        self._factor: Column | None = None
        self._dirty_links = np.empty(0, dtype=np.int64)
        self._snapshot: Snapshot | None = None
        self._epoch = 0
        self._dirty_neurons: set[int] = set()
        # The last patches' records (rows as they were left out), for a
        # consumer that missed some: see patches_since.
        self._patches: list[PatchInfo] = []
        self._neuron_link_order: np.ndarray | None = None
        self._neuron_link_ptr: np.ndarray | None = None
        self.dropped_self_links = 0
        self.skipped_invalid = 0

    def __deepcopy__(self, memo: dict[int, object]) -> Cybergraph:
        """A copy that shares the links-by-neuron index with this graph.

        The index (a link-sized int64 array and its row pointers) is replaced
        whole by a rebuild and never written in place, and it was the largest
        array a copy of the chain's focus state duplicated (80 MB at 10^7
        links). Everything else is copied as ``copy.deepcopy`` copies it:
        columns, tables and the snapshot by their own rules."""
        for shared in (self._neuron_link_order, self._neuron_link_ptr):
            if shared is not None:
                memo[id(shared)] = shared
        twin = object.__new__(type(self))
        memo[id(self)] = twin
        for name, value in self.__dict__.items():
            twin.__dict__[name] = copy.deepcopy(value, memo)
        return twin

    # --- sizes ---------------------------------------------------------------
    @property
    def n_particles(self) -> int:
        return len(self.particles)

    @property
    def n_neurons(self) -> int:
        return len(self.neurons)

    @property
    def n_links(self) -> int:
        return len(self._src)

    @property
    def stakes(self) -> np.ndarray:
        return self._stake.values

    @property
    def neudeg(self) -> np.ndarray:
        return self._neudeg.values

    def links(self) -> LinkBatch:
        """All links as columns (views; do not mutate)."""
        return LinkBatch(
            self._src.values, self._dst.values, self._neuron.values, self._weight.values
        )

    # --- adding ------------------------------------------------------------
    def add_particles(self, keys: Sequence[Key] | np.ndarray) -> np.ndarray:
        """Ids of particle keys, registering new ones (validated as CIDs if required)."""
        keys = np.asarray(keys, dtype=object)
        if self.require_cids:
            fresh = [k for k in set(keys.tolist()) if k not in self.particles]
            validate_cids(fresh)
        return self.particles.intern(keys)

    def add_neurons(
        self,
        names: Sequence[Key] | np.ndarray,
        stakes: Sequence[float] | np.ndarray | None = None,
        *,
        distinct: bool = False,
    ) -> np.ndarray:
        """Ids of neurons; new ones get ``stakes`` (or the default stake).

        ``distinct`` says the names are pairwise distinct (a reader's factorized
        keys), which spares factorizing them again.
        """
        before = self.n_neurons
        if distinct:
            ids = self.neurons.intern_distinct(list(names))
        else:
            ids = self.neurons.intern(np.asarray(names, dtype=object))
        grown = self.n_neurons - before
        if grown:
            self._stake.extend(np.full(grown, self.default_stake))
            self._neudeg.extend(np.zeros(grown, dtype=np.int64))
        if stakes is not None:
            self.set_stakes(ids, np.asarray(stakes, dtype=np.float64))
        return ids

    def add_links(
        self,
        src: Sequence[Key] | np.ndarray,
        dst: Sequence[Key] | np.ndarray,
        neurons: Sequence[Key] | np.ndarray | None = None,
        weights: Sequence[float] | np.ndarray | None = None,
    ) -> LinkBatch:
        """Append links given by particle keys; returns the batch as logged.

        Either ``neurons`` (links weighted by per-link stake) or ``weights``
        (anonymous links with explicit weights) may be given; with neither,
        anonymous links of weight 1.
        """
        if len(src) != len(dst):
            raise InvalidParameterError("src and dst must have the same length")
        src_ids = self.add_particles(src)
        dst_ids = self.add_particles(dst)
        neuron_ids = None if neurons is None else self.add_neurons(neurons)
        return self.add_link_ids(src_ids, dst_ids, neuron_ids, weights)

    def add_cyberlinks(self, links: Sequence[Cyberlink]) -> LinkBatch:
        """Append :class:`Cyberlink` objects (semcon is kept by later layers, not here)."""
        return self.add_links(
            [x.from_ for x in links], [x.to for x in links], [x.neuron for x in links]
        )

    def add_link_ids(
        self,
        src: np.ndarray,
        dst: np.ndarray,
        neurons: np.ndarray | None = None,
        weights: Sequence[float] | np.ndarray | None = None,
    ) -> LinkBatch:
        """Append links given by ids that already exist in the tables.

        int32 ids are taken as they are (the columns' own type); other integer
        types are read as int64.
        """
        src, dst = id_array(src), id_array(dst)
        m = len(src)
        if len(dst) != m:
            raise InvalidParameterError("src and dst must have the same length")
        if m and (src.min() < 0 or dst.min() < 0 or max(src.max(), dst.max()) >= self.n_particles):
            raise InvalidParameterError("particle id out of range")
        if neurons is not None and weights is not None:
            raise InvalidParameterError("give neurons or weights, not both")
        if neurons is None:
            neuron = None
            weight = np.ones(m) if weights is None else np.asarray(weights, dtype=np.float64)
            if len(weight) != m:
                raise InvalidParameterError("weights must have one value per link")
            if not np.all(np.isfinite(weight)) or np.any(weight < 0):
                raise InvalidParameterError("link weights must be finite and >= 0")
        else:
            neuron = np.asarray(neurons, dtype=np.int64)
            if len(neuron) != m:
                raise InvalidParameterError("neurons must have one value per link")
            if m and (neuron.min() < 0 or neuron.max() >= self.n_neurons):
                raise InvalidParameterError("neuron id out of range")
            weight = np.zeros(m)
        # Columns are built in their final types, and only filtered when a
        # self-link is there to drop: at 10^7 links every needless copy is a
        # fresh 40-80 MB a reader pays for.
        keep = src != dst
        kept = None if keep.all() else np.flatnonzero(keep)
        self.dropped_self_links += 0 if kept is None else int(m - len(kept))

        def final(col: np.ndarray, dtype: type) -> np.ndarray:
            return (col if kept is None else col[kept]).astype(dtype, copy=False)

        n_kept = m if kept is None else len(kept)
        kept_weight = final(weight, np.float64)
        if kept_weight is weights:  # the log keeps the batch, never the caller's array
            kept_weight = kept_weight.copy()
        kept_neuron = (
            np.full(n_kept, ANONYMOUS, dtype=np.int32)
            if neuron is None
            else final(neuron, np.int32)
        )
        batch = LinkBatch(final(src, np.int32), final(dst, np.int32), kept_neuron, kept_weight)
        self._src.extend(batch.src)
        self._dst.extend(batch.dst)
        self._neuron.extend(batch.neuron)
        self._weight.extend(batch.weight)
        if self._factor is not None:
            self._factor.extend(np.ones(n_kept))
        named = batch.neuron[batch.neuron >= 0]
        if len(named):
            counts = np.bincount(named, minlength=self.n_neurons)
            self._neudeg.writable()[:] += counts
            self._dirty_neurons.update(np.flatnonzero(counts).tolist())
        self.log.append(batch)
        return batch

    def set_stakes(self, neurons: np.ndarray, stakes: np.ndarray) -> StakeBatch:
        """Set the stake of neurons (by id); every link of theirs is re-weighed."""
        neurons = np.asarray(neurons, dtype=np.int64)
        stakes = np.asarray(stakes, dtype=np.float64)
        if len(neurons) != len(stakes):
            raise InvalidParameterError("one stake per neuron")
        _check_stakes(stakes)
        if len(neurons) and (neurons.min() < 0 or neurons.max() >= self.n_neurons):
            raise InvalidParameterError("neuron id out of range")
        self._stake.writable()[neurons] = stakes
        batch = StakeBatch(neurons.astype(np.int32), stakes)
        self._dirty_neurons.update(neurons.tolist())
        self.log.append(batch)
        return batch

    # --- factors -------------------------------------------------------------
    @property
    def factors(self) -> np.ndarray | None:
        """Each link's weight factor (a view; do not mutate), None without factors."""
        return None if self._factor is None else self._factor.values

    def enable_factors(self) -> None:
        """Give every link a factor of 1 (no weight changes); links added
        later get 1 too. Nothing happens where factors are already on."""
        if self._factor is None:
            self._factor = Column(np.float64)
            self._factor.extend(np.ones(self.n_links))

    def set_factors(self, links: np.ndarray, factors: np.ndarray) -> FactorBatch:
        """Set the factors of ``links`` (by id): each is re-weighed at the next
        snapshot refresh. InvalidParameterError for ids out of range, a factor
        not finite and > 0, or a graph without factors."""
        if self._factor is None:
            raise InvalidParameterError("this graph has no link factors (enable_factors)")
        links = np.asarray(links, dtype=np.int64)
        factors = np.asarray(factors, dtype=np.float64)
        if links.shape != factors.shape or links.ndim != 1:
            raise InvalidParameterError("one factor per link")
        if len(links) and (links.min() < 0 or links.max() >= self.n_links):
            raise InvalidParameterError("link id out of range")
        if not np.all(np.isfinite(factors) & (factors > 0)):
            raise InvalidParameterError("link factors must be finite and > 0")
        self._factor.writable()[links] = factors
        self._dirty_links = np.concatenate([self._dirty_links, links])
        batch = FactorBatch(links, factors)
        self.log.append(batch)
        return batch

    def clear_factors(self) -> FactorBatch | None:
        """Drop the factors: every link weighs its stake again. The links
        whose factor was not 1 are re-weighed (logged as factors of 1)."""
        if self._factor is None:
            return None
        moved = np.flatnonzero(self._factor.values != 1.0)
        batch = self.set_factors(moved, np.ones(len(moved))) if len(moved) else None
        self._factor = None
        return batch

    # --- weights -----------------------------------------------------------
    def link_weight(self, ids: np.ndarray) -> np.ndarray:
        """Current weight of links ``ids``: per-link stake, or the explicit weight.

        A neuron with zero stake gives exactly 0; neudeg of a linked neuron is >= 1,
        so the division never produces NaN.
        """
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) and (ids.min() < 0 or ids.max() >= self.n_links):
            raise IndexError(f"link ids must lie in [0, {self.n_links})")
        factor = None if self._factor is None else gather(self._factor.values, ids)
        return self._weights_of(
            gather(self._neuron.values, ids), gather(self._weight.values, ids), factor
        )

    def link_weight_range(self, first: int, last: int, *, factors: bool = True) -> np.ndarray:
        """``link_weight`` of links ``first .. last - 1``, read as slices (a
        block's links); ``factors=False``: as staked, without their factors."""
        if not 0 <= first <= last <= self.n_links:
            raise IndexError(f"link range must lie in [0, {self.n_links}]")
        factor = None
        if factors and self._factor is not None:
            factor = self._factor.values[first:last]
        return self._weights_of(
            self._neuron.values[first:last], self._weight.values[first:last], factor
        )

    def _weights_of(
        self, neuron: np.ndarray, weight: np.ndarray, factor: np.ndarray | None
    ) -> np.ndarray:
        named = neuron >= 0
        out = np.array(weight, dtype=np.float64)
        nid = neuron[named].astype(np.int64)
        deg = self._neudeg.values[nid]
        out[named] = self._stake.values[nid] / np.maximum(deg, 1)
        if factor is not None:
            out *= factor
        return flush_tiny(out)

    # --- structure -----------------------------------------------------------
    def check_structure(self, check: Check) -> None:  # noqa: C901, PLR0912, PLR0915 - one check per array, in a row
        """Every array of the graph, its snapshot and its patch records.

        Link columns of one length with particle and neuron ids within the
        interned counts (the key tables are bijections), finite weights and
        stakes >= 0, neudeg the count of each neuron's links, the delta log
        holding exactly the columns' last links (all of them until a trim:
        ``DeltaLog.trim``), the neuron-to-links index
        the counting sort of the snapshot's links, and the snapshot itself
        (``Snapshot.check_structure``) within the graph's counts: a patch
        reads all of them through numba kernels without bounds checks.
        """
        a = check.fields(self, Cybergraph, _GRAPH_FIELDS)
        n = KeyTable.check_structure(a["particles"], check.at("particles"))
        nn = KeyTable.check_structure(a["neurons"], check.at("neurons"))
        src = Column.check_structure(a["_src"], check.at("_src"), np.int32, lo=0, hi=n)
        m = len(src)
        cols = {
            "_dst": Column.check_structure(a["_dst"], check.at("_dst"), np.int32, lo=0, hi=n),
            "_neuron": Column.check_structure(
                a["_neuron"], check.at("_neuron"), np.int32, lo=ANONYMOUS, hi=nn
            ),
            "_weight": Column.check_structure(
                a["_weight"], check.at("_weight"), np.float64, finite=True, nonneg=True
            ),
        }
        for name, col in cols.items():
            if len(col) != m:
                check.fail(name, f"holds {len(col)} links, not the {m} of _src")
        neuron = cols["_neuron"]
        stake = Column.check_structure(
            a["_stake"], check.at("_stake"), np.float64, finite=True, nonneg=True
        )
        if len(stake) != nn:
            check.fail("_stake", f"holds {len(stake)} stakes, not one per {nn} neurons")
        neudeg = Column.check_structure(a["_neudeg"], check.at("_neudeg"), np.int64)
        check.equal("_neudeg", neudeg, np.bincount(neuron[neuron >= 0], minlength=nn), "its links")
        factor = a["_factor"]
        if factor is not None:
            values = Column.check_structure(
                factor, check.at("_factor"), np.float64, finite=True, nonneg=True
            )
            if len(values) != m:
                check.fail("_factor", f"holds {len(values)} factors, not one per {m} links")
            if np.any(values == 0):
                check.fail("_factor", "holds a 0 (a factor is > 0)")
        check.array("_dirty_links", a["_dirty_links"], np.int64, lo=0, hi=max(m, 1))
        batches = DeltaLog.check_structure(a["log"], check.at("log"), n, nn, m)
        logged_links = sum(len(b.src) for b in batches)
        if logged_links > m or (a["log"].trimmed == 0 and logged_links != m):
            check.fail("log", f"holds {logged_links} links, the columns {m}")
        logged = zip(("_src", "_dst", "_neuron", "_weight"), (src, *cols.values()), strict=True)
        for name, col in logged:
            field = name.lstrip("_")
            parts = [getattr(b, field) for b in batches]
            whole = np.concatenate(parts) if parts else col[:0]
            check.equal(name, col[m - logged_links :], whole, "the delta log's links")
        check.instance("require_cids", a["require_cids"], bool)
        check.number("default_stake", a["default_stake"], nonneg=True)
        if a["order"] not in ("degree", "none"):
            check.fail("order", f"= {a['order']!r} is not a particle order")
        check.number("compact_ratio", a["compact_ratio"], nonneg=True)
        check.integer("_epoch", a["_epoch"], 0)
        check.integer("dropped_self_links", a["dropped_self_links"], 0)
        check.integer("skipped_invalid", a["skipped_invalid"], 0)
        dirty = a["_dirty_neurons"]
        check.instance("_dirty_neurons", dirty, set)
        if any(type(d) is not int or not 0 <= d < nn for d in dirty):
            check.fail("_dirty_neurons", f"holds an id outside [0, {nn})")
        patches = a["_patches"]
        check.instance("_patches", patches, list)
        if len(patches) > KEPT_PATCHES:
            check.fail("_patches", f"keeps {len(patches)} records, more than {KEPT_PATCHES}")
        snap = a["_snapshot"]
        if snap is None:
            if patches or a["_neuron_link_order"] is not None or a["_neuron_link_ptr"] is not None:
                check.fail("_snapshot", "is None beside the state of one")
            return
        Snapshot.check_structure(snap, check.at("_snapshot"))
        if snap.n > n:
            check.fail("_snapshot.n", f"= {snap.n} is more than the graph's {n} particles")
        if snap.n_links > m:
            check.fail("_snapshot.n_links", f"= {snap.n_links} is more than the graph's {m} links")
        for k, info in enumerate(patches):
            PatchInfo.check_structure(info, check.at(f"_patches[{k}]"), snap)
            if k and info.version_before != patches[k - 1].version_before + 1:
                check.fail(f"_patches[{k}].version_before", "does not follow the record before")
        ptr = a["_neuron_link_ptr"]
        bins = len(ptr) - 1 if type(ptr) is np.ndarray and len(ptr) else 0
        if not 1 <= bins <= max(nn, 1):
            check.fail("_neuron_link_ptr", f"has {bins + 1} entries, not 2..{max(nn, 1) + 1}")
        base = neuron[: snap.base_links]
        if len(base) and base.max() >= bins:
            check.fail("_neuron_link_ptr", f"has {bins} neurons, the snapshot's links name more")
        order = check.array(
            "_neuron_link_order", a["_neuron_link_order"], np.int64, lo=0, hi=snap.base_links
        )
        ptr = check.indptr("_neuron_link_ptr", ptr, bins, len(order))
        want, want_ptr = stable_counting_argsort(
            base.astype(np.int64), bins, np.flatnonzero(base >= 0)
        )
        check.equal("_neuron_link_ptr", ptr, want_ptr, "the count of each neuron's links")
        check.equal("_neuron_link_order", order, want, "the snapshot's links by neuron")

    # --- state -------------------------------------------------------------------
    def state(self) -> GraphState:
        """The graph without its particles' keys (views of its columns: valid
        until the graph changes)."""
        snap = self._snapshot
        return GraphState(
            neurons=self.neurons.keys(),
            stakes=self._stake.values,
            src=self._src.values,
            dst=self._dst.values,
            neuron=self._neuron.values,
            weight=self._weight.values,
            snapshot=None if snap is None else snap.state(),
            factor=self.factors,
        )

    def load_state(self, particles: Sequence[Key], state: GraphState) -> None:
        """Fill this empty graph with ``particles`` (in id order) and ``state``.

        The snapshot is rebuilt from the links and its kept state
        (``Snapshot.restored``), the neuron-to-links index from the base
        links, neudeg from the links; the delta log starts empty (every link
        is in the snapshot already). StructureError names a field that does
        not fit: an id outside the tables, a self-link, a weight or stake
        not finite or negative, a snapshot larger than the graph.
        """
        if self.n_particles or self.n_neurons or self.n_links:
            raise ValueError("load_state fills an empty graph")
        check = Check()
        self.particles.intern_distinct(list(particles))
        self.neurons.intern_distinct(list(state.neurons))
        n, nn = self.n_particles, self.n_neurons
        stakes = check.array("stakes", state.stakes, np.float64, nn, finite=True, nonneg=True)
        src = check.array("src", state.src, np.int32, lo=0, hi=n)
        m = len(src)
        dst = check.array("dst", state.dst, np.int32, m, lo=0, hi=n)
        neuron = check.array("neuron", state.neuron, np.int32, m, lo=ANONYMOUS, hi=nn)
        weight = check.array("weight", state.weight, np.float64, m, finite=True, nonneg=True)
        loops = np.flatnonzero(src == dst)
        if len(loops):
            check.fail(f"src[{int(loops[0])}]", "is a self-link (the graph drops them)")
        self._src.extend(src)
        self._dst.extend(dst)
        self._neuron.extend(neuron)
        self._weight.extend(weight)
        self._stake.extend(stakes)
        self._neudeg.extend(np.bincount(neuron[neuron >= 0], minlength=nn).astype(np.int64))
        if state.factor is not None:
            factor = check.array("factor", state.factor, np.float64, m, finite=True, nonneg=True)
            zero = np.flatnonzero(factor == 0)
            if len(zero):
                check.fail(f"factor[{int(zero[0])}]", "is 0 (a factor is > 0)")
            self._factor = Column(np.float64)
            self._factor.extend(factor)
        if state.snapshot is None:
            return
        snap = Snapshot.restored(state.snapshot, src, dst, self.order)
        if snap.n > n:
            check.fail("snapshot n", f"= {snap.n} is more than the graph's {n} particles")
        base = neuron[: snap.base_links].astype(np.int64)
        order, ptr = stable_counting_argsort(base, max(nn, 1), np.flatnonzero(base >= 0))
        self._neuron_link_order = order
        self._neuron_link_ptr = ptr
        self._snapshot = snap
        self._epoch = 1

    # --- snapshots -----------------------------------------------------------
    @property
    def epoch(self) -> int:
        """Incremented whenever the snapshot is rebuilt (internal ids may change)."""
        return self._epoch

    def snapshot(self, patchable: bool = True) -> Snapshot:
        """The current weighted CSR, patched with everything added since last time.

        The patch record is dropped here, so the touched rows' old contents
        (as long as the rows, for hubs most of the matrix) are not copied.
        ``patchable=False`` is for a one-shot solve: a graph that holds no
        snapshot yet gets a static one (``Snapshot(patchable=False)``: 20
        bytes a link smaller and a tenth faster to build); one held is used or patched as
        usual, and a static one is rebuilt patchable once the graph changes.
        """
        return self.refresh(old_rows=False, patchable=patchable)[0]

    def refresh(
        self, old_rows: bool = True, patchable: bool = True
    ) -> tuple[Snapshot, PatchInfo | None]:
        """Bring the snapshot up to date; PatchInfo is None when it was rebuilt.

        ``old_rows=False``: the patch record leaves out the touched rows as they
        were (see ``Snapshot.patch``). ``patchable``: see :meth:`snapshot`.
        """
        snap = self._snapshot
        if snap is not None and patchable and not snap.patchable:
            return self._rebuild(), None
        pending = self.n_links - (snap.n_links if snap is not None else 0)
        if (
            snap is not None
            and not pending
            and not self._dirty_neurons
            and not len(self._dirty_links)
            and snap.n == self.n_particles
        ):
            return snap, _no_change(snap)
        if snap is None:
            return self._rebuild(patchable), None
        if not snap.patchable or self._needs_compaction(snap, pending):
            return self._rebuild(), None
        info = snap.patch(
            self.n_particles,
            self._src.values[snap.n_links :],
            self._dst.values[snap.n_links :],
            self._links_of_dirty(snap.n_links),
            self.link_weight,
            old_rows=old_rows,
        )
        self._dirty_neurons.clear()
        self._dirty_links = np.empty(0, dtype=np.int64)
        kept = (
            info
            if not old_rows
            else dataclasses.replace(
                info,
                old_ptr=np.zeros(1, dtype=np.int64),
                old_indices=np.empty(0, dtype=np.int32),
                old_weights=np.empty(0),
            )
        )
        self._patches = [*self._patches[1 - KEPT_PATCHES :], kept]
        return snap, info

    def patches_since(self, version: int) -> PatchInfo | None:
        """What the snapshot's patches changed since ``version``, as one record
        (``merge_patches``), or None when those records are no longer kept (the
        last KEPT_PATCHES are; a rebuild drops them all)."""
        first = next((k for k, r in enumerate(self._patches) if r.version_before == version), None)
        return None if first is None else merge_patches(self._patches[first:])

    @property
    def pending_links(self) -> int:
        """Links added since the snapshot was last brought up to date."""
        snap = self._snapshot
        return self.n_links - (snap.n_links if snap is not None else 0)

    def needs_compaction(self) -> bool:
        """Whether the next refresh rebuilds the snapshot (new internal ids)."""
        snap = self._snapshot
        if snap is None or not snap.patchable:
            return True
        return self._needs_compaction(snap, self.pending_links)

    def _needs_compaction(self, snap: Snapshot, pending: int) -> bool:
        base = max(len(snap.out_indices), 1)
        grown = self.n_particles - snap.base_n
        return (
            snap.overlay_nnz + pending > self.compact_ratio * base
            or grown > self.compact_ratio * max(snap.base_n, 1)
        )

    def _rebuild(self, patchable: bool = True) -> Snapshot:
        snap = Snapshot(
            self.n_particles,
            self._src.values,
            self._dst.values,
            self.link_weight_range(0, self.n_links),
            order=self.order,
            patchable=patchable,
        )
        neuron = self._neuron.values
        named = np.flatnonzero(neuron >= 0)
        order, ptr = stable_counting_argsort(neuron.astype(np.int64), max(self.n_neurons, 1), named)
        self._neuron_link_order = order
        self._neuron_link_ptr = ptr
        self._snapshot = snap
        self._dirty_neurons.clear()
        self._dirty_links = np.empty(0, dtype=np.int64)
        self._patches = []
        self._epoch += 1
        return snap

    def _links_of_dirty(self, upto: int) -> np.ndarray:
        """Link ids below ``upto`` made by neurons whose per-link stake
        changed, or whose factor did (ids may repeat: the patch takes each
        entry once)."""
        moved = self._dirty_links[self._dirty_links < upto]
        if not self._dirty_neurons:
            return moved
        dirty = np.fromiter(self._dirty_neurons, dtype=np.int64)
        order, ptr = self._neuron_link_order, self._neuron_link_ptr
        snap = self._snapshot
        assert order is not None and ptr is not None and snap is not None  # only when patching
        base_n = len(ptr) - 1
        parts = [order[ptr[d] : ptr[d + 1]] for d in dirty.tolist() if d < base_n]
        late = np.arange(snap.base_links, upto, dtype=np.int64)
        if len(late):
            parts.append(late[np.isin(self._neuron.values[late], dirty)])
        return np.concatenate([*parts, moved])


def _no_change(snap: Snapshot) -> PatchInfo:
    empty_i = np.empty(0, dtype=np.int64)
    return PatchInfo(
        n_before=snap.n,
        n_after=snap.n,
        sources=empty_i,
        old_ptr=np.zeros(1, dtype=np.int64),
        old_indices=np.empty(0, dtype=np.int32),
        old_weights=np.empty(0),
        old_out_weight=np.empty(0),
        base_entries=empty_i,
        version_before=snap.version,
        overlay_entries=empty_i,
        changes=(empty_i, empty_i, np.empty(0)),
    )
