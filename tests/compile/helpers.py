"""Small graphs and contexts the compiler tests import."""

from __future__ import annotations

import numpy as np

from focusflow.graph.cybergraph import Cybergraph
from focusflow.graph.generators import rmat_edges


def keyed(src, dst, neurons=None) -> Cybergraph:
    """A Cybergraph over string keys ``p0, p1, ...`` (no CIDs)."""
    g = Cybergraph(require_cids=False)
    names = [f"p{i}" for i in range(int(max(max(src), max(dst))) + 1)]
    g.add_particles(names)
    g.add_links([names[i] for i in src], [names[i] for i in dst], neurons)
    return g


def padded_contexts(vocab: int, seed: int) -> np.ndarray:
    """Six contexts of nine positions, some padding (-1), none all padding; row 1
    repeats a particle and starts with padding."""
    rng = np.random.default_rng(seed)
    batch = rng.integers(0, vocab, (6, 9))
    pad = rng.random(batch.shape) < 0.4
    pad[:, 0] = False
    batch[pad] = -1
    batch[1] = [-1, -1, 5, -1, 5, 7, -1, -1, -1]
    return batch


def rmat_two_semcons(scale: int = 8, seed: int = 3) -> Cybergraph:
    """An R-MAT graph whose links two neurons (semcons) made, 3:1."""
    src, dst, _ = rmat_edges(scale, 4, seed=seed)
    keep = src != dst
    src, dst = src[keep], dst[keep]
    neurons = np.where(np.arange(len(src)) % 4 == 0, "rel:b", "rel:a")
    g = Cybergraph(require_cids=False)
    g.add_particles([f"p{i}" for i in range(1 << scale)])
    g.add_links([f"p{i}" for i in src], [f"p{i}" for i in dst], list(neurons))
    return g
