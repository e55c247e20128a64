"""What a focus distribution says: entropy, syntropy, and karma of neurons.

Units: natural logarithms (nats) unless a name says ``bits``; see docs/focus.md.
"""

from __future__ import annotations

import numpy as np

from focusflow.graph.cybergraph import Cybergraph


def entropy(phi: np.ndarray) -> float:
    """Shannon entropy ``H(phi) = -sum phi ln phi`` in nats (0 ln 0 = 0)."""
    p = np.asarray(phi, dtype=np.float64)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def entropy_bits(phi: np.ndarray) -> float:
    bits: float = entropy(phi) / np.log(2.0)
    return bits


def syntropy(phi: np.ndarray) -> float:
    """``J = ln n - H(phi) = KL(phi || uniform)`` in nats: how far focus is from indifference."""
    n = len(phi)
    return float(np.log(n) - entropy(phi)) if n else 0.0


def karma(graph: Cybergraph, phi: np.ndarray) -> np.ndarray:
    """Karma per neuron: ``sum over its links p->q of (s_hat / W_p) * phi(p)``.

    ``s_hat`` is the neuron's per-link stake and ``W_p`` the total weight leaving
    ``p``: the share of ``p``'s outgoing flow that this neuron's link carries,
    times the focus at ``p``. Anonymous links (edge lists) give karma to nobody.
    """
    links = graph.links()
    snap = graph.snapshot(patchable=False)
    named = np.flatnonzero(links.neuron >= 0)
    out_weight = snap.out_weight[snap.perm[links.src[named]]]
    s_hat = graph.link_weight(named)
    share = np.divide(s_hat, out_weight, out=np.zeros_like(s_hat), where=out_weight > 0)
    contrib = share * np.asarray(phi)[links.src[named]]
    return np.bincount(links.neuron[named], weights=contrib, minlength=graph.n_neurons)
