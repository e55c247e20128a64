"""A proposer that signs two values for one round leaves evidence that proves it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from focusflow.consensus import (
    DuplicateProposalEvidence,
    InvalidEvidenceError,
    Proposal,
    ReportEvidence,
    Step,
    Vote,
    decode_evidence,
    encode_evidence,
    verify_evidence,
)
from focusflow.consensus.messages import message_to_plain
from focusflow.core.encoding import encode
from focusflow.core.errors import DecodeError
from focusflow.core.hashing import sha256

from .harness import CHAIN, keys

A, B = b"block A", b"block B"


def _evidence_of(actions) -> list:
    return [a.evidence for a in actions if isinstance(a, ReportEvidence)]


def test_two_proposals_of_one_round_are_reported_as_evidence(harness):
    h = harness
    first, second = h.proposal(0, A), h.proposal(0, B)
    assert _evidence_of(h.feed(first)) == []
    (ev,) = _evidence_of(h.feed(second))
    assert isinstance(ev, DuplicateProposalEvidence)
    assert ev == DuplicateProposalEvidence.of(second, first)  # one canonical form
    assert ev.proposal_a.value == ev.proposal_b.value == b""  # the values stay out
    assert verify_evidence(ev, h.vs, CHAIN).public_key == h.proposer(0).public_key
    assert ev.validator == h.proposer(0).public_key and ev.height == 1
    assert decode_evidence(encode_evidence(ev)) == ev
    assert len(encode_evidence(ev)) < 400
    # The same proposal again, or a proposal of another round, is no evidence.
    assert _evidence_of(h.feed(first)) == []


def test_a_reproposal_in_a_later_round_is_no_evidence(harness):
    h = harness
    assert _evidence_of(h.feed(h.proposal(0, A))) == []
    assert _evidence_of(h.feed(h.proposal(1, B))) == []


def _pair(key, round_a=0, round_b=0, value_b=B, height=1):
    a = Proposal.sign(key, CHAIN, height, round_a, -1, A, sha256(A))
    b = Proposal.sign(key, CHAIN, height, round_b, -1, value_b, sha256(value_b))
    return a, b


def test_invalid_proposal_evidence_is_refused(harness):
    h = harness
    key = h.proposer(0)
    good = DuplicateProposalEvidence.of(*_pair(key))
    assert verify_evidence(good, h.vs, CHAIN).public_key == key.public_key
    a, b = good.proposal_a, good.proposal_b
    cases = {
        "differ in proposer, height or round": DuplicateProposalEvidence.of(*_pair(key, 0, 1)),
        "same value": DuplicateProposalEvidence(a, a),
        "canonical order": DuplicateProposalEvidence(b, a),
        "carries its value": DuplicateProposalEvidence(replace(a, value=A), b),
        "signature": DuplicateProposalEvidence(a, replace(b, signature=bytes(64))),
        "not in the validator set": DuplicateProposalEvidence.of(*_pair(keys(1, b"out")[0])),
    }
    for reason, ev in cases.items():
        with pytest.raises(InvalidEvidenceError, match=reason):
            verify_evidence(ev, h.vs, CHAIN)
    with pytest.raises(InvalidEvidenceError, match="signature"):
        verify_evidence(good, h.vs, "another-chain")


def test_mixed_evidence_does_not_decode(harness):
    h = harness
    ev = DuplicateProposalEvidence.of(*_pair(h.proposer(0)))
    a, b = message_to_plain(ev.proposal_a), message_to_plain(ev.proposal_b)
    vote = message_to_plain(Vote.sign(h.me, CHAIN, 1, 0, Step.PREVOTE, sha256(A)))
    for raw in (
        encode(["duplicate_vote", a, b]),
        encode(["duplicate_proposal", a, vote]),
        encode(["duplicate_proposal", vote, vote]),
    ):
        with pytest.raises(DecodeError, match="must be"):
            decode_evidence(raw)
