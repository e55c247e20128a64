"""Block time is bounded: above by MAX_TIME_MS, and by the local clock for a vote.

A proposer that set a block's time to the largest 64-bit integer used to be
accepted, and no later header could then carry a larger time: the chain halted
for good. These tests run the sans-io path a validator runs on a proposal
(``Chain.validate`` with its clock) and the sync path (without a clock).
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from focusflow.chain import BlockError, BlockRecord
from focusflow.chain.block import MAX_TIME_MS, Block, sign_certificate
from focusflow.chain.block_checks import MAX_CLOCK_DRIFT_MS
from focusflow.chain.errors import BlockTimeError, GenesisError
from focusflow.chain.genesis import Genesis
from focusflow.core.errors import DecodeError
from focusflow.testing.chains import ALICE, VALIDATOR, genesis, link, new_chain, tx

T0 = genesis().genesis_time_ms


def _with_time(record: BlockRecord, time_ms: int) -> BlockRecord:
    header = replace(record.block.header, time_ms=time_ms)
    return replace(record, block=Block(header, record.block.txs, record.block.evidence))


def _commit(chain, pending):
    cert = sign_certificate(VALIDATOR, chain.chain_id, pending.height, pending.hash)
    return chain.commit(pending, cert)


def _now() -> int:
    return int(time.time() * 1000)


@pytest.mark.parametrize("time_ms", [2**64 - 1, 2**63, MAX_TIME_MS + 1])
def test_a_header_past_the_ceiling_is_refused_and_the_chain_goes_on(tmp_path, time_ms):
    proposer = new_chain(tmp_path / "p", genesis())
    follower = new_chain(tmp_path / "f", genesis(), producer=False)
    # The byzantine proposer's block: its roots do not depend on time, so only
    # the time rule can refuse it.
    honest = proposer.propose([tx(ALICE, 0, link(("a", "b")))], T0 + 1000)
    forged = _with_time(honest.record, time_ms)
    for now_ms in (None, _now()):
        with pytest.raises(BlockTimeError, match="above MAX_TIME_MS") as info:
            follower.validate(forged, now_ms=now_ms)
        assert info.value.code == "invalid_block_time"
    # The same block as bytes (gossip, sync) does not even decode.
    with pytest.raises(BlockError, match="above MAX_TIME_MS"):
        follower.validate(forged.encode())
    with pytest.raises(DecodeError, match="above MAX_TIME_MS"):
        BlockRecord.decode(forged.encode())
    # The proposer cannot make one either.
    with pytest.raises(BlockTimeError, match="above MAX_TIME_MS"):
        proposer.propose([], time_ms)
    assert follower.height == 0
    # Nothing moved: the honest block is accepted, and the chain keeps committing.
    _commit(follower, follower.validate(honest.proposal_value()))
    _commit(proposer, proposer.propose([tx(ALICE, 0, link(("a", "b")))], T0 + 1000))
    for _ in range(3):
        pending = proposer.propose([])
        _commit(follower, follower.validate(pending.proposal_value(), now_ms=_now()))
        _commit(proposer, pending)
    assert follower.head == proposer.head and follower.height == 4


def test_the_largest_time_is_accepted_but_leaves_no_room_so_clocks_bound_it(tmp_path):
    """MAX_TIME_MS itself is a valid time, and nothing can follow it: which is why a
    validator also refuses proposals far ahead of its clock."""
    proposer = new_chain(tmp_path / "p", genesis())
    pending = proposer.propose([], MAX_TIME_MS)
    with pytest.raises(BlockTimeError, match="ahead of this validator's clock"):
        new_chain(tmp_path / "f", genesis(), producer=False).validate(
            pending.proposal_value(), now_ms=_now()
        )
    _commit(proposer, pending)
    with pytest.raises(BlockTimeError, match="above MAX_TIME_MS"):
        proposer.propose([])


def test_a_proposal_from_the_far_future_gets_a_nil_prevote_but_syncs(tmp_path):
    proposer = new_chain(tmp_path / "p", genesis())
    voter = new_chain(tmp_path / "v", genesis(), producer=False)
    syncer = new_chain(tmp_path / "s", genesis(), producer=False)
    now = _now()
    future = proposer.propose([tx(ALICE, 0, link(("a", "b")))], now + 2 * MAX_CLOCK_DRIFT_MS)
    with pytest.raises(BlockTimeError, match="ahead of this validator's clock") as info:
        voter.validate(future.proposal_value(), now_ms=now)
    assert info.value.code == "invalid_block_time" and voter.height == 0
    # Decided anyway (by others' clocks): a block synced with its certificate is
    # not judged against the local clock.
    record = _commit(proposer, future).record
    syncer.apply_block(record)
    voter.apply_block(record)
    assert voter.head == syncer.head == proposer.head


def test_a_parent_slightly_in_the_future_does_not_stop_the_chain(tmp_path):
    """The proposer's own time is max(now, parent + 1): a parent within the drift
    ahead of the clocks is followed by blocks every validator accepts."""
    proposer = new_chain(tmp_path / "p", genesis())
    voter = new_chain(tmp_path / "v", genesis(), producer=False)
    now = _now()
    ahead = proposer.propose([], now + MAX_CLOCK_DRIFT_MS)
    _commit(voter, voter.validate(ahead.proposal_value(), now_ms=now))
    _commit(proposer, ahead)
    for i in range(1, 4):
        pending = proposer.propose([])
        assert pending.block.header.time_ms == proposer.head.time_ms + 1
        # The voter's clock has moved on by at least a millisecond per block.
        _commit(voter, voter.validate(pending.proposal_value(), now_ms=max(_now(), now + i)))
        _commit(proposer, pending)
    assert voter.head == proposer.head and voter.height == 4


def test_a_genesis_past_the_ceiling_is_refused():
    raw = genesis().to_json()
    raw["genesis_time_ms"] = MAX_TIME_MS + 1
    with pytest.raises(GenesisError, match="above MAX_TIME_MS"):
        Genesis.from_json(raw)
    raw["genesis_time_ms"] = MAX_TIME_MS - 1
    assert Genesis.from_json(raw).genesis_time_ms == MAX_TIME_MS - 1
