"""Snowman's answers across crashes, and the evidence a poller collects: a
responder that contradicts itself to one poll, and a proposer that signs two
proposals for one slot."""

from __future__ import annotations

import os
import random
from types import SimpleNamespace

import pytest

from focusflow.chain.block_checks import decode_block_evidence
from focusflow.consensus import Proposal, Signer, SignRefusedError, WriteAheadLog
from focusflow.consensus.actions import Broadcast, ReportEvidence, SendTo
from focusflow.consensus.errors import InvalidEvidenceError, InvalidMessageError
from focusflow.consensus.evidence import (
    DuplicateChitsEvidence,
    DuplicateProposalEvidence,
    decode_evidence,
    encode_evidence,
    verify_evidence,
)
from focusflow.consensus.poll_messages import Chits, Query
from focusflow.consensus.signer import CHITS_KEPT_HEIGHTS, MAX_CHITS_PER_REQUESTER
from focusflow.consensus.sim import Simulation
from focusflow.consensus.snowball import SnowmanParams
from focusflow.consensus.snowman import Snowman
from focusflow.consensus.validators import ValidatorSet
from focusflow.core.errors import DecodeError
from focusflow.core.hashing import sha256

from .harness import CHAIN, keys

A, B = sha256(b"a"), sha256(b"b")


def snowman(key, vs, wal, height=1):
    m = Snowman(
        CHAIN,
        signer=Signer(key, CHAIN, wal),
        get_value=lambda h: b"block",
        is_valid=lambda h, v: True,
        params=SnowmanParams(beta=2, concurrent_polls=1),
        rng=random.Random(7),
    )
    m.start_height(height, vs)
    return m


def chits_out(actions):
    return [a.message for a in actions if isinstance(a, SendTo) and isinstance(a.message, Chits)]


# ----------------------------------------------------------------- the signer


def test_one_answer_per_poll_whatever_is_asked_later(tmp_path):
    k = keys(2)
    signer = Signer(k[0], CHAIN, WriteAheadLog(tmp_path / "wal"))
    [first] = signer.sign_chits([(5, k[1].public_key, 9, A)])
    [again, other] = signer.sign_chits([(5, k[1].public_key, 9, B), (5, k[1].public_key, 10, B)])
    assert again == first and first.value_id == A
    assert other is not None and other.value_id == B
    signer.wal.close()
    restarted = Signer(k[0], CHAIN, WriteAheadLog(tmp_path / "wal"))
    [after] = restarted.sign_chits([(5, k[1].public_key, 9, B)])
    restarted.wal.close()
    assert after == first


def test_a_step_s_new_answers_cost_one_fsync(tmp_path, monkeypatch):
    k = keys(2)
    signer = Signer(k[0], CHAIN, WriteAheadLog(tmp_path / "wal"))
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    out = signer.sign_chits([(3, k[1].public_key, p, A) for p in range(50)])
    assert len({c.poll for c in out if c is not None}) == 50
    assert len(calls) == 1
    signer.sign_chits([(3, k[1].public_key, p, A) for p in range(50)])  # all known: no write
    assert len(calls) == 1
    signer.wal.close()


def test_a_flood_of_queries_from_one_requester_is_capped():
    k = keys(3)
    signer = Signer(k[0], CHAIN, WriteAheadLog(None))
    requests = [(2, k[1].public_key, p, A) for p in range(MAX_CHITS_PER_REQUESTER + 5)]
    out = signer.sign_chits(requests)
    assert sum(c is not None for c in out) == MAX_CHITS_PER_REQUESTER
    assert out[-1] is None
    # another requester is not starved by the first one's flood
    assert signer.sign_chits([(2, k[2].public_key, 1, A)])[0] is not None
    assert len(signer.wal.entries()) == MAX_CHITS_PER_REQUESTER + 1


