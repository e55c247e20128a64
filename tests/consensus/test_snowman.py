"""Snowman's parts: Snowball counters, parameters and their risk, poll messages,
and one machine's handling of queries and chits (the seeded schedules of the
whole network are in test_engines.py)."""

from __future__ import annotations

import random

import pytest
from scipy.stats import hypergeom

from focusflow.consensus import Proposal, Signer, Step, Tendermint, Vote, WriteAheadLog
from focusflow.consensus.actions import Accept, Broadcast, ScheduleTimeout, SendTo
from focusflow.consensus.engine import ConsensusEngine, PollingEngine
from focusflow.consensus.errors import InvalidMessageError
from focusflow.consensus.fallback import Fallback
from focusflow.consensus.messages import proposal_sign_bytes, vote_sign_bytes
from focusflow.consensus.poll_messages import (
    Chits,
    Query,
    Switch,
    chits_sign_bytes,
    decode_poll_message,
    encode_poll_message,
    query_sign_bytes,
    switch_sign_bytes,
)
from focusflow.consensus.sim import Simulation
from focusflow.consensus.snowball import (
    Snowball,
    SnowmanParams,
    failure_probability,
    poll_success_probability,
)
from focusflow.consensus.snowman import Snowman
from focusflow.consensus.validators import ValidatorSet
from focusflow.core.encoding import encode
from focusflow.core.errors import DecodeError, InvalidParameterError
from focusflow.core.hashing import sha256
from focusflow.core.keys import verify

from .harness import CHAIN, keys

A, B, C = sha256(b"a"), sha256(b"b"), sha256(b"c")


# ------------------------------------------------------------------ Snowball


RANK = {A: 0, B: 1, C: 2}


def reference_snowball(polls, ap, ac, beta):
    """The rule as the paper and avalanchego state it, written out plainly, with
    our nudge on polls that prefer nothing (snowball.py)."""
    pref, strength, last, conf, final = None, {}, None, 0, None
    for choices, counts in polls:
        for c in choices:
            if c not in strength:
                strength[c] = 0
                if pref is None:
                    pref = c
        if final is not None:
            continue
        known = {c: n for c, n in counts.items() if c in strength}
        top = max(known, key=lambda c: (known[c], c)) if known else None
        if top is None or known[top] < ap:
            conf = 0
            if known:
                plural = min(known, key=lambda c: (-known[c], RANK[c], c))
                mine = known.get(pref, 0)
                if known[plural] > mine or (
                    known[plural] == mine and (RANK[plural], plural) < (RANK[pref], pref)
                ):
                    pref = plural
            continue
        strength[top] += 1
        if strength[top] > strength[pref]:
            pref = top
        if known[top] < ac:
            conf = 0
            continue
        conf = conf + 1 if top == last else 1
        last = top
        if conf >= beta:
            final = top
    return pref, final


def test_snowball_matches_the_rule_on_random_poll_sequences():
    rng = random.Random(7)
    finals = switches = 0
    for _ in range(300):
        k, beta = 5, rng.randint(1, 4)
        ap = rng.randint(3, 5)
        ac = rng.randint(ap, 5)
        sb = Snowball(ap, ac, beta)
        polls = []
        for _ in range(rng.randint(1, 30)):
            new = [c for c in (A, B, C) if rng.random() < 0.2]
            counts: dict[bytes, int] = {}
            for _ in range(k):
                c = rng.choice([A, B, C, None])
                if c is not None:
                    counts[c] = counts.get(c, 0) + 1
            polls.append((new, counts))
        for new, counts in polls:
            for c in new:
                sb.add(c, RANK[c])
            sb.record(counts)
        pref, final = reference_snowball(polls, ap, ac, beta)
        assert sb.finalized == final
        assert sb.preference == pref
        finals += final is not None
        switches += pref not in (None, *(c for new, _ in polls[:1] for c in new))
    assert finals >= 10 and switches >= 10  # the comparison covered both outcomes


