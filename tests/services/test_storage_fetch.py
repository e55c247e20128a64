"""Fetching a blob's DAG from several sources into a real LMDB chunk store.

The sources are in-process stand-ins for peers (the QUIC path is tested among
real node processes in tests/node/test_blob_net.py): each serves blocks from a
real chunk store, honestly, corrupted, or until it dies. Every blob fetched is
compared byte for byte with what was put; every refusal names its cause.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections import Counter

import numpy as np
import pytest

from focusflow.services.storage import dag, fetch
from focusflow.services.storage.chunk_store import ChunkStore
from focusflow.services.storage.dag import BlobError, Link
from focusflow.services.storage.fetch import BlobUnavailableError, fetch_dag


def _random(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


class Peer:
    """A source of blocks: ``mode`` is ``honest``, ``corrupt`` (first byte of
    every block flipped), ``dies_after`` (fails once it served ``budget``),
    ``hangs_after`` (answers nothing once it served ``budget``) or
    ``oversize`` (answers more bytes than a chunk may have)."""

    def __init__(self, store: ChunkStore, mode: str = "honest", budget: int = 0) -> None:
        self.store = store
        self.mode = mode
        self.budget = budget
        self.served = 0
        self.in_flight = 0
        self.most_in_flight = 0


class Network:
    def __init__(self, peers: dict[bytes, Peer], delay: float = 0.0) -> None:
        self.peers = peers
        self.delay = delay
        self.blamed: Counter[bytes] = Counter()

    async def get(self, peer_id: bytes, cid: bytes) -> bytes:
        peer = self.peers[peer_id]
        peer.in_flight += 1
        peer.most_in_flight = max(peer.most_in_flight, peer.in_flight)
        try:
            await asyncio.sleep(self.delay)
            if peer.mode == "dies_after" and peer.served >= peer.budget:
                raise TimeoutError("peer went away")
            if peer.mode == "hangs_after" and peer.served >= peer.budget:
                await asyncio.sleep(30)  # a killed process: requests only time out
                raise TimeoutError("no answer")
            data = peer.store.block(cid)
            if data is None:
                raise BlobError("not here")
            peer.served += 1
            if peer.mode == "corrupt" and data:
                return bytes([data[0] ^ 1]) + data[1:]
            if peer.mode == "oversize":
                return data + bytes(dag.CHUNK_MAX)
            return data
        finally:
            peer.in_flight -= 1

    def blame(self, peer_id: bytes, why: str) -> None:
        self.blamed[peer_id] += 1


def _holder(tmp_path, name: str, data: bytes) -> tuple[ChunkStore, bytes]:
    store = ChunkStore(tmp_path / name)
    return store, store.put(io.BytesIO(data)).cid


def _fetch(root, network, store, **kw):
    return asyncio.run(fetch_dag(root, list(network.peers), network, store, **kw))


def test_a_blob_fetched_from_two_peers_is_the_blob_put_and_both_served(tmp_path):
    data = _random(6 << 20, 1)
    a, root = _holder(tmp_path, "a", data)
    b, _ = _holder(tmp_path, "b", data)
    net = Network({b"A": Peer(a), b"B": Peer(b)}, delay=0.001)
    mine = ChunkStore(tmp_path / "mine")
    got = _fetch(root, net, mine, per_peer=3)
    assert b"".join(mine.read(root)) == data
    assert mine.pinned(root) == len(data) == got.put.size
    chunks = len(dag.decode_node(a.block(root)))
    assert got.put.chunks == got.put.new_chunks == got.fetched_chunks == chunks
    assert got.fetched_blocks == chunks + 1
    assert got.by_peer[b"A"] > 0 and got.by_peer[b"B"] > 0
    assert sum(got.by_peer.values()) == got.fetched_blocks
    assert not got.dropped and not net.blamed
    # no peer was asked for more than per_peer blocks at once
    assert max(p.most_in_flight for p in net.peers.values()) <= 3
    # fetching it again asks nobody
    again = _fetch(root, Network({}), mine)
    assert again.put.new_bytes == 0 and again.put.size == len(data)


def test_a_peer_serving_corrupt_blocks_is_blamed_and_left_out(tmp_path):
    data = _random(3 << 20, 2)
    a, root = _holder(tmp_path, "a", data)
    b, _ = _holder(tmp_path, "b", data)
    net = Network({b"liar": Peer(a, "corrupt"), b"honest": Peer(b)})
    mine = ChunkStore(tmp_path / "mine")
    got = _fetch(root, net, mine)
    assert b"".join(mine.read(root)) == data
    assert net.blamed[b"liar"] >= 1 and b"honest" not in net.blamed
    assert got.dropped[b"liar"].startswith("lied:") and b"liar" not in got.by_peer
    assert "does not hash" in got.dropped[b"liar"]


def test_a_holder_that_dies_mid_transfer_is_replaced_by_the_others(tmp_path):
    data = _random(4 << 20, 3)
    a, root = _holder(tmp_path, "a", data)
    b, _ = _holder(tmp_path, "b", data)
    net = Network({b"dies": Peer(a, "dies_after", budget=5), b"stays": Peer(b)}, delay=0.001)
    mine = ChunkStore(tmp_path / "mine")
    got = _fetch(root, net, mine)
    assert b"".join(mine.read(root)) == data
    assert got.by_peer[b"dies"] == 5 and got.dropped[b"dies"].startswith("failed:")
    assert b"dies" not in net.blamed  # a crash is not a lie


def test_blocks_stuck_at_a_holder_that_stopped_answering_are_asked_of_another(tmp_path):
    data = _random(4 << 20, 9)
    a, root = _holder(tmp_path, "a", data)
    b, _ = _holder(tmp_path, "b", data)
    net = Network({b"hangs": Peer(a, "hangs_after", budget=5), b"stays": Peer(b)}, delay=0.001)
    mine = ChunkStore(tmp_path / "mine")
    started = time.monotonic()
    got = _fetch(root, net, mine)
    took = time.monotonic() - started
    assert b"".join(mine.read(root)) == data
    assert got.by_peer[b"hangs"] == 5
    # its stuck requests were asked again elsewhere after HEDGE_AFTER, not waited out
    assert took < fetch.HEDGE_AFTER + 5, took


def test_when_no_peer_can_give_it_nothing_is_pinned_and_gc_cleans_up(tmp_path):
    data = _random(2 << 20, 4)
    a, root = _holder(tmp_path, "a", data)
    b, _ = _holder(tmp_path, "b", data)
    net = Network({b"liar": Peer(a, "corrupt"), b"dies": Peer(b, "dies_after", budget=3)})
    mine = ChunkStore(tmp_path / "mine")
    with pytest.raises(BlobUnavailableError) as raised:
        _fetch(root, net, mine)
    assert raised.value.code == "blob_unavailable"
    assert "lied" in raised.value.message and "failed" in raised.value.message
    assert mine.pinned(root) is None and mine.pins() == []
    removed, _ = mine.gc()
    assert removed >= 1 and mine.stats()["blocks"] == 0
    with pytest.raises(BlobUnavailableError):
        _fetch(root, Network({}), mine)


def test_a_block_over_its_kinds_size_is_refused_before_it_is_hashed(tmp_path):
    data = _random(1 << 20, 5)
    a, root = _holder(tmp_path, "a", data)
    b, _ = _holder(tmp_path, "b", data)
    net = Network({b"big": Peer(a, "oversize"), b"ok": Peer(b)})
    mine = ChunkStore(tmp_path / "mine")
    got = _fetch(root, net, mine)
    assert "over its kind's size" in got.dropped[b"big"]
    assert b"".join(mine.read(root)) == data


def test_only_the_chunks_an_edit_changed_are_fetched(tmp_path):
    data = bytearray(_random(8 << 20, 6))
    mine = ChunkStore(tmp_path / "mine")
    mine.put(io.BytesIO(bytes(data)))
    data[4 << 20] ^= 0xFF
    a, root = _holder(tmp_path, "a", bytes(data))
    got = _fetch(root, Network({b"A": Peer(a)}), mine)
    assert b"".join(mine.read(root)) == bytes(data)
    assert 1 <= got.fetched_chunks <= 3
    assert got.put.new_bytes < len(data) // 20


def test_a_dag_whose_sizes_lie_is_refused_and_not_pinned(tmp_path):
    chunk = _random(40_000, 7)
    leaf = dag.cid_bytes(dag.RAW, chunk)
    node = dag.encode_node([Link(leaf, 40_001)])  # claims one byte more than the chunk has
    root = dag.cid_bytes(dag.DAG_CBOR, node)
    source = ChunkStore(tmp_path / "src")
    source.add_blocks([(leaf, chunk), (root, node)])
    mine = ChunkStore(tmp_path / "mine")
    with pytest.raises(BlobError, match="says 40001 bytes"):
        _fetch(root, Network({b"A": Peer(source)}), mine)
    assert mine.pinned(root) is None


def test_a_blob_over_the_limit_is_refused_before_its_chunks_are_asked_for(tmp_path):
    data = _random(2 << 20, 8)
    a, root = _holder(tmp_path, "a", data)
    peer = Peer(a)
    mine = ChunkStore(tmp_path / "mine")
    with pytest.raises(BlobError, match="over 1000000 bytes"):
        _fetch(root, Network({b"A": peer}), mine, max_bytes=1_000_000)
    assert peer.served == 1  # the root, nothing under it


def test_a_dag_deeper_than_any_we_build_is_refused(tmp_path):
    chunk = b"x" * 100
    cid, size = dag.cid_bytes(dag.RAW, chunk), len(chunk)
    blocks = [(cid, chunk)]
    for _ in range(dag.MAX_DEPTH + 1):
        node = dag.encode_node([Link(cid, size)])
        cid = dag.cid_bytes(dag.DAG_CBOR, node)
        blocks.append((cid, node))
    source = ChunkStore(tmp_path / "src")
    source.add_blocks(blocks)
    with pytest.raises(BlobError, match="deeper than"):
        _fetch(cid, Network({b"A": Peer(source)}), ChunkStore(tmp_path / "mine"))


def test_add_blocks_refuses_a_block_that_is_not_its_cid(tmp_path):
    store = ChunkStore(tmp_path / "s")
    with pytest.raises(BlobError, match="does not hash"):
        store.add_blocks([(dag.cid_bytes(dag.RAW, b"a"), b"b")])
    assert store.stats()["blocks"] == 0
    with pytest.raises(BlobError, match="is not here"):
        store.pin(dag.cid_bytes(dag.RAW, b"a"))
