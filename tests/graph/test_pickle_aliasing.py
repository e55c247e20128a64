"""A graph that went through pickle or deepcopy patches exactly as one that did not.

A node restarting from its focus checkpoint, or state-syncing from a peer's
snapshot, unpickles its graph; a proposal's focus state is a deep copy. Both
copy every numpy array on its own, so an array kept as a view of another (a
column's buffer) comes back detached from it. The snapshot once kept its
overlay's columns that way: a patch that added weight to an existing overlay
entry wrote into the detached copy, and the next patch that created an
overlay pair re-read the stale buffer, so the copied graph lost the weight
and its node forked. These tests patch copied and uncopied graphs side by
side, and check that no array reachable from a graph shares memory with
another (what a copy would split apart).
"""

from __future__ import annotations

import copy
import pickle
from collections import deque
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from focusflow.core.structure import Check
from focusflow.graph.cybergraph import Cybergraph

#: The ways a graph is copied in a node: a checkpoint or snapshot (pickle
#: protocol 5, and the default protocol), and a proposal's focus state.
COPIES: dict[str, Callable[[Cybergraph], Cybergraph]] = {
    "pickle5": lambda g: pickle.loads(pickle.dumps(g, protocol=5)),
    "pickle": lambda g: pickle.loads(pickle.dumps(g)),
    "deepcopy": copy.deepcopy,
}
#: Snapshot arrays that must be equal between a copied graph and its twin.
SNAPSHOT_ARRAYS = (
    "perm",
    "out_indptr",
    "out_indices",
    "out_w",
    "in_w",
    "out_weight",
    "ov_src",
    "ov_dst",
    "ov_w",
    "late_entry",
)


def _base(compact_ratio: float = 10.0) -> Cybergraph:
    """200 links by two neurons over 40 particles, snapshotted (the base CSR)."""
    g = Cybergraph(require_cids=False, compact_ratio=compact_ratio)
    src = [f"p{i % 40}" for i in range(200)]
    dst = [f"p{(7 * i + 1) % 40}" for i in range(200)]
    g.add_links(src, dst, [f"n{i % 2}" for i in range(200)])
    g.snapshot()
    return g


def _assert_same(a: Cybergraph, b: Cybergraph) -> None:
    sa, sb = a.snapshot(), b.snapshot()
    assert (sa.n, sa.version, sa.n_links) == (sb.n, sb.version, sb.n_links)
    for name in SNAPSHOT_ARRAYS:
        assert np.array_equal(getattr(sa, name), getattr(sb, name)), name
    ma, mb = sa.to_scipy(), sb.to_scipy()
    assert ma.shape == mb.shape and (ma != mb).nnz == 0
    ids = np.arange(a.n_links)
    assert np.array_equal(a.link_weight(ids), b.link_weight(ids))


def _arrays(root: object) -> list[tuple[str, np.ndarray]]:
    """Every numpy array reachable from ``root`` (attributes, containers), by path."""
    seen: set[int] = set()
    out: list[tuple[str, np.ndarray]] = []
    stack: list[tuple[str, object]] = [("", root)]
    while stack:
        path, obj = stack.pop()
        if id(obj) in seen or isinstance(obj, str | bytes | int | float | bool | type(None)):
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            out.append((path, obj))
        elif isinstance(obj, dict):
            stack.extend((f"{path}[{k!r}]", v) for k, v in obj.items())
        elif isinstance(obj, list | tuple | set | frozenset | deque):
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(obj))
        else:
            fields = dict(vars(obj)) if hasattr(obj, "__dict__") else {}
            for klass in type(obj).__mro__:
                for name in getattr(klass, "__slots__", ()):
                    if hasattr(obj, name):
                        fields[name] = getattr(obj, name)
            stack.extend((f"{path}.{k}", v) for k, v in fields.items())
    return out


def assert_no_shared_memory(root: object) -> None:
    """No two arrays reachable from ``root`` share memory: pickle and deepcopy
    copy each array on its own, so any such pair would be split apart."""
    arrays = [(p, a) for p, a in _arrays(root) if a.size]
    for i, (pa, a) in enumerate(arrays):
        for pb, b in arrays[i + 1 :]:
            assert not np.shares_memory(a, b), f"{pa} shares memory with {pb}"


