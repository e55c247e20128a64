"""The DAG mempool's batch equivocation is slashed like duplicate votes: pooled,
included, judged against its epoch's set, punished once per (validator, slot).

Epochs here are two blocks long: epoch 0 is heights 1..2, epoch 1 heights 3..4,
epoch 2 heights 5..6; evidence may be included up to two blocks after its
epoch's last height.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from focusflow.chain.block import sign_certificate
from focusflow.chain.errors import (
    AlreadyPunishedError,
    BlockError,
    EvidenceError,
    EvidenceOutOfRangeError,
)
from focusflow.chain.evidence_pool import slashed_key, slashed_slot_key
from focusflow.consensus import decode_evidence, encode_evidence
from focusflow.consensus.batches import (
    BATCH_EQUIVOCATION_HEAD,
    MAX_EVIDENCE_WIRE_BYTES,
    Batch,
    BatchCertificate,
    BatchEquivocation,
    BatchVote,
    encode_batch_equivocation,
)
from focusflow.consensus.dag_mempool import DagMempool
from focusflow.consensus.messages import MAX_INT
from focusflow.core.encoding import encode
from focusflow.core.errors import DecodeError
from focusflow.core.keys import KeyPair
from focusflow.node import open_chain
from tests.chain.evidence_helpers import (
    BONDED,
    BYZ,
    CHAIN_ID,
    KEYS,
    OUTSIDER,
    SLASHED,
    bonded,
    forge,
    genesis,
    members,
    step,
)

PARAMS = {"epoch_blocks": 2, "evidence_max_age": 2, "max_block_evidence": 3}


def twins(
    author: KeyPair, epoch: int, sequence: int = 0, chain_id: str = CHAIN_ID
) -> tuple[Batch, Batch]:
    """Two batches ``author`` seals into one slot: what no honest author does."""
    return (
        Batch.seal(author, chain_id, epoch, sequence, [b"\x01x"]),
        Batch.seal(author, chain_id, epoch, sequence, [b"\x01y"]),
    )


def sealed_twice(author: KeyPair, epoch: int, sequence: int = 0, **kw) -> BatchEquivocation:
    """The "batch" evidence a validator's DAG mempool records on receiving both twins."""
    x, y = twins(author, epoch, sequence, **kw)
    return BatchEquivocation.of(
        "batch", author.public_key, x.slot, (x.digest, x.signature), (y.digest, y.signature)
    )


def voted_twice(voter: KeyPair, author: KeyPair, epoch: int, sequence: int = 0, **kw):
    """The "vote" evidence of ``voter`` signing availability votes for both twins."""
    x, y = twins(author, epoch, sequence, **kw)
    chain_id = kw.get("chain_id", CHAIN_ID)
    vx, vy = BatchVote.sign(voter, chain_id, x), BatchVote.sign(voter, chain_id, y)
    return BatchEquivocation.of(
        "vote", voter.public_key, x.slot, (x.digest, vx.signature), (y.digest, vy.signature)
    )


def seen_by_mempool(chain) -> list[BatchEquivocation]:
    """Evidence of epoch 1 as an honest validator's DAG mempool records it: BYZ
    seals twins into slot (1, BYZ, 0) and gets each certified, BYZ and KEYS[2]
    voting for both; KEYS[1] receives the two certificates."""
    x, y = twins(BYZ, 1)
    cert_x = BatchCertificate.from_votes(
        x, [BatchVote.sign(k, CHAIN_ID, x) for k in (BYZ, KEYS[1], KEYS[2])]
    )
    cert_y = BatchCertificate.from_votes(
        y, [BatchVote.sign(k, CHAIN_ID, y) for k in (BYZ, KEYS[2], KEYS[0])]
    )
    mempool = DagMempool(KEYS[1], CHAIN_ID, chain.validators_at(3), 1, lambda _tx: 1.0)
    assert mempool.on_certificate(cert_x) is True
    assert mempool.on_certificate(cert_y) is False
    return mempool.evidence


def of(evidence: list[BatchEquivocation], kind: str, key: KeyPair) -> BatchEquivocation:
    (found,) = [e for e in evidence if (e.kind, e.signer) == (kind, key.public_key)]
    return found


def commit_at(chain, time_ms: int):
    pending = chain.propose([], time_ms)
    cert = sign_certificate(members(chain), CHAIN_ID, pending.height, pending.hash)
    return chain.commit(pending, cert)