def test_answers_outlive_the_floor_for_the_heights_they_may_be_asked_of(tmp_path):
    k = keys(2)
    path = tmp_path / "wal"
    signer = Signer(k[0], CHAIN, WriteAheadLog(path))
    [old] = signer.sign_chits([(10, k[1].public_key, 1, A)])
    for h in range(11, 10 + CHITS_KEPT_HEIGHTS + 1):
        signer.prune(h)
    signer.wal.close()
    restarted = Signer(k[0], CHAIN, WriteAheadLog(path))
    assert restarted.sign_chits([(10, k[1].public_key, 1, B)]) == [old]
    restarted.prune(11 + CHITS_KEPT_HEIGHTS)
    with pytest.raises(SignRefusedError):
        restarted.sign_chits([(10, k[1].public_key, 1, B)])
    restarted.wal.close()


# ------------------------------------------------------- a machine that restarts


def test_a_restarted_validator_repeats_its_answer_to_a_replayed_query(tmp_path):
    """A requester that replays its query after the responder restarted with
    another preference must get the first answer back, not a contradicting one
    it could turn into evidence against an honest validator."""
    ks = keys(4)
    vs = ValidatorSet.create({k.public_key: 1 for k in ks})
    proposer = vs.proposer(0).public_key
    me = next(k for k in ks if k.public_key != proposer)
    asker = next(k for k in ks if k.public_key not in (proposer, me.public_key))
    pkey = next(k for k in ks if k.public_key == proposer)
    first_value, second_value = b"first", b"second"
    path = tmp_path / "wal"

    m = snowman(me, vs, WriteAheadLog(path))
    m.receive(Proposal.sign(pkey, CHAIN, 1, 0, -1, first_value, sha256(first_value)))
    query = Query.sign(asker, CHAIN, 1, 77)
    [answer] = chits_out(m.receive(query))
    assert answer.value_id == sha256(first_value)
    m.signer.wal.close()

    # After the crash it hears another proposal of the slot first.
    again = snowman(me, vs, WriteAheadLog(path))
    again.receive(Proposal.sign(pkey, CHAIN, 1, 0, -1, second_value, sha256(second_value)))
    assert again.preference() == sha256(second_value)
    [replayed] = chits_out(again.receive(query))
    again.signer.wal.close()
    assert replayed == answer


# ------------------------------------------------------------------- evidence


def poller_with_open_poll():
    ks = keys(4)
    vs = ValidatorSet.create({k.public_key: 1 for k in ks})
    proposer = vs.proposer(0).public_key
    me = next(k for k in ks if k.public_key == proposer)
    m = snowman(me, vs, WriteAheadLog(None))
    actions = m.kick()
    queries = [a for a in actions if isinstance(a, SendTo) and isinstance(a.message, Query)]
    if not queries:  # start_height already issued it
        m2 = Snowman(
            CHAIN,
            signer=Signer(me, CHAIN, WriteAheadLog(None)),
            get_value=lambda h: b"block",
            is_valid=lambda h, v: True,
            params=SnowmanParams(beta=2, concurrent_polls=1),
            rng=random.Random(7),
        )
        actions = m2.start_height(1, vs)
        m = m2
        queries = [a for a in actions if isinstance(a, SendTo) and isinstance(a.message, Query)]
    [send] = queries
    return ks, vs, m, send


def test_two_answers_of_one_responder_to_one_poll_become_evidence():
    ks, vs, m, send = poller_with_open_poll()
    q = send.message
    liar = next(k for k in ks if k.public_key == send.peers[0])
    honest = Chits.sign(liar, CHAIN, 1, q.requester, q.poll, m.preference())
    other = Chits.sign(liar, CHAIN, 1, q.requester, q.poll, None)
    m.receive(honest)
    out = m.receive(other)
    reports = [a.evidence for a in out if isinstance(a, ReportEvidence)]
    assert len(reports) == 1 and isinstance(reports[0], DuplicateChitsEvidence)
    evidence = reports[0]
    assert verify_evidence(evidence, vs, CHAIN).public_key == liar.public_key
    assert decode_evidence(encode_evidence(evidence)) == evidence
    assert m.receive(other) == []  # reported once
    # the same answer twice is no offence
    assert not [a for a in m.receive(honest) if isinstance(a, ReportEvidence)]
    # a forged second answer is the sender's fault, not evidence
    forged = Chits(1, q.requester, q.poll, B, liar.public_key, bytes(64))
    with pytest.raises(InvalidMessageError):
        m.receive(forged)


