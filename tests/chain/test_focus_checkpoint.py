"""A restart loads the focus checkpoint and replays only the blocks after it,
and goes on exactly as a node that never stopped; a checkpoint that does not
belong to the store, or does not check out, is never used."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil

import pytest

from focusflow.chain import chain as chain_module
from focusflow.chain import focus_checkpoint
from focusflow.chain.focus_checkpoint import read_checkpoint, write_checkpoint
from focusflow.chain.focus_commit import FocusState
from tests.chain.helpers import new_chain
from tests.chain.randomtx import random_blocks

T0 = 1_700_000_000_000
BLOCKS = random_blocks(seed=5, blocks=10, txs_per_block=20)


def _produce(chains, heights):
    for h in heights:
        for c in chains:
            c.produce_block(BLOCKS[h - 1], time_ms=T0 + 1000 * h)
        assert all(c.head == chains[0].head for c in chains)


@pytest.fixture
def applies(monkeypatch):
    """Counts the blocks of deltas fed to any FocusState (what a restore replays)."""
    calls = []
    apply = FocusState.apply

    def counting(self, deltas):
        calls.append(deltas)
        return apply(self, deltas)

    monkeypatch.setattr(FocusState, "apply", counting)
    return calls


def test_a_closed_node_restarts_from_its_checkpoint_and_goes_on_exactly(tmp_path, applies):
    steady, node = new_chain(tmp_path / "steady"), new_chain(tmp_path / "node")
    _produce([steady, node], range(1, 7))
    node.close()
    path = node.checkpoint_path
    assert path.exists() and (os.stat(path).st_mode & 0o777) == 0o600
    key = path.parent / focus_checkpoint.CHECKPOINT_KEY_FILE
    assert (os.stat(key).st_mode & 0o777) == 0o600 and len(key.read_bytes()) == 32
    applies.clear()
    node = new_chain(tmp_path / "node")
    assert node.restored_from == 6 and node.head == steady.head
    assert applies == [], "a restart after close replays no block"
    # The loaded engine state gives the same focus roots (bit for bit) as the
    # engine that never stopped, through later blocks of links and stakes.
    _produce([steady, node], range(7, 11))


def test_after_a_crash_only_the_blocks_after_the_checkpoint_are_replayed(tmp_path, applies):
    steady, node = new_chain(tmp_path / "steady"), new_chain(tmp_path / "node")
    _produce([steady, node], range(1, 5))
    assert node.checkpoint()
    _produce([steady, node], range(5, 9))
    node.store.close()  # no close(): the checkpoint stays at height 4
    applies.clear()
    node = new_chain(tmp_path / "node")
    assert node.restored_from == 4 and node.head == steady.head
    assert len(applies) == 4
    _produce([steady, node], range(9, 11))


def test_focus_work_past_the_threshold_writes_a_checkpoint(tmp_path, monkeypatch):
    """Every block's work passes a zero threshold: each commit starts a
    background write of its block (the one before has ended)."""
    monkeypatch.setattr(chain_module, "CHECKPOINT_WORK_S", 0.0)
    monkeypatch.setattr(chain_module, "CHECKPOINT_COST_RATIO", 0.0)
    node = new_chain(tmp_path / "node")
    for h in range(1, 4):
        _produce([node], [h])
        assert node.wait_checkpoint(timeout=60)
        assert read_checkpoint(node.checkpoint_path).height == h
    assert node.checkpoints.written == 3 and node.checkpoints.failed == 0
    node.store.close()
    assert new_chain(tmp_path / "node").restored_from == 3


def test_a_checkpoint_waits_for_ten_times_its_own_writing_time(tmp_path, monkeypatch):
    """With no work threshold, the write cost alone spaces checkpoints: blocks
    whose focus work is shorter than ten writes do not each write one."""
    monkeypatch.setattr(chain_module, "CHECKPOINT_WORK_S", 0.0)
    node = new_chain(tmp_path / "node")
    _produce([node], [1])
    assert node.wait_checkpoint(timeout=60)
    assert read_checkpoint(node.checkpoint_path).height == 1
    monkeypatch.setattr(chain_module, "CHECKPOINT_COST_RATIO", 1e9)
    _produce([node], [2, 3])
    assert read_checkpoint(node.checkpoint_path).height == 1


def test_a_checkpoint_while_a_block_is_pending_is_the_heads(tmp_path):
    """An uncommitted block advances its own copy of the focus state, never the
    head's, so a checkpoint written meanwhile is the head's."""
    node = new_chain(tmp_path / "node")
    _produce([node], [1])
    pending = node.propose(BLOCKS[1], time_ms=T0 + 2000)
    assert pending.record.deltas and pending.focus.root != node.focus.root
    assert node.checkpoint()
    ckpt = read_checkpoint(node.checkpoint_path)
    assert ckpt.height == 1 and ckpt.state.root == node.focus.root


def _flip_a_payload_byte(path):
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))


def _copy_with_key(source, path):
    """Another home's checkpoint and its key (what passes the HMAC)."""
    shutil.copy(source, path)
    key = path.parent / focus_checkpoint.CHECKPOINT_KEY_FILE
    key.unlink()
    shutil.copy(source.parent / focus_checkpoint.CHECKPOINT_KEY_FILE, key)


