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
import tarfile
from pathlib import Path

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


def _tree_tar(files: dict[str, bytes]) -> bytes:
    """A tar of ``files`` with fixed metadata: the same tree, the same bytes."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(files[name]), 0, 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    return out.getvalue()


def test_successive_versions_of_a_source_tree_store_only_what_changed(tmp_path):
    """A versioned corpus: this package's source tree as a tar, then four more
    versions, each with a few files edited, one added and one removed (as
    commits do); every version reads back whole, and each new version stores
    a small share of its size."""
    root = Path(__file__).resolve().parents[2] / "src" / "focusflow"
    files = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.py"))}
    rng = np.random.default_rng(11)
    store = ChunkStore(tmp_path / "s")
    versions, shares, new_chunks = [], [], []
    for version in range(5):
        if version:
            names = sorted(files)
            for name in rng.choice(names, 3, replace=False):
                text = files[name]
                at = int(rng.integers(0, len(text) + 1))  # an empty file has one place
                files[name] = text[:at] + b"# an edit\n" + text[at:]
            files[f"added_{version}.py"] = _random(5_000, version).hex().encode()
            del files[names[int(rng.integers(0, len(names)))]]
        tar = _tree_tar(files)
        put = store.put(io.BytesIO(tar))
        versions.append((put.cid, tar))
        shares.append(put.new_bytes / len(tar))
        new_chunks.append(put.new_chunks)
    assert shares[0] > 0.99  # the first version is all new
    # an edit, an added file and a removed one each change the chunk they fall
    # in and at most the next one (a cut depends only on the bytes before it):
    # five places, at most ten chunks, whatever the corpus's size
    assert max(new_chunks[1:]) <= 10, new_chunks
    # Every chunk stored was new to one version, nothing kept twice; beside
    # them, each version's few DAG nodes. (A ratio to the first version's size
    # would depend on how large this package's source tree is that day.)
    stored = store.stats()["blocks"]
    assert sum(new_chunks) <= stored <= sum(new_chunks) + 2 * len(versions), (stored, new_chunks)
    assert all(share < 0.25 for share in shares[1:]), shares
    for cid, tar in versions:
        assert b"".join(store.read(cid)) == tar
