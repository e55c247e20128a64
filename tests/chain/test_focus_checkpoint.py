"""A restart loads the focus checkpoint and replays only the blocks after it,
and goes on exactly as a node that never stopped; a checkpoint that does not
belong to the store, or does not check out, is never used; one another node of
the same chain wrote is as good as one's own (it is data, checked against the
roots its block committed)."""

from __future__ import annotations

import logging
import os
import shutil

import numpy as np
import pytest

from focusflow.chain import focus_checkpoint, lifecycle
from focusflow.chain.focus_checkpoint import read_header_of
from focusflow.chain.focus_state_arrays import params_record
from focusflow.chain.focus_state_format import MAGIC, encode_header
from focusflow.focus.params import make_params
from focusflow.testing.chains import new_chain
from tests.chain import focus_state_bytes
from tests.chain.randomtx import random_blocks

T0 = 1_700_000_000_000
BLOCKS = random_blocks(seed=5, blocks=10, txs_per_block=20)


def _produce(chains, heights):
    for h in heights:
        for c in chains:
            c.produce_block(BLOCKS[h - 1], time_ms=T0 + 1000 * h)
        assert all(c.head == chains[0].head for c in chains)


def test_a_closed_node_restarts_from_its_checkpoint_and_goes_on_exactly(tmp_path, applies):
    steady, node = new_chain(tmp_path / "steady"), new_chain(tmp_path / "node")
    _produce([steady, node], range(1, 7))
    node.close()
    path = node.checkpoint_path
    assert path.exists() and (os.stat(path).st_mode & 0o777) == 0o600
    assert sorted(p.name for p in path.parent.glob("focus.ckpt*")) == ["focus.ckpt"]
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
    monkeypatch.setattr(lifecycle, "CHECKPOINT_WORK_S", 0.0)
    monkeypatch.setattr(lifecycle, "CHECKPOINT_COST_RATIO", 0.0)
    node = new_chain(tmp_path / "node")
    for h in range(1, 4):
        _produce([node], [h])
        assert node.wait_checkpoint(timeout=60)
        assert _height(node) == h
    assert node.checkpoints.written == 3 and node.checkpoints.failed == 0
    node.store.close()
    assert new_chain(tmp_path / "node").restored_from == 3


def test_a_checkpoint_waits_for_ten_times_its_own_writing_time(tmp_path, monkeypatch):
    """With no work threshold, the write cost alone spaces checkpoints: blocks
    whose focus work is shorter than ten writes do not each write one."""
    monkeypatch.setattr(lifecycle, "CHECKPOINT_WORK_S", 0.0)
    node = new_chain(tmp_path / "node")
    _produce([node], [1])
    assert node.wait_checkpoint(timeout=60)
    assert _height(node) == 1
    monkeypatch.setattr(lifecycle, "CHECKPOINT_COST_RATIO", 1e9)
    _produce([node], [2, 3])
    assert _height(node) == 1


def test_a_checkpoint_while_a_block_is_pending_is_the_heads(tmp_path):
    """An uncommitted block advances its own copy of the focus state, never the
    head's, so a checkpoint written meanwhile is the head's."""
    node = new_chain(tmp_path / "node")
    _produce([node], [1])
    pending = node.propose(BLOCKS[1], time_ms=T0 + 2000)
    assert pending.record.deltas and pending.focus.root != node.focus.root
    assert node.checkpoint()
    block = read_header_of(node.checkpoint_path).block
    assert block.height == 1 and block.focus_root == node.focus.root == node.head.focus_root


def _height(node) -> int:
    return read_header_of(node.checkpoint_path).block.height


def _flip_a_payload_byte(path):
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))


def _other_chain(tmp_path, path):
    """A checkpoint of another chain (other blocks) at the same height."""
    other = new_chain(tmp_path / "other")
    for h, batch in enumerate(random_blocks(seed=6, blocks=6, txs_per_block=20), start=1):
        other.produce_block(batch, time_ms=T0 + 1000 * h)
    other.close()
    shutil.copy(other.checkpoint_path, path)


def _ahead(tmp_path, path):
    """A checkpoint of this chain, but past the store's head."""
    twin = new_chain(tmp_path / "twin")
    _produce([twin], range(1, 9))
    twin.close()
    shutil.copy(twin.checkpoint_path, path)


def _rewritten(path, change):
    """The checkpoint decoded, changed and written again whole (a consistent
    file: its SHA-256 recomputed), as anyone who can write it can."""
    path.write_bytes(change(path.read_bytes()))


def _credited_elsewhere(raw):
    """Every link of the neuron with the most links credited to another."""
    _, arrays = focus_state_bytes.decode(raw)
    counts = np.bincount(arrays["links.neuron"])
    busiest, other = (int(i) for i in np.argsort(counts)[::-1][:2])

    def move(neuron):
        neuron[neuron == busiest] = other
        return neuron

    return focus_state_bytes.with_array(raw, "links.neuron", move)


def _nudged(phi):
    phi[0] += 1e-3
    return phi


def _other_params(raw):
    header, _ = focus_state_bytes.decode(raw)
    other = params_record(make_params(None, **{**_params(header), "tol": 1e-7}))
    return focus_state_bytes.changed(raw, params=other)


def _params(header):
    from focusflow.chain.focus_state_arrays import params_of

    params = params_of(header.params)
    return {name: getattr(params, name) for name in params_record(params)}