def test_snowball_needs_beta_consecutive_confident_polls():
    sb = Snowball(3, 4, 3)
    sb.add(A)
    sb.add(B, 1)
    sb.record({A: 4})
    sb.record({A: 4})
    sb.record({A: 3})  # preferred (>= 3) but not confident: the run restarts
    assert sb.confidence == 0 and sb.finalized is None
    sb.record({A: 4})
    sb.record({B: 4})  # another choice: run of 1 for B
    assert (sb.last, sb.confidence) == (B, 1)
    assert sb.preference == A  # A has strength 4, B 1
    for _ in range(2):
        sb.record({B: 4})
    assert sb.finalized == B


def test_a_poll_without_a_preferred_choice_moves_the_preference_to_its_plurality():
    sb = Snowball(3, 3, 4)
    sb.add(A)
    sb.add(B, 1)
    for _ in range(3):
        sb.record({B: 3})  # B gathers strength while all four answer
    assert sb.preference == B
    sb.record({A: 2, B: 1})  # one is down: 2 to 1 for A, below 3
    assert sb.preference == A and sb.strength == {A: 0, B: 3} and sb.confidence == 0
    for _ in range(3):
        sb.record({A: 3})
    assert sb.finalized is None and sb.preference == A
    sb.record({A: 3})
    assert sb.finalized == A


def test_snowball_keeps_its_first_choice_until_polls_say_otherwise():
    one, two = Snowball(3, 3, 2), Snowball(3, 3, 2)
    one.add(B, 1)
    one.add(A, 0)
    two.add(A, 0)
    two.add(B, 1)
    assert (one.preference, two.preference) == (B, A)  # first heard, not rank
    for sb in (one, two):
        sb.record({A: 2, B: 2})  # two against two: the better rank, on that evidence
    assert one.preference == two.preference == A
    one.record({B: 3})
    assert one.preference == B  # strength 1 against 0
    one.record({A: 3})
    assert one.preference == B  # a tie of strengths keeps it


# ------------------------------------------------------- parameters and risk


def test_params_are_checked():
    with pytest.raises(InvalidParameterError):
        SnowmanParams(k=20, alpha_preference=10)  # not above k/2
    with pytest.raises(InvalidParameterError):
        SnowmanParams(alpha_preference=16, alpha_confidence=15)
    with pytest.raises(InvalidParameterError):
        SnowmanParams(beta=0)
    with pytest.raises(InvalidParameterError, match="poll_timeout_max"):
        SnowmanParams(poll_timeout=0.5, poll_timeout_max=0.4)
    assert SnowmanParams().effective(64) == (20, 15, 15)
    assert SnowmanParams().effective(16) == (16, 9, 11)
    assert SnowmanParams().effective(7) == (7, 4, 5)
    assert SnowmanParams().effective(4) == (4, 3, 3)


@pytest.mark.parametrize(
    "params",
    [SnowmanParams(), SnowmanParams(k=10, alpha_preference=8, alpha_confidence=8)],
)
def test_a_poll_of_everyone_needs_no_more_than_the_live_quorum(params):
    """With no more validators than ``k``, ``f = (n - 1) // 3`` of them down still
    leave ``alpha_confidence`` answers (live, as Tendermint is), and two confident
    polls for different values share more than ``f`` answerers (safe against ``f``
    liars, by quorum intersection)."""
    for n in range(1, params.k + 1):
        k, ap, ac = params.effective(n)
        f = (n - 1) // 3
        assert k == n and n / 2 < ap <= ac <= n - f
        assert 2 * ac - n > f


@pytest.mark.parametrize(
    ("total", "agreeing", "k", "alpha"),
    [(64, 21, 20, 15), (16, 5, 16, 12), (100, 33, 20, 15), (7, 2, 7, 6), (50, 30, 10, 8)],
)
def test_poll_success_probability_against_scipy(total, agreeing, k, alpha):
    ours = poll_success_probability(total, agreeing, k, alpha)
    theirs = hypergeom(total, agreeing, k).sf(alpha - 1)
    assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-300)


