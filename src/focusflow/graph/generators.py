"""Synthetic graphs for tests and benchmarks.

R-MAT (Chakrabarti, Zhan, Faloutsos, SDM 2004) with the Graph500 parameters
a, b, c = 0.57, 0.19, 0.19 gives the skewed degrees of real link graphs. Like
the Graph500 generator we scramble vertex ids afterwards, so that no solver is
handed a degree-sorted order for free.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np


def rmat_edges(
    scale: int,
    edge_factor: int = 16,
    *,
    a: float = 0.57,
    b: float = 0.19,
    c: float = 0.19,
    seed: int = 0,
    scramble: bool = True,
    xp: ModuleType = np,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(src, dst, weight)`` of ``edge_factor * 2**scale`` directed R-MAT edges.

    Weights are uniform in (0, 1]. Self-loops and duplicates are kept, as in
    Graph500; consumers decide what to do with them. ``xp`` may be CuPy, to
    generate 10^8 edges on a GPU in seconds (same construction, other streams).
    """
    rng = xp.random.default_rng(seed)
    n_edges = edge_factor << scale
    src = xp.zeros(n_edges, dtype=xp.int64)
    dst = xp.zeros(n_edges, dtype=xp.int64)
    ab = a + b
    c_norm = c / (1.0 - ab)
    a_norm = a / ab
    for bit in range(scale):
        r1 = rng.random(n_edges)
        r2 = rng.random(n_edges)
        ii = r1 > ab
        jj = r2 > xp.where(ii, c_norm, a_norm)
        src |= ii.astype(xp.int64) << bit
        dst |= jj.astype(xp.int64) << bit
        del r1, r2, ii, jj
    if scramble:
        # CuPy's Generator has no permutation(): a sort of random keys is one.
        perm = rng.permutation(1 << scale) if xp is np else xp.argsort(rng.random(1 << scale))
        src = perm[src]
        dst = perm[dst]
    weight = 1.0 - rng.random(n_edges)
    return src, dst, weight


def random_graph(
    n: int, m: int, *, seed: int = 0, zero_weight_frac: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Uniform random directed multigraph with ``n`` nodes and ``m`` edges."""
    rng = np.random.default_rng(seed)
    src = rng.integers(0, n, m)
    dst = rng.integers(0, n, m)
    w = rng.random(m) + 0.01
    if zero_weight_frac:
        w[rng.random(m) < zero_weight_frac] = 0.0
    return src, dst, w
