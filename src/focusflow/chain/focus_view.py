"""What readers see of focus: one immutable picture per committed block.

The block producer mutates the graph and the focus engine in place, while API
readers on other threads ask for the top particles, a particle's rank or links,
and a neuron's karma. Rather than lock readers out for the length of a block,
the producer publishes a :class:`FocusView` after each block and readers only
ever touch views. A view holds:

* the committed vector ``q`` (a new array every block, never written after);
* the particle table and the link columns cut at the block's lengths (both are
  append-only, so a prefix never changes under a reader);
* copies of the per-neuron stakes and link counts (these change in place);
* karma, syntropy and the top particles, computed once in the producer thread.

A block without deltas reuses the previous view's arrays, so an idle chain
costs nothing per block.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import cast

import numpy as np

from focusflow.chain.karma import karma_fixed
from focusflow.focus import measures
from focusflow.graph.cybergraph import Cybergraph
from focusflow.graph.link_index import LinkIndex
from focusflow.graph.tables import KeyTable

#: How many particles every view ranks in advance (the API's largest top-K).
TOP_CACHED = 1000
#: Answers of :meth:`FocusView.edges` a view keeps (then it starts afresh).
EDGES_CACHED = 64


@dataclass(frozen=True)
class FocusView:
    height: int
    scale: int
    q: np.ndarray
    particles: list[bytes]
    n_particles: int
    neurons: list[bytes]
    n_neurons: int
    src: np.ndarray
    dst: np.ndarray
    neuron: np.ndarray
    stakes: np.ndarray
    neudeg: np.ndarray
    karma: np.ndarray
    karma_total: float
    entropy: float
    syntropy: float
    iterations: int
    seconds: float
    top: np.ndarray = field(repr=False)
    particle_table: KeyTable = field(repr=False, default_factory=KeyTable)
    neuron_table: KeyTable = field(repr=False, default_factory=KeyTable)
    link_index: LinkIndex = field(repr=False, default_factory=LinkIndex)
    #: Karma in ``q``'s fixed point, the integers contracts read (``chain.karma``).
    karma_q: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, dtype=np.int64))

    def karma_fixed_of(self, address: bytes) -> int:
        """A neuron's karma as a contract reads it at this block (0: no neuron)."""
        i = self.neuron_index(address)
        return int(self.karma_q[i]) if 0 <= i < len(self.karma_q) else 0

    @property
    def n_links(self) -> int:
        return len(self.src)

    def focus(self, i: int) -> float:
        return float(self.q[i]) / self.scale

    def particle_index(self, cid: bytes) -> int:
        """Index of a binary CID in this view, -1 if it is not (yet) a particle."""
        i = self.particle_table.get(cid)
        return i if i < self.n_particles else -1

    def neuron_index(self, address: bytes) -> int:
        i = self.neuron_table.get(address)
        return i if i < self.n_neurons else -1

    def boost(self, address: bytes) -> float:
        """``neurons * karma_share`` of a neuron: 1 for average karma (mempool priority)."""
        i = self.neuron_index(address)
        if i < 0 or i >= len(self.karma) or self.karma_total <= 0:
            return 0.0
        return float(self.karma[i]) * len(self.karma) / self.karma_total

    @cached_property
    def _rank_order(self) -> tuple[np.ndarray, np.ndarray]:
        """(q sorted ascending, particle indices in that order, ties by index ascending).

        Sorted once per view (lazily: most blocks are never asked); every rank
        is then two binary searches in ``q`` and one among the tied indices.
        """
        order = np.lexsort((np.arange(len(self.q)), self.q))
        return self.q[order], order

    def degree(self, i: int, direction: str) -> int:
        """Links leaving (``out``) or entering (``in``) particle ``i`` at this block."""
        return self.link_index.degree(i, direction)

    def rank(self, i: int) -> int:
        """1 + the number of particles with more focus, ties broken by particle order.

        O(log n) per call, also when most particles share one value (a fresh
        graph's particles all hold the same focus): the particles tied with
        ``i`` sit in ``order`` by ascending index, so the earlier ones are
        counted by a binary search, not a pass over ``q``.
        """
        return int(self.ranks(np.asarray([i], dtype=np.int64))[0])

    def ranks(self, indices: np.ndarray) -> np.ndarray:
        """:meth:`rank` of many particles at once (one vectorised search each)."""
        s, order = self._rank_order
        qi = self.q[indices]
        lo = np.searchsorted(s, qi, side="left")
        hi = np.searchsorted(s, qi, side="right")
        # Within the tie run [lo, hi) the order holds indices ascending, and
        # the run sorts as one key (q, index): search (q_i, i) in it.
        earlier = np.fromiter(
            (np.searchsorted(order[a:b], j) for a, b, j in zip(lo, hi, indices, strict=True)),
            dtype=np.int64,
            count=len(indices),
        )
        ranks: np.ndarray = len(s) - hi + earlier + 1
        return ranks

    def top_k(self, k: int) -> np.ndarray:
        """Particle indices of the k largest focus values, most focus first."""
        return self.top[:k]

    def link_weights(self, ids: np.ndarray) -> np.ndarray:
        """Per-link stake (§3.1) of links ``ids`` at this block."""
        n = self.neuron[ids].astype(np.int64)
        deg = self.neudeg[n]
        weights: np.ndarray = np.divide(self.stakes[n], np.maximum(deg, 1), dtype=np.float64)
        return weights

    def edges(self, i: int, direction: str) -> tuple[np.ndarray, np.ndarray]:
        """Neighbours of particle ``i`` and the summed weight of each edge, heaviest first.

        The link index finds ``i``'s links in O(log² m + degree), so the cost
        is the particle's degree, not the number of links in the graph. The
        last ``EDGES_CACHED`` answers of this view are kept: the pages of a
        hub's links (10^6 of them costs some 0.1 s to sum and sort) are asked
        one after another.
        """
        cache: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]]
        cache = self.__dict__.setdefault("_edges_memo", {})
        key = (i, direction)
        found = cache.get(key)
        if found is None:
            found = self._edges(i, direction)
            if len(cache) >= EDGES_CACHED:
                cache.clear()
            cache[key] = found
        return found

    def _edges(self, i: int, direction: str) -> tuple[np.ndarray, np.ndarray]:
        ids = self.link_index.links(i, direction)
        if not len(ids):
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        others = self.dst if direction == "out" else self.src
        nbr = others[ids].astype(np.int64)
        uniq, inverse = np.unique(nbr, return_inverse=True)
        weight = np.bincount(inverse, weights=self.link_weights(ids), minlength=len(uniq))
        order = np.lexsort((uniq, -weight))
        return uniq[order], weight[order]


