"""The node's square cache serves shares and proofs of committed blocks.

It keeps the squares of recent blocks (handed over by the chain as it commits
them), rebuilds older ones from the stored blocks, and withholds a fraction of
every square when told to (fault injection for tests).
"""

from __future__ import annotations

import math

import pytest

from focusflow.chain.da_commit import square_size
from focusflow.chain.errors import UnknownBlockError
from focusflow.core.errors import InvalidParameterError
from focusflow.da import RepairError, ShareUnavailableError, repair, verify_share_proof
from focusflow.node.da_store import DAStore
from focusflow.node.faults import FaultPlan
from focusflow.testing.chains import ALICE, MIN_DAH, diffusion_genesis, many_links, new_chain, tx

T0 = 1_700_000_000_000


def test_da_store_keeps_recent_squares_and_rebuilds_older_ones(tmp_path):
    chain = new_chain(tmp_path, diffusion_genesis())
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
    chain = new_chain(tmp_path, diffusion_genesis())
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
    for bad in ({"cache_size": 0}, {"cache_bytes": -1}):
        with pytest.raises(InvalidParameterError):
            DAStore(chain, **bad)
    for fraction in (1.5, -0.1, True, "0.5"):
        with pytest.raises(InvalidParameterError):
            FaultPlan(da_withhold=fraction)


def test_every_served_share_verifies_against_the_header(tmp_path):
    chain = new_chain(tmp_path, diffusion_genesis())
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
    chain = new_chain(tmp_path, diffusion_genesis())
    da = DAStore(chain, faults=FaultPlan(da_withhold=0.6, da_withhold_seed=7))
    chain.produce_block([tx(ALICE, 0, many_links("a", 40))], time_ms=T0 + 1)
    width = da.square(1).width
    withheld = da.withheld(1, width)
    side = math.ceil(math.sqrt(0.6) * width)  # an s x s sub-square (rows, columns drawn)
    assert side > width // 2 and len(withheld) == side * side >= 0.6 * width * width
    assert len({r for r, _ in withheld}) == len({c for _, c in withheld}) == side
    assert withheld == DAStore(
        chain, faults=FaultPlan(da_withhold=0.6, da_withhold_seed=7)
    ).withheld(1, width)
    assert withheld != DAStore(
        chain, faults=FaultPlan(da_withhold=0.6, da_withhold_seed=8)
    ).withheld(1, width)
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
