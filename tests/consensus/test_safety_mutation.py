"""The lock rule is what keeps Tendermint safe: without it, this schedule forks.

Four equal validators; B is byzantine and proposes in round 0, H3 proposes in
round 1. Round 0: H1 and H2 see B's proposal v and a polka for it, lock and
precommit v; H3 never sees the proposal in time and precommits nil. B sends its
precommit for v only to H1, which decides v. Round 1: H3 proposes a fresh value
w; B prevotes w. A correct H2 is locked on v and prevotes nil, so w gets no polka.
A mutated H2 that forgets its lock prevotes w, and H2 and H3 decide w: two honest
validators decided different values at one height. The same harness passing with
the real machine and failing with the mutant shows the tests can catch a broken
rule, not only that the code runs.
"""

from __future__ import annotations

from focusflow.consensus import (
    Broadcast,
    Decide,
    Proposal,
    ScheduleTimeout,
    Signer,
    Step,
    Tendermint,
    Timeout,
    ValidatorSet,
    Vote,
    WriteAheadLog,
)
from focusflow.core.hashing import sha256

from .harness import CHAIN, keys

V = b"value v"


class ForgetsLock(Tendermint):
    """Mutant: lines 38-39 still run, but the lock is dropped right after."""

    def _rule_lock_on_polka(self) -> bool:
        fired = super()._rule_lock_on_polka()
        self.locked_round, self.locked_value, self.locked_value_id = -1, None, None
        return fired


class Node:
    def __init__(self, key, vs, cls):
        self.key = key
        self.sent: list = []
        self.decided: list[Decide] = []
        self.machine = cls(
            CHAIN,
            signer=Signer(key, CHAIN, WriteAheadLog(None)),
            get_value=lambda h: b"value w from " + key.public_key[:4],
            is_valid=lambda h, v: True,
        )
        self.take(self.machine.start_height(1, vs))

    def take(self, actions) -> None:
        for a in actions:
            if isinstance(a, Broadcast):
                self.sent.append(a.message)
            elif isinstance(a, Decide):
                self.decided.append(a)
            assert isinstance(a, Broadcast | Decide | ScheduleTimeout)

    def get(self, *messages) -> None:
        for m in messages:
            self.take(self.machine.receive(m))

    def timeout(self, step: Step, round: int) -> None:
        self.take(self.machine.on_timeout(Timeout(step, 1, round)))

    def last(self, kind, round: int):
        return next(
            m
            for m in reversed(self.sent)
            if m.round == round
            and (
                isinstance(m, Proposal)
                if kind == "proposal"
                else isinstance(m, Vote) and m.step == kind
            )
        )


def run_schedule(cls) -> dict[str, bytes]:
    ks = keys(4, b"mutation")
    vs = ValidatorSet.create({k.public_key: 1 for k in ks})
    by_key = {k.public_key: k for k in ks}
    b_key = by_key[vs.proposer(0).public_key]
    h3_key = by_key[vs.proposer(1).public_key]
    h1_key, h2_key = [k for k in ks if k not in (b_key, h3_key)]
    h1, h2, h3 = (Node(k, vs, cls) for k in (h1_key, h2_key, h3_key))

    def byz(round, step, value):
        vid = None if value is None else sha256(value)
        return Vote.sign(b_key, CHAIN, 1, round, step, vid)

    # Round 0.
    proposal = Proposal.sign(b_key, CHAIN, 1, 0, -1, V, sha256(V))
    h1.get(proposal)
    h2.get(proposal)
    h3.timeout(Step.PROPOSE, 0)  # H3: prevote nil
    h1.get(h2.last(Step.PREVOTE, 0), byz(0, Step.PREVOTE, V))  # polka: lock, precommit v
    h2.get(h1.last(Step.PREVOTE, 0), byz(0, Step.PREVOTE, V))
    h3.get(h1.last(Step.PREVOTE, 0), h2.last(Step.PREVOTE, 0), byz(0, Step.PREVOTE, None))
    h3.timeout(Step.PREVOTE, 0)  # no polka at H3: precommit nil
    h1.get(h2.last(Step.PRECOMMIT, 0), byz(0, Step.PRECOMMIT, V))  # H1 decides v
    h2.get(h1.last(Step.PRECOMMIT, 0), h3.last(Step.PRECOMMIT, 0), byz(0, Step.PRECOMMIT, None))
    h3.get(h1.last(Step.PRECOMMIT, 0), h2.last(Step.PRECOMMIT, 0), byz(0, Step.PRECOMMIT, None))
    h2.timeout(Step.PRECOMMIT, 0)
    h3.timeout(Step.PRECOMMIT, 0)  # round 1: H3 proposes w
    # Round 1.
    w_proposal = h3.last("proposal", 1)
    w = w_proposal.value
    h2.get(w_proposal)
    h2.get(h3.last(Step.PREVOTE, 1), byz(1, Step.PREVOTE, w))
    h3.get(h2.last(Step.PREVOTE, 1), byz(1, Step.PREVOTE, w))
    for node, other in ((h2, h3), (h3, h2)):
        pcs = [
            m
            for m in other.sent
            if isinstance(m, Vote) and m.round == 1 and m.step == Step.PRECOMMIT
        ]
        node.get(*pcs, byz(1, Step.PRECOMMIT, w))
    return {
        name: n.decided[0].value for name, n in (("h1", h1), ("h2", h2), ("h3", h3)) if n.decided
    }


def test_schedule_is_safe_with_the_lock_rule():
    decided = run_schedule(Tendermint)
    assert decided == {"h1": V}  # H2 and H3 refuse w; they will decide v later


def test_forgetting_the_lock_forks_the_chain():
    decided = run_schedule(ForgetsLock)
    assert decided["h1"] == V and decided["h2"] != V and decided["h2"] == decided["h3"]
