"""Cube: topology, propagation, κ-weighted consensus, κ field convergence."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from focusflow.konomi import CENTRAL, VERTICES, Cube, UnknownVertexError, field_cycles
from focusflow.konomi.cube import STANDARD_EDGES, lattice_neighbours


def test_seed_cube_test():
    C = Cube("test")
    result = asyncio.run(C.process_vertex("NEU", "test"))
    assert isinstance(result, str) and result
    assert "CENTRAL" in C.edges["NEU"]


def test_topology_has_12_edges_and_8_spokes():
    assert len(STANDARD_EDGES) == 20
    C = Cube("t")
    corner_edges = {tuple(sorted(e)) for e in STANDARD_EDGES if CENTRAL not in e}
    assert len(corner_edges) == 12
    for v in VERTICES:
        assert len(C.edges[v]) == 4  # three corners + CENTRAL
    assert len(C.edges[CENTRAL]) == 8
    assert sorted(C.edges["NWU"]) == sorted(["NEU", "NWD", "SWU", CENTRAL])


def test_custom_edges_and_unknown_vertex():
    C = Cube("t")
    C.connect("NEU", "SWD")
    assert "SWD" in C.edges["NEU"] and "NEU" in C.edges["SWD"]
    assert C.custom_edges == [("NEU", "SWD")]
    with pytest.raises(UnknownVertexError):
        C.connect("NEU", "UP")
    with pytest.raises(UnknownVertexError):
        asyncio.run(C.process_vertex("XYZ", "hi"))


def test_process_vertex_propagates_to_neighbours_and_other_cubes():
    a, b = Cube("a"), Cube("b")
    a.connect("SED", b.verts["NWU"])
    asyncio.run(a.process_vertex("SED", "hello cube"))
    for n in a.edges["SED"]:
        assert a.agent(n).calls == 1 and n in a.outputs
    assert b.verts["NWU"].calls == 1
    assert a.verts["SED"].calls == 1
    assert a.verts["NWU"].calls == 0


def test_collective_think_consensus_is_the_most_agreed_output():
    C = Cube("think")
    for v, k in zip(VERTICES, np.linspace(0.3, 0.9, 8), strict=True):
        C.verts[v].kappa = float(k)
    out = asyncio.run(C.collective_think("What is 2+2?"))
    assert set(out["vertices"]) == set(VERTICES)
    assert out["consensus"] == out["vertices"][out["consensus_vertex"]]
    assert out["score"] == max(out["agreement"].values())
    assert out["score"] > 0
    assert out["κ_field"] == C.kappa_local
    # recompute the definition independently
    emb = np.stack([C.model.embed(out["vertices"][v]) for v in VERTICES])
    w = np.array([C.verts[v].kappa for v in VERTICES])
    agree = (emb @ emb.T) @ w / w.sum()
    assert VERTICES[int(np.argmax(agree))] == out["consensus_vertex"]


def test_kappa_weights_decide_consensus():
    """Two camps of outputs: the camp with more κ wins."""
    C = Cube("camps")
    texts = ["aaaa"] * 3 + ["zzz9"] * 5
    emb = np.stack([C.model.embed(t) for t in texts])
    for weights, camp in [([1.0] * 3 + [0.01] * 5, "aaaa"), ([0.01] * 3 + [1.0] * 5, "zzz9")]:
        w = np.array(weights)
        agree = (emb @ emb.T) @ w / w.sum()
        assert texts[int(np.argmax(agree))] == camp


def test_kappa_field_converges_within_50_cycles():
    rng = np.random.default_rng(0)
    n = 27
    cubes = [Cube(f"f{i}") for i in range(n)]
    for c in cubes:
        c.kappa_local = float(rng.choice([0.0, 1.0]))
    cubes[0].kappa_local = 0.0
    cycles = field_cycles(cubes, lattice_neighbours((3, 3, 3)))
    assert cycles < 50
    assert all(abs(c.kappa_local - 0.6) <= 0.05 for c in cubes)
    assert all(v.kappa == c.kappa_local for c in cubes for v in c.verts.values())


def test_lattice_neighbours():
    nb = lattice_neighbours((3, 3, 3))
    assert sorted(len(r) for r in nb) == [3] * 8 + [4] * 12 + [5] * 6 + [6]
    assert all(i in nb[j] for i, row in enumerate(nb) for j in row)


def test_state_round_trip():
    C = Cube("s")
    C.connect("NEU", "SWD")
    C.process_vertex_sync("NEU", "persist me")
    C.kappa_local = 0.7
    D = Cube.from_state(C.to_state())
    assert D.to_state() == C.to_state()
