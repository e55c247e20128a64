"""State sync over real QUIC between in-process nodes, on loopback.

A validator (a set of one, running consensus with the StateSync extension)
writes snapshots and serves them; a new node's ``state_sync`` downloads one,
verifies it and installs it, and its chain then applies the validator's next
blocks, links included, with identical roots. Lying peers (a plain transport
node on the same network id, answering with forged data) are refused: a wrong
chunk, a state that does not hash to its header's root, and a whole forged
chain whose header certificate no trusted validator signed; with an honest
peer beside them, the node installs the honest snapshot. A peer of the
previous release (whose snapshots hold a pickled focus state) is not even
downloaded from; beside an upgraded peer, the node installs the upgraded
peer's snapshot of the same block.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import replace
from pathlib import Path

import pytest

from focusflow.chain import Genesis
from focusflow.chain.block import sign_certificate
from focusflow.chain.snapshot import (
    DATA_FILE,
    Manifest,
    SnapshotCertificateError,
    capture_focus,
    write_snapshot,
)
from focusflow.chain.valsets import ValidatorSets
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import InvalidParameterError
from focusflow.core.keys import KeyPair
from focusflow.net import NetConfig, Node
from focusflow.node import open_chain
from focusflow.node.state_sync import StateSync, Trust, state_sync, verify_trust
from focusflow.node.validator import ValidatorRuntime
from focusflow.store import Store
from focusflow.testing.chains import ALICE, BOB, VALIDATOR, genesis, link, tx
from tests.chain import test_epochs as epochs
from tests.chain import test_focus_state_upgrade as upgrade

#: Test genesis times are years old: no trusting period here (tested apart).
TRUST = Trust(period_s=None)
CHUNK = 4096
FAKE = KeyPair.from_seed(b"fake validator".ljust(32, b"\0"))


def _links(chain, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        chain.produce_block([tx(ALICE, i, link((f"p{i}", f"q{i}"), (f"q{i}", "hub")))])


class Server:
    """A plain transport node on the network that answers snapshot requests
    with what the test gives it: the truth, or a lie (``manifest`` as a
    Manifest, or as the bytes a peer of another release lists)."""

    def __init__(self, gen: Genesis, manifest: Manifest | bytes, data: bytes, blocks: dict) -> None:
        config = NetConfig(network_id=gen.hash)
        self.node = Node(KeyPair.generate(), listen=("127.0.0.1", 0), config=config)
        self.listed = manifest if isinstance(manifest, bytes) else manifest.encode()
        self.chunk_size = decode(self.listed, "manifest")["chunk_size"]
        self.data, self.blocks = data, blocks
        self.chunks_served = 0
        self.node.register("snapshots", self._list)
        self.node.register("snapshot_chunk", self._chunk)
        self.node.register("block", self._block)

    async def _list(self, peer: bytes, payload: bytes) -> bytes:
        return encode([self.listed])

    async def _chunk(self, peer: bytes, payload: bytes) -> bytes:
        _, index = decode(payload, "request")
        self.chunks_served += 1
        size = self.chunk_size
        return self.data[index * size : (index + 1) * size]

    async def _block(self, peer: bytes, payload: bytes) -> bytes:
        return self.blocks[decode(payload, "request")]

    @property
    def address(self) -> str:
        return str(self.node.peer_address)


def _forged(manifest: Manifest, data: bytes) -> Manifest:
    """The manifest of other data (chunk hashes and sizes recomputed)."""
    size = manifest.chunk_size
    chunks = tuple(hashlib.sha256(data[i : i + size]).digest() for i in range(0, len(data), size))
    return replace(manifest, chunks=chunks)


def _snapshot_of(chain, root: Path) -> tuple[Manifest, bytes]:
    with chain.reader() as r:
        payload = capture_focus(chain.focus, chain.head, chain.chain_id)
        m = write_snapshot(r, payload, root, chain_id=chain.chain_id, chunk_size=CHUNK)
    return m, (root / f"{m.height:012d}" / DATA_FILE).read_bytes()


@pytest.fixture
def refusals(caplog):
    caplog.set_level(logging.INFO, logger="focusflow.node.state_sync")

    def codes() -> list[str]:
        return [r.fields["code"] for r in caplog.records if r.getMessage() == "snapshot refused"]

    return codes


def _empty(path: Path) -> bool:
    with Store(path) as store, store.reader() as r:
        return r.meta(b"height") is None


def test_a_new_node_state_syncs_from_a_validator_and_follows_with_the_same_roots(
    tmp_path, refusals
):
    gen = genesis()
    chain = open_chain(tmp_path / "v", gen, VALIDATOR)
    _links(chain, 4)
    ext = StateSync(interval=5, keep=2, chunk_size=CHUNK)
    rt = ValidatorRuntime(
        chain, VALIDATOR, wal_path=tmp_path / "wal", listen=("127.0.0.1", 0), commit_wait=0.05
    )
    rt.extensions.append(ext)

    async def run() -> int:
        await rt.start_async()
        try:
            while ext.written == 0:
                await asyncio.sleep(0.05)
            ext.interval = 10**9  # one snapshot is enough: keep it while it is fetched
            address = str(rt.net.peer_address)
            height = await state_sync(tmp_path / "new", gen, [address], TRUST)
            # Links after the snapshot: the installed focus engine must go on exactly.
            sent = [
                rt.submit(tx(BOB, i, link((f"late{i}", "hub"), ("hub", f"p{i}")))) for i in range(3)
            ]
            deadline = asyncio.get_running_loop().time() + 30
            while any(rt.is_pending(t.hash) for t in sent) or chain.height <= height + 1:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
            return height
        finally:
            await rt.stop_async()

    height = asyncio.run(asyncio.wait_for(run(), 120))
    assert height == 5 and refusals() == []
    dst = open_chain(tmp_path / "new", gen)
    assert (dst.height, dst.base) == (5, 5)
    links_after = 0
    for record in chain.records(6):
        links_after += bool(record.deltas)
        assert dst.apply_block(record).block.header == record.block.header
    assert dst.head == chain.head and dst.focus.root == chain.focus.root
    assert links_after >= 1
    dst.close()
    chain.close()


@pytest.fixture
def honest(tmp_path):
    """A chain of 5 blocks with links and its snapshot at 5."""
    chain = open_chain(tmp_path / "honest", genesis(), VALIDATOR)
    _links(chain, 5)
    manifest, data = _snapshot_of(chain, tmp_path / "honest-snaps")
    with chain.reader() as r:
        blocks = {h: r.block(h) for h in range(1, 6)}
    yield chain, manifest, data, blocks
    chain.close()


async def _sync_from(servers: list[Server], path: Path, gen: Genesis) -> int:
    for server in servers:
        await server.node.start()
    try:
        return await state_sync(path, gen, [s.address for s in servers], TRUST)
    finally:
        for server in servers:
            await server.node.stop()


def test_a_wrong_chunk_is_refused_and_nothing_is_installed(tmp_path, honest, refusals):
    chain, manifest, data, blocks = honest
    bad = bytearray(data)
    bad[CHUNK + 1] ^= 0x01  # the manifest is the true one: this chunk does not hash to it
    liar = Server(chain.genesis, manifest, bytes(bad), blocks)
    assert asyncio.run(_sync_from([liar], tmp_path / "new", chain.genesis)) == 0
    assert refusals() == ["snapshot_chunk_mismatch"] and _empty(tmp_path / "new")
    assert liar.chunks_served >= 2


def test_a_snapshot_of_a_later_schema_is_not_even_downloaded(tmp_path, honest):
    chain, manifest, data, blocks = honest
    other = Server(chain.genesis, replace(manifest, focus_schema=2), data, blocks)
    assert asyncio.run(_sync_from([other], tmp_path / "new", chain.genesis)) == 0
    assert other.chunks_served == 0 and _empty(tmp_path / "new")


@pytest.fixture
def skipped(caplog):
    caplog.set_level(logging.INFO, logger="focusflow.node.state_sync")

    def codes() -> list[str]:
        return [r.fields["code"] for r in caplog.records if r.getMessage() == "snapshot skipped"]

    return codes


def test_a_previous_release_peer_is_skipped_and_an_upgraded_one_used(tmp_path, skipped):
    """A peer of the previous release offers its snapshot of block 20 (kept in
    tests/chain/data: a pickled focus state). Alone, it is skipped without a
    chunk asked (the node then starts from genesis and block-syncs); beside an
    upgraded peer offering its snapshot of the same block, the node installs
    that one and its chain is the old release's, block for block."""
    gen = upgrade.v3.genesis("devnet")
    old_manifest, old_data = upgrade.old_snapshot("devnet")
    old = Server(gen, old_manifest, old_data, {})
    assert asyncio.run(_sync_from([old], tmp_path / "alone", gen)) == 0
    assert old.chunks_served == 0 and _empty(tmp_path / "alone")
    assert skipped() == ["snapshot_incompatible"]
    chain = upgrade.make_chain("devnet", tmp_path / "upgraded")
    manifest, data = _snapshot_of(chain, tmp_path / "upgraded-snaps")
    with chain.reader() as r:
        blocks = {h: r.block(h) for h in range(1, 21)}
    old = Server(gen, old_manifest, old_data, {})
    new = Server(gen, manifest, data, blocks)
    assert asyncio.run(_sync_from([old, new], tmp_path / "new", gen)) == 20
    assert old.chunks_served == 0 and new.chunks_served == len(manifest.chunks)
    dst = open_chain(tmp_path / "new", gen)
    assert dst.head.hash == decode(old_manifest, "manifest")["block_hash"] == chain.head.hash
    assert dst.focus.root == chain.focus.root
    dst.store.close()
    chain.store.close()


