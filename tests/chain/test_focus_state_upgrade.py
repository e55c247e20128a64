"""A node of this release starts from what a node of the previous release left.

The previous release kept its focus checkpoint, and served its snapshots'
focus state, as a pickle of the engine's objects (tests/chain/data, written by
that release's code). An upgraded node reads its own checkpoint of that
release once (HMAC-checked under its home's key, the pickle mapped to inert
records, never to today's classes), rewrites it in the new format, replays the
blocks after it with every focus root checked and goes on exactly as a node
that never stopped. A snapshot of that release from a peer is refused
before a byte of its pickle is read.
"""

from __future__ import annotations

import logging
import lzma
import pickle
import shutil
import tempfile
from functools import cache
from pathlib import Path

import pytest

from focusflow.chain import Msg, make_tx
from focusflow.chain.focus_checkpoint import CHECKPOINT_FILE, read_header_of
from focusflow.chain.snapshot import (
    Manifest,
    SnapshotError,
    SnapshotIncompatibleError,
    capture_focus,
    load_focus,
    write_snapshot,
)
from focusflow.core.encoding import decode
from focusflow.node import open_chain
from focusflow.testing.chains import account
from tests.chain.data import make_focus_v3 as v3

DATA = Path(__file__).parent / "data"


def old_checkpoint(name: str, store: Path, key: bool = True) -> None:
    """The previous release's checkpoint of ``name`` (block 12) put into ``store``."""
    raw = lzma.decompress((DATA / name / "focus.ckpt.xz").read_bytes())
    (store / CHECKPOINT_FILE).write_bytes(raw)
    if key:
        shutil.copy(DATA / name / "focus.ckpt.key", store / "focus.ckpt.key")
        (store / "focus.ckpt.key").chmod(0o600)


def old_snapshot(name: str) -> tuple[bytes, bytes]:
    """The previous release's snapshot of block 20: manifest and data."""
    folder = DATA / name / "snapshot"
    return (folder / "manifest.cbor").read_bytes(), lzma.decompress(
        (folder / "data.bin.xz").read_bytes()
    )


def make_chain(name: str, path: Path, blocks: int = v3.BLOCKS):
    """The kept chain's first ``blocks`` blocks made again by this release
    (the same transactions and times: the same blocks, hash for hash)."""
    chain = open_chain(path, v3.genesis(name), v3.VALIDATOR)
    for h, txs in enumerate(v3.chain_blocks()[:blocks], start=1):
        chain.produce_block(txs, v3.T0 + 1000 * h)
    return chain


@cache
def same_bits_as_the_fixture(name: str) -> bool:
    """Whether this machine makes the kept chain's blocks bit for bit. An exact
    arithmetic does on every CPU; 'fast' (the tri and diffusion fixtures) only
    where the CPU and library builds compute as where they were written (the
    node warns so for any 'fast' chain). Tri's block 20, whose hash its kept snapshot manifest
    holds, tells which this machine is."""
    if v3.FOCUS[name].get("arithmetic", "fast") != "fast":
        return True
    with tempfile.TemporaryDirectory() as tmp:
        chain = make_chain("tri", Path(tmp) / "probe")
        made = chain.head.hash
        chain.store.close()
    return decode(old_snapshot("tri")[0], "manifest")["block_hash"] == made


def _links_at(chain, h: int) -> bytes:
    """A transaction of block ``h`` past the kept chain: a new particle and a
    link onto a held pair."""
    key = v3.NEURONS[h % len(v3.NEURONS)]
    pairs = [(h, 200 + h), (1, 8)]
    msg = Msg("link", {"links": [[v3.particle(a), v3.particle(b)] for a, b in pairs]})
    return make_tx(key, v3.CHAIN_ID, account(chain, key).nonce, 10**6, [msg]).encoded


