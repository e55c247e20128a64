"""BlockArray: Morton keys, sparse storage, neighbourhoods, shards and consensus."""

from __future__ import annotations

import numpy as np
import pytest

from focusflow.konomi import BlockArray, CoordinateOutOfRangeError, hash_block, morton


def test_morton_round_trip_and_matches_seed_bit_layout():
    rng = np.random.default_rng(0)
    c = rng.integers(0, 1 << 21, size=(10_000, 3))
    keys = morton.encode(c[:, 0], c[:, 1], c[:, 2])
    x, y, z = morton.decode(keys)
    assert np.array_equal(np.stack([x, y, z], 1), c)

    def seed_encode(x, y, z):
        answer = 0
        for i in range(10):
            answer |= (
                ((x & (1 << i)) << (2 * i))
                | ((y & (1 << i)) << (2 * i + 1))
                | ((z & (1 << i)) << (2 * i + 2))
            )
        return answer

    small = rng.integers(0, 1000, size=(500, 3))
    ours = morton.encode(small[:, 0], small[:, 1], small[:, 2]).tolist()
    assert ours == [seed_encode(*map(int, p)) for p in small]


def test_seed_blockarray_test():
    BA = BlockArray((10, 10, 10))
    BA.activate(5, 5, 5, 1.0)
    assert BA.get(5, 5, 5) == 1.0
    assert (5, 5, 5) in BA.active_blocks
    assert (5, 5, 4) not in BA.active_blocks
    assert BA.get(0, 0, 0) == 0.0
    rec = BA.active_blocks[(5, 5, 5)]
    assert rec["hash"] == hash_block(5, 5, 5, 1.0, (10, 10, 10))
    assert rec["timestamp"] > 0


def test_hash_is_the_seeds_sha256_formula():
    import hashlib

    expect = hashlib.sha256(b"1,2,3,0.5,(10, 10, 10)").hexdigest()[:16]
    assert hash_block(1, 2, 3, 0.5, (10, 10, 10)) == expect
    BA = BlockArray((10, 10, 10))
    BA.set(1, 2, 3, 0.5)
    assert BA.stored_hash(1, 2, 3) == expect


def test_out_of_range_rejected():
    BA = BlockArray((10, 10, 10))
    with pytest.raises(CoordinateOutOfRangeError):
        BA.set(10, 0, 0, 1.0)
    with pytest.raises(CoordinateOutOfRangeError):
        BA.get(-1, 0, 0)
    with pytest.raises(CoordinateOutOfRangeError):
        BA.activate_many(np.array([[0, 0, 0], [0, 0, 10]]))
    assert CoordinateOutOfRangeError.code == "coordinate_out_of_range"


def test_neighbourhoods_6_and_26():
    BA = BlockArray((10, 10, 10))
    BA.activate(5, 5, 5)
    for d in [(1, 0, 0), (0, -1, 0), (1, 1, 0), (1, 1, 1)]:
        BA.activate(5 + d[0], 5 + d[1], 5 + d[2])
    assert sorted(BA.get_neighbors(5, 5, 5, 6)) == [(5, 4, 5), (6, 5, 5)]
    assert len(BA.get_neighbors(5, 5, 5, 26)) == 4
    BA.activate(0, 0, 0)
    assert BA.get_neighbors(0, 0, 0, 26) == []


def test_batch_ops_match_single_ops_and_memory_is_per_active_block():
    BA = BlockArray((1000, 1000, 1000))
    rng = np.random.default_rng(1)
    c = rng.integers(0, 1000, size=(20_000, 3))
    v = rng.random(20_000)
    BA.activate_many(c, v)
    # duplicates keep the last value
    last = {}
    for p, val in zip(map(tuple, c.tolist()), v.tolist(), strict=True):
        last[p] = val
    assert BA.size == len(last)
    some = list(last.items())[:200]
    for p, val in some:
        assert BA.get(*p) == val
        assert BA.verify(*p)
        assert BA.stored_hash(*p) == hash_block(*p, val, BA.dim)
    got = BA.get_many(np.array([p for p, _ in some]))
    assert np.array_equal(got, [val for _, val in some])
    assert BA.nbytes() < 64 * 2 * BA.size  # arrays grow by doubling: O(active), not O(1000³)


def test_deactivate_keeps_index_consistent():
    BA = BlockArray((10, 10, 10))
    for i in range(5):
        BA.activate(i, i, i, float(i))
    assert BA.deactivate(1, 1, 1)
    assert not BA.deactivate(1, 1, 1)
    assert BA.size == 4
    assert [BA.get(i, i, i) for i in range(5)] == [0.0, 0.0, 2.0, 3.0, 4.0]


def test_shards_are_stable_and_spread():
    BA = BlockArray((100, 100, 100))
    c = np.stack(np.meshgrid(*[np.arange(20)] * 3, indexing="ij"), -1).reshape(-1, 3)
    BA.activate_many(c)
    shards = BA.shards(16)
    counts = np.bincount(shards, minlength=16)
    assert counts.min() > 0.8 * counts.mean() and counts.max() < 1.2 * counts.mean()
    assert BA.shard_of(3, 4, 5, 16) == BlockArray((100, 100, 100)).shard_of(3, 4, 5, 16)


def _cross(BA: BlockArray) -> None:
    BA.activate(5, 5, 5, 2.5)
    for d in [(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)]:
        BA.activate(5 + d[0], 5 + d[1], 5 + d[2], 1.0)


def test_block_accepted_when_two_thirds_of_neighbours_attest():
    BA = BlockArray((10, 10, 10))
    _cross(BA)
    before = BA.consensus(5, 5, 5)
    assert before.valid and before.neighbours == 6 and before.attesting == 0 and not before.accepted
    assert BA.attest(5, 5, 5) == 6
    assert BA.consensus(5, 5, 5).accepted
    # two Byzantine neighbours vouch for a wrong hash: 4/6 >= 2/3 still accepts
    BA.record_attestation((5, 5, 5), (6, 5, 5), "0" * 16)
    BA.record_attestation((5, 5, 5), (4, 5, 5), "0" * 16)
    a = BA.consensus(5, 5, 5)
    assert a.attesting == 4 and a.accepted
    # a third one breaks the 2/3 quorum
    BA.record_attestation((5, 5, 5), (5, 6, 5), "0" * 16)
    assert not BA.consensus(5, 5, 5).accepted


def test_tampered_value_is_detected():
    BA = BlockArray((10, 10, 10))
    _cross(BA)
    BA.attest(5, 5, 5)
    assert BA.verify(5, 5, 5) and BA.consensus(5, 5, 5).accepted
    BA._values[BA.slot(5, 5, 5)] = 99.0  # a write that bypasses set(): tampering
    assert not BA.verify(5, 5, 5)
    a = BA.consensus(5, 5, 5)
    assert not a.valid and not a.accepted


def test_rewrite_through_set_needs_fresh_attestations():
    BA = BlockArray((10, 10, 10))
    _cross(BA)
    BA.attest(5, 5, 5)
    BA.set(5, 5, 5, 3.0)
    a = BA.consensus(5, 5, 5)
    assert a.valid and a.attesting == 0 and not a.accepted
    BA.attest(5, 5, 5)
    assert BA.consensus(5, 5, 5).accepted


def test_plane_covers_a_face():
    BA = BlockArray((4, 5, 6))
    p = BA.plane("y", 2)
    assert p.shape == (4 * 6, 3) and set(p[:, 1].tolist()) == {2}
    assert len({tuple(r) for r in p.tolist()}) == 24
