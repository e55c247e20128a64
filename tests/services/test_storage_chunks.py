"""Blobs as DAGs of content-defined chunks in a real LMDB chunk store.

Independent checks: a blob read back equals the bytes put; every CID is
recomputed here with hashlib from the bytes it names; a small edit of a large
blob stores only a few new chunks; hostile nodes and tampered blocks are
refused by name.
"""

from __future__ import annotations

import hashlib
import io
import os

import cbor2
import numpy as np
import pytest

from focusflow.core.cid import cid_from_bytes, cid_of_bytes
from focusflow.services.storage import chunk_store, dag
from focusflow.services.storage.chunk_store import BlobTooLargeError, ChunkStore
from focusflow.services.storage.dag import BlobError, Link


def _random(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def _cid(codec: int, data: bytes) -> bytes:
    return bytes([1, codec, 0x12, 0x20]) + hashlib.sha256(data).digest()


def test_a_blob_reads_back_as_it_was_put_and_its_cids_are_the_hashes(tmp_path):
    store = ChunkStore(tmp_path / "s")
    data = _random(3 << 20, 1)
    put = store.put(io.BytesIO(data))
    assert put.size == len(data) and put.new_chunks == put.chunks > 1
    assert b"".join(store.read(put.cid)) == data
    root = store.block(put.cid)
    assert put.cid == _cid(dag.DAG_CBOR, root)
    links = dag.decode_node(root)
    assert sum(link.size for link in links) == len(data)
    offset = 0
    for link in links:
        chunk = data[offset : offset + link.size]
        assert link.cid == _cid(dag.RAW, chunk)
        assert dag.CHUNK_MIN <= link.size <= dag.CHUNK_MAX or offset + link.size == len(data)
        offset += link.size
    assert store.pinned(put.cid) == len(data)


def test_a_one_chunk_blob_is_the_particle_of_its_bytes(tmp_path):
    store = ChunkStore(tmp_path / "s")
    put = store.put(io.BytesIO(b"cats"))
    assert cid_from_bytes(put.cid) == cid_of_bytes(b"cats")
    assert b"".join(store.read(put.cid)) == b"cats"
    empty = store.put(io.BytesIO(b""))
    assert empty.size == 0 and b"".join(store.read(empty.cid)) == b""


def test_a_one_byte_edit_of_a_large_blob_stores_under_one_percent_new(tmp_path):
    store = ChunkStore(tmp_path / "s")
    data = bytearray(_random(24 << 20, 2))
    first = store.put(io.BytesIO(bytes(data)))
    data[len(data) // 2] ^= 0xFF
    second = store.put(io.BytesIO(bytes(data)))
    assert second.cid != first.cid
    assert second.new_chunks <= 2
    assert second.new_bytes < 0.01 * len(data)
    again = store.put(io.BytesIO(bytes(data)))
    assert again.new_chunks == 0 and again.new_bytes == 0 and again.cid == second.cid


def test_deep_dags_stack_nodes_of_fanout_links():
    leaves = [Link(_cid(dag.RAW, i.to_bytes(4, "big")), 4) for i in range(dag.FANOUT * 2 + 1)]
    root, nodes = dag.build(leaves)
    assert len(nodes) == 4  # three nodes over the leaves, one over them
    assert root.size == 4 * len(leaves) and root.cid == nodes[-1][0]
    top = dag.decode_node(nodes[-1][1])
    assert [link.size for link in top] == [4 * dag.FANOUT, 4 * dag.FANOUT, 4]


def test_unpin_frees_what_no_other_pin_reaches_and_gc_what_a_put_left(tmp_path, monkeypatch):
    # Small batches: the put cut short below has written some before it stops.
    monkeypatch.setattr(chunk_store, "BATCH_BYTES", 1 << 18)
    store = ChunkStore(tmp_path / "s")
    a = _random(2 << 20, 3)
    b = a[: 1 << 20] + _random(1 << 20, 4)
    put_a = store.put(io.BytesIO(a))
    put_b = store.put(io.BytesIO(b))
    freed = store.unpin(put_a.cid)
    assert 0 < freed < len(a)
    assert b"".join(store.read(put_b.cid)) == b  # the shared chunks stayed
    with pytest.raises(BlobError):
        b"".join(store.read(put_a.cid))
    with pytest.raises(BlobError, match="not pinned"):
        store.unpin(put_a.cid)
    with pytest.raises(BlobTooLargeError):
        store.put(io.BytesIO(_random(2 << 20, 5)), max_bytes=1 << 20)
    blocks, garbage = store.gc()
    assert blocks > 0 and garbage > 0
    assert store.gc() == (0, 0)
    assert b"".join(store.read(put_b.cid)) == b


def test_a_block_that_does_not_hash_to_its_cid_is_never_served(tmp_path):
    store = ChunkStore(tmp_path / "s")
    put = store.put(io.BytesIO(_random(1 << 20, 6)))
    leaf = dag.decode_node(store.block(put.cid))[0].cid
    with store.env.begin(write=True) as txn:
        txn.put(leaf, b"rot", db=store._blocks)
    with pytest.raises(BlobError, match="does not hash"):
        store.block(leaf)
    with pytest.raises(BlobError, match="does not hash"):
        b"".join(store.read(put.cid))


_LINK = [cbor2.CBORTag(42, b"\x00" + _cid(dag.RAW, b"a")), 1]
_REORDERED = (  # the canonical node's map ("size" first: shorter keys first) reordered
    b"\xa2" + cbor2.dumps("links") + cbor2.dumps([_LINK]) + cbor2.dumps("size") + cbor2.dumps(1)
)


@pytest.mark.parametrize(
    "node, match",
    [
        (os.urandom(dag.MAX_NODE_BYTES + 1), "at most"),
        (b"\xff\x00", "not CBOR"),
        (cbor2.dumps({"links": [], "size": 0}), "1 to"),
        (cbor2.dumps({"links": [[b"x", 1]], "size": 1}), "tag 42"),
        (
            cbor2.dumps({"links": [[cbor2.CBORTag(42, b"\x00" + b"\x01" * 36), 1]], "size": 1}),
            "CIDv1",
        ),
        (cbor2.dumps({"links": [_LINK], "size": 2}), "sum"),
        (cbor2.dumps({"links": [[_LINK[0], 0]], "size": 0}), "size > 0"),
        (cbor2.dumps([1] * 10), "links"),
        (_REORDERED, "canonical"),
    ],
)
def test_hostile_nodes_are_refused_by_name(node, match):
    assert dag.decode_node(dag.encode_node([Link(_cid(dag.RAW, b"a"), 1)]))
    with pytest.raises(BlobError, match=match):
        dag.decode_node(node)
