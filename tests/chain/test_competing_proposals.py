"""Competing proposals at one height: each executes once, switching replays nothing.

A byzantine proposer can sign two valid blocks for one height (and honest
round changes bring another proposer's block). A validator that executed both
must be able to commit either one with the roots of a node that only saw that
one, without rebuilding its focus engine from the checkpoint in between.
"""

from __future__ import annotations

import pytest

from focusflow.chain import BlockError
from focusflow.chain.block import sign_certificate
from focusflow.chain.pending import MAX_PENDING_FOCUS
from focusflow.testing.chains import ALICE, BOB, CAROL, VALIDATOR, genesis, link, new_chain, tx

T0 = genesis().genesis_time_ms


def _cert(chain, pending):
    return sign_certificate(VALIDATOR, chain.chain_id, pending.height, pending.hash)


@pytest.fixture
def blocks(tmp_path):
    """Block 1, and two competing blocks of height 2 with different links."""
    proposer = new_chain(tmp_path / "p", genesis())
    first = proposer.produce_block([tx(ALICE, 0, link(("a", "b"), ("b", "c")))], T0 + 1000)
    a = proposer.propose([tx(BOB, 0, link(("c", "d"), ("d", "a")))], T0 + 2000)
    b = proposer.propose([tx(CAROL, 0, link(("x", "a"), ("a", "y"), ("y", "x")))], T0 + 2000)
    assert a.hash != b.hash and a.block.header.focus_root != b.block.header.focus_root
    # Both stay committable on the proposer too: neither replaced the other's state.
    assert proposer.is_current(a) and proposer.is_current(b)
    return first.record, a, b, proposer


def _only_saw(path, first, pending):
    chain = new_chain(path, genesis(), producer=False)
    chain.apply_block(first)
    chain.commit(chain.validate(pending.proposal_value()), _cert(chain, pending))
    return chain


@pytest.mark.parametrize("winner", ["a", "b"])
def test_alternating_between_two_proposals_then_committing_either(tmp_path, blocks, winner):
    first, a, b, _ = blocks
    chain = new_chain(tmp_path / "v", genesis(), producer=False)
    chain.apply_block(first)
    head_focus = chain.focus
    head_root = chain.focus.root
    seen = {}
    for _ in range(3):  # A, B, A, B, A, B: each validation starts from the head
        for name, pending in (("a", a), ("b", b)):
            mine = chain.validate(pending.proposal_value())
            assert mine.hash == pending.hash
            seen[name] = mine
            # The head's focus state is untouched and nothing was rebuilt.
            assert chain.focus is head_focus and chain.focus.root == head_root
            assert chain.restored_from is None
    assert chain.is_current(seen["a"]) and chain.is_current(seen["b"])
    won = a if winner == "a" else b
    chain.commit(seen[winner], _cert(chain, won))
    assert not chain.is_current(seen["b" if winner == "a" else "a"])
    reference = _only_saw(tmp_path / "r", first, won)
    assert chain.head == reference.head
    assert chain.focus.root == reference.focus.root == won.block.header.focus_root
    # And the chain goes on with equal roots.
    proposer = blocks[3]
    proposer.commit(won, _cert(proposer, won))
    third = proposer.propose([tx(ALICE, 1, link(("b", "d")))], T0 + 3000)
    for c in (chain, reference):
        c.commit(c.validate(third.proposal_value()), _cert(c, third))
    assert chain.head == reference.head and chain.focus.root == reference.focus.root


def test_the_focus_states_kept_per_height_are_bounded(tmp_path, blocks):
    first, a, _, proposer = blocks
    chain = new_chain(tmp_path / "v", genesis(), producer=False)
    chain.apply_block(first)
    mine_a = chain.validate(a.proposal_value())
    others = [
        proposer.propose([tx(BOB, 0, link((f"n{i}", "a")))], T0 + 2000 + i)
        for i in range(MAX_PENDING_FOCUS)
    ]
    for other in others:
        assert chain.is_current(chain.validate(other.proposal_value()))
    # A's state was the oldest: dropped, so A must be executed again to commit.
    assert not chain.is_current(mine_a)
    with pytest.raises(BlockError, match="focus state was dropped"):
        chain.commit(mine_a, _cert(chain, a))
    again = chain.validate(a.proposal_value())
    chain.commit(again, _cert(chain, a))
    assert chain.focus.root == a.block.header.focus_root


def test_abandon_drops_the_state_and_leaves_the_head(tmp_path, blocks):
    first, a, b, _ = blocks
    chain = new_chain(tmp_path / "v", genesis(), producer=False)
    chain.apply_block(first)
    root = chain.focus.root
    mine_a = chain.validate(a.proposal_value())
    chain.abandon(mine_a)
    assert mine_a.focus is None and not chain.is_current(mine_a)
    assert chain.focus.root == root
    chain.commit(chain.validate(b.proposal_value()), _cert(chain, b))
    assert chain.focus.root == b.block.header.focus_root