def _other_chain(tmp_path, path, with_key=True):
    """A checkpoint of another chain (other blocks) at the same height."""
    other = new_chain(tmp_path / "other")
    for h, batch in enumerate(random_blocks(seed=6, blocks=6, txs_per_block=20), start=1):
        other.produce_block(batch, time_ms=T0 + 1000 * h)
    other.close()
    if with_key:
        _copy_with_key(other.checkpoint_path, path)
    else:
        shutil.copy(other.checkpoint_path, path)


def _ahead(tmp_path, path):
    """A checkpoint of this chain, but past the store's head."""
    twin = new_chain(tmp_path / "twin")
    _produce([twin], range(1, 9))
    twin.close()
    _copy_with_key(twin.checkpoint_path, path)


def _rehashed(path):
    """Payload changed and the trailer recomputed as a plain SHA-256 of header
    and payload: what anyone who can write the file but not read the home's
    key can do (and what the checksum alone accepted)."""
    raw = bytearray(path.read_bytes())
    size = int.from_bytes(raw[len(focus_checkpoint.MAGIC) : len(focus_checkpoint.MAGIC) + 4], "big")
    start = len(focus_checkpoint.MAGIC) + 4
    end = len(raw) - focus_checkpoint.TRAILER
    raw[end - 10] ^= 0x01
    digest = hashlib.sha256(bytes(raw[start:end])).digest()
    assert size > 0
    path.write_bytes(bytes(raw[:end]) + bytes(raw[end : end + 8]) + digest)


def _wrong_root(path):
    """A checkpoint this home signed (with its key) whose state's focus root is
    not the one its block's header committed: a node must not start from it,
    even with no block left to replay that would show it."""
    ckpt = read_checkpoint(path)
    ckpt.state.root = bytes(32)
    write_checkpoint(path, ckpt.state, ckpt.height, ckpt.block_hash)


def _key_file(path):
    return path.parent / focus_checkpoint.CHECKPOINT_KEY_FILE


def _other_code(tmp_path, path, monkeypatch):
    monkeypatch.setattr(focus_checkpoint, "code_fingerprint", lambda: b"\0" * 32)


