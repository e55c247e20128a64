"""Each upon-rule of Algorithm 1 (Buchman, Kwon, Milosevic 2018), one machine at a time."""

from __future__ import annotations

import pytest

from focusflow.consensus import (
    InvalidMessageError,
    Proposal,
    ReportEvidence,
    Step,
    Tendermint,
    Timeout,
    Vote,
    verify_certificate,
    verify_evidence,
)
from focusflow.core.hashing import sha256

from .harness import (
    CHAIN,
    broadcasts,
    decisions,
    keys,
    make_harness,
    timeouts_of,
    votes_of,
)

A, B = b"block A", b"block B"


def polka(h, round, value, voters=None):
    """Prevotes for ``value`` from enough others that with ours they exceed 2/3."""
    voters = voters if voters is not None else h.others[:2]
    return [h.vote(k, round, Step.PREVOTE, value) for k in voters]


def lock_on(h, value, round=0):
    """Drive ``h`` to lock on ``value`` in ``round`` (lines 22-24, then 36-41)."""
    h.feed(h.proposal(round, value))
    return h.feed(*polka(h, round, value))


def to_round(h, round):
    """Move ``h`` to ``round`` by precommit timeouts (lines 65-67)."""
    while h.machine.round < round:
        h.machine.on_timeout(Timeout(Step.PRECOMMIT, 1, h.machine.round))


def test_start_round_non_proposer_schedules_propose_timeout():
    h = make_harness()
    actions = h.machine.start_height(1, h.vs)  # line 10
    (t,) = timeouts_of(actions)  # line 21
    assert t.timeout == Timeout(Step.PROPOSE, 1, 0)
    assert t.delay == h.machine.timeouts.propose
    assert broadcasts(actions) == []


def test_start_round_proposer_proposes_get_value_and_prevotes_it():
    h = make_harness(proposer_at_0=True)
    actions = h.machine.start_height(1, h.vs)
    proposal, prevote = broadcasts(actions)  # lines 14-19, then line 22 on its own proposal
    assert isinstance(proposal, Proposal)
    assert (proposal.value, proposal.valid_round) == (h.values[0], -1)
    assert proposal.verify_signature(CHAIN)
    assert prevote.step == Step.PREVOTE and prevote.value_id == sha256(h.values[0])


def test_proposer_reproposes_valid_value_with_its_round(harness):
    h = harness
    lock_on(h, A)
    r = next(r for r in range(1, 20) if h.proposer(r) is h.me)
    to_round(h, r)
    (p,) = [m for m in h.machine.signer.signed(1) if isinstance(m, Proposal)]
    assert (p.value, p.valid_round, p.round) == (A, 0, r)  # lines 15-16 and 19


def test_prevote_valid_proposal(harness):
    (vote,) = votes_of(harness.feed(harness.proposal(0, A)), Step.PREVOTE)  # lines 22-24
    assert vote.value_id == sha256(A) and vote.round == 0
    assert harness.machine.step == Step.PREVOTE  # line 27


def test_prevote_nil_for_invalid_proposal(harness):
    harness.invalid.add(A)
    (vote,) = votes_of(harness.feed(harness.proposal(0, A)), Step.PREVOTE)  # line 26
    assert vote.value_id is None


def test_locked_validator_prevotes_nil_for_another_fresh_proposal(harness):
    h = harness
    lock_on(h, A)
    to_round(h, 1)
    (vote,) = votes_of(h.feed(h.proposal(1, B)), Step.PREVOTE)  # line 23
    assert vote.value_id is None
    to_round(h, 3)  # (we propose in round 2)
    (vote,) = votes_of(h.feed(h.proposal(3, A)), Step.PREVOTE)
    assert vote.value_id == sha256(A)  # locked on the very value: prevote it


def test_unlock_on_newer_proof_of_lock(harness):
    h = harness
    lock_on(h, A)  # lockedRound 0
    to_round(h, 3)
    h.feed(*[h.vote(k, 1, Step.PREVOTE, B) for k in h.others])  # a POL for B in round 1
    assert h.machine.locked_value == A
    (vote,) = votes_of(h.feed(h.proposal(3, B, valid_round=1)), Step.PREVOTE)  # lines 28-30
    assert vote.value_id == sha256(B)  # lockedRound 0 <= vr 1


def test_proof_of_lock_older_than_lock_for_other_value_gets_nil(harness):
    h = harness
    to_round(h, 1)
    lock_on(h, A, round=1)  # lockedRound 1 on A
    h.feed(*[h.vote(k, 0, Step.PREVOTE, B) for k in h.others])  # an old polka for B
    to_round(h, 3)
    (vote,) = votes_of(h.feed(h.proposal(3, B, valid_round=0)), Step.PREVOTE)
    assert vote.value_id is None  # lockedRound 1 > vr 0 and B != lockedValue (line 32)


