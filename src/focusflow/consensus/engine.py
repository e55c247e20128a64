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

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from focusflow.consensus.actions import Action, Timeout
from focusflow.consensus.fallback import SWITCH_AFTER_ROUNDS
from focusflow.consensus.messages import Message
from focusflow.consensus.poll_messages import PollMessage
from focusflow.consensus.snowball import SnowmanParams
from focusflow.consensus.validators import ValidatorSet
from focusflow.core.errors import InvalidParameterError

#: Engines a chain may run: Tendermint (a 2/3 certificate per block), Snowman
#: (repeated sub-sampled polls, probabilistic finality), and Tendermint that
#: switches a stalled height to polling (``fallback.py``).
ENGINES = ("tendermint", "snowman", "fallback")
#: How transactions reach a block: carried in the proposer's block
#: (``proposer``), or sealed into certified batches that blocks order by
#: reference (``dag``: consensus/dag_mempool.py; Tendermint only).
MEMPOOLS = ("proposer", "dag")


class ConsensusEngine(Protocol):
    """One validator's consensus for successive heights."""

    @property
    def height(self) -> int:
        """The height the engine runs (-1 or 0 before the first)."""
        ...

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

    def value_of(self, value_id: bytes) -> bytes | None:
        """A value proposed at this height and held here, by its id."""
        ...

    def record_decision(self, height: int, value: bytes, value_id: bytes) -> None:
        """The height was decided elsewhere (a certificate): stop polling it and
        answer queries about it with the decision."""
        ...


#: The genesis fields of the engine choice: two names, then integers, so every
#: node reads them alike. Poll and proposal timeouts are each node's own (like
#: Tendermint's).
CONFIG_FIELDS = (
    "engine",
    "mempool",
    "k",
    "alpha_preference",
    "alpha_confidence",
    "beta",
    "switch_after_rounds",
)


@dataclass(frozen=True)
class EngineConfig:
    """Which engine a chain runs, and its polling parameters (a genesis choice).

    ``to_plain`` leaves out every field at its default, so a genesis written
    before engines were pluggable (Tendermint, no section) reads and hashes the
    same as before.
    """

    engine: str = "tendermint"
    snowman: SnowmanParams = field(default_factory=SnowmanParams)
    switch_after_rounds: int = SWITCH_AFTER_ROUNDS
    mempool: str = "proposer"

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise InvalidParameterError(f"consensus engine {self.engine!r} is not one of {ENGINES}")
        if self.mempool not in MEMPOOLS:
            raise InvalidParameterError(
                f"consensus mempool {self.mempool!r} is not one of {MEMPOOLS}"
            )
        if self.mempool == "dag" and self.engine != "tendermint":
            raise InvalidParameterError(
                "consensus mempool 'dag' runs with the tendermint engine only"
            )
        if self.switch_after_rounds < 1:
            raise InvalidParameterError("consensus switch_after_rounds must be >= 1")

    @classmethod
    def from_plain(cls, plain: Mapping[str, object]) -> EngineConfig:
        """Read a genesis ``consensus`` section; InvalidParameterError names the flaw."""
        unknown = sorted(set(plain) - set(CONFIG_FIELDS))
        if unknown:
            raise InvalidParameterError(f"unknown consensus fields {unknown}")
        engine = plain.get("engine", "tendermint")
        if not isinstance(engine, str):
            raise InvalidParameterError("consensus engine must be a string")
        mempool = plain.get("mempool", "proposer")
        if not isinstance(mempool, str):
            raise InvalidParameterError("consensus mempool must be a string")
        ints: dict[str, int] = {}
        for name in CONFIG_FIELDS[2:]:
            if name in plain:
                value = plain[name]
                if not isinstance(value, int) or isinstance(value, bool):
                    raise InvalidParameterError(f"consensus {name} must be an integer")
                ints[name] = value
        base = SnowmanParams()
        snowman = SnowmanParams(
            k=ints.get("k", base.k),
            alpha_preference=ints.get("alpha_preference", base.alpha_preference),
            alpha_confidence=ints.get("alpha_confidence", base.alpha_confidence),
            beta=ints.get("beta", base.beta),
        )
        rounds = ints.get("switch_after_rounds", SWITCH_AFTER_ROUNDS)
        return cls(engine, snowman, rounds, mempool)

    def to_plain(self) -> dict[str, object]:
        """The genesis section: only the fields that differ from the defaults."""
        defaults = EngineConfig().to_plain_full()
        return {k: v for k, v in self.to_plain_full().items() if defaults[k] != v}

    def to_plain_full(self) -> dict[str, object]:
        return {
            "engine": self.engine,
            "mempool": self.mempool,
            "k": self.snowman.k,
            "alpha_preference": self.snowman.alpha_preference,
            "alpha_confidence": self.snowman.alpha_confidence,
            "beta": self.snowman.beta,
            "switch_after_rounds": self.switch_after_rounds,
        }
