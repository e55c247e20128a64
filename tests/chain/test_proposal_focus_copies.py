"""A proposal's focus state, copied cheaply, commits what an independent copy commits.

``BlockPipeline.build`` copies the head's focus state for every block it
proposes or validates under consensus (``copy.deepcopy``), and that copy
shares the head's large arrays: link columns, key tables, the links-by-neuron
index, the snapshot's structure, and the base weights and SELL values until
one side writes them. These tests drive a random sequence of heights, each
with competing proposals of random blocks (new particles, links onto held and
new pairs, stake changes, blocks large enough to compact the snapshot), one
of which commits (or the head moves in place while proposals are still held),
the others dropped and some proposed again; beside it runs the same sequence
on states copied by value (a pickle round trip: nothing shared). Every root
and focus vector must be equal bit for bit, and a dropped proposal must leave
the head's state byte for byte as it was.
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


def _block(rng: np.random.Generator, particles: int) -> Deltas:
    """Links among up to ``particles`` particles (some new) by a few of eight
    neurons, and stake changes: a random size, now and then large enough to
    compact the snapshot, now and then stakes alone."""
    kind = rng.choice(["small", "small", "grow", "stakes", "large"])
    stakes = {_neuron(int(k)): int(rng.integers(0, 10**6)) for k in rng.choice(8, 2)}
    if kind == "stakes":
        return Deltas(stakes=stakes)
    links = {"small": 12, "grow": 30, "large": 400}[str(kind)]
    top = particles + (int(rng.integers(1, 20)) if kind != "small" else 0)
    src = rng.integers(0, top, links)
    dst = rng.integers(0, top, links)
    who = rng.integers(0, 8, links)
    groups = []
    for k in range(8):
        mine = who == k
        pairs = [[_cid(int(a)), _cid(int(b))] for a, b in zip(src[mine], dst[mine], strict=True)]
        if pairs:
            groups.append((_neuron(k), pairs, None))
    return Deltas(links=groups, stakes=stakes)


def _by_value(state: FocusState) -> FocusState:
    """A copy that shares nothing with ``state``: the deepcopy path as it was
    before copies shared arrays."""
    twin: FocusState = pickle.loads(pickle.dumps(state, protocol=5))
    return twin


def _fingerprint(state: FocusState) -> bytes:
    """The state's byte form (what a checkpoint holds) and every byte of its
    objects but the last result's key list (the graph's live list of particle
    keys, which ids index and which grows in place by design).

    Taken after the state was copied once: a copy marks the buffers it shares
    as shared on both sides (so that whichever writes first copies them),
    which is the one change a copy makes to its original."""
    engine = {k: v for k, v in vars(state.engine).items() if k != "result"}
    rest = {k: v for k, v in vars(state).items() if k != "engine"}
    result = state.engine.result
    objects = pickle.dumps((rest, engine, result.focus if result else None), protocol=5)
    return focus_state_bytes.of_state(state) + objects


def _same(mine: FocusState, theirs: FocusState) -> None:
    assert mine.root == theirs.root
    assert mine.q.dtype == theirs.q.dtype and mine.q.tobytes() == theirs.q.tobytes()
    assert focus_state_bytes.of_state(mine) == focus_state_bytes.of_state(theirs)


@pytest.mark.parametrize("seed", range(4))
def test_random_heights_of_competing_proposals(seed: int) -> None:
    rng = np.random.default_rng(seed)
    head = FocusState(dict(NEW_CHAIN_FOCUS))
    ref = FocusState(dict(NEW_CHAIN_FOCUS))
    first = _block(np.random.default_rng(1000 + seed), 60)
    head.apply(first)
    ref.apply(first)
    particles = 80
    held: list[tuple[FocusState, Deltas]] = []  # proposals of older heights, still referenced
    for _height in range(8):
        copy.deepcopy(head)
        before = _fingerprint(head)
        blocks = [_block(rng, particles) for _ in range(int(rng.integers(1, 4)))]
        proposals = []
        for block in blocks:
            mine = copy.deepcopy(head)
            mine.apply(block)
            theirs = _by_value(ref)
            theirs.apply(block)
            _same(mine, theirs)
            proposals.append((mine, theirs, block))
        # Every proposal, dropped or not, left the head as it was.
        assert _fingerprint(head) == before
        # A dropped proposal proposed again computes the same state.
        again = int(rng.integers(len(proposals)))
        redo = copy.deepcopy(head)
        redo.apply(proposals[again][2])
        _same(redo, proposals[again][1])
        assert _fingerprint(head) == before
        if rng.random() < 0.3:
            # The head moves in place (a block committed at once) while the
            # proposals of this height are still held; they must not move.
            block = _block(rng, particles)
            kept = [_fingerprint(p[0]) for p in proposals]
            head.apply(block)
            ref.apply(block)
            assert [_fingerprint(p[0]) for p in proposals] == kept
            held.extend((p[0], p[2]) for p in proposals)
        else:
            winner = int(rng.integers(len(proposals)))
            head, ref = proposals[winner][0], proposals[winner][1]
            held.extend((p[0], p[2]) for k, p in enumerate(proposals) if k != winner)
        _same(head, ref)
        particles += 10
    # Proposals dropped long ago still hold exactly what their block made.
    for state, _ in held[-4:]:
        restored = focus_state_bytes.restored(focus_state_bytes.of_state(state), state)
        assert restored.root == state.root


def test_a_dropped_proposal_after_a_compaction_leaves_the_head_alone() -> None:
    """A proposal whose block compacts the snapshot (a rebuild: new structure,
    a new links-by-neuron index) and one that rewrites shared base weights
    both leave the head byte for byte as it was, and the head's next block
    in place commits what an independent copy of it commits."""
    rng = np.random.default_rng(7)
    head = FocusState(dict(NEW_CHAIN_FOCUS))
    head.apply(_block(rng, 60))
    head.apply(_block(rng, 70))
    copy.deepcopy(head)
    before = _fingerprint(head)
    ref = _by_value(head)
    order = head.graph._neuron_link_order
    big = Deltas(
        links=[(_neuron(1), [[_cid(i), _cid(i + 1)] for i in range(0, 2000, 2)], None)],
        stakes={_neuron(3): 5},
    )
    compacted = copy.deepcopy(head)
    epoch = compacted.graph.epoch
    compacted.apply(big)
    assert compacted.graph.epoch == epoch + 1
    reweighed = copy.deepcopy(head)
    reweighed.apply(Deltas(stakes={_neuron(k): 10**6 + k for k in range(8)}))
    assert _fingerprint(head) == before
    assert head.graph._neuron_link_order is order
    block = _block(rng, 80)
    head.apply(block)
    ref.apply(block)
    _same(head, ref)