def build_view(
    height: int,
    scale: int,
    q: np.ndarray,
    graph: Cybergraph,
    iterations: int,
    seconds: float,
    previous: FocusView | None,
) -> FocusView:
    """The view of the graph and committed focus ``q`` after block ``height``.

    Runs on the producer's thread, between blocks, so it may read the graph.
    """
    n = len(q)
    links = graph.links()
    if (
        previous is not None
        and previous.q is q
        and previous.n_links == len(links.src)
        and previous.n_neurons == graph.n_neurons
    ):
        return _with_height(previous, height)
    phi = q.astype(np.float64) / scale
    total = phi.sum()
    if total > 0:
        phi = phi / total
    # One pass for both: the float karma is the fixed-point one over the mass
    # (they differ by the floor of each link's term, under 10^-15 each).
    karma_q = karma_fixed(graph, q)
    mass = float(q.sum(dtype=np.float64))
    karma = karma_q / mass if mass > 0 else np.zeros(graph.n_neurons)
    k = min(TOP_CACHED, n)
    if k:
        part = np.argpartition(-q.astype(np.int64), k - 1)[:k] if k < n else np.arange(n)
        top = part[np.lexsort((part, -q[part].astype(np.int64)))]
    else:
        top = np.empty(0, dtype=np.int64)
    # A chain's graph is keyed by bytes (binary CIDs and account addresses):
    # focus_commit interns nothing else.
    return FocusView(
        height=height,
        scale=scale,
        q=q,
        particles=cast(list[bytes], graph.particles.keys()),
        n_particles=n,
        neurons=cast(list[bytes], graph.neurons.keys()),
        n_neurons=graph.n_neurons,
        src=links.src,
        dst=links.dst,
        neuron=links.neuron,
        stakes=graph.stakes.copy(),
        neudeg=graph.neudeg.copy(),
        karma=karma,
        karma_total=float(karma.sum()),
        karma_q=karma_q,
        entropy=measures.entropy(phi) if n else 0.0,
        syntropy=measures.syntropy(phi) if n else 0.0,
        iterations=iterations,
        seconds=seconds,
        top=top,
        particle_table=graph.particles,
        neuron_table=graph.neurons,
        link_index=_link_index(previous, graph, links.src, links.dst),
    )


def _link_index(
    previous: FocusView | None, graph: Cybergraph, src: np.ndarray, dst: np.ndarray
) -> LinkIndex:
    """The previous view's link index extended by this block's links.

    The graph's links are append-only, so the previous index stays valid when
    it comes from the same graph object (its particle table) and holds no
    more links than the graph; otherwise (a graph restored from a
    checkpoint) the index is built afresh.
    """
    if (
        previous is not None
        and previous.particle_table is graph.particles
        and previous.link_index.n_links <= len(src)
    ):
        index = previous.link_index
    else:
        index = LinkIndex()
    return index.extend(src[index.n_links :], dst[index.n_links :])


def _with_height(view: FocusView, height: int) -> FocusView:
    """The same picture at a later height; lazily computed caches carry over."""
    later = replace(view, height=height)
    for name in ("_rank_order",):
        if name in view.__dict__:
            later.__dict__[name] = view.__dict__[name]
    return later
