"""The block pipeline commits each block's data square; a node serves its shares.

The data root is checked against ``focusflow.da`` computed independently of
the chain (``extend(square_from_block(txs))``) and, for a block without
transactions, against celestia-app's published minimal data availability
header (``pkg/da/data_availability_header_test.go``, "min DAH").
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from focusflow.chain import BlockError, BlockRecord
from focusflow.chain.block import Block, sign_certificate
from focusflow.chain.da_commit import DAStore, block_square, square_size
from focusflow.chain.errors import UnknownBlockError
from focusflow.core.errors import InvalidParameterError
from focusflow.da import (
    RepairError,
    ShareUnavailableError,
    extend,
    repair,
    square_from_block,
    verify_share_proof,
)
from tests.chain.helpers import ALICE, BOB, VALIDATOR, genesis, link, new_chain, tx

T0 = 1_700_000_000_000
MIN_DAH = "3d96b7d238e7e0456f6af8e7cdf0a67bd6cf9c2089ecb559c659dcaa1f880353"


def gen():
    return genesis(focus={"mode": "diffusion"})


def many_links(prefix: str, n: int):
    return link(*[(f"{prefix}{i}", f"{prefix}{i + 1}") for i in range(n)])


def test_headers_commit_the_data_square_of_their_transactions(tmp_path):
    chain = new_chain(tmp_path, gen())
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
    producer = new_chain(tmp_path / "a", gen())
    follower = new_chain(tmp_path / "b", gen(), producer=False)
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


def test_da_store_keeps_recent_squares_and_rebuilds_older_ones(tmp_path):
    chain = new_chain(tmp_path, gen())
    da = DAStore(chain, cache_size=2)
    for h in range(1, 5):
        chain.produce_block([tx(ALICE, h - 1, many_links(f"h{h}-", 10 * h))], time_ms=T0 + h)
    assert da.cached_heights() == [3, 4] and da.rebuilt == 0
    for h in (4, 3):
        assert da.square(h).data_root() == chain.block_record(h).block.header.data_root
    assert da.rebuilt == 0
    old = da.square(1)  # evicted: rebuilt from the stored block
    assert da.rebuilt == 1 and da.cached_heights() == [3, 1]
    assert old.data_root() == chain.block_record(1).block.header.data_root
    assert da.square(1) is old and da.rebuilt == 1
    assert da.square(0).data_root().hex() == MIN_DAH
    # Memory bound: only the newest square stays when one alone is over it.
    tight = DAStore(chain, cache_size=10, cache_bytes=square_size(old) - 1)
    tight.square(1)
    tight.square(2)
    assert tight.cached_heights() == [2]


def test_da_store_errors_are_precise(tmp_path):
    chain = new_chain(tmp_path, gen())
    da = DAStore(chain)
    chain.produce_block([tx(ALICE, 0, many_links("a", 40))], time_ms=T0 + 1)
    width = da.square(1).width
    for height in (2, 10**9, -1, True, "1"):
        with pytest.raises(UnknownBlockError) as err:
            da.square(height)
        assert err.value.code == "unknown_block"
    for row, col in ((width, 0), (0, width), (-1, 0), (0, -1)):
        with pytest.raises(InvalidParameterError, match="outside the"):
            da.share_proof(1, row, col)
    for bad in ({"cache_size": 0}, {"cache_bytes": -1}, {"withhold": 1.5}, {"withhold": -0.1}):
        with pytest.raises(InvalidParameterError):
            DAStore(chain, **bad)


def test_every_served_share_verifies_against_the_header(tmp_path):
    chain = new_chain(tmp_path, gen())
    da = DAStore(chain)
    chain.produce_block([tx(ALICE, 0, many_links("a", 40))], time_ms=T0 + 1)
    root = chain.head.data_root
    square = da.square(1)
    assert square.k == 4
    for row in range(square.width):
        for col in range(square.width):
            proof = da.share_proof(1, row, col)
            assert proof.share == square.share(row, col)
            assert verify_share_proof(root, proof)
            assert not verify_share_proof(bytes(32), proof)


def test_withholding_node_serves_only_part_and_the_square_is_lost(tmp_path):
    chain = new_chain(tmp_path, gen())
    da = DAStore(chain, withhold=0.6, withhold_seed=7)
    chain.produce_block([tx(ALICE, 0, many_links("a", 40))], time_ms=T0 + 1)
    width = da.square(1).width
    withheld = da.withheld(1, width)
    side = math.ceil(math.sqrt(0.6) * width)  # an s x s sub-square (rows, columns drawn)
    assert side > width // 2 and len(withheld) == side * side >= 0.6 * width * width
    assert len({r for r, _ in withheld}) == len({c for _, c in withheld}) == side
    assert withheld == DAStore(chain, withhold=0.6, withhold_seed=7).withheld(1, width)
    assert withheld != DAStore(chain, withhold=0.6, withhold_seed=8).withheld(1, width)
    partial = [[None] * width for _ in range(width)]
    for row in range(width):
        for col in range(width):
            if (row, col) in withheld:
                with pytest.raises(ShareUnavailableError) as err:
                    da.share_proof(1, row, col)
                assert err.value.code == "share_unavailable"
            else:
                proof = da.share_proof(1, row, col)
                assert verify_share_proof(chain.head.data_root, proof)
                partial[row][col] = proof.share
    # What the node serves does not determine the block's data.
    with pytest.raises(RepairError):
        repair(partial)
    # An honest node over the same chain serves everything.
    assert DAStore(chain).withheld(1, width) == frozenset()
