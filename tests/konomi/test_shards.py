"""Shards in one process: routing by the stable hash, ownership refused with its
code, face operations gathered to the same bits as one KonomiSystem, a shard
reloaded from its store, hostile batches, and the REST API over a sharded grid."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from focusflow.konomi import morton
from focusflow.konomi.api import create_app
from focusflow.konomi.block_array import BlockArray
from focusflow.konomi.errors import (
    BatchTooLargeError,
    CoordinateOutOfRangeError,
    InvalidOperationError,
    ShardNotOwnerError,
)
from focusflow.konomi.launch import new_token
from focusflow.konomi.shards import Coordinator, LocalShards, ShardState, owners, split
from focusflow.konomi.shards.routing import MAX_BATCH, owner_of
from focusflow.konomi.shards.state import shard_stores, store_url_of
from focusflow.konomi.shards.system import ShardedSystem
from focusflow.konomi.system import CHUNK, KonomiSystem

DIMS = (400, 300, 5)


def _coords(n: int, dims=DIMS, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, d, n) for d in dims], axis=1)


def test_routing_is_block_array_shard_of():
    c = _coords(2000)
    arr = BlockArray(DIMS)
    for count in (1, 3, 8):
        got = owners(c, count)
        want = [arr.shard_of(*map(int, row), num_shards=count) for row in c]
        assert got.tolist() == want
        assert [owner_of(*map(int, row), count) for row in c] == want
        parts = split(got, count)
        assert sorted(np.concatenate(parts).tolist()) == list(range(len(c)))
        for i, p in enumerate(parts):
            assert (got[p] == i).all() and (np.diff(p) > 0).all()


def test_a_shard_refuses_a_block_it_does_not_own(tmp_path):
    url = str(tmp_path / "s1.sqlite3")
    shard = ShardState(1, 4, url)
    c = _coords(200)
    own = owners(c, 4)
    mine, other = c[own == 1], c[own != 1]
    with pytest.raises(ShardNotOwnerError) as err:
        shard.set_many("main", DIMS, np.concatenate([mine[:5], other[:1]]), 2.0)
    assert err.value.code == "shard_not_owner" and err.value.http_status == 409
    assert f"owner {int(owners(other[:1], 4)[0])}" in str(err.value)
    x, y, z = map(int, other[0])
    with pytest.raises(ShardNotOwnerError):
        shard.set("main", DIMS, x, y, z, 1.0)
    with pytest.raises(ShardNotOwnerError):
        shard.get("main", DIMS, x, y, z)
    assert shard.instance("main", DIMS).array.size == 0  # nothing written
    assert len(shard.system.store.load_blocks("main")["keys"]) == 0
    assert shard.set_many("main", DIMS, mine, 2.0) == len(mine)
    shard.close()


def _state(arr: BlockArray) -> dict[int, tuple]:
    keys = arr.keys().tolist()
    cols = zip(
        arr.values().tolist(),
        arr.hashes().tolist(),
        arr.kappas().tolist(),
        arr.calls().tolist(),
        strict=True,
    )
    return dict(zip(keys, cols, strict=True))


def _gathered(shards: LocalShards) -> dict[int, tuple]:
    out: dict[int, tuple] = {}
    for s in shards.states:
        part = _state(s.instance("main", DIMS).array)
        assert not set(part) & set(out)
        out.update(part)
    return out


def test_interlock_gathered_equals_one_process():
    """Every operation over a plane larger than a chunk, in sequence: the same
    processed count, the same avg κ bits and the same state of every block."""
    assert DIMS[0] * DIMS[1] > CHUNK
    one = KonomiSystem(default_dims=DIMS)
    shards = LocalShards(3)
    coord = Coordinator(shards)
    c = _coords(30_000)
    v = np.random.default_rng(1).random(len(c))
    one.instance().array.activate_many(c, v)
    coord.set_many("main", DIMS, c, v)
    steps = [("z", 2, "process"), ("z", 2, "activate"), ("z", 2, "sync"), ("z", 3, "sync")]
    steps += [("y", 7, "activate"), ("z", 2, "process"), ("z", 2, "sync"), ("x", 0, "sync")]
    for plane, index, op in steps:
        want = one.interlock(plane, index, op)
        processed, total, _ = coord.face("main", DIMS, plane, index, op)
        assert processed == want["processed"]
        assert want["avg_κ"] == total / processed
    ref = _state(one.instance().array)
    got = _gathered(shards)
    assert got.keys() == ref.keys()
    assert got == ref
    np.testing.assert_array_equal(coord.get_many("main", DIMS, c), one.instance().array.get_many(c))


def test_attest_and_consensus_across_shards_equal_one_process():
    one = KonomiSystem(default_dims=(10, 10, 10))
    coord = Coordinator(LocalShards(4))
    c = np.array([[5, 5, 5], [4, 5, 5], [6, 5, 5], [5, 4, 5], [5, 6, 5], [5, 5, 6]])
    one.instance().array.activate_many(c, 3.0)
    coord.set_many("main", (10, 10, 10), c, 3.0)
    assert len(set(owners(c, 4).tolist())) > 1  # the neighbours live on several shards
    for adjacency in (6, 26):
        assert coord.attest("main", (10, 10, 10), 5, 5, 5, adjacency) == one.attest_block(
            5, 5, 5, adjacency=adjacency
        )
        assert coord.consensus("main", (10, 10, 10), 5, 5, 5, adjacency) == one.consensus_block(
            5, 5, 5, adjacency=adjacency
        )
    assert coord.consensus("main", (10, 10, 10), 5, 5, 5)["accepted"]


def test_a_shard_reloads_its_rows_from_the_store(tmp_path):
    template = str(tmp_path / "shard{shard}.sqlite3")
    c = _coords(5000)
    v = np.random.default_rng(2).random(len(c))
    first = LocalShards(3, template)
    coord = Coordinator(first)
    coord.set_many("main", DIMS, c, v)
    coord.face("main", DIMS, "z", 1, "process")
    before = _gathered(first)
    coord.close()
    again = LocalShards(3, template)
    assert _gathered(again) == before
    uniq = {tuple(r): val for r, val in zip(c.tolist(), v.tolist(), strict=True)}
    keys = np.array(list(uniq))
    np.testing.assert_array_equal(
        Coordinator(again).get_many("main", DIMS, keys), np.array(list(uniq.values()))
    )
    for i, s in enumerate(again.states):  # each file holds its own shard's rows only
        stored = s.system.store.load_blocks("main")["keys"]
        assert (owners(np.stack(morton.decode(stored), 1), 3) == i).all()
    again.close()


def test_hostile_batches_are_refused_before_routing():
    coord = Coordinator(LocalShards(2))
    with pytest.raises(BatchTooLargeError) as err:
        coord.set_many("main", DIMS, np.zeros((MAX_BATCH + 1, 3), np.int64))
    assert err.value.code == "batch_too_large"
    with pytest.raises(CoordinateOutOfRangeError):
        coord.set_many("main", DIMS, np.array([[0, 0, 0], [400, 0, 0]]))
    with pytest.raises(CoordinateOutOfRangeError):
        coord.set("main", DIMS, -1, 0, 0, 1.0)
    with pytest.raises(InvalidOperationError):
        coord.face("main", DIMS, "w", 0, "process")
    with pytest.raises(CoordinateOutOfRangeError):
        coord.face("main", DIMS, "z", 5, "process")
    with pytest.raises(InvalidOperationError):
        coord.face("main", DIMS, "z", 0, "explode")
    assert all(s.system.instances.get("main") is None for s in coord.backend.states)


def test_store_urls_of_shards():
    assert shard_stores("konomi.sqlite3") == "konomi.shard{shard}.sqlite3"
    assert shard_stores("postgresql://h/db") == "postgresql://h/db"
    assert store_url_of(shard_stores("/tmp/a/k.db"), 3) == "/tmp/a/k.shard3.db"
    assert store_url_of(None, 1) is None


def test_rest_over_a_sharded_grid(tmp_path):
    token = new_token()
    system = ShardedSystem(Coordinator(LocalShards(3)), default_dims=(20, 20, 20))
    app = create_app(system, token=token)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        for x in range(5):
            r = client.post("/value", json={"x": x, "y": 1, "z": 2, "value": x + 0.5})
            assert r.status_code == 200
        r = client.get("/value", params={"x": 3, "y": 1, "z": 2}).json()
        assert r["value"] == 3.5 and r["active"]
        assert r["hash"] == BlockArray((20, 20, 20)).hash_block(3, 1, 2, 3.5)
        r = client.get("/value", params={"x": 99, "y": 1, "z": 2})
        assert r.status_code == 400 and r.json()["error"]["code"] == "coordinate_out_of_range"
        r = client.post("/llm/interlock", params={"plane": "z", "index": 2, "operation": "process"})
        assert r.json()["processed"] == 5 and r.json()["state"] == "Complete"
        r = client.post("/block/attest", json={"x": 2, "y": 1, "z": 2}).json()
        assert r == {"attested": 2}
        r = client.get("/block/consensus", params={"x": 2, "y": 1, "z": 2}).json()
        assert r["accepted"] and r["neighbours"] == 2
        r = client.post("/llm/process", params={"x": 2, "y": 1, "z": 2, "text": "hi"})
        assert r.status_code == 200
    assert (
        sum(s.instance("main", (20, 20, 20)).array.size for s in system.coordinator.backend.states)
        == 5
    )
    assert system.instance().array.size == 0  # the API process holds no block
