"""Proposal equivocation, and a Snowman responder's two answers to one poll, are
slashed like duplicate votes: pooled, included, punished once."""

from __future__ import annotations

import pytest

from focusflow.chain.errors import AlreadyPunishedError, EvidenceError
from focusflow.chain.evidence_pool import slashed_key
from focusflow.consensus import DuplicateProposalEvidence, Proposal, encode_evidence
from focusflow.consensus.evidence import DuplicateChitsEvidence
from focusflow.consensus.poll_messages import Chits
from focusflow.core.encoding import encode
from focusflow.core.hashing import sha256
from focusflow.node import open_chain
from tests.chain.evidence_helpers import (
    BONDED,
    BYZ,
    CHAIN_ID,
    KEYS,
    SLASHED,
    bonded,
    double_vote,
    genesis,
    step,
)


def double_proposal(key, height, round_=0, chain_id=CHAIN_ID) -> DuplicateProposalEvidence:
    a, b = (
        Proposal.sign(key, chain_id, height, round_, -1, value, sha256(value))
        for value in (b"block a", b"block b")
    )
    return DuplicateProposalEvidence.of(a, b)


def test_a_double_proposal_is_slashed_once_and_replays(tmp_path):
    gen = genesis()
    producer = open_chain(tmp_path / "a", gen, KEYS[0])
    step(producer)
    step(producer)
    evidence = double_proposal(BYZ, 2)
    assert producer.add_evidence(evidence) is True
    assert producer.add_evidence(double_vote(BYZ, 2)) is False  # the same offence
    result = step(producer)
    assert result.block.evidence == (encode_evidence(evidence),)
    assert bonded(producer, BYZ) == BONDED - SLASHED
    slash, jail, _ = result.events
    assert slash["type"] == "slash" and slash["evidence"] == evidence.hash()
    assert jail["type"] == "jail" and not producer.validators.power_of(BYZ.public_key)
    with producer.reader() as r:
        assert r.get(slashed_key(BYZ.public_key, 2)) == encode([3, SLASHED])
    # One offence per validator and height, whatever its kind.
    with pytest.raises(AlreadyPunishedError):
        producer.add_evidence(double_vote(BYZ, 2))
    follower = open_chain(tmp_path / "b", gen)
    for record in producer.records(1):
        follower.apply_block(record.encode())
    assert follower.head == producer.head


def test_forged_proposal_evidence_is_refused_by_the_pool(tmp_path):
    producer = open_chain(tmp_path / "a", genesis(), KEYS[0])
    step(producer)
    with pytest.raises(EvidenceError, match="signature"):
        producer.add_evidence(double_proposal(BYZ, 1, chain_id="another-chain"))
    good = double_proposal(BYZ, 1)
    same = DuplicateProposalEvidence(good.proposal_a, good.proposal_a)
    with pytest.raises(EvidenceError, match="same value"):
        producer.add_evidence(same)
    assert len(producer.evidence) == 0


def double_chits(key, height, requester, chain_id=CHAIN_ID) -> DuplicateChitsEvidence:
    a, b = (
        Chits.sign(key, chain_id, height, requester, 41, value_id)
        for value_id in (sha256(b"block a"), None)
    )
    return DuplicateChitsEvidence.of(a, b)


def test_a_double_answer_to_one_poll_is_slashed_like_a_double_vote(tmp_path):
    gen = genesis()
    producer = open_chain(tmp_path / "a", gen, KEYS[0])
    step(producer)
    step(producer)
    evidence = double_chits(BYZ, 2, KEYS[0].public_key)
    assert producer.add_evidence(evidence) is True
    result = step(producer)
    assert result.block.evidence == (encode_evidence(evidence),)
    assert bonded(producer, BYZ) == BONDED - SLASHED
    with pytest.raises(AlreadyPunishedError):
        producer.add_evidence(double_proposal(BYZ, 2))
    follower = open_chain(tmp_path / "b", gen)
    for record in producer.records(1):
        follower.apply_block(record.encode())
    assert follower.head == producer.head
    with pytest.raises(EvidenceError, match="signature"):
        producer.add_evidence(double_chits(BYZ, 3, KEYS[0].public_key, chain_id="another-chain"))
