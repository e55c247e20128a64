"""State-sync snapshots: written from a committed store, verified, installed, continued.

A store installed from a snapshot must open at the snapshot's height and go on
applying blocks with the very roots the nodes that replayed everything
commit (the golden focus roots of tests/chain/test_golden_roots.py); a
snapshot that does not verify (a wrong chunk, a state or focus that does not
hash to the header's roots, a certificate no validator of the set signed, a
focus section that is not the focus state's byte form) is refused and leaves
the store empty.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from focusflow.chain import Genesis, Msg
from focusflow.chain.block import BlockRecord, sign_certificate
from focusflow.chain.focus_checkpoint import CHECKPOINT_FILE, read_header_of
from focusflow.chain.snapshot import (
    DATA_FILE,
    SNAPSHOT_FOCUS_FILE,
    ChunkFile,
    Manifest,
    SnapshotCertificateError,
    SnapshotChunkError,
    SnapshotError,
    SnapshotIncompatibleError,
    SnapshotRootError,
    capture_focus,
    list_snapshots,
    load_focus,
    prune_snapshots,
    read_chunk,
    restore_snapshot,
    verify_snapshot,
    write_snapshot,
)
from focusflow.core.errors import StoreError
from focusflow.core.keys import KeyPair
from focusflow.node import open_chain
from focusflow.store import Store
from focusflow.testing.chains import ALICE, BOB, genesis, link, new_chain, particle, tx
from tests.chain import focus_state_bytes, golden_chain
from tests.chain.test_golden_roots import GOLDEN

CHUNK = 4096


def _dir(root: Path, manifest: Manifest) -> Path:
    return root / f"{manifest.height:012d}"


def _snapshot(chain, root: Path, chunk_size: int = CHUNK) -> Manifest:
    with chain.reader() as r:
        payload = capture_focus(chain.focus, chain.head, chain.chain_id)
        return write_snapshot(r, payload, root, chain_id=chain.chain_id, chunk_size=chunk_size)


@pytest.fixture
def small(tmp_path):
    """A chain of 6 blocks with links and stakes, a snapshot at 3 (the chain open)."""
    chain = new_chain(tmp_path / "src")
    manifest = None
    for i in range(6):
        pairs = [(f"a{i}", f"b{i}"), (f"b{i}", "hub"), ("hub", f"a{i}")]
        chain.produce_block([tx(ALICE, i, link(*pairs)), tx(BOB, i, link((f"b{i}", "hub")))])
        if i == 2:
            manifest = _snapshot(chain, tmp_path / "snaps")
    yield chain, manifest, tmp_path
    chain.close()


def _data(tmp_path: Path, manifest: Manifest) -> Path:
    return _dir(tmp_path / "snaps", manifest) / DATA_FILE


def _forge(tmp_path: Path, manifest: Manifest, sections: list[bytes]) -> tuple[Manifest, Path]:
    """A self-consistent snapshot of other sections: every chunk hash recomputed,
    as a lying peer would serve it."""
    data = b"".join(sections)
    size = manifest.chunk_size
    chunks = tuple(hashlib.sha256(data[i : i + size]).digest() for i in range(0, len(data), size))
    forged = Manifest(
        manifest.chain_id,
        manifest.height,
        manifest.block_hash,
        manifest.state_root,
        manifest.focus_root,
        manifest.focus_schema,
        tuple(len(s) for s in sections),
        size,
        chunks,
    )
    path = tmp_path / "forged" / DATA_FILE
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return forged, path


def _sections(tmp_path: Path, manifest: Manifest) -> list[bytes]:
    data = _data(tmp_path, manifest).read_bytes()
    a, b, _ = manifest.sections
    return [data[:a], data[a : a + b], data[a + b :]]


def _empty(path: Path) -> bool:
    with Store(path) as store, store.reader() as r:
        return r.meta(b"height") is None and r.block(0) is None


def test_installed_snapshot_opens_at_its_height_and_applies_the_next_blocks(small):
    src, manifest, tmp_path = small
    assert manifest.height == 3 and len(manifest.chunks) > 1
    assert [m.height for m in list_snapshots(tmp_path / "snaps")] == [3]
    store = Store(tmp_path / "dst")
    header = restore_snapshot(store, manifest, _data(tmp_path, manifest), genesis())
    assert header == src.block_record(3).block.header
    dst = open_chain(store, genesis())
    assert (dst.height, dst.base, dst.restored_from) == (3, 3, 3)
    assert dst.block_record(2) is None
    for record in src.records(4):
        result = dst.apply_block(record)
        assert result.block.header == record.block.header
    assert store.recompute_root() == src.head.state_root
    dst.close()
    # A restart goes on from the focus checkpoint written at close; without it,
    # from the snapshot's own copy, replaying blocks 4..6; without both it refuses.
    for remove in ([], [CHECKPOINT_FILE], [SNAPSHOT_FOCUS_FILE]):
        for name in remove:
            (tmp_path / "dst" / name).unlink()
        if remove == [SNAPSHOT_FOCUS_FILE]:
            with pytest.raises(StoreError, match="state-sync into a new home"):
                open_chain(tmp_path / "dst", genesis())
            continue
        again = open_chain(tmp_path / "dst", genesis())
        assert again.head == src.head and again.focus.root == src.focus.root
        assert again.restored_from == (6 if not remove else 3)
        again.store.close()


def test_snapshot_keeps_the_golden_focus_roots(tmp_path):
    """Exact arithmetic: a node installed from a snapshot at block 3 of the
    golden chain commits blocks 4..6 with the recorded roots."""
    spec = golden_chain.CHAINS["small"]
    keys = [KeyPair.from_seed(bytes([i + 1]) * 32) for i in range(spec.neurons)]
    validator = KeyPair.from_seed(b"\xfe" * 32)
    gen = Genesis.from_json(
        {
            "chain_id": golden_chain.CHAIN_ID,
            "genesis_time_ms": golden_chain.T0,
            "params": {"focus": golden_chain._focus(None)},
            "accounts": [
                {"address": k.address, "balance": 10**15, "stake": 10**7 * (i % 5 + 1)}
                for i, k in enumerate(keys)
            ],
            "validators": [{"public_key": validator.public_key.hex(), "power": 1}],
        }
    )
    blocks = golden_chain._blocks(spec, keys)
    src = open_chain(tmp_path / "src", gen, validator)
    for h, block in enumerate(blocks[:3], start=1):
        src.produce_block(block, time_ms=golden_chain.T0 + 1000 * h)
    manifest = _snapshot(src, tmp_path / "snaps", chunk_size=1 << 20)
    store = Store(tmp_path / "dst")
    restore_snapshot(store, manifest, _data(tmp_path, manifest), gen)
    dst = open_chain(store, gen)
    roots = []
    for h, block in enumerate(blocks[3:], start=4):
        record = src.produce_block(block, time_ms=golden_chain.T0 + 1000 * h).record
        roots.append(dst.apply_block(record).block.header.focus_root.hex())
    assert roots == GOLDEN["small:v3"][3:]
    src.store.close()
    dst.store.close()


def test_a_wrong_chunk_is_refused_on_arrival_and_at_verification(small):
    _, manifest, tmp_path = small
    chunks = ChunkFile(tmp_path / "part" / DATA_FILE, manifest)
    good = read_chunk(tmp_path / "snaps", manifest, 1)
    bad = bytes([good[0] ^ 1]) + good[1:]
    with pytest.raises(SnapshotChunkError):
        chunks.put(1, bad)
    with pytest.raises(SnapshotChunkError):
        chunks.put(1, good[:-1])
    chunks.put(1, good)
    assert 1 not in chunks.missing()
    data = bytearray(_data(tmp_path, manifest).read_bytes())
    data[CHUNK + 5] ^= 0xFF
    path = tmp_path / "tampered" / DATA_FILE
    path.parent.mkdir()
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotChunkError):
        restore_snapshot(Store(tmp_path / "dst"), manifest, path, genesis())
    assert _empty(tmp_path / "dst")


def test_a_state_that_does_not_hash_to_the_header_root_is_refused(small):
    _, manifest, tmp_path = small
    block, state, focus = _sections(tmp_path, manifest)
    i = state.index(b"/token/acct/")
    # One byte of an account's value changed: still well formed, another root.
    key_len = int.from_bytes(state[i - 6 : i - 4], "big")
    pos = i + key_len + 2
    forged_state = state[:pos] + bytes([state[pos] ^ 1]) + state[pos + 1 :]
    forged, path = _forge(tmp_path, manifest, [block, forged_state, focus])
    with pytest.raises(SnapshotRootError, match="state hashes to"):
        restore_snapshot(Store(tmp_path / "dst"), forged, path, genesis())
    assert _empty(tmp_path / "dst")


def test_a_focus_state_that_does_not_hash_to_the_header_focus_root_is_refused(small):
    """The committed vector is quantised from the focus the bytes carry, and
    that is what must hash to the header's root."""
    _, manifest, tmp_path = small
    block, state, focus = _sections(tmp_path, manifest)

    def nudge(phi):
        phi[0] += 1e-3
        return phi

    lying = focus_state_bytes.with_array(focus, "focus", nudge)
    forged, path = _forge(tmp_path, manifest, [block, state, lying])
    with pytest.raises(SnapshotRootError, match="focus state's focus hashes to"):
        restore_snapshot(Store(tmp_path / "dst"), forged, path, genesis())
    assert _empty(tmp_path / "dst")