def test_reproposal_without_proof_of_lock_waits_for_timeout(harness):
    h = harness
    assert votes_of(h.feed(h.proposal(0, A, valid_round=-1)), Step.PREVOTE)
    to_round(h, 1)
    assert votes_of(h.feed(h.proposal(1, B, valid_round=0)), Step.PREVOTE) == []
    (vote,) = votes_of(h.machine.on_timeout(Timeout(Step.PROPOSE, 1, 1)), Step.PREVOTE)
    assert vote.value_id is None  # lines 57-60


def test_valid_round_not_below_round_is_refused(harness):
    h = harness
    key = h.proposer(0)
    bad = Proposal.sign(key, CHAIN, 1, 0, 0, A, sha256(A))
    with pytest.raises(InvalidMessageError):
        h.feed(bad)


def test_prevote_timeout_scheduled_once_on_any_quorum_then_precommit_nil(harness):
    h = harness
    h.feed(h.proposal(0, A))  # our prevote: A
    actions = h.feed(
        h.vote(h.others[0], 0, Step.PREVOTE, B),
        h.vote(h.others[1], 0, Step.PREVOTE, None),
        h.vote(h.others[2], 0, Step.PREVOTE, None),
    )
    (t,) = timeouts_of(actions)  # lines 34-35, once although the 4th vote came later
    assert t.timeout == Timeout(Step.PREVOTE, 1, 0) and t.delay == h.machine.timeouts.prevote
    (pc,) = votes_of(h.machine.on_timeout(t.timeout), Step.PRECOMMIT)  # lines 61-64
    assert pc.value_id is None and h.machine.step == Step.PRECOMMIT


def test_polka_locks_and_precommits(harness):
    h = harness
    h.feed(h.proposal(0, A))
    actions = h.feed(*polka(h, 0, A))
    (pc,) = votes_of(actions, Step.PRECOMMIT)  # lines 36-41
    assert pc.value_id == sha256(A)
    m = h.machine
    assert (m.locked_value, m.locked_round, m.valid_value, m.valid_round) == (A, 0, A, 0)
    assert h.wal.entries(1)[-2].kind == "lock"  # written before the precommit


def test_polka_seen_after_precommit_nil_only_updates_valid_value(harness):
    h = harness
    h.feed(h.proposal(0, A))
    h.feed(h.vote(h.others[0], 0, Step.PREVOTE, None), h.vote(h.others[1], 0, Step.PREVOTE, None))
    h.machine.on_timeout(Timeout(Step.PREVOTE, 1, 0))  # precommit nil
    actions = h.feed(
        h.vote(h.others[2], 0, Step.PREVOTE, A), h.vote(h.others[0], 0, Step.PREVOTE, A)
    )  # (others[0] equivocates)
    assert votes_of(actions, Step.PRECOMMIT) == []
    m = h.machine
    assert (m.locked_round, m.valid_value, m.valid_round) == (-1, A, 0)  # lines 42-43


def test_nil_polka_precommits_nil(harness):
    h = harness
    h.feed(h.proposal(0, A))
    h.invalid.add(A)
    actions = h.feed(*[h.vote(k, 0, Step.PREVOTE, None) for k in h.others])
    (pc,) = votes_of(actions, Step.PRECOMMIT)  # lines 44-46
    assert pc.value_id is None


def test_precommit_quorum_schedules_timeout_and_next_round_grows_timeouts(harness):
    h = harness
    mixed = zip(h.others, (A, B, None), strict=True)
    actions = h.feed(*[h.vote(k, 0, Step.PRECOMMIT, v) for k, v in mixed])
    (t,) = timeouts_of(actions)  # lines 47-48
    assert t.timeout == Timeout(Step.PRECOMMIT, 1, 0)
    actions = h.machine.on_timeout(t.timeout)  # lines 65-67
    assert h.machine.round == 1
    propose_timeouts = [a for a in timeouts_of(actions) if a.timeout.step == Step.PROPOSE]
    if h.proposer(1) is not h.me:
        (pt,) = propose_timeouts
        assert pt.delay == h.machine.timeouts.propose + h.machine.timeouts.propose_delta


def test_decide_with_certificate(harness):
    h = harness
    h.feed(h.proposal(0, A))
    h.feed(*polka(h, 0, A))
    actions = h.feed(*[h.vote(k, 0, Step.PRECOMMIT, A) for k in h.others[:2]])
    (d,) = decisions(actions)  # lines 49-51
    assert (d.height, d.round, d.value, d.value_id) == (1, 0, A, sha256(A))
    verify_certificate(d.certificate, h.vs, CHAIN, height=1, value_id=sha256(A))
    assert h.feed(h.vote(h.others[2], 0, Step.PRECOMMIT, A)) == []  # decided: quiet


def test_decide_on_value_of_an_earlier_round(harness):
    h = harness
    to_round(h, 2)
    actions = h.feed(h.proposal(0, A), *[h.vote(k, 0, Step.PRECOMMIT, A) for k in h.others])
    (d,) = decisions(actions)  # line 49 holds for any round r
    assert d.round == 0 and d.value == A