def test_failure_probability_figures():
    p = SnowmanParams()
    small = failure_probability(p, 4, 1)
    assert small == {"byzantine_only": 0.0, "split": 0.0}  # 3 of 4 needs 2 liars
    big = failure_probability(p, 64, 21)
    one_poll = hypergeom(64, 21, 20).sf(14)
    assert big["byzantine_only"] == pytest.approx(one_poll**20, rel=1e-6)
    assert 0 < big["byzantine_only"] < 1e-100
    assert big["byzantine_only"] <= big["split"] < 1e-9


# ------------------------------------------------------------------ messages


def test_poll_messages_round_trip_and_refuse_malformed_input():
    ks = keys(4)
    q = Query.sign(ks[0], CHAIN, 5, 7)
    c = Chits.sign(ks[1], CHAIN, 5, ks[0].public_key, 7, A)
    nil = Chits.sign(ks[1], CHAIN, 5, ks[0].public_key, 8, None)
    polka = tuple(Vote.sign(k, CHAIN, 5, 1, Step.PREVOTE, A) for k in ks[:3])
    s = Switch.sign(ks[2], CHAIN, 5, 1, A, polka)
    free = Switch.sign(ks[3], CHAIN, 5, -1, None, ())
    for m in (q, c, nil, s, free):
        assert decode_poll_message(encode_poll_message(m)) == m
    bad = [
        encode(["query", 5, 7, ks[0].public_key]),
        encode(["query", -1, 7, ks[0].public_key, bytes(64)]),
        encode(["chits", 5, ks[0].public_key, 7, b"short", ks[1].public_key, bytes(64)]),
        encode(["switch", 5, 1, None, [], ks[2].public_key, bytes(64)]),
        encode(
            [
                "switch",
                5,
                1,
                A,
                [["vote", 5, 1, 2, A, ks[0].public_key, bytes(64)]],
                ks[2].public_key,
                bytes(64),
            ]
        ),
        encode(["switch", 5, 1, A, [0] * 1025, ks[2].public_key, bytes(64)]),
        encode(["nonsense"]),
    ]
    for data in bad:
        with pytest.raises(DecodeError):
            decode_poll_message(data)


def test_domains_keep_signatures_apart():
    """A chits, query or switch signature never verifies as a proposal or vote."""
    k = keys(1)[0]
    c = Chits.sign(k, CHAIN, 1, k.public_key, 0, A)
    q = Query.sign(k, CHAIN, 1, 0)
    s = Switch.sign(k, CHAIN, 1, 0, A, ())
    others = [
        proposal_sign_bytes(CHAIN, 1, 0, -1, A),
        vote_sign_bytes(CHAIN, 1, 0, Step.PREVOTE, A),
        vote_sign_bytes(CHAIN, 1, 0, Step.PRECOMMIT, A),
        query_sign_bytes(CHAIN, 1, 0),
        chits_sign_bytes(CHAIN, 1, k.public_key, 0, A),
        switch_sign_bytes(CHAIN, 1, 0, A),
    ]
    for m in (c, q, s):
        valid = [b for b in others if verify(k.public_key, m.signature, b)]
        assert valid == [m.sign_bytes(CHAIN)]


# ------------------------------------------------------------ one machine


def machine(n=4, me=0, params=None):
    ks = keys(n)
    vs = ValidatorSet.create({k.public_key: 1 for k in ks})
    m = Snowman(
        CHAIN,
        signer=Signer(ks[me], CHAIN, WriteAheadLog(None)),
        get_value=lambda h: b"block of %d" % me,
        is_valid=lambda h, v: True,
        params=params or SnowmanParams(beta=2, concurrent_polls=1),
        rng=random.Random(1),
    )
    actions = m.start_height(1, vs)
    return ks, vs, m, actions


def proposal_from_schedule(ks, vs, value=b"v"):
    p0 = vs.proposer(0).public_key
    key = next(k for k in ks if k.public_key == p0)
    return Proposal.sign(key, CHAIN, 1, 0, -1, value, sha256(value))


