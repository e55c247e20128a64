"""Copies of the chain's focus state share its large arrays and stay independent.

A validator copies the focus state for every block it proposes or checks
(``BlockPipeline.build`` with ``in_place=False``) and keeps several such copies while
rounds go on; the copies share the link columns, key tables, matrix structure
and (until one writes) the weights. These tests drive the original and its
copies through blocks that touch every shared part (new particles, links onto
held and new pairs, stake changes, a compaction) in interleaved order, and
check that none of them sees another's writes: each one's pickle (every
byte of its objects) stays the same while the others move, each one's roots
are those of a state that replayed its blocks alone, and each one's byte form
(what a checkpoint holds) restores to a state that writes the same bytes.
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from focusflow.chain.focus_commit import NEW_CHAIN_FOCUS, FocusState
from focusflow.chain.module import Deltas
from tests.chain import focus_state_bytes


def _cid(i: int) -> bytes:
    return b"\x01\x55\x12\x20" + i.to_bytes(32, "big")


def _neuron(i: int) -> bytes:
    return i.to_bytes(20, "big")


def _block(seed: int, particles: int, links: int, neurons: int = 6) -> Deltas:
    """Links among ``particles`` particles (new ones among them when the
    range grows) by a few neurons, and new stakes for some of them."""
    rng = np.random.default_rng(seed)
    src = rng.integers(0, particles, links)
    dst = rng.integers(0, particles, links)
    who = rng.integers(0, neurons, links)
    groups = []
    for k in range(neurons):
        mine = who == k
        pairs = [[_cid(int(a)), _cid(int(b))] for a, b in zip(src[mine], dst[mine], strict=True)]
        if pairs:
            groups.append((_neuron(k), pairs, None))
    stakes = {_neuron(int(k)): int(rng.integers(1, 10**6)) for k in rng.choice(neurons, 3)}
    return Deltas(links=groups, stakes=stakes)


#: Blocks in order: a first graph, then blocks onto held pairs (base weights
#: rewritten), new pairs and particles (the overlay, the key table), stakes
#: only, and one large enough to compact the snapshot.
BLOCKS = {
    "genesis": _block(1, 40, 400),
    "held": _block(2, 40, 30),
    "grow": _block(3, 60, 30),
    "stakes": Deltas(stakes={_neuron(0): 7, _neuron(5): 0}),
    "compact": _block(4, 90, 300),
    "more": _block(5, 95, 25),
    # small blocks onto a large graph: late links pile up without a
    # compaction, and after five of them the late links' index has grown
    # buffers it merges into again instead of allocating new ones
    "large": _block(6, 300, 3000),
    **{f"small{k}": _block(20 + k, 310 + 10 * k, 20) for k in range(7)},
}
SMALL = tuple(f"small{k}" for k in range(5))


def _state(*names: str) -> FocusState:
    state = FocusState(dict(NEW_CHAIN_FOCUS))
    for name in names:
        state.apply(BLOCKS[name])
    return state


def _fingerprint(state: FocusState) -> bytes:
    """Every byte of the state's objects (shared buffers included), but the
    last result's key list: that is the graph's live list of particle keys, which
    grows with the graph (by design, in place or in a copy sharing it) and
    which ids index."""
    engine = {k: v for k, v in vars(state.engine).items() if k != "result"}
    rest = {k: v for k, v in vars(state).items() if k != "engine"}
    result = state.engine.result
    return pickle.dumps((rest, engine, result.focus if result else None), protocol=5)


def _same_as_replay(state: FocusState, *names: str) -> None:
    replay = _state(*names)
    assert state.root == replay.root
    assert np.array_equal(state.q, replay.q)
    assert state.graph.particles.keys() == replay.graph.particles.keys()
    assert state.graph.neurons.keys() == replay.graph.neurons.keys()
    mine, theirs = state.graph.links(), replay.graph.links()
    for column in ("src", "dst", "neuron", "weight"):
        assert np.array_equal(getattr(mine, column), getattr(theirs, column))
    assert np.array_equal(state.graph.stakes, replay.graph.stakes)
    raw = focus_state_bytes.of_state(state)
    assert raw == focus_state_bytes.of_state(replay)
    assert focus_state_bytes.of_state(focus_state_bytes.restored(raw, state)) == raw


def test_copies_share_the_link_columns_and_tables() -> None:
    """What the copy saves: the same buffers, not copies of them."""
    head = _state("genesis")
    twin = copy.deepcopy(head)
    assert twin.graph._src._data is head.graph._src._data
    assert twin.graph.particles._keys is head.graph.particles._keys
    assert twin.engine._snap.out_indices is head.engine._snap.out_indices
    assert twin.engine._snap.out_w is head.engine._snap.out_w
    assert twin.engine._op.sell.sval is head.engine._op.sell.sval
    assert twin.engine._snap is twin.graph._snapshot
    assert twin.engine._op.snapshot is twin.engine._snap


def test_copies_taken_in_turn_never_see_each_others_blocks() -> None:
    head = _state("genesis")
    first = copy.deepcopy(head)
    second = copy.deepcopy(head)
    before = _fingerprint(head)

    first.apply(BLOCKS["held"])  # rewrites shared base weights, appends links
    second.apply(BLOCKS["grow"])  # appends particles past the head's too
    assert _fingerprint(head) == before
    _same_as_replay(first, "genesis", "held")
    _same_as_replay(second, "genesis", "grow")

    # a copy of a copy, each then going on its own way
    third = copy.deepcopy(first)
    at_first = _fingerprint(first)
    third.apply(BLOCKS["stakes"])
    third.apply(BLOCKS["compact"])
    assert _fingerprint(first) == at_first
    first.apply(BLOCKS["grow"])
    _same_as_replay(third, "genesis", "held", "stakes", "compact")
    _same_as_replay(first, "genesis", "held", "grow")
    _same_as_replay(second, "genesis", "grow")

    # the head itself moves last, in place, after all its copies moved
    assert _fingerprint(head) == before
    head.apply(BLOCKS["compact"])
    head.apply(BLOCKS["more"])
    _same_as_replay(head, "genesis", "compact", "more")
    _same_as_replay(third, "genesis", "held", "stakes", "compact")


@pytest.mark.parametrize("order", ["head first", "copy first"])
def test_either_side_may_move_first(order: str) -> None:
    """Of two states sharing a column only one appends in place, and each
    merges its late links into buffers of its own: whichever moves first,
    the other's later blocks leave it as it was."""
    head = _state("large", *SMALL)
    twin = copy.deepcopy(head)
    moves = [(head, ("small5", "small6")), (twin, ("small6", "small5"))]
    if order == "copy first":
        moves.reverse()
    (first, first_blocks), (second, second_blocks) = moves
    first.apply(BLOCKS[first_blocks[0]])
    moved = _fingerprint(first)
    second.apply(BLOCKS[second_blocks[0]])
    second.apply(BLOCKS[second_blocks[1]])
    assert _fingerprint(first) == moved
    first.apply(BLOCKS[first_blocks[1]])
    assert head.graph.epoch == twin.graph.epoch == 1  # no compaction: patches only
    _same_as_replay(head, "large", *SMALL, "small5", "small6")
    _same_as_replay(twin, "large", *SMALL, "small6", "small5")


def test_a_restored_checkpoint_holds_only_its_own_keys() -> None:
    """A state whose shared key table a copy appended to is restored from its
    byte form with only its own keys, and the copy's keys stay with the copy."""
    head = _state("genesis")
    twin = copy.deepcopy(head)
    twin.apply(BLOCKS["grow"])
    restored = focus_state_bytes.restored(focus_state_bytes.of_state(head), head)
    assert restored.graph.n_particles == head.graph.n_particles < twin.graph.n_particles
    restored.apply(BLOCKS["more"])
    _same_as_replay(restored, "genesis", "more")
    _same_as_replay(twin, "genesis", "grow")