def test_a_state_that_does_not_hash_to_its_header_root_is_refused(tmp_path, honest, refusals):
    chain, manifest, data, blocks = honest
    a = manifest.sections[0]
    at = data.index(b"/token/acct/", a) + 32 + 3  # a byte of the first account's balance
    bad = data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]
    liar = Server(chain.genesis, _forged(manifest, bad), bad, blocks)
    assert asyncio.run(_sync_from([liar], tmp_path / "new", chain.genesis)) == 0
    assert refusals() == ["snapshot_root_mismatch"]
    assert _empty(tmp_path / "new")


def test_a_forged_chain_is_refused_and_the_honest_snapshot_installed(tmp_path, honest, refusals):
    """A peer serves a newer snapshot of a chain of its own making: every root
    and its certificate agree with each other, but its validator is not the
    genesis's, so no trusted validator signed the header. The node refuses it
    and installs the older honest snapshot of the other peer."""
    chain, manifest, data, blocks = honest
    gen = chain.genesis
    fake_gen = Genesis.from_json(
        {
            **gen.to_json(),
            "validators": [{"name": "f", "public_key": FAKE.public_key.hex(), "power": 1}],
        }
    )
    fake = open_chain(tmp_path / "fake", fake_gen, FAKE)
    _links(fake, 8)
    fake_manifest, fake_data = _snapshot_of(fake, tmp_path / "fake-snaps")
    with fake.reader() as r:
        fake_blocks = {h: r.block(h) for h in range(1, 9)}
    fake.close()
    assert fake_manifest.chain_id == gen.chain_id and fake_manifest.height == 8
    liar = Server(gen, fake_manifest, fake_data, fake_blocks)
    good = Server(gen, manifest, data, blocks)
    height = asyncio.run(_sync_from([liar, good], tmp_path / "new", gen))
    assert height == 5 and refusals() == ["snapshot_certificate_invalid"]
    dst = open_chain(tmp_path / "new", gen)
    assert dst.head == chain.head
    dst.store.close()


