"""The rollups' focus exchange against one process's focus of the union graph.

Each test runs rollups and a hub in process: every round each bucket solves
with its last inflow, the hub checks, applies and merges, then answers each
bucket. The reference is the engine's own solve of the union graph, itself
checked once against networkx's weighted PageRank.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import networkx as nx
import numpy as np
import pytest

from focusflow.core.cid import raw_cid_bytes
from focusflow.core.encoding import encode
from focusflow.focus import rollup_merge
from focusflow.focus.buckets import particle_bucket
from focusflow.focus.params import FocusParams, make_params
from focusflow.focus.rollup_merge import UNIT, normalise
from focusflow.focus.rollup_rank import (
    BucketRank,
    HubMerge,
    RankUnsupportedError,
    Snapshot,
    l1_error,
    union_focus,
    verify_snapshot_proof,
)

Link = tuple[bytes, bytes, bytes]


def make_graph(n: int = 400, m: int = 2400, seed: int = 0) -> tuple[list[Link], dict[bytes, int]]:
    """Random links over raw CIDs by six neurons of different stakes; a fifth
    of the particles are only ever targets (dangling), no self-links."""
    rng = np.random.default_rng(seed)
    cids = [raw_cid_bytes(b"particle %d/%d" % (seed, i)) for i in range(n)]
    neurons = [bytes([7 + i]) * 20 for i in range(6)]
    stakes = {v: int(s) for v, s in zip(neurons, rng.integers(1, 10**9, len(neurons)), strict=True)}
    src = rng.integers(0, int(n * 0.8), m)
    dst = (rng.pareto(1.1, m) * 7).astype(np.int64) % n
    who = rng.integers(0, len(neurons), m)
    links = [
        (cids[a], cids[b], neurons[v]) for a, b, v in zip(src, dst, who, strict=True) if a != b
    ]
    return links, stakes


def split(links: list[Link], buckets: int) -> list[list[Link]]:
    out: list[list[Link]] = [[] for _ in range(buckets)]
    for link in links:
        out[particle_bucket(link[0], buckets)].append(link)
    return out


class Network:
    """B rollups and a hub, exchanging packets in process."""

    def __init__(self, buckets: int, params: FocusParams, stakes: dict[bytes, int]) -> None:
        self.ranks = [BucketRank(b, buckets, params) for b in range(buckets)]
        self.hub = HubMerge(buckets, params)
        self.inflows: list[dict[str, Any] | None] = [None] * buckets
        self.packets: list[bytes] = []
        for r in self.ranks:
            r.set_stakes(stakes)

    def add(self, links: list[Link]) -> None:
        for b, part in enumerate(split(links, len(self.ranks))):
            if part:
                self.ranks[b].add_links(*map(list, zip(*part, strict=True)))

    def round(self, skip: frozenset[int] = frozenset()) -> Snapshot:
        for b, r in enumerate(self.ranks):
            if b in skip:
                continue
            packet = r.solve(self.inflows[b])
            self.packets.append(encode(packet))
            self.hub.check(b, packet)
            self.hub.apply(b, packet)
        snap = self.hub.merge()
        for b in range(len(self.ranks)):
            if b not in skip:
                self.inflows[b] = self.hub.inflow(b)
        return snap

    def run(self, rounds: int, ref: dict[bytes, float]) -> tuple[Snapshot, list[float]]:
        errors = [l1_error(self.round(), ref) for _ in range(rounds)]
        return self.hub.snapshot, errors


DIFFUSION = make_params(None, mode="diffusion")
TRI = make_params(None, mode="tri")


@pytest.fixture(scope="module")
def graph() -> tuple[list[Link], dict[bytes, int]]:
    return make_graph()


def test_reference_is_weighted_pagerank(graph: tuple[list[Link], dict[bytes, int]]) -> None:
    """The reference itself, against networkx: weights sum stake / neudeg."""
    links, stakes = graph
    deg: dict[bytes, int] = {}
    for _, _, v in links:
        deg[v] = deg.get(v, 0) + 1
    g = nx.DiGraph()
    for s, d, v in links:
        g.add_node(s)
        g.add_node(d)
        w = g.get_edge_data(s, d, {"weight": 0.0})["weight"]
        g.add_edge(s, d, weight=w + stakes[v] / deg[v])
    pr = nx.pagerank(g, alpha=0.85, weight="weight", tol=1e-13, max_iter=1000)
    ref = union_focus(links, stakes, DIFFUSION)
    assert set(ref) == set(pr)
    assert sum(abs(ref[k] - pr[k]) for k in pr) < 1e-8


@pytest.mark.parametrize("buckets", [2, 4, 8])
def test_diffusion_reaches_union_focus(
    graph: tuple[list[Link], dict[bytes, int]], buckets: int
) -> None:
    links, stakes = graph
    ref = union_focus(links, stakes, DIFFUSION)
    net = Network(buckets, DIFFUSION, stakes)
    net.add(links)
    snap, errors = net.run(120, ref)
    assert errors[-1] < 1e-8
    assert sum(snap.focus) == UNIT
    # Contraction: every ten rounds the error falls by at least a factor of 2
    # (the bound is alpha^10 = 0.2) until the fixed point's rounding floor.
    for a, b in zip(errors[1::10], errors[11::10], strict=False):
        if a > 1e-9:
            assert b < a / 2


@pytest.mark.parametrize("buckets", [2, 4, 8])
def test_tri_reaches_union_focus(graph: tuple[list[Link], dict[bytes, int]], buckets: int) -> None:
    links, stakes = graph
    ref = union_focus(links, stakes, TRI)
    net = Network(buckets, TRI, stakes)
    net.add(links)
    snap, errors = net.run(4, ref)
    # Round 1 weighs links by each bucket's own link counts; from round 2 the
    # hub's global counts are in, and the hub's solve is the union's.
    assert errors[0] > errors[-1]
    assert errors[-1] < 1e-6
    assert sum(snap.focus) == UNIT


@pytest.mark.parametrize("params", [DIFFUSION, TRI], ids=["diffusion", "tri"])
def test_links_added_after_convergence(
    graph: tuple[list[Link], dict[bytes, int]], params: FocusParams
) -> None:
    links, stakes = graph
    more, _ = make_graph(n=400, m=600, seed=1)
    # New links between old particles and new ones, by the same neurons.
    old = sorted({s for s, _, _ in links})
    more = [(old[i % len(old)], d, v) for i, (_, d, v) in enumerate(more) if old[i % len(old)] != d]
    rounds = 100 if params.mode == "diffusion" else 4
    net = Network(4, params, stakes)
    net.add(links)
    _, first = net.run(rounds, union_focus(links, stakes, params))
    assert first[-1] < 1e-6
    net.add(more)
    ref = union_focus(links + more, stakes, params)
    snap, errors = net.run(rounds, ref)
    assert errors[0] > 1e-3  # the new links moved the focus
    assert errors[-1] < 1e-6
    assert set(snap.particles) == set(ref)


def test_stale_bucket_is_held(graph: tuple[list[Link], dict[bytes, int]]) -> None:
    links, stakes = graph
    net = Network(4, DIFFUSION, stakes)
    net.add(links)
    ref = union_focus(links, stakes, DIFFUSION)
    before, _ = net.run(100, ref)
    net.hub.stale([1])
    snap = net.round(skip=frozenset({1}))
    assert snap.stale == frozenset({1}) and snap.round == before.round + 1
    held = [c for c in snap.particles if particle_bucket(c, 4) == 1]
    # Held: only the normalisation of the new total moves them (by < 1e-8).
    assert held and all(abs(snap.value(c) - before.value(c)) <= 1e-8 * UNIT for c in held)
    assert l1_error(snap, ref) < 1e-6
    # Rounds go on without it (its last values held), then it answers again.
    net.round(skip=frozenset({1}))
    assert net.hub.snapshot.stale == frozenset({1})
    assert l1_error(net.round(), ref) < 1e-6
    assert net.hub.snapshot.stale == frozenset()


@pytest.mark.parametrize("params", [DIFFUSION, TRI], ids=["diffusion", "tri"])
def test_deterministic_and_order_free(
    graph: tuple[list[Link], dict[bytes, int]], params: FocusParams
) -> None:
    """The same links give the same packets and roots, whatever their order
    within a bucket and however add_links batches them."""
    links, stakes = graph
    roots = []
    packets = []
    for seed in (None, 1, 2):
        net = Network(4, params, stakes)
        if seed is None:
            net.add(links)
        else:
            shuffled = list(links)
            random.Random(seed).shuffle(shuffled)
            half = len(shuffled) // 2
            net.add(shuffled[:half])
            net.add(shuffled[half:])
        for _ in range(6):
            net.round()
        roots.append(net.hub.snapshot.root())
        packets.append(net.packets)
    assert roots[0] == roots[1] == roots[2]
    assert packets[0] == packets[1] == packets[2]


def _fresh(
    params: FocusParams = DIFFUSION, rounds: int = 3
) -> tuple[HubMerge, dict[str, Any], int]:
    """A hub after a few rounds, and bucket 0's next valid packet."""
    links, stakes = make_graph(n=120, m=600, seed=3)
    net = Network(4, params, stakes)
    net.add(links)
    for _ in range(rounds):
        net.round()
    packet = net.ranks[0].solve(net.inflows[0])
    net.hub.check(0, packet)
    return net.hub, packet, 0


