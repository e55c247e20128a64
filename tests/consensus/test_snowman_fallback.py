"""The fallback's lock rule is what keeps a Tendermint decision from being polled away.

Four equal validators. Round 0 proposes x; round 1 proposes v, and v gets a
polka in round 1: say its precommits reached a quorum at some validator, which
decided v. The others switch to polling: one switch carries the lock on v with
its polka, two carry no lock. The validator under test, with those switches,
must prefer v and count only answers for v. A mutant that ignores locks prefers
x (the earlier slot) and, told "x" by every polled peer, finalizes x: a second
value at a height Tendermint decided. The real machine, told the same, decides
nothing; told "v", it decides v.
"""

from __future__ import annotations

import random

import pytest

from focusflow.consensus import Proposal, Signer, Step, ValidatorSet, Vote, WriteAheadLog
from focusflow.consensus.actions import Accept, SendTo
from focusflow.consensus.errors import InvalidMessageError
from focusflow.consensus.fallback import Fallback
from focusflow.consensus.poll_messages import Chits, Query, Switch
from focusflow.consensus.snowball import SnowmanParams
from focusflow.core.hashing import sha256

from .harness import CHAIN, keys

X, V = b"value x", b"value v"


class IgnoresLocks(Fallback):
    """Mutant: polls over every proposal, as if no switch carried a lock."""

    def _update_polling(self):
        saved = self.switches
        self.switches = {
            k: Switch(s.height, -1, None, (), s.validator, s.signature) for k, s in saved.items()
        }
        try:
            return super()._update_polling()
        finally:
            self.switches = saved


def setup(cls):
    ks = keys(4)
    vs = ValidatorSet.create({k.public_key: 1 for k in ks})
    by_key = {k.public_key: k for k in ks}
    p0, p1 = by_key[vs.proposer(0).public_key], by_key[vs.proposer(1).public_key]
    me = next(k for k in ks if k not in (p0, p1))
    others = [k for k in ks if k is not me]
    m = cls(
        CHAIN,
        signer=Signer(me, CHAIN, WriteAheadLog(None)),
        get_value=lambda h: b"mine",
        is_valid=lambda h, v: True,
        params=SnowmanParams(beta=2, concurrent_polls=1),
        rng=random.Random(3),
    )
    m.start_height(1, vs)
    m.receive(Proposal.sign(p0, CHAIN, 1, 0, -1, X, sha256(X)))
    m.receive(Proposal.sign(p1, CHAIN, 1, 1, -1, V, sha256(V)))
    polka = tuple(Vote.sign(k, CHAIN, 1, 1, Step.PREVOTE, sha256(V)) for k in others)
    locked, *free = others
    actions = m.receive(Switch.sign(locked, CHAIN, 1, 1, sha256(V), polka))
    for k in free:
        actions += m.receive(Switch.sign(k, CHAIN, 1, -1, None, ()))
    return m, {k.public_key: k for k in others}, actions


def answer_polls(m, keys_by_pk, actions, value, rounds=6):
    """Answer every query the machine sends with chits for ``value``."""
    accepted = [a for a in actions if isinstance(a, Accept)]
    for _ in range(rounds):
        queries = [a for a in actions if isinstance(a, SendTo) and isinstance(a.message, Query)]
        actions = []
        for send in queries:
            q = send.message
            for pk in send.peers:
                chits = Chits.sign(keys_by_pk[pk], CHAIN, 1, q.requester, q.poll, sha256(value))
                actions += m.receive(chits)
        accepted += [a for a in actions if isinstance(a, Accept)]
    return accepted


def test_the_real_machine_prefers_the_locked_value_and_decides_only_it():
    m, others, actions = setup(Fallback)
    assert m.switched and m.poller.only == sha256(V)
    assert m.poller.preference() == sha256(V)
    assert answer_polls(m, others, actions, X) == []
    m2, others2, actions2 = setup(Fallback)
    decided = answer_polls(m2, others2, actions2, V)
    assert [a.value for a in decided] == [V]


def test_a_mutant_that_ignores_locks_polls_the_decided_height_to_another_value():
    m, others, actions = setup(IgnoresLocks)
    assert m.poller.preference() == sha256(X)
    decided = answer_polls(m, others, actions, X)
    assert [a.value for a in decided] == [X]


def test_a_switch_must_prove_its_lock():
    m, others, _ = setup(Fallback)
    k = next(iter(others.values()))
    fake = Switch.sign(k, CHAIN, 1, 2, sha256(X), ())
    m2 = Fallback(
        CHAIN,
        signer=Signer(keys(1, b"x")[0], CHAIN, WriteAheadLog(None)),
        get_value=lambda h: b"",
        is_valid=lambda h, v: True,
    )
    m2.start_height(1, m.validators)
    with pytest.raises(InvalidMessageError):
        m2.receive(fake)  # a lock with no polka
    m3 = Fallback(
        CHAIN,
        signer=Signer(keys(1, b"y")[0], CHAIN, WriteAheadLog(None)),
        get_value=lambda h: b"",
        is_valid=lambda h, v: True,
    )
    m3.start_height(1, m.validators)
    polka = m.switches[next(pk for pk, s in m.switches.items() if s.locked_round == 1)].polka
    short = Switch.sign(k, CHAIN, 1, 1, sha256(V), polka[:2])  # 2 of 4 is not > 2/3
    with pytest.raises(InvalidMessageError):
        m3.receive(short)
    with pytest.raises(InvalidMessageError):
        m3.receive(Switch(1, -1, None, (), k.public_key, bytes(64)))