def test_chits_evidence_is_checked_and_travels_in_blocks():
    ks = keys(4)
    vs = ValidatorSet.create({k.public_key: 1 for k in ks})
    a = Chits.sign(ks[1], CHAIN, 3, ks[0].public_key, 5, A)
    b = Chits.sign(ks[1], CHAIN, 3, ks[0].public_key, 5, B)
    evidence = DuplicateChitsEvidence.of(b, a)
    assert evidence == DuplicateChitsEvidence.of(a, b)
    raw = encode_evidence(evidence)
    header = SimpleNamespace(height=4)
    assert decode_block_evidence(SimpleNamespace(header=header, height=4, evidence=(raw,))) == [
        evidence
    ]
    bad = [
        DuplicateChitsEvidence(evidence.chits_b, evidence.chits_a),  # not canonical
        DuplicateChitsEvidence.of(a, Chits.sign(ks[1], CHAIN, 3, ks[0].public_key, 6, B)),
        DuplicateChitsEvidence.of(a, Chits.sign(ks[2], CHAIN, 3, ks[0].public_key, 5, B)),
        DuplicateChitsEvidence(a, Chits.sign(ks[1], CHAIN, 3, ks[0].public_key, 5, A)),
        DuplicateChitsEvidence.of(a, Chits(3, ks[0].public_key, 5, B, ks[1].public_key, bytes(64))),
    ]
    for piece in bad:
        with pytest.raises(InvalidEvidenceError):
            verify_evidence(piece, vs, CHAIN)
    outsider = keys(1, b"out")[0]
    with pytest.raises(InvalidEvidenceError):
        verify_evidence(
            DuplicateChitsEvidence.of(
                Chits.sign(outsider, CHAIN, 3, ks[0].public_key, 5, A),
                Chits.sign(outsider, CHAIN, 3, ks[0].public_key, 5, B),
            ),
            vs,
            CHAIN,
        )
    with pytest.raises(DecodeError):
        decode_evidence(raw.replace(b"duplicate_chits", b"duplicate_chitz"))


def test_two_proposals_of_one_slot_become_evidence():
    ks = keys(4)
    vs = ValidatorSet.create({k.public_key: 1 for k in ks})
    proposer = vs.proposer(0).public_key
    pkey = next(k for k in ks if k.public_key == proposer)
    me = next(k for k in ks if k.public_key != proposer)
    m = snowman(me, vs, WriteAheadLog(None))
    m.receive(Proposal.sign(pkey, CHAIN, 1, 0, -1, b"x", sha256(b"x")))
    out = m.receive(Proposal.sign(pkey, CHAIN, 1, 0, -1, b"y", sha256(b"y")))
    [evidence] = [a.evidence for a in out if isinstance(a, ReportEvidence)]
    assert isinstance(evidence, DuplicateProposalEvidence)
    assert verify_evidence(evidence, vs, CHAIN).public_key == proposer
    assert not any(isinstance(a, Broadcast) for a in out)


@pytest.mark.parametrize("seed", range(4))
def test_lying_pollers_are_caught_and_honest_ones_never(seed):
    """Seeded runs with a byzantine validator that at times answers a poll twice,
    and an honest one crashed and restarted mid-run: evidence names only the
    liar (the simulator counts evidence against an honest validator, and an
    honest validator signing twice for one slot, as violations)."""
    liar = seed % 4
    sim = Simulation(
        4,
        seed=seed,
        engine="snowman",
        snowman=SnowmanParams(beta=5),
        byzantine={liar: "double_voter"},
        max_delay=0.08,
    )
    sim.run(1.0)
    restarted = (liar + 1) % 4
    sim.crash(restarted)
    sim.run(sim.now + 0.3)
    sim.restart(restarted)
    sim.run(sim.now + 2.0)
    assert sim.violations == []
    assert sim.evidence, "the liar's double answers went unnoticed"
    assert {ev.validator for ev in sim.evidence} == {sim.nodes[liar].key.public_key}
