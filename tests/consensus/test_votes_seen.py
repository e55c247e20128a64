"""The last vote per validator: newest wins, and nothing unverified gets in."""

from __future__ import annotations

from dataclasses import replace

from focusflow.consensus import Step, Validator, ValidatorSet, Vote
from focusflow.consensus.votes_seen import SeenVote, VotesSeen
from focusflow.core.keys import KeyPair

CHAIN = "votes-seen-test"
A, B, OUTSIDER = (KeyPair.from_seed(bytes([i]) * 32) for i in (1, 2, 3))
SET = ValidatorSet.create([Validator(A.public_key, 2), Validator(B.public_key, 1)])
BLOCK = b"\x11" * 32


def vote(key: KeyPair, height: int, round_: int, step: Step, value_id: bytes | None = BLOCK):
    return Vote.sign(key, CHAIN, height, round_, step, value_id)


def test_the_most_advanced_vote_is_kept_whatever_the_arrival_order():
    seen = VotesSeen(CHAIN)
    assert seen.observe(vote(A, 5, 0, Step.PREVOTE), SET, 5, 1000)
    assert seen.observe(vote(A, 5, 0, Step.PRECOMMIT), SET, 5, 1001)
    assert not seen.observe(vote(A, 5, 0, Step.PREVOTE), SET, 5, 1002)  # late copy
    assert not seen.observe(vote(A, 4, 3, Step.PRECOMMIT), SET, 5, 1003)  # older height
    assert seen.last(A.public_key) == SeenVote(5, 0, Step.PRECOMMIT, BLOCK, 1001)
    assert seen.observe(vote(A, 5, 1, Step.PREVOTE, None), SET, 5, 1004)  # a later round, nil
    assert seen.last(A.public_key) == SeenVote(5, 1, Step.PREVOTE, None, 1004)
    assert seen.last(B.public_key) is None


def test_of_two_votes_for_one_step_the_first_stays():
    seen = VotesSeen(CHAIN)
    assert seen.observe(vote(B, 7, 0, Step.PREVOTE), SET, 7, 1)
    assert not seen.observe(vote(B, 7, 0, Step.PREVOTE, None), SET, 7, 2)
    assert seen.last(B.public_key).value_id == BLOCK


def test_forged_outside_and_far_future_votes_are_ignored():
    seen = VotesSeen(CHAIN)
    forged = replace(vote(A, 5, 0, Step.PRECOMMIT), signature=bytes(64))
    assert not seen.observe(forged, SET, 5, 1)
    assert not seen.observe(vote(OUTSIDER, 5, 0, Step.PRECOMMIT), SET, 5, 1)
    assert not seen.observe(vote(A, 7, 0, Step.PREVOTE), SET, 5, 1)  # beyond height + 1
    assert seen.last(A.public_key) is None and seen.last(OUTSIDER.public_key) is None
    assert seen.observe(vote(A, 6, 0, Step.PREVOTE), SET, 5, 1)  # the next height is buffered
    assert seen.last(A.public_key).height == 6


def test_own_votes_skip_verification():
    checked: list[bytes] = []

    def verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
        checked.append(public_key)
        return True

    seen = VotesSeen(CHAIN, verify=verify)
    assert seen.observe(vote(A, 1, 0, Step.PREVOTE), SET, 1, 1, verified=True)
    assert seen.observe(vote(B, 1, 0, Step.PREVOTE), SET, 1, 1)
    assert checked == [B.public_key]