def test_a_machine_polls_counts_one_answer_per_sampled_peer_and_accepts():
    ks, vs, m, actions = machine(me=1 if vs_proposer_index() == 0 else 0)
    p = proposal_from_schedule(ks, vs)
    if not any(isinstance(a, Broadcast) for a in actions):
        actions = m.receive(p)
    decided = None
    for _ in range(10):
        queries = [a for a in actions if isinstance(a, SendTo) and isinstance(a.message, Query)]
        if not queries:
            break
        q = queries[0].message
        assert set(queries[0].peers) == {k.public_key for k in ks} - {m.signer.public_key}
        actions = []
        for k in ks:
            if k.public_key in queries[0].peers:
                c = Chits.sign(k, CHAIN, 1, q.requester, q.poll, m.preference())
                actions += m.receive(c)
                assert m.receive(c) == []  # a second copy does not count again
        decided = next((a for a in actions if isinstance(a, Accept)), decided)
    assert decided is not None and decided.value_id == m.preference()
    assert decided.polls == 2


def open_poll(actions):
    """The query and timer of the one poll ``actions`` open."""
    (send,) = [a for a in actions if isinstance(a, SendTo) and isinstance(a.message, Query)]
    (timer,) = [
        a for a in actions if isinstance(a, ScheduleTimeout) and a.timeout.step == Step.PREVOTE
    ]
    return send, timer


def test_a_poll_ends_at_a_quorum_without_waiting_for_the_missing_answer():
    ks, vs, m, actions = machine(me=1 if vs_proposer_index() == 0 else 0)
    if not any(isinstance(a, Broadcast) for a in actions):
        actions = m.receive(proposal_from_schedule(ks, vs))
    send, timer = open_poll(actions)
    assert timer.delay == SnowmanParams().poll_timeout
    q = send.message
    first, second, silent = (k for k in ks if k.public_key in send.peers)
    # Its own answer and one more: 2 of 4, short of alpha_confidence (3).
    assert m.receive(Chits.sign(first, CHAIN, 1, q.requester, q.poll, m.preference())) == []
    # The third agreeing answer is a quorum: the poll ends now (the next one
    # opens), though ``silent`` never answered and the timer has not fired.
    actions = m.receive(Chits.sign(second, CHAIN, 1, q.requester, q.poll, m.preference()))
    following, _ = open_poll(actions)
    assert following.message.poll != q.poll
    assert m.snowball.polls == 1 and m.snowball.confidence == 1
    # A late answer to the ended poll counts for nothing.
    assert m.receive(Chits.sign(silent, CHAIN, 1, q.requester, q.poll, m.preference())) == []
    assert m.snowball.polls == 1


def test_an_answer_after_its_polls_timer_lengthens_the_next_timers():
    params = SnowmanParams(beta=2, concurrent_polls=1, poll_timeout=0.2, poll_timeout_max=0.5)
    ks, vs, m, actions = machine(me=1 if vs_proposer_index() == 0 else 0, params=params)
    if not any(isinstance(a, Broadcast) for a in actions):
        actions = m.receive(proposal_from_schedule(ks, vs))
    # A poll nobody answers in time: a validator down lengthens nothing.
    send, timer = open_poll(actions)
    actions = m.on_timeout(timer.timeout)
    assert m.poll_timeout == 0.2
    # Its answers come after the timer: the next polls get twice its time, once
    # per poll, and never more than poll_timeout_max.
    late = send.message
    responder = next(k for k in ks if k.public_key in send.peers)
    for _ in range(2):
        m.receive(Chits.sign(responder, CHAIN, 1, late.requester, late.poll, None))
    assert m.poll_timeout == 0.4
    delays = []
    for _ in range(2):
        send, timer = open_poll(actions)
        delays.append(timer.delay)
        actions = m.on_timeout(timer.timeout)
        q = send.message
        m.receive(Chits.sign(responder, CHAIN, 1, q.requester, q.poll, None))
    # The poll opened before the late answer kept its 0.2 s; the next got 0.4 s,
    # and its own late answer took the timer to the ceiling.
    assert delays == [0.2, 0.4] and m.poll_timeout == 0.5
    # Polls that end early bring it down, 1% each, never below poll_timeout.
    for _ in range(200):
        send, timer = open_poll(actions)
        q = send.message
        for k in ks:
            if k.public_key in send.peers:
                actions = m.receive(Chits.sign(k, CHAIN, 1, q.requester, q.poll, None))
    assert m.poll_timeout == 0.2


