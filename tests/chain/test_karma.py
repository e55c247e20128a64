"""Contracts' karma: integers every machine computes alike, and the API's karma in another unit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from focusflow.chain.karma import karma_fixed
from focusflow.focus import karma
from focusflow.graph import Cybergraph


def test_karma_by_hand_in_fixed_point():
    g = Cybergraph(require_cids=False)
    g.add_neurons(["a", "b"], [4.0, 1.0])
    # a: two links (per-link stake 2), b: one (1); out of x 2 + 1 = 3, out of y 2.
    g.add_links(["x", "x", "y"], ["y", "z", "z"], ["a", "b", "a"])
    q = np.array([5 * 10**14, 3 * 10**14, 2 * 10**14], dtype=np.uint64)  # x, y, z
    k = karma_fixed(g, q)
    assert k.dtype == np.int64
    assert k.tolist() == [(2 * 5 * 10**14) // 3 + 3 * 10**14, (5 * 10**14) // 3]


@pytest.mark.parametrize("seed", range(5))
def test_fixed_point_karma_is_the_api_karma_over_the_mass(seed):
    """Each link's term is floored, so the two agree within one unit a link."""
    rng = np.random.default_rng(seed)
    n, m, neurons = 60, 400, 7
    g = Cybergraph(require_cids=False)
    names = [f"n{i}" for i in range(neurons)]
    g.add_neurons(names, rng.integers(1, 10**6, neurons).astype(float).tolist())
    src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
    keep = src != dst
    g.add_links(
        [f"p{i}" for i in src[keep]],
        [f"p{i}" for i in dst[keep]],
        [names[i] for i in rng.integers(0, neurons, int(keep.sum()))],
    )
    q = rng.integers(0, 10**13, g.n_particles).astype(np.uint64)
    fixed = karma_fixed(g, q)
    mass = float(q.sum())
    floats = karma(g, q.astype(np.float64) / mass)
    links_per_neuron = np.bincount(g.links().neuron, minlength=neurons)
    assert np.all(np.abs(fixed - floats * mass) <= links_per_neuron + 1e-3 * np.abs(fixed))
    assert np.all(fixed >= 0)
    # The same integers as a plain Python loop over the links in IEEE doubles:
    # the out-weights summed in link order, then one floor per link.
    links = g.links()
    weight = g.link_weight(np.arange(len(links.src)))
    leaving = [0.0] * g.n_particles
    for p, w in zip(links.src.tolist(), weight.tolist(), strict=True):
        leaving[p] += w
    want = [0] * neurons
    for p, nid, w in zip(links.src.tolist(), links.neuron.tolist(), weight.tolist(), strict=True):
        want[nid] += math.floor(w / leaving[p] * float(q[p])) if leaving[p] > 0 else 0
    assert fixed.tolist() == want


def test_no_links_or_no_focus_give_zero_karma():
    g = Cybergraph(require_cids=False)
    g.add_neurons(["a"], [1.0])
    assert karma_fixed(g, np.zeros(0, dtype=np.uint64)).tolist() == [0]


def _golden_graph() -> tuple[Cybergraph, np.ndarray]:
    rng = np.random.default_rng(2026)
    n, m, neurons = 3000, 40_000, 50
    g = Cybergraph(require_cids=False)
    names = [f"n{i}" for i in range(neurons)]
    g.add_neurons(names, (rng.random(neurons) * 1e9).tolist())
    src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
    keep = src != dst
    g.add_links(
        [f"p{i}" for i in src[keep]],
        [f"p{i}" for i in dst[keep]],
        [names[i] for i in rng.integers(0, neurons, int(keep.sum()))],
    )
    q = rng.integers(0, 10**12, g.n_particles).astype(np.uint64)
    return g, q


#: sha256 of the golden graph's karma (int64, little-endian), computed on an
#: AMD EPYC and checked on an Intel Xeon: the same integers on every machine.
GOLDEN_KARMA = "0b47c65c0f847457eea07a73170e276a0ab6726659d2fecf1fe96fda3a5a0993"


def test_golden_karma_is_the_same_integers_everywhere():
    import hashlib

    g, q = _golden_graph()
    k = karma_fixed(g, q).astype("<i8")
    assert hashlib.sha256(k.tobytes()).hexdigest() == GOLDEN_KARMA