@pytest.fixture(scope="module")
def slashed(tmp_path_factory):
    """Block 4 slashes BYZ (sealed twice) and KEYS[2] (voted twice) for slot (1, BYZ, 0);
    a twin that replayed blocks 1..3 proposes block 4 without the evidence."""
    base = tmp_path_factory.mktemp("batch-evidence")
    gen = genesis(**PARAMS)
    producer = open_chain(base / "a", gen, KEYS[0])
    for _ in range(3):
        step(producer)
    twin = open_chain(base / "t", gen, KEYS[0])
    for record in producer.records(1):
        twin.apply_block(record.encode())
    evidence = seen_by_mempool(producer)
    assert {(e.kind, e.signer) for e in evidence} == {
        ("batch", BYZ.public_key),
        ("vote", BYZ.public_key),
        ("vote", KEYS[2].public_key),
    }
    added = [producer.add_evidence(e) for e in evidence]
    # Block 4 at one time on both, so only the evidence tells their states apart.
    time_ms = producer.block_record(3).block.header.time_ms + 1_000
    without = twin.propose([], time_ms)
    result = commit_at(producer, time_ms)
    follower = open_chain(base / "b", gen)
    for record in producer.records(1):
        follower.apply_block(record.encode())
    return producer, follower, result, without, evidence, added


def test_one_offence_per_validator_and_slot_is_pooled(slashed):
    *_, evidence, added = slashed
    # BYZ's "vote" evidence is of the slot its "batch" evidence is of: one offence.
    assert sum(added) == 2
    assert added[evidence.index(of(evidence, "vote", BYZ))] is False


def test_valid_evidence_of_both_kinds_slashes_and_jails_the_signers(slashed):
    producer, follower, result, without, evidence, _ = slashed
    batch, vote = of(evidence, "batch", BYZ), of(evidence, "vote", KEYS[2])
    # The pool offers one epoch's offences by key, so by public key here.
    ordered = sorted((batch, vote), key=lambda e: e.signer)
    assert result.block.evidence == tuple(encode_evidence(e) for e in ordered)
    slashes = [e for e in result.events if e["type"] == "slash"]
    # Dated at epoch 1's first height, 3: stake unbonding since then is slashed too.
    assert [(e["public_key"], e["height"], e["evidence"], e["amount"]) for e in slashes] == [
        (e.signer, 3, e.hash(), SLASHED) for e in ordered
    ]
    jailed = [e["public_key"] for e in result.events if e["type"] == "jail"]
    assert jailed == [e.signer for e in ordered]
    for chain in (producer, follower):
        assert bonded(chain, BYZ) == bonded(chain, KEYS[2]) == BONDED - SLASHED
        assert bonded(chain, KEYS[1]) == bonded(chain, KEYS[0]) == BONDED
        assert chain.validators.power_of(BYZ.public_key) == 0
        assert chain.validators.power_of(KEYS[2].public_key) == 0
        with chain.reader() as r:
            assert r.get(slashed_slot_key(BYZ.public_key, batch.slot)) == encode([4, SLASHED])
            assert r.get(slashed_slot_key(KEYS[2].public_key, vote.slot)) == encode([4, SLASHED])
            assert r.get(slashed_key(BYZ.public_key, 3)) is None  # no height offence
    assert follower.store.root == producer.store.root
    assert result.block.header.state_root != without.block.header.state_root
    assert len(producer.evidence) == 0


def test_batch_evidence_travels_in_the_one_evidence_wire_form(slashed):
    *_, evidence, _ = slashed
    for piece in evidence:
        raw = encode_evidence(piece)
        assert raw == encode_batch_equivocation(piece)
        assert raw.startswith(BATCH_EQUIVOCATION_HEAD)
        assert decode_evidence(raw) == piece


def _forged_signature() -> BatchEquivocation:
    return replace(sealed_twice(KEYS[1], 1), signature_b=bytes(64))


def _same_digests() -> BatchEquivocation:
    x, _ = twins(KEYS[1], 1)
    return BatchEquivocation.of(
        "batch", KEYS[1].public_key, x.slot, (x.digest, x.signature), (x.digest, x.signature)
    )


def _oversized() -> bytes:
    """A batch equivocation's head followed by more bytes than its bound."""
    raw = encode_evidence(sealed_twice(KEYS[1], 1))
    return raw + bytes(MAX_EVIDENCE_WIRE_BYTES + 1 - len(raw))