def _schema(raw, schema):
    header, _ = focus_state_bytes.decode(raw)
    lead = encode_header(header)
    forged = lead.replace(b"fschema\x01", b"fschema" + bytes([schema]))
    assert forged != lead
    return focus_state_bytes.framed(forged, focus_state_bytes.body_of(raw))


CORRUPTIONS = {
    "payload bit flipped": (lambda tmp_path, path: _flip_a_payload_byte(path), "SHA-256"),
    "focus not its block's root": (
        lambda tmp_path, path: _rewritten(
            path, lambda raw: focus_state_bytes.with_array(raw, "focus", _nudged)
        ),
        "focus state's focus hashes to",
    ),
    "other focus parameters": (
        lambda tmp_path, path: _rewritten(path, _other_params),
        "focus state runs tri/fast with other parameters",
    ),
    "a later schema": (
        lambda tmp_path, path: _rewritten(path, lambda raw: _schema(raw, 7)),
        "focus state of schema 7",
    ),
    "truncated": (
        lambda tmp_path, path: path.write_bytes(path.read_bytes()[:-100]),
        "(truncated)",
    ),
    "not a checkpoint": (lambda tmp_path, path: path.write_bytes(b"hello"), "shorter than"),
    "header garbage": (
        lambda tmp_path, path: path.write_bytes(MAGIC + (5).to_bytes(4, "big") + b"\xff" * 40),
        "focus state header",
    ),
    "another chain's": (lambda tmp_path, path: _other_chain(tmp_path, path), "not this"),
    "past the head": (lambda tmp_path, path: _ahead(tmp_path, path), "past the store"),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_an_unusable_checkpoint_is_ignored_and_every_block_replayed(
    case, tmp_path, applies, caplog
):
    steady, node = new_chain(tmp_path / "steady"), new_chain(tmp_path / "node")
    _produce([steady, node], range(1, 7))
    node.close()
    spoil, reason = CORRUPTIONS[case]
    spoil(tmp_path, node.checkpoint_path)
    applies.clear()
    with caplog.at_level(logging.WARNING, logger="focusflow.chain"):
        node = new_chain(tmp_path / "node")
    assert node.restored_from is None and node.head == steady.head
    assert len(applies) == 7, "genesis and every block after it are replayed"
    warned = [r for r in caplog.records if r.getMessage().startswith("focus checkpoint not used")]
    assert warned and reason in warned[0].fields["reason"]
    _produce([steady, node], range(7, 9))


def test_another_nodes_checkpoint_of_the_chain_is_used(tmp_path, applies):
    """No secret of the home decides whether a checkpoint loads: a twin's
    checkpoint of the same block is checked like any and taken."""
    steady, node, twin = (new_chain(tmp_path / name) for name in ("steady", "node", "twin"))
    _produce([steady, node, twin], range(1, 5))
    node.store.close()
    twin.close()
    shutil.copy(twin.checkpoint_path, node.checkpoint_path)
    applies.clear()
    node = new_chain(tmp_path / "node")
    assert node.restored_from == 4 and applies == []
    _produce([steady, node], range(5, 8))


def test_a_checkpoint_whose_next_blocks_do_not_recompute_is_dropped(tmp_path, caplog):
    """A checkpoint that passes every check of the file, its focus root
    included, but holds another graph (here links credited to another neuron,
    which no focus root covers): the first replayed block's focus root
    differs, and the restore starts again from genesis."""
    steady, node = new_chain(tmp_path / "steady"), new_chain(tmp_path / "node")
    _produce([steady, node], range(1, 4))
    assert node.checkpoint()
    _produce([steady, node], range(4, 7))
    node.store.close()
    _rewritten(node.checkpoint_path, _credited_elsewhere)
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

    def fail_midway(out, plan):
        out.write(b"half a state")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(focus_checkpoint, "write", fail_midway)
    with caplog.at_level(logging.WARNING, logger="focusflow.chain"):
        assert not node.checkpoint()
    assert any(r.getMessage() == "focus checkpoint not written" for r in caplog.records)
    assert sorted(p.name for p in node.checkpoint_path.parent.glob("focus.ckpt*")) == ["focus.ckpt"]
    assert _height(node) == 1
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
    node commits; its checkpoint and its state-sync payload are the bytes a
    CPU node of the same chain writes (every node loads and checks them);
    restarted, it takes the state back to the GPU and goes on with the same
    roots."""
    from focusflow.chain.focus_spec import NEW_CHAIN_FOCUS
    from focusflow.chain.snapshot import capture_focus
    from focusflow.testing.chains import genesis

    gen = genesis(focus=dict(NEW_CHAIN_FOCUS))
    steady = new_chain(tmp_path / "steady", gen)
    monkeypatch.setenv("FOCUSFLOW_CHAIN_BACKEND", "cuda")
    node = new_chain(tmp_path / "node", gen)
    assert (steady.focus.engine.backend.name, node.focus.engine.backend.name) == ("numba", "cuda")
    _produce([steady, node], range(1, 5))
    assert node.checkpoint() and steady.checkpoint()
    assert node.checkpoint_path.read_bytes() == steady.checkpoint_path.read_bytes()
    payload = capture_focus(node.focus, node.head, node.chain_id)
    assert payload == capture_focus(steady.focus, steady.head, steady.chain_id)
    assert node.focus.engine.backend.name == "cuda"
    _produce([steady, node], range(5, 7))
    node.store.close()
    applies.clear()
    node = new_chain(tmp_path / "node", gen)
    assert node.restored_from == 4 and len(applies) == 2
    assert node.focus.engine.backend.name == "cuda"
    _produce([steady, node], range(7, 11))