@pytest.mark.parametrize("name", list(v3.FOCUS))
def test_an_upgraded_node_starts_from_its_old_checkpoint(name, tmp_path, applies, caplog):
    if not same_bits_as_the_fixture(name):
        pytest.skip(
            f"the {name!r} fixture's 'fast' focus was written where the CPU or library "
            "build computes it otherwise than here: its blocks are not made again bit for bit"
        )
    chain = make_chain(name, tmp_path / "node")
    head = chain.head
    if name in v3.SNAPSHOTS:
        manifest = decode(old_snapshot(name)[0], "manifest")
        assert (manifest["height"], manifest["block_hash"]) == (20, head.hash)
    chain.store.close()
    old_checkpoint(name, tmp_path / "node")
    applies.clear()
    with caplog.at_level(logging.INFO, logger="focusflow.chain"):
        node = open_chain(tmp_path / "node", v3.genesis(name), v3.VALIDATOR)
    assert node.restored_from == v3.CHECKPOINT_AT and node.head == head
    assert len(applies) == v3.BLOCKS - v3.CHECKPOINT_AT, "blocks 13..20, every root checked"
    assert any(r.getMessage().startswith("focus checkpoint converted") for r in caplog.records)
    assert read_header_of(tmp_path / "node" / CHECKPOINT_FILE).block.height == v3.CHECKPOINT_AT
    # It goes on with the roots of a node that never stopped, and its own
    # checkpoint, in the new format, restarts it.
    steady = make_chain(name, tmp_path / "steady")
    for h in (21, 22):
        txs = [_links_at(steady, h)]
        a = steady.produce_block(txs, v3.T0 + 1000 * h)
        b = node.produce_block(txs, v3.T0 + 1000 * h)
        assert a.block.header == b.block.header
    node.close()
    again = open_chain(tmp_path / "node", v3.genesis(name), v3.VALIDATOR)
    assert again.restored_from == 22 and again.focus.root == steady.focus.root
    again.store.close()
    steady.store.close()


@pytest.mark.parametrize("key", ["missing", "another home's"])
def test_an_old_checkpoint_without_its_homes_key_is_not_read(key, tmp_path, applies, caplog):
    """The pickle is read only under the home's HMAC: a file copied from
    elsewhere is refused before any of it is unpickled, and every block is
    replayed."""
    chain = make_chain("devnet", tmp_path / "node")
    head = chain.head
    chain.store.close()
    old_checkpoint("devnet", tmp_path / "node", key=key != "missing")
    if key == "another home's":
        shutil.copy(DATA / "tri" / "focus.ckpt.key", tmp_path / "node" / "focus.ckpt.key")
        # A checkout does not keep the owner-only mode; the key must be
        # refused for its value, not its mode.
        (tmp_path / "node" / "focus.ckpt.key").chmod(0o600)
    applies.clear()
    with caplog.at_level(logging.WARNING, logger="focusflow.chain"):
        node = open_chain(tmp_path / "node", v3.genesis("devnet"), v3.VALIDATOR)
    assert node.restored_from is None and node.head == head
    assert len(applies) == v3.BLOCKS + 1
    (warned,) = [r for r in caplog.records if r.getMessage().startswith("focus checkpoint not")]
    reason = {"missing": "without its home's key", "another home's": "HMAC does not check"}[key]
    assert reason in warned.fields["reason"]
    node.store.close()


@pytest.mark.parametrize("name", v3.SNAPSHOTS)
def test_an_old_snapshot_is_refused_unread(name, tmp_path, monkeypatch):
    """Its manifest says what it is (format 1, a pickled focus state): refused
    as incompatible. Its focus section, given to the loader anyway, is not a
    focus state, and nothing unpickles it."""
    raw_manifest, data = old_snapshot(name)
    with pytest.raises(SnapshotIncompatibleError, match="pickle, which this node never reads"):
        Manifest.decode(raw_manifest)

    def never(*args, **kwargs):
        raise AssertionError("a peer's pickle was unpickled")

    monkeypatch.setattr(pickle, "Unpickler", never)
    monkeypatch.setattr(pickle, "loads", never)
    monkeypatch.setattr(pickle, "load", never)
    fields = decode(raw_manifest, "manifest")
    block, state_size, focus_size = fields["sections"]
    path = tmp_path / "focus.bin"
    path.write_bytes(data[block + state_size :])
    chain = make_chain(name, tmp_path / "node")
    with chain.reader() as r:
        state = dict(r.items(b"/"))
    with open(path, "rb") as f, pytest.raises(SnapshotError, match="not a focus state"):
        load_focus(f, focus_size, chain.head, state, v3.genesis(name))
    # This release's snapshot of the same block is what an upgraded peer serves.
    with chain.reader() as r:
        payload = capture_focus(chain.focus, chain.head, chain.chain_id)
        manifest = write_snapshot(r, payload, tmp_path / "snaps", chain_id=chain.chain_id)
    if same_bits_as_the_fixture(name):
        assert (manifest.height, manifest.block_hash) == (20, fields["block_hash"])
    chain.store.close()
