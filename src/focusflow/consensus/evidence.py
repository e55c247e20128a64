"""Equivocation evidence: two signed votes of one validator for one step, or two
signed proposals of one proposer for one round.

An honest validator signs at most one prevote and one precommit per (height,
round) (the WAL guarantees it across crashes). Two signed votes with the same
validator, height, round and step but different value ids prove misbehaviour
without any other context, so the chain can include the evidence in a block and
the bank module slash the validator's stake. Safety of Tendermint fails only if
validators holding more than 1/3 of the power equivocate, and then every conflict
leaves such evidence behind (accountable safety).

Wire form: ``["duplicate_vote", vote_a, vote_b]`` with each vote in its message
form (:func:`focusflow.consensus.messages.message_to_plain`) and the two votes
ordered by their encoded bytes, so one equivocation has one encoding and one hash.

A proposer equivocates too when it signs two proposals with different value
ids for one (height, round): honest validators then split their prevotes
between two blocks, and the signer never signs two proposals for one round, so
an honest validator never does it. Wire form: ``["duplicate_proposal",
proposal_a, proposal_b]``, each proposal in its message form with its value
left out (``b""``: the signature covers the value id, not the value, so the
evidence stays small and still verifies), ordered by encoded bytes. Both kinds
prove one offence of a validator at a height, slashed once (chain/evidence_pool.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from focusflow.consensus.errors import InvalidEvidenceError
from focusflow.consensus.messages import (
    Proposal,
    Vote,
    encode_message,
    message_from_plain,
    message_to_plain,
)
from focusflow.consensus.validators import Validator, ValidatorSet
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError
from focusflow.core.hashing import sha256


@dataclass(frozen=True)
class DuplicateVoteEvidence:
    vote_a: Vote
    vote_b: Vote

    @classmethod
    def of(cls, first: Vote, second: Vote) -> DuplicateVoteEvidence:
        """The canonical evidence of two conflicting votes, in either order."""
        a, b = sorted((first, second), key=encode_message)
        return cls(a, b)

    @property
    def validator(self) -> bytes:
        return self.vote_a.validator

    @property
    def height(self) -> int:
        return self.vote_a.height

    def hash(self) -> bytes:
        """Identifies the evidence (the chain refuses to include one twice)."""
        return sha256(encode_evidence(self))


@dataclass(frozen=True)
class DuplicateProposalEvidence:
    """Two proposals of one proposer for one (height, round) with different value ids,
    each without its value (``value == b""``)."""

    proposal_a: Proposal
    proposal_b: Proposal

    @classmethod
    def of(cls, first: Proposal, second: Proposal) -> DuplicateProposalEvidence:
        """The canonical evidence of two conflicting proposals, in either order."""
        a, b = sorted((_without_value(first), _without_value(second)), key=encode_message)
        return cls(a, b)

    @property
    def validator(self) -> bytes:
        return self.proposal_a.proposer

    @property
    def height(self) -> int:
        return self.proposal_a.height

    def hash(self) -> bytes:
        """Identifies the evidence (the chain refuses to include one twice)."""
        return sha256(encode_evidence(self))


#: Either kind of equivocation evidence.
Evidence = DuplicateVoteEvidence | DuplicateProposalEvidence


def _without_value(proposal: Proposal) -> Proposal:
    return replace(proposal, value=b"")


def verify_evidence(evidence: Evidence, validator_set: ValidatorSet, chain_id: str) -> Validator:
    """Return the equivocating validator, or raise InvalidEvidenceError.

    ``validator_set`` must be the set of the evidence's height; how old evidence may
    be is the chain's rule (an unbonding period), not this function's.
    """
    if isinstance(evidence, DuplicateProposalEvidence):
        return _verify_proposals(evidence, validator_set, chain_id)
    a, b = evidence.vote_a, evidence.vote_b
    if (a.validator, a.height, a.round, a.step) != (b.validator, b.height, b.round, b.step):
        raise InvalidEvidenceError("votes differ in validator, height, round or step")
    if a.value_id == b.value_id:
        raise InvalidEvidenceError("votes are for the same value: no equivocation")
    if encode_message(a) >= encode_message(b):
        raise InvalidEvidenceError("votes are not in canonical order")
    index = validator_set.index_of(a.validator)
    if index is None:
        raise InvalidEvidenceError(f"{a.validator.hex()} is not in the validator set")
    for vote in (a, b):
        if not vote.verify_signature(chain_id):
            raise InvalidEvidenceError("a vote's signature does not verify")
    return validator_set.validators[index]


def _verify_proposals(
    evidence: DuplicateProposalEvidence, validator_set: ValidatorSet, chain_id: str
) -> Validator:
    a, b = evidence.proposal_a, evidence.proposal_b
    if (a.proposer, a.height, a.round) != (b.proposer, b.height, b.round):
        raise InvalidEvidenceError("proposals differ in proposer, height or round")
    if a.value_id == b.value_id:
        raise InvalidEvidenceError("proposals are for the same value: no equivocation")
    if a.value or b.value:
        raise InvalidEvidenceError("a proposal in evidence carries its value")
    if encode_message(a) >= encode_message(b):
        raise InvalidEvidenceError("proposals are not in canonical order")
    index = validator_set.index_of(a.proposer)
    if index is None:
        raise InvalidEvidenceError(f"{a.proposer.hex()} is not in the validator set")
    for proposal in (a, b):
        if not proposal.verify_signature(chain_id):
            raise InvalidEvidenceError("a proposal's signature does not verify")
    return validator_set.validators[index]


def encode_evidence(evidence: Evidence) -> bytes:
    if isinstance(evidence, DuplicateProposalEvidence):
        a, b = evidence.proposal_a, evidence.proposal_b
        return encode(["duplicate_proposal", message_to_plain(a), message_to_plain(b)])
    return encode(
        ["duplicate_vote", message_to_plain(evidence.vote_a), message_to_plain(evidence.vote_b)]
    )


def decode_evidence(data: bytes) -> Evidence:
    """Parse evidence; DecodeError for malformed bytes (validity is not checked)."""
    item = decode(data, "evidence")
    kinds = {"duplicate_vote": Vote, "duplicate_proposal": Proposal}
    if not (isinstance(item, list) and len(item) == 3 and item[0] in kinds):
        raise DecodeError("malformed evidence: not a duplicate_vote or duplicate_proposal array")
    kind = kinds[item[0]]
    a, b = message_from_plain(item[1]), message_from_plain(item[2])
    if not (isinstance(a, kind) and isinstance(b, kind)):
        raise DecodeError(f"malformed evidence: both entries of {item[0]} must be {kind.__name__}s")
    if isinstance(a, Proposal) and isinstance(b, Proposal):
        return DuplicateProposalEvidence(a, b)
    assert isinstance(a, Vote) and isinstance(b, Vote)
    return DuplicateVoteEvidence(a, b)
