"""Static snapshots: what a one-shot solve builds, the same matrix without patch maps."""

from __future__ import annotations

import numpy as np
import pytest

from focusflow.core.structure import Check, StructureError
from focusflow.focus import compute
from focusflow.focus.engine import FocusEngine
from focusflow.graph import Cybergraph, rmat_edges
from focusflow.graph.snapshot import Snapshot

MATRIX = (
    "n",
    "perm",
    "iperm",
    "out_indptr",
    "out_indices",
    "out_w",
    "in_indptr",
    "in_indices",
    "in_w",
    "out_weight",
)


def _graph(scale: int = 9, seed: int = 3) -> Cybergraph:
    src, dst, w = rmat_edges(scale, 8, seed=seed)
    g = Cybergraph(require_cids=False)
    g.add_particles([f"p{i}" for i in range(1 << scale)])
    g.add_link_ids(src, dst, weights=w)
    return g


def test_a_static_snapshot_holds_the_same_matrix() -> None:
    src, dst, w = rmat_edges(9, 8, seed=1)
    full = Snapshot(512, src, dst, w)
    static = Snapshot(512, src, dst, w, patchable=False)
    for name in MATRIX:
        assert np.array_equal(getattr(static, name), getattr(full, name)), name
    assert not static.patchable and len(static.link_entry) == len(static.in_to_out) == 0
    with pytest.raises(ValueError, match="cannot be patched"):
        static.patch(512, src[:3], dst[:3], np.empty(0, dtype=np.int64), lambda ids: w[ids])


def test_a_one_shot_solve_builds_a_static_snapshot_and_a_growing_graph_a_patchable_one() -> None:
    g = _graph()
    first = compute(g, mode="tri", tol=1e-9)
    assert g._snapshot is not None and not g._snapshot.patchable
    held = g._snapshot
    assert g.snapshot(patchable=False) is held  # nothing changed: reused
    g.add_links(["p1", "p2"], ["p7", "p9"], weights=[2.0, 3.0])
    second = compute(g, mode="tri", tol=1e-9)
    assert g._snapshot.patchable  # the graph grows: rebuilt patchable once

    # the same answers as the patchable builds every solve made before
    patched = _graph()
    patched.snapshot()
    assert np.array_equal(compute(patched, mode="tri", tol=1e-9).focus, first.focus)
    patched.add_links(["p1", "p2"], ["p7", "p9"], weights=[2.0, 3.0])
    assert patched.needs_compaction() is False
    again = compute(patched, mode="tri", tol=1e-9).focus
    assert np.abs(again - second.focus).sum() < 1e-8  # patched, not rebuilt: other sum order


def test_an_engine_on_a_graph_with_a_static_snapshot_patches_from_then_on() -> None:
    g = _graph()
    compute(g, mode="diffusion")
    engine = FocusEngine(g, mode="diffusion", tol=1e-10)
    engine.compute()
    assert g._snapshot.patchable
    g.add_links(["p3"], ["p4"], weights=[5.0])
    got = engine.apply().focus
    want = compute(_with_link(), mode="diffusion", tol=1e-12).focus
    assert np.abs(got - want).sum() < 1e-8


def _with_link() -> Cybergraph:
    g = _graph()
    g.add_links(["p3"], ["p4"], weights=[5.0])
    return g


def test_the_structure_check_refuses_a_static_snapshot() -> None:
    src, dst, w = rmat_edges(6, 8, seed=1)
    static = Snapshot(64, src, dst, w, patchable=False)
    with pytest.raises(StructureError, match="patchable"):
        static.check_structure(Check())
