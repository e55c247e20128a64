"""A four-validator harness: one machine under test, the other keys sign by hand.

Imported by the consensus tests; conftest.py holds the fixture over it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from focusflow.consensus import (
    Broadcast,
    Decide,
    Proposal,
    ScheduleTimeout,
    Signer,
    Step,
    Tendermint,
    Timeouts,
    ValidatorSet,
    Vote,
    WriteAheadLog,
)
from focusflow.core.hashing import sha256
from focusflow.core.keys import KeyPair

CHAIN = "test-chain"


def keys(n: int, tag: bytes = b"k") -> list[KeyPair]:
    return [KeyPair.from_seed(sha256(tag + bytes([i]))) for i in range(n)]


@dataclass
class Harness:
    """Validator ``me`` runs a real machine; ``others`` are driven by the test."""

    keys: list[KeyPair]
    vs: ValidatorSet
    me: KeyPair
    machine: Tendermint
    wal: WriteAheadLog
    invalid: set[bytes] = field(default_factory=set)
    values: list[bytes] = field(default_factory=list)

    @property
    def others(self) -> list[KeyPair]:
        return [k for k in self.keys if k is not self.me]

    def key_of(self, public_key: bytes) -> KeyPair:
        return next(k for k in self.keys if k.public_key == public_key)

    def proposer(self, round: int) -> KeyPair:
        return self.key_of(self.vs.proposer(round).public_key)

    def proposal(self, round: int, value: bytes, valid_round: int = -1, height: int = 1):
        key = self.proposer(round)
        return Proposal.sign(key, CHAIN, height, round, valid_round, value, sha256(value))

    def vote(self, key: KeyPair, round: int, step: Step, value: bytes | None, height: int = 1):
        value_id = None if value is None else sha256(value)
        return Vote.sign(key, CHAIN, height, round, step, value_id)

    def feed(self, *messages) -> list:
        actions = []
        for m in messages:
            actions += self.machine.receive(m)
        return actions


def broadcasts(actions) -> list:
    return [a.message for a in actions if isinstance(a, Broadcast)]


def votes_of(actions, step: Step) -> list[Vote]:
    return [m for m in broadcasts(actions) if isinstance(m, Vote) and m.step == step]


def timeouts_of(actions) -> list[ScheduleTimeout]:
    return [a for a in actions if isinstance(a, ScheduleTimeout)]


def decisions(actions) -> list[Decide]:
    return [a for a in actions if isinstance(a, Decide)]


def make_harness(
    powers=(3, 3, 3, 1), *, proposer_at_0: bool = False, wal_path=None, ks=None
) -> Harness:
    """By default ``me`` is the power-1 validator: it proposes in round 2 (and 12) only,
    it needs two others for a quorum (7 of 10), and one other is not a third (3 of 10)."""
    ks = ks or keys(len(powers))
    vs = ValidatorSet.create({k.public_key: p for k, p in zip(ks, powers, strict=True)})
    if proposer_at_0:
        me = next(k for k in ks if k.public_key == vs.proposer(0).public_key)
    else:
        me = min(ks, key=lambda k: vs.power_of(k.public_key))
    wal = WriteAheadLog(wal_path)
    h = Harness(ks, vs, me, None, wal)  # type: ignore[arg-type]

    def get_value(height: int) -> bytes:
        value = b"my block %d/%d" % (height, len(h.values))
        h.values.append(value)
        return value

    h.machine = Tendermint(
        CHAIN,
        signer=Signer(me, CHAIN, wal),
        get_value=get_value,
        is_valid=lambda height, value: value not in h.invalid,
        timeouts=Timeouts(),
    )
    return h
