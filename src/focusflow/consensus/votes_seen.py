"""The last vote a node saw from each validator: what ``GET /v1/validators`` shows.

The state machine keeps the votes of the current height only, per round and
step, and drops them at the next height; an operator wants something else: per
validator, has it voted lately, and for what (is one of four silent, or stuck a
round behind?). :class:`VotesSeen` keeps one vote per validator, the most
advanced by (height, round, step), whether it came from a peer or was signed
here. A vote enters only if its signer is in the current set, its height is at
most one above the height being decided (what the machine buffers too) and its
signature verifies, so a peer cannot make a validator look as if it voted where
it did not. Votes that arrive after their height was decided count too: the
fourth of four validators is often the last to vote, and its votes are late
for the state machine, not missing. Verification costs one Ed25519 check per
vote that advances a validator's entry, not per copy: repeats of a kept vote
are dropped before it (the node passes ``verified`` for gossip it checked).

Sans-io like the rest of the package: the host passes the time it saw a vote.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from focusflow.consensus.messages import Step, Vote
from focusflow.consensus.validators import ValidatorSet
from focusflow.core.keys import verify as verify_signature


@dataclass(frozen=True)
class SeenVote:
    """One validator's last vote as this node saw it; ``value_id`` None is nil."""

    height: int
    round: int
    step: Step
    value_id: bytes | None
    #: Wall-clock milliseconds when this node received (or signed) it.
    time_ms: int


class VotesSeen:
    """Per validator public key, the most advanced vote seen; see the module docstring."""

    def __init__(
        self,
        chain_id: str,
        verify: Callable[[bytes, bytes, bytes], bool] = verify_signature,
    ) -> None:
        self.chain_id = chain_id
        self.verify = verify
        self._last: dict[bytes, SeenVote] = {}

    def observe(
        self,
        vote: Vote,
        validators: ValidatorSet,
        height: int,
        time_ms: int,
        *,
        verified: bool = False,
    ) -> bool:
        """Keep ``vote`` as its validator's last one if it is newer; True if kept.

        ``validators`` and ``height`` are the set and the height being decided;
        ``verified`` skips the signature check where it was done already: this
        node's own votes, and votes that passed the gossip checks.
        Of two votes for one (height, round, step) the first stays.
        """
        if validators.index_of(vote.validator) is None or vote.height > height + 1:
            return False
        prior = self._last.get(vote.validator)
        if prior is not None and (prior.height, prior.round, prior.step) >= (
            vote.height,
            vote.round,
            vote.step,
        ):
            return False
        if not verified and not self.verify(
            vote.validator, vote.signature, vote.sign_bytes(self.chain_id)
        ):
            return False
        self._last[vote.validator] = SeenVote(
            vote.height, vote.round, vote.step, vote.value_id, time_ms
        )
        return True

    def last(self, public_key: bytes) -> SeenVote | None:
        """The last vote seen from ``public_key``, None if none was."""
        return self._last.get(public_key)


__all__ = ["SeenVote", "VotesSeen"]