def test_a_focus_state_of_another_block_is_refused(small):
    _, manifest, tmp_path = small
    src = small[0]
    block, state, focus = _sections(tmp_path, manifest)
    header, _ = focus_state_bytes.decode(focus)
    other = replace(header.block, block_hash=src.block_record(2).block.hash)
    forged, path = _forge(
        tmp_path, manifest, [block, state, focus_state_bytes.changed(focus, block=other)]
    )
    with pytest.raises(SnapshotRootError, match="names another block hash than block 3's"):
        restore_snapshot(Store(tmp_path / "dst"), forged, path, genesis())
    assert _empty(tmp_path / "dst")


class _Planted:
    """Unpickling this would create a file: the test shows it never runs."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_a_pickle_in_the_focus_section_is_refused_unread(small):
    """What the release before the byte form sent: a pickle is not a focus
    state, and nothing of it is unpickled."""
    _, manifest, tmp_path = small
    block, state, _ = _sections(tmp_path, manifest)
    planted = tmp_path / "planted"
    payload = pickle.dumps(_Planted(str(planted)), protocol=5) + bytes(64)
    forged, path = _forge(tmp_path, manifest, [block, state, payload])
    with Store(tmp_path / "dst") as store:
        with pytest.raises(SnapshotError, match="not a focus state") as caught:
            restore_snapshot(store, forged, path, genesis())
        assert caught.value.code == "snapshot_invalid"
    assert not planted.exists()
    assert _empty(tmp_path / "dst")


def test_a_certificate_no_validator_signed_is_refused(small):
    _, manifest, tmp_path = small
    block, state, focus = _sections(tmp_path, manifest)
    record = BlockRecord.decode(block)
    outsider = KeyPair.from_seed(b"outsider".ljust(32, b"\0"))
    cert = sign_certificate(outsider, record.block.header.chain_id, 3, record.block.hash)
    forged_block = BlockRecord(record.block, cert, record.deltas, record.last_commit).encode()
    forged, path = _forge(tmp_path, manifest, [forged_block, state, focus])
    with pytest.raises(SnapshotCertificateError, match="not a validator"):
        restore_snapshot(Store(tmp_path / "dst"), forged, path, genesis())
    assert _empty(tmp_path / "dst")


def test_another_chains_or_schemas_snapshot_is_incompatible(small):
    _, manifest, tmp_path = small
    other = Genesis.from_json({**genesis().to_json(), "chain_id": "focusflow-other"})
    with pytest.raises(SnapshotIncompatibleError):
        verify_snapshot(manifest, _data(tmp_path, manifest), other)
    later = replace(manifest, focus_schema=99).encode()
    with pytest.raises(SnapshotIncompatibleError, match="of schema 99: this node reads 1"):
        Manifest.decode(later)


def test_manifest_decoding_refuses_malformed_input(small):
    _, manifest, _ = small
    assert Manifest.decode(manifest.encode()) == manifest
    for raw in (b"", b"\xff", manifest.encode()[:-3], b"\x00" * (1 << 20)):
        with pytest.raises(SnapshotError):
            Manifest.decode(raw)


def test_install_needs_an_empty_store_and_pruning_keeps_the_newest(small):
    src, manifest, tmp_path = small
    with pytest.raises(StoreError, match="empty store"):
        restore_snapshot(src.store, manifest, _data(tmp_path, manifest), genesis())
    second = _snapshot(src, tmp_path / "snaps")
    assert [m.height for m in list_snapshots(tmp_path / "snaps")] == [6, 3]
    prune_snapshots(tmp_path / "snaps", 1)
    assert list_snapshots(tmp_path / "snaps") == [second]
    with pytest.raises(SnapshotError, match="no longer kept"):
        read_chunk(tmp_path / "snaps", manifest, 0)


@pytest.mark.parametrize("focus", ["new", "first", "fast", "hebb"])
def test_every_chain_focus_configuration_loads(tmp_path, focus):
    """A real state of each focus configuration a genesis can name loads from
    its byte form, a patched weighted graph included (small blocks on a larger
    graph are patched in: an overlay, later links), and is the node's own: its
    byte form is the bytes it was loaded from."""
    gen = genesis(focus=golden_chain._focus(golden_chain.FOCUS[focus]))
    chain = new_chain(tmp_path / "c", gen)
    pairs = [[particle(f"n{i}"), particle(f"n{(i * 7 + 1) % 500}")] for i in range(1500)]
    chain.produce_block([tx(ALICE, 0, Msg("link", {"links": pairs}))])
    for i in range(1, 3):
        chain.produce_block([tx(ALICE, i, link((f"n{i}", f"n{i + 3}"), (f"n{i + 9}", "x")))])
    raw = capture_focus(chain.focus, chain.head, chain.chain_id)
    header, _ = focus_state_bytes.decode(raw)
    assert header.counts.overlay and header.counts.links > header.counts.base_links
    path = tmp_path / "focus.bin"
    path.write_bytes(raw)
    with chain.reader() as r:
        state = dict(r.items(b"/"))
    with open(path, "rb") as f:
        loaded = load_focus(f, len(raw), chain.head, state, gen)
    assert loaded.root == chain.focus.root
    assert capture_focus(loaded, chain.head, chain.chain_id) == raw
    chain.close()
    assert read_header_of(tmp_path / "c" / CHECKPOINT_FILE).block.height == 3
    shutil.rmtree(tmp_path / "c")
