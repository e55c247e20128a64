"""Duplicate-vote evidence: standalone verification and its byte form."""

from __future__ import annotations

import pytest

from focusflow.consensus import (
    DuplicateVoteEvidence,
    InvalidEvidenceError,
    Step,
    ValidatorSet,
    Vote,
    decode_evidence,
    encode_evidence,
    verify_evidence,
)
from focusflow.core.encoding import encode
from focusflow.core.errors import DecodeError
from focusflow.core.hashing import sha256

from .harness import CHAIN, keys

KS = keys(4)
VS = ValidatorSet.create({k.public_key: 1 for k in KS})
A, B = sha256(b"A"), sha256(b"B")


def vote(value_id, key=KS[0], round=0, step=Step.PREVOTE, chain=CHAIN):
    return Vote.sign(key, chain, 7, round, step, value_id)


def test_conflicting_votes_verify_in_either_order():
    ev1 = DuplicateVoteEvidence.of(vote(A), vote(B))
    ev2 = DuplicateVoteEvidence.of(vote(B), vote(A))
    assert ev1 == ev2 and ev1.hash() == ev2.hash()
    assert verify_evidence(ev1, VS, CHAIN).public_key == KS[0].public_key
    assert verify_evidence(DuplicateVoteEvidence.of(vote(A), vote(None)), VS, CHAIN)


def test_round_trip():
    ev = DuplicateVoteEvidence.of(vote(A, step=Step.PRECOMMIT), vote(None, step=Step.PRECOMMIT))
    assert decode_evidence(encode_evidence(ev)) == ev


@pytest.mark.parametrize(
    "flaw", ["same", "round", "step", "validator", "outsider", "sig", "order", "chain"]
)
def test_flawed_evidence_is_refused(flaw):
    a = vote(A)
    if flaw == "same":
        ev = DuplicateVoteEvidence(a, a)
    elif flaw == "round":
        ev = DuplicateVoteEvidence.of(a, vote(B, round=1))
    elif flaw == "step":
        ev = DuplicateVoteEvidence.of(a, vote(B, step=Step.PRECOMMIT))
    elif flaw == "validator":
        ev = DuplicateVoteEvidence.of(a, vote(B, key=KS[1]))
    elif flaw == "outsider":
        out = keys(1, b"out")[0]
        ev = DuplicateVoteEvidence.of(vote(A, key=out), vote(B, key=out))
    elif flaw == "sig":
        b = vote(B)
        ev = DuplicateVoteEvidence.of(
            a, Vote(b.height, b.round, b.step, b.value_id, b.validator, a.signature)
        )
    elif flaw == "order":
        good = DuplicateVoteEvidence.of(a, vote(B))
        ev = DuplicateVoteEvidence(good.vote_b, good.vote_a)
    else:
        ev = DuplicateVoteEvidence.of(vote(A, chain="x"), vote(B, chain="x"))
    with pytest.raises(InvalidEvidenceError) as err:
        verify_evidence(ev, VS, CHAIN)
    assert err.value.code == "invalid_evidence"


def test_malformed_evidence_raises_decode_error():
    with pytest.raises(DecodeError):
        decode_evidence(encode(["duplicate_vote", ["vote"]]))
    with pytest.raises(DecodeError):
        decode_evidence(encode(["something", 1, 2]))
    p = ["proposal", 1, 0, -1, b"", A, KS[0].public_key, bytes(64)]
    with pytest.raises(DecodeError):
        decode_evidence(encode(["duplicate_vote", p, p]))
