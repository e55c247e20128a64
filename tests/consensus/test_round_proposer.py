"""``validate_proposal``: the host sees the signed proposal, once per value, signer and kind."""

from __future__ import annotations

from focusflow.consensus import (
    Proposal,
    Signer,
    Step,
    Tendermint,
    Timeouts,
    ValidatorSet,
    WriteAheadLog,
)

from .harness import CHAIN, Harness, keys, votes_of

A = b"block A"


def _harness(verdict):
    ks = keys(4)
    vs = ValidatorSet.create({k.public_key: 1 for k in ks})
    proposers = {vs.proposer(r).public_key for r in range(3)}
    assert len(proposers) == 3
    me = next(k for k in ks if k.public_key not in proposers)
    wal = WriteAheadLog(None)
    h = Harness(ks, vs, me, None, wal)  # type: ignore[arg-type]
    h.calls = []

    def validate_proposal(height: int, proposal: Proposal) -> bool:
        h.calls.append((height, proposal.round, proposal.valid_round, proposal.proposer))
        return verdict(proposal)

    h.machine = Tendermint(
        CHAIN,
        signer=Signer(me, CHAIN, wal),
        get_value=lambda height: b"mine",
        is_valid=lambda height, value: True,
        timeouts=Timeouts(),
        validate_proposal=validate_proposal,
    )
    h.machine.start_height(1, vs)
    return h


def test_a_fresh_proposal_is_judged_with_its_signer_and_a_refusal_prevotes_nil():
    h = _harness(lambda p: False)
    actions = h.feed(h.proposal(0, A))
    assert h.calls == [(1, 0, -1, h.proposer(0).public_key)]
    (prevote,) = votes_of(actions, Step.PREVOTE)
    assert prevote.value_id is None


def test_a_reproposal_is_judged_apart_from_the_fresh_one():
    """The same value fresh (its signer made it) and re-proposed with a proof of
    lock (made in an earlier round): two questions, each asked once."""
    h = _harness(lambda p: p.valid_round >= 0)
    h.feed(h.proposal(0, A))
    h.feed(*[h.vote(k, 0, Step.PREVOTE, A) for k in h.others])  # a polka for A in round 0
    h.feed(*[h.vote(k, 1, Step.PREVOTE, None) for k in h.others])  # they moved to round 1
    assert h.machine.round == 1
    actions = h.feed(h.proposal(1, A, valid_round=0))
    assert [(c[1], c[2]) for c in h.calls] == [(0, -1), (1, 0)]
    (prevote,) = votes_of(actions, Step.PREVOTE)
    assert prevote.value_id is not None and prevote.round == 1


def test_a_value_refused_from_one_reproposer_is_judged_again_from_the_next():
    """Its maker went down after proposing: more than 2/3 prevoted the value
    but fewer precommitted it, and those that prevoted it are locked on it.
    This validator could not fetch it from the maker, nor from round 1's
    re-proposer (which withholds it); round 2's re-proposer serves it. Judged
    once per value for the whole height, it would stay invalid here, and with
    one validator gone nothing would ever get 2/3 again."""
    h = _harness(lambda p: p.proposer == h.proposer(2).public_key)
    (nil,) = votes_of(h.feed(h.proposal(0, A)), Step.PREVOTE)
    assert nil.value_id is None
    h.feed(*[h.vote(k, 0, Step.PREVOTE, A) for k in h.others])  # a polka this one missed
    h.feed(*[h.vote(k, 1, Step.PREVOTE, None) for k in h.others])
    (nil,) = votes_of(h.feed(h.proposal(1, A, valid_round=0)), Step.PREVOTE)
    assert nil.value_id is None and nil.round == 1
    h.feed(*[h.vote(k, 2, Step.PREVOTE, None) for k in h.others])
    assert h.machine.round == 2
    (prevote,) = votes_of(h.feed(h.proposal(2, A, valid_round=0)), Step.PREVOTE)
    assert prevote.value_id is not None and prevote.round == 2
    assert [(c[1], c[2]) for c in h.calls] == [(0, -1), (1, 0), (2, 0)]
