"""The block pipeline commits each block's data square (tests/node/test_da_store.py
tests the node's cache that serves it).

The data root is checked against ``focusflow.da`` computed independently of
the chain (``extend(square_from_block(txs))``) and, for a block without
transactions, against celestia-app's published minimal data availability
header (``pkg/da/data_availability_header_test.go``, "min DAH").
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from focusflow.chain import BlockError, BlockRecord
from focusflow.chain.block import Block, sign_certificate
from focusflow.chain.da_commit import block_square
from focusflow.da import extend, square_from_block
from focusflow.node.da_store import DAStore
from focusflow.testing.chains import (
    ALICE,
    BOB,
    MIN_DAH,
    VALIDATOR,
    diffusion_genesis,
    many_links,
    new_chain,
    tx,
)

T0 = 1_700_000_000_000


def test_headers_commit_the_data_square_of_their_transactions(tmp_path):
    chain = new_chain(tmp_path, diffusion_genesis())
    assert chain.head.data_root.hex() == MIN_DAH  # genesis: no transactions
    empty = chain.produce_block([], time_ms=T0 + 1000)
    assert empty.block.header.data_root.hex() == MIN_DAH
    assert "da" in empty.timings
    full = chain.produce_block(
        [tx(ALICE, 0, many_links("a", 60)), tx(BOB, 0, many_links("b", 60))], time_ms=T0 + 2000
    )
    txs = list(full.block.txs)
    assert len(txs) == 2 and sum(map(len, txs)) > 8 * 478  # more than one row of shares
    expected = extend(square_from_block(txs))
    assert expected.k >= 4
    assert full.block.header.data_root == expected.data_root()
    assert chain.block_record(2).block.header.data_root == expected.data_root()


def test_follower_refuses_a_block_whose_data_root_differs_and_changes_nothing(tmp_path):
    producer = new_chain(tmp_path / "a", diffusion_genesis())
    follower = new_chain(tmp_path / "b", diffusion_genesis(), producer=False)
    da = DAStore(follower)
    follower.apply_block(producer.produce_block([], time_ms=T0 + 1000).record.encode())
    good = producer.produce_block([tx(ALICE, 0, many_links("a", 30))], time_ms=T0 + 2000)
    # Validly signed, every other root right, the data root of other data.
    other = block_square([tx(BOB, 0, many_links("z", 30))]).data_root()
    for wrong in (other, bytes(32), block_square(()).data_root()):
        header = replace(good.block.header, data_root=wrong)
        block = Block(header, good.block.txs)
        cert = sign_certificate(VALIDATOR, header.chain_id, header.height, block.hash)
        forged = BlockRecord(block, cert, good.record.deltas, good.record.last_commit)
        head, root, focus = follower.head, follower.store.root, follower.focus.root
        with pytest.raises(BlockError, match="block 2 data_root does not match") as err:
            follower.apply_block(forged.encode())
        assert err.value.code == "invalid_block"
        assert follower.head == head and follower.store.root == root
        assert follower.focus.root == focus and follower.height == 1
        assert follower.block_record(2) is None
        assert 2 not in da.cached_heights()
    follower.apply_block(good.record.encode())
    assert follower.head == producer.head
    # The follower kept the square it checked: serving it needs no rebuild.
    assert da.cached_heights() == [1, 2] and da.rebuilt == 0
    assert da.square(2).data_root() == good.block.header.data_root
