"""The Hebbian rule as a chain runs it: link factors agreed on like focus.

A genesis that names ``focus.hebbian_every = E > 0`` (docs/focus.md section
12) gives every link a weight factor ``h_e`` (1 at first) that multiplies its
staked weight in the focus solve. At every height that is a multiple of E,
before the block's own deltas, the factors move by ``focus.hebbian``'s rule
from the focus the previous block committed; the block's solve then runs on
the new weights and its focus record names the factors' root:

    record["hebbian"] = RFC 6962 root over chunks of FOCUS_CHUNK factors,
                        each chunk the little-endian bits of its float64s

so a light client can hold a link's factor to the header as it holds a
particle's focus. Every validator computes the same factors ("consensus
refinement"): the rule reads only committed values (the quantised focus
divided by its scale, exact in float64; links; stakes), does elementwise
IEEE-754 operations and correctly rounded sums (``math.fsum``), and the
weights it changes reach the engine through the graph's snapshot patch, as a
stake change does.

Which particle a neuron brought in (its *owner*, for the rule's farming bound)
and so which links may be boosted follow from the link order alone: this
state keeps them block by block, and a restored state rebuilds them from the
links it loads, by the same code.
"""

from __future__ import annotations

import numpy as np

from focusflow.chain.focus_spec import SCALE
from focusflow.focus.hebbian import HebbianParams, HebbianStep, eligible_links, hebbian_step
from focusflow.focus.params import FocusParams
from focusflow.graph.cybergraph import Cybergraph


class HebbianState:
    """The rule's numbers and what it derives from the link order: each
    particle's owner and each link's eligibility (``focus.hebbian``)."""

    def __init__(self, params: FocusParams, graph: Cybergraph) -> None:
        self.params: HebbianParams = params.hebbian()
        self.every = params.hebbian_every
        graph.enable_factors()
        self.owner = np.full(0, -1, dtype=np.int64)
        self.eligible = np.zeros(0, dtype=bool)
        #: What the last update did (None before the first).
        self.last: HebbianStep | None = None
        self.note_links(graph)

    def due(self, height: int | None) -> bool:
        """Whether block ``height`` moves the factors (never block 0)."""
        return height is not None and height > 0 and height % self.every == 0

    def note_links(self, graph: Cybergraph) -> None:
        """Owners and eligibility for the links added since the last call.

        A particle's owner is the neuron of the first link (in link order)
        that touches it; eligibility is ``focus.hebbian.eligible_links``'s
        over those owners (final once a link is added: its ends' first touch
        is at or before it). Within the new links,
        each particle's first touch is found by sorting its appearances by
        position, so the owners are what ``focus.hebbian.particle_owners``
        gives over all links.
        """
        first, last = len(self.eligible), graph.n_links
        n = graph.n_particles
        if len(self.owner) < n:
            self.owner = np.concatenate(
                [self.owner, np.full(n - len(self.owner), -1, dtype=np.int64)]
            )
        if first == last:
            return
        links = graph.links()
        src = links.src[first:last].astype(np.int64)
        dst = links.dst[first:last].astype(np.int64)
        neuron = links.neuron[first:last].astype(np.int64)
        pos = np.arange(last - first, dtype=np.int64)
        ends = np.concatenate([src, dst])
        at = np.concatenate([pos, pos])
        order = np.lexsort((at, ends))
        ends, at = ends[order], at[order]
        firsts = np.ones(len(ends), dtype=bool)
        firsts[1:] = ends[1:] != ends[:-1]
        touched, by = ends[firsts], at[firsts]
        fresh = self.owner[touched] == -1
        self.owner[touched[fresh]] = neuron[by[fresh]]
        self.eligible = np.concatenate(
            [self.eligible, eligible_links(src, dst, neuron, self.owner)]
        )

    def update(self, graph: Cybergraph, q: np.ndarray) -> HebbianStep:
        """Move the factors by one step of the rule from the committed focus
        ``q`` (quantised, particle order); only the links whose factor
        changed are re-weighed."""
        factors = graph.factors
        assert factors is not None  # enabled in __init__
        phi = np.asarray(q, dtype=np.uint64).astype(np.float64) / float(SCALE)
        links = graph.links()
        base = graph.link_weight_range(0, graph.n_links, factors=False)
        new, step = hebbian_step(
            factors, base, phi, links.src, links.dst, self.eligible, self.params
        )
        moved = np.flatnonzero(new != factors)
        if len(moved):
            graph.set_factors(moved, new[moved])
        self.last = step
        return step
