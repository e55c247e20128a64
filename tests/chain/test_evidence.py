"""Duplicate-vote evidence: pooled, included in a block, slashed once, refused otherwise."""

from __future__ import annotations

from dataclasses import replace

import pytest

from focusflow.chain.block import BlockRecord
from focusflow.chain.committer import BLOCK_EVENTS_PREFIX
from focusflow.chain.errors import (
    AlreadyPunishedError,
    BlockError,
    EvidenceError,
    EvidenceOutOfRangeError,
    EvidencePoolFullError,
    GenesisError,
)
from focusflow.chain.evidence_pool import EvidencePool, slashed_key
from focusflow.consensus import DuplicateVoteEvidence, Step, Vote, encode_evidence
from focusflow.consensus.sim import Simulation
from focusflow.core.encoding import decode, encode
from focusflow.core.hashing import merkle_root, sha256
from focusflow.core.keys import KeyPair
from focusflow.node import open_chain
from focusflow.state_schema.accounts import get_account
from focusflow.store import height_key
from tests.chain.evidence_helpers import (
    BONDED,
    BYZ,
    CHAIN_ID,
    KEYS,
    OUTSIDER,
    SLASHED,
    bonded,
    double_vote,
    forge,
    genesis,
    step,
)


def supply(chain) -> int:
    with chain.reader() as r:
        return sum(
            get_account(r, k.address_raw).balance + get_account(r, k.address_raw).bonded
            for k in KEYS
        )


@pytest.fixture(scope="module")
def slashed(tmp_path_factory):
    """A producer that slashed BYZ for height 2 in block 3, and a follower that replayed it."""
    base = tmp_path_factory.mktemp("evidence")
    gen = genesis(evidence_max_age=2, max_block_evidence=2)
    producer = open_chain(base / "a", gen, KEYS[0])
    step(producer)
    step(producer)
    before = supply(producer)
    assert producer.add_evidence(double_vote(BYZ, 2)) is True
    result = step(producer)
    follower = open_chain(base / "b", gen)
    for record in producer.records(1):
        follower.apply_block(record.encode())
    return producer, follower, result, before


def test_block_with_evidence_slashes_the_documented_amount(slashed):
    producer, _, result, before = slashed
    evidence = double_vote(BYZ, 2)
    block = result.block
    assert block.evidence == (encode_evidence(evidence),)
    assert block.header.evidence_root == merkle_root([encode_evidence(evidence)])
    assert bonded(producer, BYZ) == BONDED - SLASHED == BONDED - BONDED * 500 // 10_000
    assert bonded(producer, KEYS[2]) == BONDED
    assert supply(producer) == before - SLASHED  # burned, credited to nobody
    event = {
        "type": "slash",
        "validator": BYZ.address_raw,
        "public_key": BYZ.public_key,
        "height": 2,
        "evidence": evidence.hash(),
        "amount": SLASHED,
        "unbonding": 0,
        "bonded": BONDED - SLASHED,
    }
    jail = {
        "type": "jail",
        "validator": BYZ.address_raw,
        "public_key": BYZ.public_key,
        "until": 3 + 1_000,
    }
    # The offender leaves the set at the next height (docs/consensus.md §7).
    others = sorted((k for k in KEYS if k is not BYZ), key=lambda k: k.address_raw)
    changed = {
        "type": "validator_set",
        "height": 4,
        "validators": [[k.public_key, 1] for k in others],
    }
    assert result.events == [event, jail, changed]
    with producer.reader() as r:
        assert r.get(slashed_key(BYZ.public_key, 2)) == encode([3, SLASHED])
        assert decode(r.index(BLOCK_EVENTS_PREFIX + height_key(3)), "events") == [
            event,
            jail,
            changed,
        ]
    assert len(producer.evidence) == 0  # included: pruned from the pool


def test_blocks_without_evidence_carry_the_empty_root(slashed):
    producer, *_ = slashed
    for height in (0, 1, 2):
        header = producer.block_record(height).block.header
        assert header.evidence_root == sha256(b"") == merkle_root([])


def test_two_fresh_chains_replaying_the_blocks_agree(slashed, tmp_path):
    producer, follower, _, _ = slashed
    other = open_chain(tmp_path / "c", genesis(evidence_max_age=2, max_block_evidence=2))
    for record in producer.records(1):
        other.apply_block(BlockRecord.decode(record.encode()))
    assert follower.store.root == other.store.root == producer.store.root
    assert bonded(follower, BYZ) == bonded(other, BYZ) == BONDED - SLASHED