#: Refused pieces for block 5 (head 4, BYZ and KEYS[2] slashed for slot (1, BYZ, 0)),
#: each with the error class the pool raises and the pattern of the block's error.
BAD = {
    "forged signature": ([_forged_signature()], EvidenceError, "invalid_evidence.*not verify"),
    "wrong chain id": (
        [sealed_twice(KEYS[1], 1, chain_id="elsewhere")],
        EvidenceError,
        "invalid_evidence.*not verify",
    ),
    "vote on another chain": (
        [voted_twice(KEYS[1], KEYS[0], 1, chain_id="elsewhere")],
        EvidenceError,
        "invalid_evidence.*not verify",
    ),
    "unknown epoch": (
        [sealed_twice(KEYS[1], 3)],
        EvidenceOutOfRangeError,
        r"evidence_out_of_range.*epoch 3.*heights 7\.\.8.*before height 8",
    ),
    "epoch far ahead": (
        [sealed_twice(KEYS[1], MAX_INT)],
        EvidenceOutOfRangeError,
        "evidence_out_of_range.*cannot be included",
    ),
    "epoch too old": (
        [sealed_twice(KEYS[1], 0)],
        EvidenceOutOfRangeError,
        "evidence_out_of_range.*epoch 0.*older than evidence_max_age",
    ),
    "non-member signer": (
        [sealed_twice(OUTSIDER, 1)],
        EvidenceError,
        "invalid_evidence.*not a validator",
    ),
    "same digests": ([_same_digests()], EvidenceError, "invalid_evidence.*not two"),
    "already punished": (
        [sealed_twice(BYZ, 1)],
        AlreadyPunishedError,
        "already_punished.*epoch 1.*already",
    ),
    "punished slot, other kind": (
        [voted_twice(BYZ, BYZ, 1)],
        AlreadyPunishedError,
        "already_punished.*already",
    ),
    "twice in one block": (
        [sealed_twice(KEYS[1], 1), sealed_twice(KEYS[1], 1)],
        None,
        "already_punished.*twice",
    ),
    "one slot, both kinds": (
        [sealed_twice(KEYS[1], 1), voted_twice(KEYS[1], KEYS[1], 1)],
        None,
        "already_punished.*twice",
    ),
}


def _pieces(case: str) -> list[bytes]:
    return [encode_evidence(e) for e in BAD[case][0]]


@pytest.mark.parametrize("case", list(BAD))
def test_bad_evidence_in_a_block_is_refused_and_changes_nothing(slashed, case):
    producer, follower, *_ = slashed
    _, _, pattern = BAD[case]
    record = forge(producer, _pieces(case))
    for chain in (follower, producer):
        head, root = chain.head, chain.store.root
        with pytest.raises(BlockError, match=pattern):
            chain.apply_block(record.encode())
        assert chain.head == head and chain.store.root == root


@pytest.mark.parametrize("case", [c for c in BAD if BAD[c][1] is not None])
def test_bad_evidence_is_not_pooled(slashed, case):
    producer, *_ = slashed
    (piece,), error, pattern = BAD[case]
    root = producer.store.root
    with pytest.raises(error, match=pattern.split(".*", 1)[1]) as raised:
        producer.add_evidence(piece)
    assert raised.value.code == pattern.split(".*", 1)[0]
    assert len(producer.evidence) == 0 and producer.store.root == root


@pytest.mark.parametrize(
    ("raw", "flaw"),
    [
        (_oversized(), f"more than {MAX_EVIDENCE_WIRE_BYTES}"),
        (BATCH_EQUIVOCATION_HEAD + b"\xff", "malformed batch equivocation"),
    ],
)
def test_hostile_bytes_are_refused_before_decoding(slashed, raw, flaw):
    producer, follower, *_ = slashed
    with pytest.raises(DecodeError, match=flaw):
        decode_evidence(raw)
    head, root = follower.head, follower.store.root
    with pytest.raises(BlockError, match=f"bad evidence.*{flaw}"):
        follower.apply_block(forge(producer, [raw]).encode())
    assert follower.head == head and follower.store.root == root


def test_fresh_evidence_passes_the_evidence_checks(slashed):
    """The control for the cases above: a fresh offence in a forged block gets as
    far as the roots (the forged header's state root predates the slash). BYZ is
    jailed now, but epoch 1's set, which judges the evidence, holds it."""
    producer, follower, *_ = slashed
    assert producer.validators.power_of(BYZ.public_key) == 0
    pieces = [sealed_twice(KEYS[1], 1), sealed_twice(BYZ, 1, sequence=1)]
    record = forge(producer, [encode_evidence(e) for e in pieces])
    with pytest.raises(BlockError, match="roots differ"):
        follower.validate(record)


def test_the_pool_takes_an_epoch_from_its_first_height_until_it_ages_out(tmp_path):
    chain = open_chain(tmp_path / "v", genesis(**{**PARAMS, "max_block_evidence": 0}), KEYS[0])
    step(chain)  # head 1: the pool takes heights up to 2, epoch 0's
    with pytest.raises(EvidenceOutOfRangeError, match="epoch 1"):
        chain.add_evidence(sealed_twice(KEYS[1], 1))
    assert chain.add_evidence(sealed_twice(KEYS[1], 0)) is True
    assert chain.add_evidence(sealed_twice(KEYS[1], 0)) is False
    step(chain)  # head 2: epoch 1 begins at the height under consensus
    assert chain.add_evidence(sealed_twice(KEYS[1], 1)) is True
    step(chain)  # head 3: block 4 could still take epoch 0's (4 - 2 <= 2)
    assert len(chain.evidence) == 2
    step(chain)  # head 4: block 5 cannot, and the pool drops it
    assert len(chain.evidence) == 1
    assert bonded(chain, KEYS[1]) == BONDED
