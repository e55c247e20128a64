"""Vote tallies of one height: who voted what in each round and step, in power.

The state machine asks these the questions of Algorithm 1's upon-rules: is there
"2f + 1 ⟨PREVOTE, h, r, id(v)⟩" (power for one value above 2/3), "2f + 1
⟨PREVOTE, h, r, ∗⟩" (power of all voters above 2/3), "f + 1 ⟨∗, h, round, ∗, ∗⟩"
(power of all senders of a round above 1/3). Each validator counts once per
round and step for "anything" and once per value it voted for; a second vote with
another value is an equivocation, returned to the caller as the conflicting pair.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field

from focusflow.consensus.messages import Proposal, Step, Vote
from focusflow.consensus.validators import ValidatorSet, has_one_third, has_two_thirds

#: Votes kept per validator and step for value ids no proposal names (yet). Votes
#: for nil or for a received proposal's value are always kept (there are at most
#: MAX_PROPOSALS_PER_ROUND of those), so memory per validator is bounded.
MAX_UNKNOWN_VOTES = 2


@dataclass
class VoteSet:
    """The prevotes or precommits of one (height, round).

    An equivocating validator's votes are all counted, each for its own value:
    after GST every honest validator receives the same votes, and counting only
    the first would let the order of arrival hide a polka from some of them
    (CometBFT's VoteSet keeps conflicting votes for the same reason). Safety does
    not suffer: two quorums above 2/3 still share an honest validator while the
    faulty hold less than 1/3. "2f + 1 of anything" counts each validator once.
    """

    validators: ValidatorSet
    first: dict[bytes, Vote] = field(default_factory=dict)
    by_value: dict[bytes | None, dict[bytes, Vote]] = field(default_factory=dict)
    power_by_value: dict[bytes | None, int] = field(default_factory=dict)
    power: int = 0
    _unknown: dict[bytes, int] = field(default_factory=dict)

    def has(self, vote: Vote) -> bool:
        return vote.validator in self.by_value.get(vote.value_id, {})

    def add(self, vote: Vote, proposed: Container[bytes]) -> Vote | None:
        """Count ``vote``; return an earlier vote of its validator for another value.

        ``proposed`` holds the value ids of this round's proposals (see
        MAX_UNKNOWN_VOTES).
        """
        if self.has(vote):
            return None
        pk = vote.validator
        if vote.value_id is not None and vote.value_id not in proposed:
            if self._unknown.get(pk, 0) >= MAX_UNKNOWN_VOTES:
                return None
            self._unknown[pk] = self._unknown.get(pk, 0) + 1
        weight = self.validators.power_of(pk)
        self.by_value.setdefault(vote.value_id, {})[pk] = vote
        self.power_by_value[vote.value_id] = self.power_by_value.get(vote.value_id, 0) + weight
        earlier = self.first.get(pk)
        if earlier is None:
            self.first[pk] = vote
            self.power += weight
        return earlier

    def has_quorum_for(self, value_id: bytes | None) -> bool:
        """More than 2/3 of the power voted for ``value_id`` (None: nil)."""
        return has_two_thirds(self.power_by_value.get(value_id, 0), self.validators.total_power)

    def has_quorum_any(self) -> bool:
        """More than 2/3 of the power voted, whatever for."""
        return has_two_thirds(self.power, self.validators.total_power)

    def quorum_value(self) -> bytes | None:
        """The non-nil value id with more than 2/3 of the power, or None."""
        for value_id, power in self.power_by_value.items():
            if value_id is not None and has_two_thirds(power, self.validators.total_power):
                return value_id
        return None

    def votes_for(self, value_id: bytes | None) -> list[Vote]:
        return list(self.by_value.get(value_id, {}).values())


@dataclass
class RoundState:
    """Everything received for one round of the current height."""

    validators: ValidatorSet
    #: Proposals from the round's proposer by value id, in arrival order (a byzantine
    #: proposer may send several; lines 22/28 use the first that fits, lines 36/49
    #: the one whose id gathered the votes).
    proposals: dict[bytes, Proposal] = field(default_factory=dict)
    prevotes: VoteSet = field(init=False)
    precommits: VoteSet = field(init=False)
    senders: set[bytes] = field(default_factory=set)
    sender_power: int = 0
    prevote_timeout_scheduled: bool = False  # line 34 "for the first time"
    precommit_timeout_scheduled: bool = False  # line 47 "for the first time"
    polka_seen: bool = False  # line 36 "for the first time"

    def __post_init__(self) -> None:
        self.prevotes = VoteSet(self.validators)
        self.precommits = VoteSet(self.validators)

    def votes(self, step: Step) -> VoteSet:
        return self.prevotes if step == Step.PREVOTE else self.precommits

    def note_sender(self, public_key: bytes) -> None:
        """Count a sender once for line 55, whatever it sent in this round."""
        if public_key not in self.senders:
            self.senders.add(public_key)
            self.sender_power += self.validators.power_of(public_key)

    def has_skip_quorum(self) -> bool:
        return has_one_third(self.sender_power, self.validators.total_power)