def test_trust_from_a_trusted_hash_and_within_the_trusting_period(honest):
    chain = honest[0]
    gen = chain.genesis
    record = chain.block_record(5)
    valsets = chain.valsets

    async def fetch(height: int):
        return chain.block_record(height)

    def check(trust: Trust, now_ms: int | None = None) -> None:
        asyncio.run(verify_trust(record, valsets, gen, trust, fetch, now_ms))

    check(Trust(3, chain.block_record(3).block.hash, None))
    with pytest.raises(SnapshotCertificateError, match="not the trusted one"):
        check(Trust(3, chain.block_record(2).block.hash, None))
    with pytest.raises(SnapshotCertificateError, match="trusting period"):
        check(Trust(period_s=3600.0))
    check(Trust(period_s=3600.0), now_ms=gen.genesis_time_ms + 1000)


def test_config_keys():
    assert Trust.from_config({}) == Trust()
    trusted = Trust.from_config({"trust_height": 7, "trust_hash": "ab" * 32, "trust_period_s": 60})
    assert trusted == Trust(7, bytes([0xAB]) * 32, 60.0)
    for bad in (
        {"trust_height": 7},
        {"trust_hash": "ab" * 32},
        {"trust_height": 0, "trust_hash": "ab" * 32},
        {"trust_height": 7, "trust_hash": "xyz"},
        {"trust_period_s": 0},
    ):
        with pytest.raises(InvalidParameterError):
            Trust.from_config(bad)
    ext = StateSync.from_config({"snapshot_interval": 50, "snapshot_keep": 3})
    assert (ext.interval, ext.keep) == (50, 3)
    assert StateSync.from_config({}).interval == 1000
    for bad in ({"snapshot_interval": -1}, {"snapshot_keep": 0}, {"snapshot_interval": "x"}):
        with pytest.raises(InvalidParameterError):
            StateSync.from_config(bad)


