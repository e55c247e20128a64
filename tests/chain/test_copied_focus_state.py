"""A node whose focus state was copied commits the roots of one whose was not.

A node's focus state is copied when it restarts from its focus checkpoint and
when it state-syncs from a peer's snapshot (both build it again from its byte
form), and for every block it proposes or validates through consensus (a
deep copy, committed if the block is decided). Each copy of a numpy array is
made on its own, so a view kept beside its buffer comes back detached: the
snapshot's overlay weights once did (when checkpoints were pickles), and a
block that only added weight to existing overlay entries wrote into the
detached copy, which the next block creating an overlay pair replaced by the
buffer's stale values. These chains make exactly
those blocks after the copy and must keep the roots of a node that never
copied anything.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from focusflow.chain import Msg
from focusflow.chain.block import sign_certificate
from focusflow.chain.snapshot import restore_snapshot
from focusflow.node import open_chain
from focusflow.store import Store
from focusflow.testing.chains import (
    ALICE,
    BOB,
    CAROL,
    VALIDATOR,
    genesis,
    link,
    new_chain,
    particle,
    tx,
)
from tests.chain.test_snapshot import _data, _snapshot
from tests.graph.test_pickle_aliasing import assert_no_shared_memory

T0 = genesis().genesis_time_ms


def _blocks() -> list[list[bytes]]:
    """A base CSR of 300 links (block 1), then small blocks that patch it.

    Block 2 creates overlay pairs of ALICE's and BOB's; block 3 only links
    pairs that are in the overlay already (ALICE's new links also re-weigh all
    her others: every entry it touches exists); block 4 creates CAROL's new
    pair, the patch that re-reads the overlay's columns; block 5 does both.
    """
    base = [[particle(f"n{i}"), particle(f"n{(i * 7 + 1) % 100}")] for i in range(300)]
    return [
        [tx(ALICE, 0, Msg("link", {"links": base}))],
        [tx(ALICE, 1, link(("n0", "n2"), ("n4", "n9"))), tx(BOB, 0, link(("n5", "n6")))],
        [tx(ALICE, 2, link(("n0", "n2"), ("n0", "n2"), ("n4", "n9")))],
        [tx(CAROL, 0, link(("n3", "n8")))],
        [tx(ALICE, 3, link(("n4", "n9"), ("n10", "n12"))), tx(BOB, 1, link(("n5", "n6")))],
    ]


BLOCKS = _blocks()


def _time(height: int) -> int:
    return T0 + 1000 * height


def _steady(path: Path):
    """The node that never copies its focus state (every block in place)."""
    chain = new_chain(path)
    for h, block in enumerate(BLOCKS, start=1):
        chain.produce_block(block, time_ms=_time(h))
    return chain


def _assert_overlay_patched(chain) -> None:
    """The chain's blocks 2..5 were patches (an overlay over block 1's CSR)."""
    graph = chain.focus.graph
    assert graph.epoch == 1 and graph.snapshot().overlay_nnz == 5


def _assert_same_graph(a, b) -> None:
    sa, sb = a.focus.graph.snapshot(), b.focus.graph.snapshot()
    assert np.array_equal(sa.ov_w, sb.ov_w)
    assert (sa.to_scipy() != sb.to_scipy()).nnz == 0
    assert np.array_equal(a.focus.q, b.focus.q)


def test_a_node_restarted_from_its_checkpoint_keeps_the_roots(tmp_path):
    steady = _steady(tmp_path / "steady")
    node = new_chain(tmp_path / "node")
    for h, block in enumerate(BLOCKS[:2], start=1):
        node.produce_block(block, time_ms=_time(h))
    node.close()  # writes the focus checkpoint at height 2
    node = new_chain(tmp_path / "node")
    assert node.restored_from == 2
    for h, block in enumerate(BLOCKS[2:], start=3):
        node.produce_block(block, time_ms=_time(h))
        assert node.head == steady.block_record(h).block.header
    _assert_overlay_patched(node)
    _assert_same_graph(node, steady)
    steady.close()
    node.close()


def test_a_node_installed_from_a_snapshot_keeps_the_roots(tmp_path):
    src = new_chain(tmp_path / "src")
    for h, block in enumerate(BLOCKS[:2], start=1):
        src.produce_block(block, time_ms=_time(h))
    manifest = _snapshot(src, tmp_path / "snaps")
    for h, block in enumerate(BLOCKS[2:], start=3):
        src.produce_block(block, time_ms=_time(h))
    store = Store(tmp_path / "dst")
    restore_snapshot(store, manifest, _data(tmp_path, manifest), genesis())
    dst = open_chain(store, genesis())
    assert dst.restored_from == 2
    for record in src.records(3):
        dst.apply_block(record)  # BlockError if a root differs
    assert dst.head == src.head
    _assert_overlay_patched(dst)
    _assert_same_graph(dst, src)
    src.close()
    dst.close()


def test_blocks_decided_through_consensus_keep_the_roots(tmp_path):
    """Propose, then commit with the decided certificate: the focus state each
    block advances is a deep copy of the head's."""
    steady = _steady(tmp_path / "steady")
    node = new_chain(tmp_path / "node")
    for h, block in enumerate(BLOCKS, start=1):
        pending = node.propose(block, _time(h))
        node.commit(pending, sign_certificate(VALIDATOR, node.chain_id, h, pending.hash))
        assert node.head == steady.block_record(h).block.header
    _assert_overlay_patched(node)
    _assert_same_graph(node, steady)
    steady.close()
    node.close()


def test_no_array_of_a_focus_state_shares_memory_with_another(tmp_path):
    """What a deep copy would split apart: nothing, in the graph, its
    snapshot, the engine, its operator and solver states."""
    steady = _steady(tmp_path / "steady")
    _assert_overlay_patched(steady)
    assert_no_shared_memory(steady.focus)
    steady.close()