def test_a_forged_late_answer_is_refused_and_lengthens_nothing():
    """The late-answer path checks the signature before it touches the timer: a
    peer cannot stretch every poll of a validator to ``poll_timeout_max`` with
    answers it did not sign, nor with answers to polls it was not asked."""
    params = SnowmanParams(beta=2, concurrent_polls=1, poll_timeout=0.2, poll_timeout_max=3.2)
    ks, vs, m, actions = machine(me=1 if vs_proposer_index() == 0 else 0, params=params)
    if not any(isinstance(a, Broadcast) for a in actions):
        actions = m.receive(proposal_from_schedule(ks, vs))
    send, timer = open_poll(actions)
    m.on_timeout(timer.timeout)
    q = send.message
    responder = next(k for k in ks if k.public_key in send.peers)
    real = Chits.sign(responder, CHAIN, 1, q.requester, q.poll, None)
    forged = Chits(real.height, real.requester, real.poll, None, real.responder, bytes(64))
    with pytest.raises(InvalidMessageError):
        m.receive(forged)
    assert m.poll_timeout == 0.2
    # A validly signed answer to a poll number never issued counts for nothing.
    assert m.receive(Chits.sign(responder, CHAIN, 1, q.requester, q.poll + 1, None)) == []
    assert m.poll_timeout == 0.2


def test_a_query_for_a_decided_height_is_answered_while_the_next_waits_for_a_proposal():
    """A validator that decided and moved on answers a laggard's query for the
    decided height at once, though its own height has no proposal yet: held
    until then, the laggard's polls stayed short of a quorum (a validator that
    decided first stalled the others for a second in seeded schedules)."""
    ks, vs, m, actions = machine(me=1 if vs_proposer_index() == 0 else 0)
    if not any(isinstance(a, Broadcast) for a in actions):
        actions = m.receive(proposal_from_schedule(ks, vs))
    m.record_decision(1, b"v", sha256(b"v"))
    m.start_height(2, vs)
    assert m.preference() is None  # no proposal of height 2 here yet
    asker = next(k for k in ks if k.public_key != m.signer.public_key)
    out = m.receive(Query.sign(asker, CHAIN, 1, 7))
    chits = [a.message for a in out if isinstance(a, SendTo) and isinstance(a.message, Chits)]
    assert [(c.height, c.poll, c.value_id) for c in chits] == [(1, 7, sha256(b"v"))]
    # A query for the running height still waits for a preference.
    assert m.receive(Query.sign(asker, CHAIN, 2, 8)) == []


def test_snowman_stays_live_when_answers_come_later_than_the_poll_timer():
    """Four validators, one crashed, round trips up to 0.3 s against a 0.2 s
    poll timer: every poll needs all three live answers. A fixed timer left
    them short of the quorum poll after poll (no height in 20 s here; a test
    network on a loaded 2-core machine stalled so)."""
    sim = Simulation(4, seed=0, engine="snowman", notarise=True, max_delay=0.15)
    sim.run(2.0)
    sim.crash(3)
    start = sim.min_honest_height()
    sim.run(sim.now + 20.0)
    assert sim.min_honest_height() >= start + 5
    assert sim.violations == []


def vs_proposer_index():
    ks = keys(4)
    vs = ValidatorSet.create({k.public_key: 1 for k in ks})
    return [k.public_key for k in ks].index(vs.proposer(0).public_key)