def _foreign(bucket: int, buckets: int = 4) -> bytes:
    i = 0
    while particle_bucket(raw_cid_bytes(b"x%d" % i), buckets) == bucket:
        i += 1
    return raw_cid_bytes(b"x%d" % i)


def _own(bucket: int, buckets: int = 4) -> bytes:
    i = 0
    while particle_bucket(raw_cid_bytes(b"y%d" % i), buckets) != bucket:
        i += 1
    return raw_cid_bytes(b"y%d" % i)


BAD = {
    "owned particle of another bucket": lambda p: p["owned"].append([_foreign(0), 1]) or p,
    "outflow to own bucket": lambda p: p["outflow"].insert(0, [_own(0), 1]) or p,
    "unsorted": lambda p: p["owned"].reverse() or p,
    "duplicate": lambda p: p["owned"].append(list(p["owned"][-1])) or p,
    "negative": lambda p: p["owned"][0].__setitem__(1, -5) or p,
    "outflow over alpha": lambda p: [e.__setitem__(1, e[1] * 3) for e in p["outflow"]] and p,
    "owned over the mass bound": lambda p: p["owned"][0].__setitem__(1, 7 * UNIT) or p,
    "dangling over owned": lambda p: p.__setitem__("dangling", 8 * UNIT) or p,
    "future round": lambda p: p.__setitem__("round", p["round"] + 1) or p,
    "wrong mode": lambda p: p.__setitem__("mode", "tri") or p,
    "missing key": lambda p: p.pop("edges") and p,
    "wrong count": lambda p: p.__setitem__("n", p["n"] + 1) or p,
    "edges in diffusion": lambda p: p["edges"].append([_own(0), _foreign(0), 1]) or p,
    "float value": lambda p: p["owned"][0].__setitem__(1, 0.5) or p,
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_check_refuses(kind: str) -> None:
    hub, packet, b = _fresh()
    assert packet["owned"] and packet["outflow"]
    bad = BAD[kind](copy.deepcopy(packet))
    with pytest.raises(RankUnsupportedError) as err:
        hub.check(b, bad)
    assert err.value.code == "rank_unsupported"


def test_check_refuses_old_round() -> None:
    hub, packet, b = _fresh()
    hub.apply(b, packet)
    hub.merge()
    older = dict(packet, round=packet["round"] - 1)
    with pytest.raises(RankUnsupportedError, match="wrong round"):
        hub.check(b, older)


def test_check_refuses_oversized(monkeypatch: pytest.MonkeyPatch) -> None:
    hub, packet, b = _fresh()
    monkeypatch.setattr(rollup_merge, "MAX_ENTRIES", 3)
    with pytest.raises(RankUnsupportedError, match="at most 3 entries"):
        hub.check(b, packet)
    monkeypatch.setattr(rollup_merge, "MAX_ENTRIES", 1 << 20)
    monkeypatch.setattr(rollup_merge, "MAX_PACKET_BYTES", 100)
    with pytest.raises(RankUnsupportedError, match="oversized"):
        hub.check(b, packet)


@pytest.mark.parametrize(
    "kind", ["foreign source", "self edge", "unsorted", "owned in tri", "infinite weight"]
)
def test_check_refuses_tri(kind: str) -> None:
    hub, packet, b = _fresh(TRI, rounds=0)
    assert packet["edges"]
    p = copy.deepcopy(packet)
    own = _own(0)
    edits = {
        "foreign source": lambda: p["edges"].append([_foreign(0), own, 1]),
        "self edge": lambda: p["edges"].append([b"\xff" * 40, b"\xff" * 40, 1]),
        "unsorted": lambda: p["edges"].append(list(p["edges"][0])),
        "owned in tri": lambda: p["owned"].append([own, 1]),
        "infinite weight": lambda: p["edges"].__setitem__(0, [*p["edges"][0][:2], 0x7FF << 52]),
    }
    edits[kind]()
    with pytest.raises(RankUnsupportedError):
        hub.check(b, p)


def test_snapshot_proofs(graph: tuple[list[Link], dict[bytes, int]]) -> None:
    links, stakes = graph
    net = Network(2, DIFFUSION, stakes)
    net.add(links)
    snap = net.round()
    root = snap.root()
    for cid in snap.particles[:: max(1, len(snap.particles) // 7)]:
        proof = snap.proof(cid)
        value = snap.value(cid)
        assert verify_snapshot_proof(root, cid, value, proof)
        assert not verify_snapshot_proof(root, cid, value + 1, proof)
        assert not verify_snapshot_proof(
            root, cid, value + 1, type(proof)(proof.index, value + 1, proof.path, proof.size)
        )
        assert not verify_snapshot_proof(root, _foreign(9, 16), value, proof)
    with pytest.raises(KeyError):
        snap.proof(b"not a particle")


def test_normalise_is_exact() -> None:
    assert normalise([1, 1, 1]) == [333333333333334, 333333333333333, 333333333333333]
    assert sum(normalise([5, 0, 7, 3 * UNIT])) == UNIT
    assert normalise([0, 0]) == [UNIT // 2, UNIT // 2]


def _cbor_round_trip(doc: dict[str, Any]) -> dict[str, Any]:
    from focusflow.core.encoding import decode

    out: dict[str, Any] = decode(encode(doc), "state")
    return out


@pytest.mark.parametrize("params", [DIFFUSION, TRI], ids=["diffusion", "tri"])
def test_a_restored_network_continues_with_the_same_bits(
    graph: tuple[list[Link], dict[bytes, int]], params: FocusParams
) -> None:
    """A chain stores the engines' state between rounds; a node restarted
    from it (links and stakes added again from its own state) sends the same
    packets and commits the same snapshots as one that never stopped."""
    links, stakes = graph
    half = len(links) // 2
    steady = Network(4, params, stakes)
    steady.add(links[:half])
    restarted = Network(4, params, stakes)
    restarted.add(links[:half])
    for _ in range(3):
        steady.round()
        restarted.round()
    fresh = Network(4, params, stakes)
    fresh.add(links[:half])
    for old, new in zip(restarted.ranks, fresh.ranks, strict=True):
        new.restore_state(_cbor_round_trip(old.export_state()))
    fresh.hub.restore_state(_cbor_round_trip(restarted.hub.export_state()))
    fresh.inflows = restarted.inflows
    for net in (steady, fresh):
        net.add(links[half:])
        net.packets.clear()
    roots = [[steady.round().root(), fresh.round().root()] for _ in range(3)]
    assert all(a == b for a, b in roots)
    assert steady.packets == fresh.packets


def test_a_refused_packet_leaves_no_particle_behind() -> None:
    hub, packet, b = _fresh()
    known = list(hub.particles())
    bad = copy.deepcopy(packet)
    bad["owned"].append([_foreign(0), 1])
    with pytest.raises(RankUnsupportedError):
        hub.check(b, bad)
    assert hub.particles() == known


BAD_INFLOW = {
    "missing key": lambda p: p.pop("focus") and p,
    "other bucket": lambda p: p.__setitem__("bucket", 1) or p,
    "old round": lambda p: p.__setitem__("round", 1) or p,
    "particle of another bucket": lambda p: p["inflow"].append([_foreign(0), 1]) or p,
    "unsorted": lambda p: p["inflow"].reverse() or p,
    "negative": lambda p: p["inflow"][0].__setitem__(1, -1) or p,
    "not a map": lambda p: [p],
}


@pytest.mark.parametrize("kind", sorted(BAD_INFLOW))
def test_check_inflow_refuses(kind: str) -> None:
    """What a rollup refuses from a hub on arrival (its acknowledgement says so)."""
    from focusflow.focus.rollup_rank import check_inflow

    hub, _packet, _ = _fresh()
    inflow = hub.inflow(0)
    own = sorted(
        c for c in (raw_cid_bytes(b"w%d" % i) for i in range(64)) if particle_bucket(c, 4) == 0
    )[:2]
    inflow["inflow"] = [[own[0], 5], [own[1], 6]]
    inflow["round"] = 2
    check_inflow(inflow, 0, 4, 1)
    with pytest.raises(RankUnsupportedError) as err:
        check_inflow(BAD_INFLOW[kind](copy.deepcopy(inflow)), 0, 4, 2)
    assert err.value.code == "rank_unsupported"
