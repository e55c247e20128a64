"""Certificates for polled decisions: a polling engine's ``Accept`` notarised.

Snowman finalizes a value for the validator that polled it and nobody else: a
block decided so carries no proof a follower, a syncing node or a light client
could check. The chain, block sync and light clients all take a
:class:`CommitCertificate` as the proof that a block is final. So a validator
that accepts a value *attests* it: it signs a precommit for the value at
``ACCEPT_ROUND``, a round no Tendermint height ever reaches, and gossips it.
Attestations of validators holding more than 2/3 of the power for one value
are a certificate in the ordinary form, and that certificate, not the local
``Accept``, commits the block (:class:`Decide`).

- **Safety.** The signer signs one vote per (height, round, step), so an honest
  validator attests at most one value a height, across crashes. Two
  certificates for different values at one height need more than 1/3 of the
  power to attest twice, which is duplicate-vote evidence, reported here on
  sight. Snowman's probabilistic failure (honest validators accepting
  different values) therefore ends in no certificate, a halted height, rather
  than two committed blocks, as long as more than 2/3 of the power is honest.
- **Liveness.** Once validators with more than 2/3 of the power accepted one
  value (what Snowman reaches with its parameters' probability), every
  validator that holds the value decides it, including one that had not
  accepted it yet. A validator without the value gets the block and its
  certificate from block sync.
- **Cost.** One all-to-all message per height after the polls, as Tendermint's
  precommit step.

:class:`Notarised` wraps any polling engine (Snowman, or Tendermint with the
polling fallback, whose own Tendermint decisions pass through untouched) and
offers the same interface.
"""

from __future__ import annotations

from collections.abc import Callable

from focusflow.consensus.actions import Accept, Action, Broadcast, Decide, ReportEvidence, Timeout
from focusflow.consensus.certificate import CommitCertificate
from focusflow.consensus.engine import PollingEngine
from focusflow.consensus.errors import InvalidMessageError
from focusflow.consensus.evidence import DuplicateVoteEvidence
from focusflow.consensus.messages import MAX_INT, Message, Step, Vote
from focusflow.consensus.poll_messages import PollMessage
from focusflow.consensus.signer import Signer
from focusflow.consensus.validators import ValidatorSet, has_two_thirds
from focusflow.core.keys import verify as verify_signature

#: The round of an attestation: never a Tendermint round (rounds count up from
#: 0 one timeout at a time), so an attestation never meets a precommit's slot.
ACCEPT_ROUND = MAX_INT


class Notarised:
    """A polling engine whose decisions are certified by attestations; see the module."""

    def __init__(
        self,
        inner: PollingEngine,
        chain_id: str,
        *,
        signer: Signer | None,
        verify: Callable[[bytes, bytes, bytes], bool] = verify_signature,
    ) -> None:
        self.inner = inner
        self.chain_id = chain_id
        self.signer = signer
        self.verify = verify
        self.validators: ValidatorSet | None = None
        self._reset()

    def _reset(self) -> None:
        self._attestations: dict[bytes, Vote] = {}  # validator -> its attestation
        self._power: dict[bytes, int] = {}  # value id -> attested power
        self._values: dict[bytes, bytes] = {}  # value id -> value, of accepts seen here
        self._decided = False

    @property
    def height(self) -> int:
        return self.inner.height

    def start_height(self, height: int, validator_set: ValidatorSet) -> list[Action]:
        self._reset()
        self.validators = validator_set
        return self._wrap(self.inner.start_height(height, validator_set))

    def receive(self, message: Message | PollMessage) -> list[Action]:
        if isinstance(message, Vote) and message.round == ACCEPT_ROUND:
            return self._on_attestation(message)
        return self._wrap(self.inner.receive(message))

    def on_timeout(self, timeout: Timeout) -> list[Action]:
        return self._wrap(self.inner.on_timeout(timeout))

    def proposed_value_ids(self, round: int) -> list[bytes]:
        return self.inner.proposed_value_ids(round)

    # ----------------------------------------------------------------- internals

    def _wrap(self, actions: list[Action]) -> list[Action]:
        """Turn the inner engine's Accept into this validator's attestation."""
        out: list[Action] = []
        for action in actions:
            if isinstance(action, Decide):
                if not self._decided:
                    self._decided = True
                    out.append(action)
            elif isinstance(action, Accept):
                self._values[action.value_id] = action.value
                out += self._attest(action)
            else:
                out.append(action)
        if not self._decided:
            # A value attested by 2/3 may have become known only now.
            for value_id in list(self._power):
                out += self._maybe_decide(value_id)
        return out

    def _attest(self, accept: Accept) -> list[Action]:
        if self.signer is None or self.validators is None:
            return []
        if self.validators.index_of(self.signer.public_key) is None:
            return []
        vote = self.signer.sign_vote(accept.height, ACCEPT_ROUND, Step.PRECOMMIT, accept.value_id)
        # What the signer returns is what this validator attested at this height
        # (before a crash perhaps): that, not the new accept, is what it sends.
        return [Broadcast(vote), *self._count(vote)]

    def _on_attestation(self, vote: Vote) -> list[Action]:
        vs = self.validators
        if vs is None or vote.height != self.height:
            return []
        if vote.step != Step.PRECOMMIT:
            # Signed, so relayers forward it; it attests nothing.
            return []
        if vs.index_of(vote.validator) is None:
            raise InvalidMessageError("attestation from a key outside the validator set")
        earlier = self._attestations.get(vote.validator)
        if earlier is not None and earlier.value_id == vote.value_id:
            return []
        if not self.verify(vote.validator, vote.signature, vote.sign_bytes(self.chain_id)):
            raise InvalidMessageError("bad attestation signature")
        if earlier is not None:
            return [ReportEvidence(DuplicateVoteEvidence.of(earlier, vote))]
        return self._count(vote)

    def _count(self, vote: Vote) -> list[Action]:
        """Record a validator's attestation; a nil one (no honest validator signs
        it) counts for nothing but is kept, so a second one is evidence."""
        assert self.validators is not None
        if vote.validator in self._attestations:
            return []
        self._attestations[vote.validator] = vote
        if vote.value_id is None:
            return []
        power = self._power.get(vote.value_id, 0) + self.validators.power_of(vote.validator)
        self._power[vote.value_id] = power
        return self._maybe_decide(vote.value_id)

    def _maybe_decide(self, value_id: bytes) -> list[Action]:
        assert self.validators is not None
        if self._decided or not has_two_thirds(self._power[value_id], self.validators.total_power):
            return []
        value = self._values.get(value_id)
        if value is None:
            value = self.inner.value_of(value_id)
        if value is None:
            return []  # not held here: block sync brings the block with this certificate
        votes = [v for v in self._attestations.values() if v.value_id == value_id]
        self._decided = True
        self.inner.record_decision(self.height, value, value_id)
        cert = CommitCertificate.from_votes(votes)
        return [Decide(self.height, ACCEPT_ROUND, value, value_id, cert)]