@pytest.mark.parametrize("how", COPIES)
def test_a_copied_graph_keeps_the_weight_added_to_an_existing_overlay_entry(how):
    original, copied = _base(), _base()
    for g in (original, copied):
        g.add_links(["p0"], ["p2"], ["n0"])  # a new overlay pair
        g.snapshot()
    copied = COPIES[how](copied)
    for g in (original, copied):
        g.add_links(["p0"] * 5, ["p2"] * 5, weights=[1.0] * 5)  # the same entry again
        g.snapshot()
        g.add_links(["p3"], ["p9"], weights=[1.0])  # another new overlay pair
        g.snapshot()
    snap = original.snapshot()
    internal = snap.internal_ids(np.array([original.particles.id_of(k) for k in ("p0", "p2")]))
    entry = np.flatnonzero((snap.ov_src == internal[0]) & (snap.ov_dst == internal[1]))
    assert len(entry) == 1 and snap.ov_w[entry[0]] == original.link_weight([200])[0] + 5.0
    _assert_same(original, copied)


@pytest.mark.parametrize("how", COPIES)
def test_a_copied_graph_keeps_a_stake_move_reweighing_the_overlay(how):
    """A stake change rewrites every overlay entry of the neuron (summed again
    from its links) and creates none: the write a copy once lost."""
    original, copied = _base(), _base()
    for g in (original, copied):
        g.add_links(["p0", "p5"], ["p2", "p6"], ["n0", "n1"])
        g.snapshot()
    copied = COPIES[how](copied)
    for g in (original, copied):
        g.set_stakes(g.add_neurons(["n0"]), np.array([7.0]))
        g.snapshot()
        g.add_links(["p3"], ["p9"], ["n1"])
        g.snapshot()
    _assert_same(original, copied)


def test_no_array_of_a_patched_graph_shares_memory_with_another():
    g = _base()
    g.add_links(["p0", "p1"], ["p2", "p3"], ["n0", "n1"])
    g.refresh()
    g.add_links(["p0", "p4"], ["p2", "p5"], ["n1", "n0"])
    g.set_stakes(g.add_neurons(["n1"]), np.array([3.0]))
    g.refresh()
    snap = g.snapshot()
    assert snap.overlay_nnz and len(snap.late_entry)
    snap.overlay_in_rows()  # the overlay's cached forms, too
    snap.to_scipy()
    assert_no_shared_memory(g)
    for how in COPIES.values():
        again = how(g)
        Cybergraph.check_structure(again, Check())
        assert_no_shared_memory(again)


#: One block: links as (source, target, neuron or -1 for an anonymous link of
#: weight 1), among the first particles and a few new ones, and maybe a
#: neuron's new stake.
_LINKS = st.lists(
    st.tuples(st.integers(0, 45), st.integers(0, 45), st.integers(-1, 2)),
    max_size=6,
)
_BLOCKS = st.lists(
    st.tuples(_LINKS, st.one_of(st.none(), st.tuples(st.integers(0, 2), st.integers(0, 4)))),
    min_size=1,
    max_size=8,
)


def _apply(g: Cybergraph, links: list[tuple[int, int, int]], stake) -> None:
    named = [(s, d, n) for s, d, n in links if n >= 0]
    anonymous = [(s, d) for s, d, n in links if n < 0]
    if named:
        g.add_links(
            [f"p{s}" for s, _, _ in named],
            [f"p{d}" for _, d, _ in named],
            [f"n{n}" for _, _, n in named],
        )
    if anonymous:
        g.add_links([f"p{s}" for s, _ in anonymous], [f"p{d}" for _, d in anonymous])
    if stake is not None:
        neuron, value = stake
        g.set_stakes(g.add_neurons([f"n{neuron}"]), np.array([float(value)]))


@settings(max_examples=60, deadline=None)
@given(
    blocks=_BLOCKS,
    copy_at=st.sets(st.integers(0, 7), max_size=3),
    how=st.sampled_from(sorted(COPIES)),
    compact_ratio=st.sampled_from([10.0, 0.1]),
)
def test_copies_at_random_points_patch_as_the_graph_that_was_never_copied(
    blocks, copy_at, how, compact_ratio
):
    original, copied = _base(compact_ratio), _base(compact_ratio)
    for k, (links, stake) in enumerate(blocks):
        if k in copy_at:
            copied = COPIES[how](copied)
        for g in (original, copied):
            _apply(g, links, stake)
            g.snapshot()
        _assert_same(original, copied)
