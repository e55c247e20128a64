"""Equivocation evidence: two signed votes of one validator for one step.

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
"""

from __future__ import annotations

from dataclasses import dataclass

from focusflow.consensus.errors import InvalidEvidenceError
from focusflow.consensus.messages import (
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


def verify_evidence(
    evidence: DuplicateVoteEvidence, validator_set: ValidatorSet, chain_id: str
) -> Validator:
    """Return the equivocating validator, or raise InvalidEvidenceError.

    ``validator_set`` must be the set of the evidence's height; how old evidence may
    be is the chain's rule (an unbonding period), not this function's.
    """
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


def encode_evidence(evidence: DuplicateVoteEvidence) -> bytes:
    return encode(
        ["duplicate_vote", message_to_plain(evidence.vote_a), message_to_plain(evidence.vote_b)]
    )


def decode_evidence(data: bytes) -> DuplicateVoteEvidence:
    """Parse evidence; DecodeError for malformed bytes (validity is not checked)."""
    item = decode(data, "evidence")
    if not (isinstance(item, list) and len(item) == 3 and item[0] == "duplicate_vote"):
        raise DecodeError("malformed evidence: not a duplicate_vote array")
    a, b = message_from_plain(item[1]), message_from_plain(item[2])
    if not (isinstance(a, Vote) and isinstance(b, Vote)):
        raise DecodeError("malformed evidence: both entries must be votes")
    return DuplicateVoteEvidence(a, b)