def test_trust_hops_through_a_validator_set_change(tmp_path):
    """Skipping verification: the header at 10 is signed by a newcomer alone,
    who holds more than 2/3 of the set from EPOCH + 1 on and nothing of the
    genesis set; trust reaches it through the set change's header, which
    the genesis validators signed. A hop header the genesis validators did not
    sign breaks the chain of trust."""
    net = epochs.Net(open_chain(tmp_path / "p", epochs.genesis(), epochs.KEYS[0]))
    chain = net.chain
    net.step(net.tx(epochs.NEW, "stake", {"amount": 9 * epochs.UNIT}))
    net.step(net.tx(epochs.NEW, "validator.register", {"name": "newcomer"}))
    net.to_height(epochs.EPOCH + 1)
    hop_height = epochs.EPOCH + 1
    assert chain.valsets.changes == [1, hop_height]
    while chain.height < 10:
        net.step(signers=[epochs.NEW])
    record = chain.block_record(10)
    gen = epochs.genesis()

    async def honest(height: int):
        return chain.block_record(height)

    fetched = []

    async def recorded(height: int):
        fetched.append(height)
        return chain.block_record(height)

    asyncio.run(verify_trust(record, chain.valsets, gen, TRUST, recorded))
    assert fetched == [hop_height]
    forged_hop = chain.block_record(hop_height)
    cert = sign_certificate([epochs.NEW], gen.chain_id, hop_height, forged_hop.block.hash)
    forged_hop = replace(forged_hop, commit=cert)

    async def lying(height: int):
        return forged_hop if height == hop_height else chain.block_record(height)

    with pytest.raises(SnapshotCertificateError, match="hop block"):
        asyncio.run(verify_trust(record, chain.valsets, gen, TRUST, lying))
    # Without hops (a trusted set that never changed) the newcomer alone is not enough.
    with pytest.raises(SnapshotCertificateError, match="no more than 1/3"):
        asyncio.run(
            verify_trust(record, ValidatorSets([(1, gen.validator_set())]), gen, TRUST, honest)
        )
    chain.close()


def test_a_node_that_started_from_a_snapshot_is_not_asked_for_older_blocks(tmp_path, honest):
    """Its status names its base (the snapshot height): a node at genesis does
    not sync from it and does not blame it for the blocks it never had."""
    _chain, manifest, data, blocks = honest
    gen = genesis()
    assert asyncio.run(_sync_from([Server(gen, manifest, data, blocks)], tmp_path / "s", gen)) == 5
    synced = open_chain(tmp_path / "s", gen)
    fresh = open_chain(tmp_path / "f", gen)

    async def run() -> tuple[int, float]:
        a = ValidatorRuntime(
            synced, KeyPair.generate(), wal_path=tmp_path / "a.wal",
            listen=("127.0.0.1", 0), follow_only=True,
        )  # fmt: skip
        await a.start_async()
        b = ValidatorRuntime(
            fresh, KeyPair.generate(), wal_path=tmp_path / "b.wal", listen=("127.0.0.1", 0),
            peers=[str(a.net.peer_address)], follow_only=True,
        )  # fmt: skip
        await b.start_async()
        try:
            deadline = asyncio.get_running_loop().time() + 10
            while a.net.id not in b.net.connected_peers():
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
            for _ in range(3):
                await b.sync.poll_once()
            return fresh.height, b.net.scores.score(a.net.id)
        finally:
            await b.stop_async()
            await a.stop_async()

    height, score = asyncio.run(asyncio.wait_for(run(), 60))
    assert height == 0 and score == 0.0
    synced.close()
    fresh.close()
