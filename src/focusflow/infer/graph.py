"""The graph inference runs on: weighted links with their semcons, and particle keys.

Inference needs less than the chain's engine keeps (no delta log, no exact
arithmetic) and one thing it does not: each link's *semcon*, the relation type
a query may restrict or weigh. A link's semcon is its neuron's name: in a
typed graph file each relation is its own neuron (``focusflow import wordnet``
writes ``wordnet:hypernym``, ``wordnet:part_meronym``, ...), and links of an
edge list, which have no neuron, share the semcon ``""``.

The same object is built from a graph file (:meth:`InferGraph.from_cybergraph`)
or from a node's committed view (:meth:`InferGraph.from_arrays`); snapshots for
a semcon weighting are built once and kept (a few at a time).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import numpy as np

from focusflow.core.cid import particle_cid
from focusflow.core.errors import InvalidCIDError, InvalidParameterError
from focusflow.graph.cybergraph import Cybergraph
from focusflow.graph.semcons import SemconNames
from focusflow.graph.snapshot import Snapshot
from focusflow.infer.errors import EmptyContextError, UnknownParticleError

if TYPE_CHECKING:
    from focusflow.focus.local_push import LocalGraph, PushScratch, Walks

#: Snapshots of distinct semcon weightings kept per graph.
SNAPSHOTS_KEPT = 4
#: A context holds at most this many particles (a query, not a corpus).
MAX_CONTEXT = 4096


@dataclass
class InferGraph:
    """Links (``src -> dst`` with ``weight`` and a ``semcon`` index) over ``n`` particles."""

    n: int
    src: np.ndarray
    dst: np.ndarray
    weight: np.ndarray
    semcon: np.ndarray
    semcons: tuple[str, ...]
    keys: Sequence[str]
    #: Content text of particles by key, for display (a graph file's particles file).
    texts: Mapping[str, str] | None = None
    _index: dict[str, int] | None = field(default=None, repr=False)
    _semcon_table: SemconNames | None = field(default=None, repr=False)
    #: Snapshots by their semcon factors' bytes (``None``: no factors), oldest first.
    _snapshots: OrderedDict[bytes | None, Snapshot] = field(default_factory=OrderedDict, repr=False)
    #: The local push's view of each kept snapshot, by the same key.
    _locals: dict[bytes | None, LocalGraph] = field(default_factory=dict, repr=False)
    #: The push's buffers, made on the first local query (one per graph: pushes
    #: on a graph take turns on it).
    _scratch: PushScratch | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_cybergraph(
        cls, graph: Cybergraph, texts: Mapping[str, str] | None = None
    ) -> InferGraph:
        """The links of ``graph`` with their current weights; semcon = neuron name."""
        links = graph.links()
        names = graph.neurons.keys()
        return cls.from_arrays(
            graph.n_particles,
            links.src,
            links.dst,
            graph.link_weight_range(0, graph.n_links),
            links.neuron,
            [str(x) for x in names],
            cast(list[str], graph.particles.keys()),  # a graph read from files: text keys
            texts,
        )

    @classmethod
    def from_arrays(
        cls,
        n: int,
        src: np.ndarray,
        dst: np.ndarray,
        weight: np.ndarray,
        neuron: np.ndarray,
        neuron_names: Sequence[str],
        keys: Sequence[str],
        texts: Mapping[str, str] | None = None,
    ) -> InferGraph:
        """Semcons from neuron ids (``-1``: an anonymous link, semcon ``""``)."""
        neuron = np.asarray(neuron, dtype=np.int64)
        names = ["", *neuron_names]
        uniq, semcon = np.unique(neuron + 1, return_inverse=True)
        semcons = tuple(names[int(u)] for u in uniq)
        return cls(
            n=int(n),
            src=np.asarray(src, dtype=np.int64),
            dst=np.asarray(dst, dtype=np.int64),
            weight=np.asarray(weight, dtype=np.float64),
            semcon=semcon.astype(np.int32).reshape(-1),
            semcons=semcons,
            keys=keys,
            texts=texts,
        )

    @property
    def n_links(self) -> int:
        return len(self.src)

    # --- particles -----------------------------------------------------------
    def index_of(self, key: str) -> int:
        """The particle id of ``key``, or -1."""
        if self._index is None:
            with self._lock:
                if self._index is None:
                    self._index = {str(k): i for i, k in enumerate(self.keys)}
        return self._index.get(key, -1)

    def key(self, i: int) -> str:
        return str(self.keys[i])

    def text(self, i: int) -> str | None:
        """The content text of particle ``i`` where the graph knows it."""
        if self.texts is None:
            return None
        return self.texts.get(self.key(i))

    def resolve(self, context: Sequence[str | int]) -> np.ndarray:
        """Particle ids of a context given as keys, CIDs, text or ids.

        A string is first looked up as a key as given (edge-list ids, CIDs);
        else it is read as a CID or as text hashed to its CID
        (``core.cid.particle_cid``). Unknown particles raise
        :class:`UnknownParticleError` naming the first one.
        """
        if len(context) == 0:
            raise EmptyContextError("the context is empty: give at least one particle")
        if len(context) > MAX_CONTEXT:
            raise InvalidParameterError(
                f"a context holds at most {MAX_CONTEXT} particles, got {len(context)}"
            )
        ids = np.empty(len(context), dtype=np.int64)
        for j, item in enumerate(context):
            ids[j] = self._resolve_one(item)
        return ids

    def _resolve_one(self, item: str | int) -> int:
        if isinstance(item, int | np.integer) and not isinstance(item, bool):
            if not 0 <= int(item) < self.n:
                raise UnknownParticleError(f"particle id {item} is out of range [0, {self.n})")
            return int(item)
        if not isinstance(item, str) or item == "":
            raise InvalidParameterError(
                f"a context particle must be a non-empty string, got {item!r}"
            )
        i = self.index_of(item)
        if i >= 0:
            return i
        try:
            cid = particle_cid(item)
        except InvalidCIDError:
            raise UnknownParticleError(
                f"particle {item!r} is not in the graph (it looks like a CID but does not decode)"
            ) from None
        i = self.index_of(cid)
        if i < 0:
            shown = item if cid == item else f"{item!r} (CID {cid})"
            raise UnknownParticleError(f"particle {shown} is not in the graph")
        return i

    # --- semcons -------------------------------------------------------------
    def semcon_factors(
        self, weights: Mapping[str, float] | None, others: float | None = None
    ) -> np.ndarray | None:
        """Per-semcon weight factors, or None for the graph as it is
        (:meth:`SemconNames.factors`: a name matches exactly or by suffix)."""
        return self.semcon_names.factors(weights, others)

    def semcon_index(self, name: str) -> int:
        """The index of semcon ``name`` (exact, or the unique one with that suffix)."""
        return self.semcon_names.index(name)

    @property
    def semcon_names(self) -> SemconNames:
        if self._semcon_table is None:
            self._semcon_table = SemconNames(self.semcons)
        return self._semcon_table

    def snapshot(self, factors: np.ndarray | None = None) -> Snapshot:
        """The weighted snapshot under semcon ``factors`` (built once, then kept)."""
        key = None if factors is None else factors.tobytes()
        with self._lock:
            found = self._snapshots.get(key)
            if found is not None:
                self._snapshots.move_to_end(key)
                return found
        w = self.weight if factors is None else self.weight * factors[self.semcon]
        if not np.any(w > 0):
            raise InvalidParameterError(
                "no link keeps a positive weight under these semcon weights"
            )
        # Never patched: a static snapshot builds faster and is smaller.
        snap = Snapshot(self.n, self.src, self.dst, w, patchable=False)
        with self._lock:
            self._snapshots[key] = snap
            while len(self._snapshots) > SNAPSHOTS_KEPT:
                gone, _ = self._snapshots.popitem(last=False)
                self._locals.pop(gone, None)
        return snap

    def local(
        self, factors: np.ndarray | None, alpha: float, mode: str
    ) -> tuple[LocalGraph, PushScratch, Walks]:
        """What a local push under semcon ``factors`` needs: the snapshot's walks,
        the graph's scratch buffers, and the chain's shares (``mode`` ``tri``
        with ``FocusParams``' mu, tau and weights, or ``diffusion``)."""
        from focusflow.focus.local_push import LocalGraph, PushScratch, Walks
        from focusflow.focus.params import FocusParams

        snap = self.snapshot(factors)
        key = None if factors is None else factors.tobytes()
        with self._lock:
            local = self._locals.get(key)
        if local is None or local.snap is not snap:
            local = LocalGraph.of(snap)
            with self._lock:
                if key in self._snapshots:
                    self._locals[key] = local
        with self._lock:
            if self._scratch is None:
                self._scratch = PushScratch(self.n)
            scratch = self._scratch
        fp = FocusParams()
        weights = fp.weights if mode == "tri" else (1.0, 0.0, 0.0)
        return local, scratch, Walks.of(alpha, fp.mu, fp.tau, weights)
