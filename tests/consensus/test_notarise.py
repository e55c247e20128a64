"""Polled decisions certified by attestations (notarise.py): the rules one
validator follows, and that the chain commits a block under such a certificate
as under Tendermint's (block sync and light clients check it the same way)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from focusflow.consensus import CommitCertificate, Signer, Step, Vote, WriteAheadLog
from focusflow.consensus.actions import Accept, Broadcast, Decide, ReportEvidence
from focusflow.consensus.certificate import verify_certificate
from focusflow.consensus.errors import InvalidMessageError
from focusflow.consensus.evidence import DuplicateVoteEvidence, verify_evidence
from focusflow.consensus.notarise import ACCEPT_ROUND, Notarised
from focusflow.consensus.validators import ValidatorSet
from focusflow.core.hashing import sha256
from focusflow.node import open_chain
from tests.chain.evidence_helpers import KEYS, genesis

from .harness import CHAIN, keys

V, W = b"value v", b"value w"


@dataclass
class Inner:
    """A polling engine reduced to what the wrapper reads: accepts on demand."""

    height: int = 0
    known: dict[bytes, bytes] = field(default_factory=dict)
    recorded: list[tuple[int, bytes]] = field(default_factory=list)
    pending: list = field(default_factory=list)

    def start_height(self, height, validator_set):
        self.height = height
        return self._out()

    def receive(self, message):
        return self._out()

    def on_timeout(self, timeout):
        return self._out()

    def proposed_value_ids(self, round):
        return list(self.known)

    def value_of(self, value_id):
        return self.known.get(value_id)

    def record_decision(self, height, value, value_id):
        self.recorded.append((height, value_id))

    def _out(self):
        out, self.pending = self.pending, []
        return out


def setup(n=4, me=0, wal=None):
    ks = keys(n)
    vs = ValidatorSet.create({k.public_key: 1 for k in ks})
    inner = Inner()
    signer = Signer(ks[me], CHAIN, wal or WriteAheadLog(None))
    m = Notarised(inner, CHAIN, signer=signer)
    m.start_height(1, vs)
    return ks, vs, inner, m


def attest(key, value, height=1):
    return Vote.sign(key, CHAIN, height, ACCEPT_ROUND, Step.PRECOMMIT, sha256(value))


def test_an_accept_becomes_an_attestation_and_two_thirds_a_certificate():
    ks, vs, inner, m = setup()
    inner.known[sha256(V)] = V
    inner.pending = [Accept(1, V, sha256(V), polls=7)]
    out = m.on_timeout(None)
    [mine] = [a.message for a in out if isinstance(a, Broadcast)]
    assert (mine.height, mine.round, mine.step, mine.value_id) == (
        1,
        ACCEPT_ROUND,
        Step.PRECOMMIT,
        sha256(V),
    )
    assert not any(isinstance(a, (Accept, Decide)) for a in out)
    assert m.receive(attest(ks[1], V)) == []  # 2 of 4: not yet
    [decide] = m.receive(attest(ks[2], V))
    assert isinstance(decide, Decide) and decide.value == V and decide.round == ACCEPT_ROUND
    verify_certificate(decide.certificate, vs, CHAIN, height=1, value_id=sha256(V))
    assert inner.recorded == [(1, sha256(V))]
    assert m.receive(attest(ks[3], V)) == []  # decided once


def test_a_validator_that_did_not_accept_decides_on_a_certificate_once_it_holds_the_value():
    ks, _vs, inner, m = setup()
    for k in ks[1:]:
        assert m.receive(attest(k, V)) == []  # value unknown here
    inner.known[sha256(V)] = V  # the proposal arrives: the inner engine's step
    [decide] = m.on_timeout(None)
    assert isinstance(decide, Decide) and decide.value == V
    assert inner.recorded == [(1, sha256(V))]


def test_a_restarted_validator_attests_what_it_attested_before(tmp_path):
    path = tmp_path / "wal"
    _, _, inner, m = setup(wal=WriteAheadLog(path))
    inner.pending = [Accept(1, V, sha256(V), polls=5)]
    [first] = [a.message for a in m.on_timeout(None) if isinstance(a, Broadcast)]
    m.signer.wal.close()
    _ks, _vs, inner, again = setup(wal=WriteAheadLog(path))
    inner.pending = [Accept(1, W, sha256(W), polls=5)]
    [second] = [a.message for a in again.on_timeout(None) if isinstance(a, Broadcast)]
    again.signer.wal.close()
    assert second == first


def test_two_attestations_of_one_validator_are_evidence_and_bad_ones_refused():
    ks, vs, inner, m = setup()
    assert m.receive(attest(ks[1], V)) == []
    [report] = m.receive(attest(ks[1], W))
    assert isinstance(report, ReportEvidence)
    assert isinstance(report.evidence, DuplicateVoteEvidence)
    assert verify_evidence(report.evidence, vs, CHAIN).public_key == ks[1].public_key
    # W got no power from the second one: two more for W are not 2/3
    inner.known[sha256(W)] = W
    assert m.receive(attest(ks[2], W)) == []
    with pytest.raises(InvalidMessageError):
        m.receive(attest(keys(1, b"outsider")[0], V))
    forged = attest(ks[3], V)
    with pytest.raises(InvalidMessageError):
        m.receive(Vote(1, ACCEPT_ROUND, Step.PRECOMMIT, sha256(V), forged.validator, bytes(64)))
    nil = Vote.sign(ks[3], CHAIN, 1, ACCEPT_ROUND, Step.PRECOMMIT, None)
    assert m.receive(nil) == []  # counts for nothing
    [report] = m.receive(attest(ks[3], W))  # but a second one is evidence
    assert isinstance(report, ReportEvidence)
    prevote = Vote.sign(ks[2], CHAIN, 1, ACCEPT_ROUND, Step.PREVOTE, sha256(V))
    assert m.receive(prevote) == []


def test_a_decision_of_the_inner_engine_passes_through_once():
    ks, _vs, inner, m = setup()
    cert = CommitCertificate.from_votes(
        [Vote.sign(k, CHAIN, 1, 0, Step.PRECOMMIT, sha256(V)) for k in ks[:3]]
    )
    inner.pending = [Decide(1, 0, V, sha256(V), cert)]
    assert [type(a) for a in m.on_timeout(None)] == [Decide]
    inner.pending = [Decide(1, 0, V, sha256(V), cert)]
    assert m.on_timeout(None) == []


def test_the_chain_commits_and_replays_a_block_certified_by_attestations(tmp_path):
    """A certificate at ACCEPT_ROUND is an ordinary certificate to the chain."""
    gen = genesis()
    producer = open_chain(tmp_path / "a", gen, KEYS[0])
    for _ in range(3):
        pending = producer.propose([])
        h, chain_id = pending.height, producer.chain_id
        votes = [
            Vote.sign(k, chain_id, h, ACCEPT_ROUND, Step.PRECOMMIT, pending.hash) for k in KEYS[:3]
        ]
        producer.commit(pending, CommitCertificate.from_votes(votes))
    assert producer.last_certificate.round == ACCEPT_ROUND
    follower = open_chain(tmp_path / "b", gen)
    for record in producer.records(1):
        follower.apply_block(record.encode())
    assert follower.head == producer.head