def test_the_same_offence_cannot_be_pooled_again(slashed):
    producer, *_ = slashed
    with pytest.raises(AlreadyPunishedError):
        producer.add_evidence(double_vote(BYZ, 2))
    with pytest.raises(AlreadyPunishedError):  # another step, same (validator, height)
        producer.add_evidence(double_vote(BYZ, 2, Step.PRECOMMIT))


def _tampered() -> bytes:
    ev = double_vote(KEYS[2], 3)
    bad = replace(ev.vote_b, signature=bytes(64))
    return encode_evidence(DuplicateVoteEvidence(ev.vote_a, bad))


def _same_value() -> bytes:
    vote = Vote.sign(KEYS[2], CHAIN_ID, 3, 0, Step.PREVOTE, sha256(b"x"))
    return encode_evidence(DuplicateVoteEvidence(vote, vote))


def _reversed() -> bytes:
    ev = double_vote(KEYS[2], 3)
    return encode_evidence(DuplicateVoteEvidence(ev.vote_b, ev.vote_a))


BAD_EVIDENCE = {
    "already punished": ([encode_evidence(double_vote(BYZ, 2))], "already_punished.*already"),
    "punished, other step": (
        [encode_evidence(double_vote(BYZ, 2, Step.PRECOMMIT))],
        "already_punished.*already",
    ),
    "too old": ([encode_evidence(double_vote(KEYS[2], 1))], "evidence_out_of_range.*older"),
    "future": ([encode_evidence(double_vote(KEYS[2], 4))], "evidence_out_of_range"),
    "unknown validator": (
        [encode_evidence(double_vote(OUTSIDER, 3))],
        "invalid_evidence.*not in the validator set",
    ),
    "bad signature": ([_tampered()], "invalid_evidence.*signature"),
    "same value": ([_same_value()], "invalid_evidence.*same value"),
    "other chain": (
        [encode_evidence(double_vote(KEYS[2], 3, chain_id="elsewhere"))],
        "invalid_evidence.*signature",
    ),
    "non-canonical order": ([_reversed()], "invalid_evidence.*canonical order"),
    "twice in one block": (
        [encode_evidence(double_vote(KEYS[2], 3)), encode_evidence(double_vote(KEYS[2], 3))],
        "already_punished.*twice",
    ),
    "same offence twice": (
        [
            encode_evidence(double_vote(KEYS[2], 3)),
            encode_evidence(double_vote(KEYS[2], 3, Step.PRECOMMIT)),
        ],
        "already_punished.*twice",
    ),
    "over max_block_evidence": (
        [
            encode_evidence(double_vote(KEYS[1], 3)),
            encode_evidence(double_vote(KEYS[2], 3)),
            encode_evidence(double_vote(KEYS[2], 2)),
        ],
        "max_block_evidence",
    ),
    "malformed": ([b"\x82\x01\x02"], "bad evidence"),
}


@pytest.mark.parametrize("case", list(BAD_EVIDENCE))
def test_invalid_evidence_makes_the_block_invalid_and_changes_nothing(slashed, case):
    producer, follower, _, _ = slashed
    pieces, pattern = BAD_EVIDENCE[case]
    record = forge(producer, pieces)
    head, root = follower.head, follower.store.root
    with pytest.raises(BlockError, match=pattern):
        follower.apply_block(record.encode())
    with pytest.raises(BlockError, match=pattern):
        producer.validate(record)
    assert follower.head == head and follower.store.root == root
    assert producer.head == head and producer.store.root == root


def test_valid_forged_evidence_passes_the_evidence_checks(slashed):
    """The control for the cases above: a fresh offence gets as far as the roots
    (the forged header's state root predates the slash)."""
    producer, follower, _, _ = slashed
    record = forge(producer, [encode_evidence(double_vote(KEYS[1], 3))])
    with pytest.raises(BlockError, match="roots differ"):
        follower.validate(record)


def test_evidence_root_must_match_the_body(slashed):
    producer, follower, _, _ = slashed
    record = forge(producer, [encode_evidence(double_vote(KEYS[2], 3))], root=sha256(b""))
    with pytest.raises(BlockError, match="evidence_root"):
        follower.apply_block(record)


