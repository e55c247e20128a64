"""Karma in focus's fixed point: the same integers on every machine, for contracts.

A neuron's karma is the focus its links carry: over its links ``p -> r``,
the share ``w / W_p`` of ``p``'s outgoing weight that the link holds (``w``
the neuron's per-link stake, ``W_p`` all the weight leaving ``p``) times the
focus at ``p`` (``focus.measures.karma``'s definition). Contracts read it
(the EVM's karma precompile, WASM's ``karma_of``), so a block's execution
depends on it, and it must be exact: here each term is taken on the
committed integer focus ``q`` as one IEEE-754 division, one multiplication
and a floor, which every IEEE machine computes alike, and the terms are
summed as integers, exactly, in any order. The result is in ``q``'s unit
(``focus * 10**15``), at most the focus the neuron's links leave from.
"""

from __future__ import annotations

import numpy as np

from focusflow.graph.cybergraph import Cybergraph


def karma_fixed(graph: Cybergraph, q: np.ndarray) -> np.ndarray:
    """Every neuron's karma (int64, ``q``'s unit) for the graph whose committed
    focus is ``q`` (particles past ``len(q)`` have none yet).

    ``W_p`` is summed here, link by link in link order (``np.bincount``'s
    loop runs over the links in index order, one IEEE addition each; the
    golden digest in tests/chain/test_karma.py holds it to that), not read
    from the graph's snapshot: asking for a snapshot could build one, and how
    a node's snapshot came to be (built or patched) must not depend on
    whether a contract asked.
    """
    out = np.zeros(graph.n_neurons, dtype=np.int64)
    links = graph.links()
    if not len(links.src) or not len(q):
        return out
    weight = graph.link_weight(np.arange(len(links.src), dtype=np.int64))
    leaving = np.bincount(links.src, weights=weight, minlength=max(graph.n_particles, len(q)))
    named = np.flatnonzero((links.neuron >= 0) & (links.src < len(q)))
    src = links.src[named]
    total = leaving[src]
    share = np.divide(weight[named], total, out=np.zeros(len(named)), where=total > 0)
    terms = np.floor(share * q[src].astype(np.float64)).astype(np.int64)
    np.add.at(out, links.neuron[named].astype(np.int64), terms)
    return out
