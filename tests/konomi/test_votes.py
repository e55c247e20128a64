"""Cube votes: the 2/3 rule, vertex keys, conflicting votes and their evidence."""

from __future__ import annotations

import hashlib

import pytest

from focusflow.core.keys import KeyPair
from focusflow.konomi import Cube
from focusflow.konomi.errors import (
    InvalidOperationError,
    InvalidVoteEvidenceError,
    LedgerBadSignatureError,
    LedgerNoQuorumError,
    LedgerOutOfOrderError,
    UnknownVertexError,
)
from focusflow.konomi.ledger import Ledger, proposal_digest, verify_ledger
from focusflow.konomi.votes import (
    QUORUM,
    VOTERS,
    Evidence,
    Tally,
    quorum,
    sign_vote,
    verify_evidence,
    vertex_keys,
)

SECRET = b"s" * 32


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def test_the_two_thirds_rule_of_eight_is_six():
    assert QUORUM == 6
    assert [k for k in range(9) if quorum(k)] == [6, 7, 8]
    assert all(quorum(k) == (3 * k >= 2 * 8) for k in range(9))


def test_vertex_keys_are_derived_from_the_cube_secret():
    a = vertex_keys(SECRET, "c1")
    assert a["NEU"].public_key == vertex_keys(SECRET, "c1")["NEU"].public_key
    assert len({k.public_key for k in a.values()}) == 8
    assert a["NEU"].public_key != vertex_keys(SECRET, "c2")["NEU"].public_key
    assert a["NEU"].public_key != vertex_keys(b"t" * 32, "c1")["NEU"].public_key


def _tally(cube: str = "c1", height: int = 1) -> tuple[Tally, dict[str, KeyPair]]:
    keys = vertex_keys(SECRET, cube)
    return Tally(cube, height, {v: k.public_key for v, k in keys.items()}), keys


def test_a_vertex_signing_two_proposals_is_caught_with_evidence_anyone_can_check():
    tally, keys = _tally()
    first = sign_vote(keys["SWD"], "c1", 1, "SWD", _digest("a"))
    second = sign_vote(keys["SWD"], "c1", 1, "SWD", _digest("b"))
    assert tally.add(first) is None
    assert tally.add(first) is None  # a repeat is no conflict
    evidence = tally.add(second)
    assert evidence == Evidence(first, second) and tally.evidence == [evidence]
    # Only the first vote counts: equivocating does not withdraw it.
    assert tally.votes["SWD"] == first
    # Anyone with the public key (from the genesis entry) checks it.
    verify_evidence(evidence, keys["SWD"].public_key)
    with pytest.raises(InvalidVoteEvidenceError):
        verify_evidence(evidence, keys["NEU"].public_key)
    with pytest.raises(InvalidVoteEvidenceError):
        verify_evidence(Evidence(first, first), keys["SWD"].public_key)
    other_height = sign_vote(keys["SWD"], "c1", 2, "SWD", _digest("b"))
    with pytest.raises(InvalidVoteEvidenceError):
        verify_evidence(Evidence(first, other_height), keys["SWD"].public_key)
    forged = sign_vote(keys["NEU"], "c1", 1, "SWD", _digest("b"))  # NEU's key, SWD's name
    with pytest.raises(InvalidVoteEvidenceError):
        verify_evidence(Evidence(first, forged), keys["SWD"].public_key)
    assert evidence.to_json()["second"]["digest"] == _digest("b").hex()


def test_the_tally_counts_only_valid_votes_of_its_cube_and_height():
    tally, keys = _tally()
    with pytest.raises(LedgerBadSignatureError):
        tally.add(sign_vote(keys["NEU"], "c1", 1, "NED", _digest("a")))
    with pytest.raises(LedgerOutOfOrderError):
        tally.add(sign_vote(keys["NEU"], "c1", 2, "NEU", _digest("a")))
    with pytest.raises(UnknownVertexError):
        tally.add(sign_vote(keys["NEU"], "c1", 1, "CENTRAL", _digest("a")))
    assert tally.votes == {}
    for v in VOTERS[:5]:
        tally.add(sign_vote(keys[v], "c1", 1, v, _digest("a")))
    assert tally.decision() is None
    tally.add(sign_vote(keys[VOTERS[5]], "c1", 1, VOTERS[5], _digest("a")))
    decision = tally.decision()
    assert decision is not None and decision.digest == _digest("a") and len(decision.votes) == 6


def _cube(cube_id: str = "v") -> Cube:
    cube = Cube(cube_id)
    cube.ledger = Ledger(cube_id, vertex_keys(SECRET, cube_id))
    return cube


def _votes(cube: Cube, payload: bytes, liars: int) -> list:
    """Honest votes for ``payload`` at the next height, and ``liars`` vertices
    voting for something else."""
    assert cube.ledger is not None
    height = cube.ledger.next_height
    digest = proposal_digest(cube.ledger.head, payload, {})
    out = []
    for i, v in enumerate(VOTERS):
        d = _digest("other") if i < liars else digest
        out.append(sign_vote(cube.ledger.keys[v], cube.id, height, v, d))
    return out


def test_two_byzantine_vertices_cannot_stop_a_decision_three_can():
    cube = _cube()
    entry = cube.decide(b"p1", votes=_votes(cube, b"p1", liars=2))
    assert entry.height == 1 and len(entry.votes) == 6
    with pytest.raises(LedgerNoQuorumError):
        cube.decide(b"p2", votes=_votes(cube, b"p2", liars=3))
    assert cube.ledger is not None and cube.ledger.next_height == 2  # nothing appended
    verify_ledger(cube.ledger.entries)


def test_a_double_signing_vertex_is_caught_while_deciding():
    cube = _cube()
    events: list[dict] = []
    cube.on_event = events.append
    votes = _votes(cube, b"p", liars=0)
    assert cube.ledger is not None
    votes.append(sign_vote(cube.ledger.keys["NEU"], cube.id, 1, "NEU", _digest("x")))
    entry = cube.decide(b"p", votes=votes)
    assert len(entry.votes) == 8
    assert len(cube.evidence) == 1 and cube.evidence[0].first.vertex == "NEU"
    verify_evidence(cube.evidence[0], cube.ledger.public_keys["NEU"])
    assert [e["event"] for e in events] == ["conflicting_vote", "decided"]


def test_a_cube_without_a_ledger_does_not_decide():
    with pytest.raises(InvalidOperationError):
        Cube("bare").decide(b"p")