def test_pool_holds_one_piece_per_offence_and_refuses_invalid(tmp_path):
    chain = open_chain(tmp_path, genesis(), KEYS[0])
    step(chain)
    assert chain.add_evidence(double_vote(KEYS[1], 1)) is True
    assert chain.add_evidence(double_vote(KEYS[1], 1)) is False
    assert chain.add_evidence(double_vote(KEYS[1], 1, Step.PRECOMMIT)) is False
    assert chain.add_evidence(double_vote(KEYS[1], 2)) is True  # the height under consensus
    with pytest.raises(EvidenceOutOfRangeError):
        chain.add_evidence(double_vote(KEYS[1], 3))
    with pytest.raises(EvidenceError):
        chain.add_evidence(double_vote(OUTSIDER, 1))
    assert len(chain.evidence) == 2
    # Block 2 takes the height-1 evidence; the height-2 one waits for block 3.
    result = step(chain)
    assert [e["height"] for e in result.events if e["type"] == "slash"] == [1]
    assert len(chain.evidence) == 1
    assert chain.validators.power_of(KEYS[1].public_key) == 0  # jailed: out from height 3
    # Its offence at height 2, when it was still in the set, is punished too.
    result = step(chain)
    assert [e["height"] for e in result.events if e["type"] == "slash"] == [2]
    assert bonded(chain, KEYS[1]) == BONDED - SLASHED - (BONDED - SLASHED) * 500 // 10_000
    assert len(chain.evidence) == 0


def test_pool_is_bounded(tmp_path):
    chain = open_chain(tmp_path, genesis(), KEYS[0])
    pool = EvidencePool(chain.chain_id, chain.valsets.at, chain.params, capacity=1)
    with chain.reader() as r:
        assert pool.add(double_vote(KEYS[1], 1), 0, r)
        with pytest.raises(EvidencePoolFullError):
            pool.add(double_vote(KEYS[2], 1), 0, r)


def test_expired_pool_evidence_is_dropped(tmp_path):
    chain = open_chain(tmp_path, genesis(evidence_max_age=1, max_block_evidence=0), KEYS[0])
    step(chain)
    assert chain.add_evidence(double_vote(KEYS[1], 1))
    assert step(chain).block.evidence == ()  # no room in blocks
    assert len(chain.evidence) == 0  # block 3 could not include it any more
    assert bonded(chain, KEYS[1]) == BONDED


def test_zero_slash_fraction_records_the_offence_and_burns_nothing(tmp_path):
    chain = open_chain(tmp_path, genesis(slash_fraction=0), KEYS[0])
    step(chain)
    chain.add_evidence(double_vote(KEYS[1], 1))
    result = step(chain)
    assert result.events[0]["amount"] == 0
    assert bonded(chain, KEYS[1]) == BONDED
    with pytest.raises(AlreadyPunishedError):
        chain.add_evidence(double_vote(KEYS[1], 1))


def test_slash_fraction_is_at_most_the_whole_stake():
    with pytest.raises(GenesisError, match="basis points"):
        genesis(slash_fraction=10_001)


def test_byzantine_double_voter_in_simulation_ends_in_a_slash(tmp_path):
    seed = 3
    sim = Simulation(4, seed=seed, byzantine={3: "double_voter"}, max_delay=0.08)
    sim.run(2.0)
    assert sim.evidence
    evidence = min(sim.evidence, key=lambda e: e.height)
    keys = [KeyPair.from_seed(sha256(b"sim-validator-%d-%d" % (seed, i))) for i in range(4)]
    assert evidence.validator == keys[3].public_key
    gen = genesis(keys=keys, chain_id=sim.chain_id, evidence_max_age=100)
    chain = open_chain(tmp_path, gen, keys[0])
    while chain.height < evidence.height:
        step(chain, keys)
    assert chain.add_evidence(evidence)
    result = step(chain, keys)
    assert [(e["type"], e["public_key"], e.get("amount")) for e in result.events[:2]] == [
        ("slash", keys[3].public_key, SLASHED),
        ("jail", keys[3].public_key, None),
    ]
    assert chain.validators.power_of(keys[3].public_key) == 0
    assert bonded(chain, keys[3]) == BONDED - SLASHED
