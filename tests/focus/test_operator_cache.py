"""The operators prepared per snapshot are reused, and bounded in number."""

from __future__ import annotations

import gc
import weakref

import numpy as np

from focusflow.focus import solver
from focusflow.focus.solver import OPERATORS_KEPT, compute, operator_for, release_operators
from focusflow.graph.snapshot import Snapshot


def _snapshot(seed: int, n: int = 200) -> Snapshot:
    rng = np.random.default_rng(seed)
    src = rng.integers(0, n, 4 * n)
    dst = rng.integers(0, n, 4 * n)
    keep = src != dst
    return Snapshot(n, src[keep], dst[keep], np.ones(int(keep.sum())))


def test_operator_reused_for_the_same_snapshot():
    snap = _snapshot(0)
    assert operator_for(snap, "numba", "float64") is operator_for(snap, "numba", "float64")
    release_operators(snap)
    assert id(snap) not in solver._OPERATORS


def test_solved_snapshots_are_not_kept_past_the_bound():
    """Each operator holds its snapshot; a weak-keyed cache therefore kept every
    snapshot ever solved on, so a node answering queries under ever new semcon
    weights (each a new snapshot) grew without limit."""
    refs = []
    for seed in range(OPERATORS_KEPT + 6):
        snap = _snapshot(seed)
        compute(snap, mode="tri", backend="numba")
        refs.append(weakref.ref(snap))
        del snap
    gc.collect()
    alive = sum(r() is not None for r in refs)
    assert alive <= OPERATORS_KEPT
    assert len(solver._OPERATORS) <= OPERATORS_KEPT