def test_no_decision_on_invalid_value(harness):
    h = harness
    h.invalid.add(A)
    actions = h.feed(h.proposal(0, A), *[h.vote(k, 0, Step.PRECOMMIT, A) for k in h.others])
    assert decisions(actions) == []  # line 50


def test_round_skip_on_one_third_of_power_from_higher_round(harness):
    h = harness
    h.feed(h.vote(h.others[0], 5, Step.PREVOTE, None))
    assert h.machine.round == 0  # 3 of 10 is not more than a third
    h.feed(h.vote(h.others[1], 5, Step.PRECOMMIT, None))
    assert h.machine.round == 5  # lines 55-56


def test_round_skip_is_weighted_by_power():
    h = make_harness(powers=(10, 1, 1, 1))
    h.machine.start_height(1, h.vs)
    small = [k for k in h.others if h.vs.power_of(k.public_key) == 1]
    big = [k for k in h.keys if h.vs.power_of(k.public_key) == 10]
    if big and big[0] is not h.me:
        h.feed(*[h.vote(k, 3, Step.PREVOTE, None) for k in small])
        assert h.machine.round == 0  # 2 or 3 of 13 is not more than a third
        h.feed(h.vote(big[0], 3, Step.PREVOTE, None))
        assert h.machine.round == 3


def test_stale_timeouts_are_ignored(harness):
    h = harness
    to_round(h, 1)
    assert h.machine.on_timeout(Timeout(Step.PROPOSE, 1, 0)) == []
    assert h.machine.on_timeout(Timeout(Step.PRECOMMIT, 1, 0)) == []
    assert h.machine.on_timeout(Timeout(Step.PROPOSE, 7, 1)) == []
    assert h.machine.round == 1


@pytest.mark.parametrize("flaw", ["proposer", "signature", "value_id", "member"])
def test_provably_bad_messages_raise(harness, flaw):
    h = harness
    p = h.proposal(0, A)
    if flaw == "proposer":
        wrong = next(k for k in h.keys if k is not h.proposer(0))
        bad = Proposal.sign(wrong, CHAIN, 1, 0, -1, A, sha256(A))
    elif flaw == "signature":
        bad = Proposal(p.height, p.round, p.valid_round, p.value, p.value_id, p.proposer, bytes(64))
    elif flaw == "value_id":
        bad = Proposal.sign(h.proposer(0), CHAIN, 1, 0, -1, A, sha256(B))
    else:
        bad = Vote.sign(keys(1, b"outsider")[0], CHAIN, 1, 0, Step.PREVOTE, None)
    with pytest.raises(InvalidMessageError) as err:
        h.feed(bad)
    assert err.value.code == "invalid_consensus_message"


def test_vote_for_another_chain_is_refused(harness):
    vote = Vote.sign(harness.others[0], "other-chain", 1, 0, Step.PREVOTE, None)
    with pytest.raises(InvalidMessageError):
        harness.feed(vote)


def test_next_height_messages_are_buffered_and_replayed(harness):
    h = harness
    nxt = h.vs.next_height()
    key = h.key_of(nxt.proposer(0).public_key)
    early = [Proposal.sign(key, CHAIN, 2, 0, -1, B, sha256(B))]
    early += [h.vote(k, 0, Step.PREVOTE, B, height=2) for k in h.others]
    early.append(Vote.sign(keys(1, b"outsider")[0], CHAIN, 2, 0, Step.PREVOTE, None))
    assert h.feed(*early) == []  # unchecked until height 2 starts; then the bad one is dropped
    h.feed(h.proposal(0, A), *[h.vote(k, 0, Step.PRECOMMIT, A) for k in h.others])
    actions = h.machine.start_height(2, nxt)
    kinds = {(m.height, getattr(m, "step", None)) for m in broadcasts(actions)}
    assert (2, Step.PRECOMMIT) in kinds  # buffered proposal and polka were used at once
    assert h.feed(h.vote(h.others[0], 0, Step.PREVOTE, A, height=1)) == []  # old: dropped


def test_equivocation_is_reported_as_evidence(harness):
    h = harness
    k = h.others[0]
    actions = h.feed(h.vote(k, 0, Step.PREVOTE, A), h.vote(k, 0, Step.PREVOTE, B))
    (ev,) = [a.evidence for a in actions if isinstance(a, ReportEvidence)]
    assert verify_evidence(ev, h.vs, CHAIN).public_key == k.public_key


def test_follower_without_key_decides_silently():
    h = make_harness()
    follower = Tendermint(CHAIN, signer=None, get_value=lambda _: b"", is_valid=lambda *_: True)
    follower.start_height(1, h.vs)
    actions = []
    for m in [h.proposal(0, A), *[h.vote(k, 0, Step.PRECOMMIT, A) for k in h.keys[:3]]]:
        actions += follower.receive(m)
    assert broadcasts(actions) == []
    (d,) = decisions(actions)
    assert d.value == A


def test_start_height_must_increase(harness):
    with pytest.raises(ValueError):
        harness.machine.start_height(1, harness.vs)
