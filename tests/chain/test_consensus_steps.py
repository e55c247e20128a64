"""Propose / validate / commit / abandon: what a validator does between proposal and decision."""

from __future__ import annotations

from dataclasses import replace

import pytest

from focusflow.chain import BlockError, BlockRecord
from focusflow.chain.block import Block, certificate_hash, sign_certificate
from focusflow.core.keys import KeyPair
from focusflow.testing.chains import ALICE, BOB, VALIDATOR, genesis, link, new_chain, tx

T0 = genesis().genesis_time_ms


def test_validators_execute_before_voting_and_write_only_on_commit(tmp_path):
    proposer = new_chain(tmp_path / "p", genesis())
    follower = new_chain(tmp_path / "f", genesis(), producer=False)
    pending = proposer.propose([tx(ALICE, 0, link(("a", "b"), ("b", "c")))], T0 + 1000)
    assert proposer.height == 0 and proposer.block_record(1) is None  # nothing written
    assert pending.record.last_commit is None and pending.block.header.last_commit == b""
    theirs = follower.validate(pending.proposal_value())
    assert theirs.hash == pending.hash and follower.height == 0
    cert = sign_certificate(VALIDATOR, proposer.chain_id, 1, pending.hash)
    proposer.commit(pending, cert)
    follower.commit(theirs, cert)
    assert proposer.head == follower.head and follower.focus.root == proposer.focus.root
    assert follower.block_record(1).commit == cert

    # Block 2 carries the parent's certificate, and its header hashes it.
    p2 = proposer.propose([tx(BOB, 0, link(("c", "a")))], T0 + 2000)
    assert p2.record.last_commit == cert
    assert p2.block.header.last_commit == certificate_hash(cert)
    # A certificate that is not > 2/3 of the power is refused at commit.
    stranger = KeyPair.from_seed(b"stranger".ljust(32, b"\0"))
    bad = sign_certificate(stranger, proposer.chain_id, 2, p2.hash)
    with pytest.raises(BlockError, match="invalid commit"):
        proposer.commit(p2, bad)
    assert proposer.height == 1


def test_wrong_roots_or_parent_certificate_are_refused_and_abandon_drops_focus(tmp_path):
    proposer = new_chain(tmp_path / "p", genesis())
    follower = new_chain(tmp_path / "f", genesis(), producer=False)
    follower.apply_block(proposer.produce_block([], T0 + 1000).record)
    good = proposer.propose([tx(ALICE, 0, link(("a", "b")))], T0 + 2000)
    header = good.block.header
    for field, value in (("focus_root", bytes(32)), ("state_root", bytes(32))):
        forged = BlockRecord(
            Block(replace(header, **{field: value}), good.block.txs),
            None,
            [[], []],
            good.record.last_commit,
        )
        focus = follower.focus.root
        with pytest.raises(BlockError):
            follower.validate(forged)
        assert follower.focus.root == focus and follower.height == 1
    no_parent_cert = BlockRecord(good.block, None, [[], []], None)
    with pytest.raises(BlockError, match="last_commit"):
        follower.validate(no_parent_cert)

    # Validate A (its own focus state advances; the head's stays), then B wins:
    # abandon A, B commits with the right roots.
    head_root = follower.focus.root
    a = follower.validate(good.proposal_value())
    assert a.focus.root == header.focus_root and follower.focus.root == head_root
    other = proposer.propose([tx(BOB, 0, link(("x", "y")))], T0 + 2500)
    b = follower.validate(other.proposal_value())
    assert follower.is_current(a) and follower.is_current(b)
    follower.abandon(a)
    assert not follower.is_current(a)
    cert = sign_certificate(VALIDATOR, follower.chain_id, 2, other.hash)
    follower.commit(b, cert)
    proposer.commit(other, cert)
    assert follower.head == proposer.head and follower.focus.root == proposer.focus.root
