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