def test_a_machine_refuses_what_is_provably_bad():
    ks, vs, m, _ = machine()
    outsider = keys(1, b"outsider")[0]
    with pytest.raises(InvalidMessageError):
        m.receive(Query.sign(outsider, CHAIN, 1, 0))
    broken = Query.sign(ks[1], CHAIN, 1, 0)
    with pytest.raises(InvalidMessageError):
        m.receive(Query(broken.height, broken.poll, broken.requester, bytes(64)))
    with pytest.raises(InvalidMessageError):
        m.receive(Vote.sign(ks[1], CHAIN, 1, 0, Step.PREVOTE, None))
    wrong = next(k for k in ks if k.public_key != vs.proposer(0).public_key)
    with pytest.raises(InvalidMessageError):
        m.receive(Proposal.sign(wrong, CHAIN, 1, 0, -1, b"x", sha256(b"x")))


def test_a_query_is_answered_with_the_preference_once_there_is_one():
    ks, vs, m, _ = machine(me=1 if vs_proposer_index() == 0 else 0)
    asker = next(k for k in ks if k.public_key != m.signer.public_key)
    q = Query.sign(asker, CHAIN, 1, 3)
    out = m.receive(q)
    if m.preference() is None:
        assert out == []  # held until a proposal is known
        out = m.receive(proposal_from_schedule(ks, vs))
    chits = [a.message for a in out if isinstance(a, SendTo) and isinstance(a.message, Chits)]
    assert [(c.requester, c.poll, c.value_id) for c in chits] == [
        (asker.public_key, 3, m.preference())
    ]


def test_every_engine_offers_the_interface():
    ks = keys(4)
    common = dict(
        signer=Signer(ks[0], CHAIN, WriteAheadLog(None)),
        get_value=lambda h: b"v",
        is_valid=lambda h, v: True,
    )
    engines: list[ConsensusEngine | PollingEngine] = [
        Tendermint(CHAIN, **common),
        Snowman(CHAIN, **common),
        Fallback(CHAIN, **common),
    ]
    vs = ValidatorSet.create({k.public_key: 1 for k in ks})
    for e in engines:
        assert e.height == -1
        e.start_height(1, vs)
        assert e.height == 1


def test_engine_config_reads_a_genesis_section_and_writes_nothing_at_defaults():
    from focusflow.consensus.engine import EngineConfig

    assert EngineConfig().to_plain() == {}
    assert EngineConfig.from_plain({}) == EngineConfig()
    plain = {"engine": "snowman", "k": 10, "alpha_preference": 7, "alpha_confidence": 8, "beta": 12}
    config = EngineConfig.from_plain(plain)
    assert config.engine == "snowman" and config.snowman.effective(100) == (10, 7, 8)
    assert config.to_plain() == plain
    assert EngineConfig.from_plain(config.to_plain()) == config
    for bad in (
        {"engine": "pow"},
        {"engine": 1},
        {"k": "20"},
        {"beta": True},
        {"k": 20, "alpha_preference": 5},
        {"switch_after_rounds": 0},
        {"kappa": 1},
    ):
        with pytest.raises(InvalidParameterError):
            EngineConfig.from_plain(bad)


def test_decoding_random_and_mutated_poll_messages_raises_only_decode_error():
    ks = keys(4)
    polka = tuple(Vote.sign(k, CHAIN, 5, 1, Step.PREVOTE, A) for k in ks[:3])
    good = [
        encode_poll_message(m)
        for m in (
            Query.sign(ks[0], CHAIN, 5, 7),
            Chits.sign(ks[1], CHAIN, 5, ks[0].public_key, 7, A),
            Switch.sign(ks[2], CHAIN, 5, 1, A, polka),
        )
    ]
    rng = random.Random(11)
    refused = 0
    for _ in range(3000):
        data = bytearray(rng.choice(good))
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.2:
            data = bytearray(rng.randbytes(rng.randint(0, 64)))
        try:
            decode_poll_message(bytes(data))
        except DecodeError:
            refused += 1
    assert refused > 1000  # most mutations break the message; none raised otherwise
