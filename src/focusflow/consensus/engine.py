"""The interface every consensus engine offers its host.

The node and the simulator drive an engine the same way whatever it runs
(Tendermint, Snowman, or Tendermint with the polling fallback): they start a
height with its validator set, hand it each message from the network and each
timer it asked for, and carry out the actions it returns (``actions.py``). No
engine touches a socket, clock or disk of its own; each signs through a
:class:`~focusflow.consensus.signer.Signer`. The engine is a genesis choice
(``ENGINES`` names them), not something a running chain switches.
"""

from __future__ import annotations

from typing import Protocol

from focusflow.consensus.actions import Action, Timeout
from focusflow.consensus.messages import Message
from focusflow.consensus.poll_messages import PollMessage
from focusflow.consensus.validators import ValidatorSet

#: Engines a chain may run: Tendermint (a 2/3 certificate per block), Snowman
#: (repeated sub-sampled polls, probabilistic finality), and Tendermint that
#: switches a stalled height to polling (``fallback.py``).
ENGINES = ("tendermint", "snowman", "fallback")


class ConsensusEngine(Protocol):
    """One validator's consensus for successive heights."""

    height: int

    def start_height(self, height: int, validator_set: ValidatorSet) -> list[Action]:
        """Begin ``height`` (after the previous one was decided and applied)."""
        ...

    def receive(self, message: Message) -> list[Action]:
        """A message from the network; InvalidMessageError when provably bad."""
        ...

    def on_timeout(self, timeout: Timeout) -> list[Action]:
        """A timer the engine scheduled has fired."""
        ...

    def proposed_value_ids(self, round: int) -> list[bytes]:
        """Value ids proposed so far (for the simulator's byzantine behaviours)."""
        ...


class PollingEngine(ConsensusEngine, Protocol):
    """An engine that also takes Snowman's polls and the fallback's switches."""

    def receive(self, message: Message | PollMessage) -> list[Action]: ...