CORRUPTIONS = {
    "payload bit flipped": (lambda tmp_path, path, mp: _flip_a_payload_byte(path), "HMAC"),
    "rewritten without the key": (lambda tmp_path, path, mp: _rehashed(path), "HMAC"),
    "another home's": (
        lambda tmp_path, path, mp: _other_chain(tmp_path, path, with_key=False),
        "not written by this home",
    ),
    "root not its block's": (lambda tmp_path, path, mp: _wrong_root(path), "focus root"),
    "key missing": (lambda tmp_path, path, mp: _key_file(path).unlink(), "no checkpoint key"),
    "key readable by others": (
        lambda tmp_path, path, mp: _key_file(path).chmod(0o644),
        "readable by others",
    ),
    "truncated": (
        lambda tmp_path, path, mp: path.write_bytes(path.read_bytes()[:-100]),
        "corrupt payload",
    ),
    "not a checkpoint": (lambda tmp_path, path, mp: path.write_bytes(b"hello"), "not a focus"),
    "header garbage": (
        lambda tmp_path, path, mp: path.write_bytes(
            focus_checkpoint.MAGIC + (5).to_bytes(4, "big") + b"\xff" * 40
        ),
        "corrupt header",
    ),
    "another chain's": (lambda tmp_path, path, mp: _other_chain(tmp_path, path), "not this"),
    "past the head": (lambda tmp_path, path, mp: _ahead(tmp_path, path), "past the store"),
    "other code": (lambda tmp_path, path, mp: _other_code(tmp_path, path, mp), "other code"),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_an_unusable_checkpoint_is_ignored_and_every_block_replayed(
    case, tmp_path, applies, caplog, monkeypatch
):
    steady, node = new_chain(tmp_path / "steady"), new_chain(tmp_path / "node")
    _produce([steady, node], range(1, 7))
    node.close()
    spoil, reason = CORRUPTIONS[case]
    spoil(tmp_path, node.checkpoint_path, monkeypatch)
    applies.clear()
    with caplog.at_level(logging.WARNING, logger="focusflow.chain"):
        node = new_chain(tmp_path / "node")
    assert node.restored_from is None and node.head == steady.head
    assert len(applies) == 7, "genesis and every block after it are replayed"
    warned = [r for r in caplog.records if r.getMessage().startswith("focus checkpoint not used")]
    assert warned and reason in warned[0].fields["reason"]
    _produce([steady, node], range(7, 9))


def test_a_checkpoint_whose_next_blocks_do_not_recompute_is_dropped(tmp_path, caplog):
    """A checkpoint that passes every check of the file but holds another
    engine state (here a perturbed warm start): the first replayed block's
    focus root differs, and the restore starts again from genesis."""
    steady, node = new_chain(tmp_path / "steady"), new_chain(tmp_path / "node")
    _produce([steady, node], range(1, 4))
    assert node.checkpoint()
    _produce([steady, node], range(4, 7))
    node.store.close()
    ckpt = read_checkpoint(node.checkpoint_path)
    phi = ckpt.state.engine._phi
    phi[: len(phi) // 2] *= 1.01
    phi /= phi.sum()
    write_checkpoint(node.checkpoint_path, ckpt.state, ckpt.height, ckpt.block_hash)
    with caplog.at_level(logging.WARNING, logger="focusflow.chain"):
        node = new_chain(tmp_path / "node")
    assert node.restored_from is None and node.head == steady.head
    assert any(r.getMessage().startswith("focus checkpoint dropped") for r in caplog.records)
    _produce([steady, node], range(7, 9))


def test_a_failed_write_keeps_the_last_checkpoint_and_leaves_nothing_beside_it(
    tmp_path, monkeypatch, caplog
):
    node = new_chain(tmp_path / "node")
    _produce([node], [1])
    assert node.checkpoint()
    _produce([node], [2])

    def fail_midway(state, out, protocol):
        out.write(b"half a pickle")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(focus_checkpoint.pickle, "dump", fail_midway)
    with caplog.at_level(logging.WARNING, logger="focusflow.chain"):
        assert not node.checkpoint()
    assert any(r.getMessage() == "focus checkpoint not written" for r in caplog.records)
    assert sorted(p.name for p in node.checkpoint_path.parent.glob("focus.ckpt*")) == [
        "focus.ckpt",
        "focus.ckpt.key",
    ]
    assert read_checkpoint(node.checkpoint_path).height == 1
    node.close()  # its checkpoint fails too; the store still closes
    monkeypatch.undo()
    again = new_chain(tmp_path / "node")
    assert again.restored_from == 1 and again.head.height == 2


def _gpu() -> tuple[bool, str]:
    from focusflow.focus.backends.cuda import cuda_available

    return cuda_available()


@pytest.mark.skipif(not _gpu()[0], reason=f"no GPU for the cuda backend: {_gpu()[1]}")
def test_a_gpu_node_checkpoints_in_numba_form_and_restarts_on_its_gpu(
    tmp_path, monkeypatch, applies
):
    """A node running its exact chain's focus on the GPU commits what a CPU
    node commits; its checkpoint and its state-sync payload hold the numba
    form (every node loads and checks it); restarted, it takes the state back
    to the GPU and goes on with the same roots."""
    import pickle

    from focusflow.chain.focus_spec import NEW_CHAIN_FOCUS
    from focusflow.chain.snapshot import capture_focus, check_focus_structure
    from tests.chain.helpers import genesis

    gen = genesis(focus=dict(NEW_CHAIN_FOCUS))
    steady = new_chain(tmp_path / "steady", gen)
    monkeypatch.setenv("FOCUSFLOW_CHAIN_BACKEND", "cuda")
    node = new_chain(tmp_path / "node", gen)
    assert (steady.focus.engine.backend.name, node.focus.engine.backend.name) == ("numba", "cuda")
    _produce([steady, node], range(1, 5))
    assert node.checkpoint()
    assert read_checkpoint(node.checkpoint_path).state.engine.backend.name == "numba"
    payload = pickle.loads(capture_focus(node.focus))
    check_focus_structure(payload)
    assert payload.engine.backend.name == "numba" and node.focus.engine.backend.name == "cuda"
    _produce([steady, node], range(5, 7))
    node.store.close()
    applies.clear()
    node = new_chain(tmp_path / "node", gen)
    assert node.restored_from == 4 and len(applies) == 2
    assert node.focus.engine.backend.name == "cuda"
    _produce([steady, node], range(7, 11))
