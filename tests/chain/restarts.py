"""A chain's focus after a restart from its checkpoint and after a full replay.

Three chains of one genesis take the same blocks: one runs on, one is closed
and opened again from its focus checkpoint, one is opened again with its
checkpoints removed (every block replayed). All three must reach the same head
and then commit the same blocks on: what a focus rule's state carries between
blocks is in its checkpoint, and its replay recomputes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from focusflow.chain.chain import Chain
from focusflow.testing.chains import genesis, new_chain

#: Produce blocks ``heights`` on every chain given, checking they agree.
Produce = Callable[[Sequence[Chain], range], None]


def restart_and_replay(
    tmp_path: Path, focus: dict[str, Any], produce: Produce, upto: int, then: int
) -> tuple[Chain, Chain, Chain]:
    """Blocks 1..``upto`` on three chains, the restart and the replay, then
    blocks ``upto + 1``..``then`` on all three; returns (steady, restarted,
    replayed)."""
    steady = new_chain(tmp_path / "steady", genesis(focus=focus))
    node = new_chain(tmp_path / "node", genesis(focus=focus))
    replayed = new_chain(tmp_path / "replayed", genesis(focus=focus))
    produce([steady, node, replayed], range(1, upto + 1))
    node.close()
    node = new_chain(tmp_path / "node", genesis(focus=focus))
    assert node.restored_from == upto and node.head == steady.head
    replayed.store.close()
    for p in (tmp_path / "replayed").glob("focus.ckpt*"):
        p.unlink()
    replayed = new_chain(tmp_path / "replayed", genesis(focus=focus))
    assert replayed.restored_from is None and replayed.head == steady.head
    produce([steady, node, replayed], range(upto + 1, then + 1))
    return steady, node, replayed


def install_from_peer(
    tmp_path: Path,
    focus: dict[str, Any],
    produce: Produce,
    blocks: Sequence[list[bytes]],
    upto: int,
    then: int,
) -> tuple[Chain, Chain]:
    """A chain runs blocks 1..``upto``; a new node installs its snapshot and
    applies the blocks ``upto + 1``..``then`` it commits (``blocks[h - 1]``
    is block h's transactions), each with the same focus root. Returns (the
    peer, the installed node), both open."""
    from focusflow.chain.snapshot import capture_focus, restore_snapshot, write_snapshot
    from focusflow.node import open_chain
    from focusflow.store import Store
    from tests.chain.test_snapshot import _data

    gen = genesis(focus=focus)
    src = new_chain(tmp_path / "src", gen)
    produce([src], range(1, upto + 1))
    with src.reader() as r:
        payload = capture_focus(src.focus, src.head, src.chain_id)
        manifest = write_snapshot(r, payload, tmp_path / "snaps", chain_id=src.chain_id)
    store = Store(tmp_path / "dst")
    restore_snapshot(store, manifest, _data(tmp_path, manifest), gen)
    dst = open_chain(store, gen)
    t0 = 1_700_000_000_000
    for h in range(upto + 1, then + 1):
        record = src.produce_block(blocks[h - 1], time_ms=t0 + 1000 * h).record
        assert dst.apply_block(record).block.header.focus_root == record.block.header.focus_root
    return src, dst
