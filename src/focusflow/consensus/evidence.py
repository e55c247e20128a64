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

A Snowman responder equivocates when it signs two answers (chits) with
different value ids for one (height, requester, poll): it answers each poll
once, and its signer keeps that answer across crashes
(:meth:`~focusflow.consensus.signer.Signer.sign_chits`), so an honest
validator never does it. Wire form: ``["duplicate_chits", chits_a, chits_b]``,
each in its poll-message form (:func:`~focusflow.consensus.poll_messages.poll_message_to_plain`),
ordered by encoded bytes. Only the requester sees both (answers go to it
alone), so this catches a responder that contradicts itself to one poller; an
answer that merely lies about the responder's preference proves nothing.

The DAG mempool's :class:`~focusflow.consensus.batches.BatchEquivocation` (a
validator signed two digests for one batch slot, as its author or as a voter)
travels beside these as a fourth kind: :data:`BlockEvidence` is any of them,
and :func:`encode_evidence`, :func:`decode_evidence` and :func:`verify_evidence`
take every kind, so the chain and the gossip topic carry one list of evidence.
Its wire form and its bound are batches.py's. It names an epoch, not a height:
which heights that is, and so which set judges it and how old it may be, is
the chain's rule (chain/evidence_pool.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from focusflow.consensus.batches import (
    BATCH_EQUIVOCATION_HEAD,
    BatchEquivocation,
    decode_batch_equivocation,
    encode_batch_equivocation,
    verify_batch_equivocation,
)
from focusflow.consensus.errors import InvalidEvidenceError
from focusflow.consensus.messages import (
    Proposal,
    Vote,
    encode_message,
    message_from_plain,
    message_to_plain,
)
from focusflow.consensus.poll_messages import (
    Chits,
    encode_poll_message,
    poll_message_from_plain,
    poll_message_to_plain,
)
from focusflow.consensus.validators import Validator, ValidatorSet
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError
from focusflow.core.hashing import sha256
from focusflow.core.keys import verify as verify_signature


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


@dataclass(frozen=True)
class DuplicateChitsEvidence:
    """Two answers of one responder to one (height, requester, poll) with different
    value ids."""

    chits_a: Chits
    chits_b: Chits

    @classmethod
    def of(cls, first: Chits, second: Chits) -> DuplicateChitsEvidence:
        """The canonical evidence of two conflicting answers, in either order."""
        a, b = sorted((first, second), key=encode_poll_message)
        return cls(a, b)

    @property
    def validator(self) -> bytes:
        return self.chits_a.responder

    @property
    def height(self) -> int:
        return self.chits_a.height

    def hash(self) -> bytes:
        """Identifies the evidence (the chain refuses to include one twice)."""
        return sha256(encode_evidence(self))


#: Equivocation evidence a consensus machine reports: of one height.
Evidence = DuplicateVoteEvidence | DuplicateProposalEvidence | DuplicateChitsEvidence
#: Any evidence a block may carry: a consensus machine's, or the DAG mempool's (of a batch slot).
BlockEvidence = Evidence | BatchEquivocation


def _without_value(proposal: Proposal) -> Proposal:
    return replace(proposal, value=b"")


def verify_evidence(
    evidence: BlockEvidence, validator_set: ValidatorSet, chain_id: str
) -> Validator:
    """Return the equivocating validator, or raise InvalidEvidenceError.

    ``validator_set`` must be the set of the evidence's height (a batch
    equivocation's: of its epoch); how old evidence may be is the chain's rule
    (an unbonding period), not this function's.
    """
    if isinstance(evidence, BatchEquivocation):
        verify_batch_equivocation(evidence, validator_set, chain_id)
        index = validator_set.index_of(evidence.signer)
        assert index is not None  # verify_batch_equivocation refuses a non-member
        return validator_set.validators[index]
    if isinstance(evidence, DuplicateProposalEvidence):
        return _verify_proposals(evidence, validator_set, chain_id)
    if isinstance(evidence, DuplicateChitsEvidence):
        return _verify_chits(evidence, validator_set, chain_id)
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


def _verify_chits(
    evidence: DuplicateChitsEvidence, validator_set: ValidatorSet, chain_id: str
) -> Validator:
    a, b = evidence.chits_a, evidence.chits_b
    if (a.responder, a.height, a.requester, a.poll) != (b.responder, b.height, b.requester, b.poll):
        raise InvalidEvidenceError("answers differ in responder, height, requester or poll")
    if a.value_id == b.value_id:
        raise InvalidEvidenceError("answers name the same value: no equivocation")
    if encode_poll_message(a) >= encode_poll_message(b):
        raise InvalidEvidenceError("answers are not in canonical order")
    index = validator_set.index_of(a.responder)
    if index is None:
        raise InvalidEvidenceError(f"{a.responder.hex()} is not in the validator set")
    for chits in (a, b):
        if not verify_signature(chits.responder, chits.signature, chits.sign_bytes(chain_id)):
            raise InvalidEvidenceError("an answer's signature does not verify")
    return validator_set.validators[index]


def encode_evidence(evidence: BlockEvidence) -> bytes:
    if isinstance(evidence, BatchEquivocation):
        return encode_batch_equivocation(evidence)
    if isinstance(evidence, DuplicateChitsEvidence):
        a_plain = poll_message_to_plain(evidence.chits_a)
        return encode(["duplicate_chits", a_plain, poll_message_to_plain(evidence.chits_b)])
    if isinstance(evidence, DuplicateProposalEvidence):
        a, b = evidence.proposal_a, evidence.proposal_b
        return encode(["duplicate_proposal", message_to_plain(a), message_to_plain(b)])
    return encode(
        ["duplicate_vote", message_to_plain(evidence.vote_a), message_to_plain(evidence.vote_b)]
    )


def decode_evidence(data: bytes) -> BlockEvidence:
    """Parse evidence; DecodeError for malformed bytes (validity is not checked).

    A batch equivocation is told by its first bytes and parsed by its own
    decoder, which refuses more than ``MAX_EVIDENCE_WIRE_BYTES`` before decoding.
    """
    if isinstance(data, bytes) and data.startswith(BATCH_EQUIVOCATION_HEAD):
        return decode_batch_equivocation(data)
    item = decode(data, "evidence")
    if isinstance(item, list) and len(item) == 3 and item[0] == "duplicate_chits":
        ca, cb = poll_message_from_plain(item[1]), poll_message_from_plain(item[2])
        if not (isinstance(ca, Chits) and isinstance(cb, Chits)):
            raise DecodeError("malformed evidence: both entries of duplicate_chits must be Chits")
        return DuplicateChitsEvidence(ca, cb)
    kinds = {"duplicate_vote": Vote, "duplicate_proposal": Proposal}
    if not (isinstance(item, list) and len(item) == 3 and item[0] in kinds):
        raise DecodeError(
            "malformed evidence: not a duplicate_vote, duplicate_proposal, duplicate_chits "
            "or batch_equivocation array"
        )
    kind = kinds[item[0]]
    a, b = message_from_plain(item[1]), message_from_plain(item[2])
    if not (isinstance(a, kind) and isinstance(b, kind)):
        raise DecodeError(f"malformed evidence: both entries of {item[0]} must be {kind.__name__}s")
    if isinstance(a, Proposal) and isinstance(b, Proposal):
        return DuplicateProposalEvidence(a, b)
    assert isinstance(a, Vote) and isinstance(b, Vote)
    return DuplicateVoteEvidence(a, b)
