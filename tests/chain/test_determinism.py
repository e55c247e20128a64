"""Same blocks, same roots: fresh nodes, a restarted node, and a full replay agree."""

from __future__ import annotations

from focusflow.chain import replay
from focusflow.chain.focus_commit import FocusState
from focusflow.testing.chains import genesis, new_chain
from tests.chain.randomtx import random_blocks

T0 = 1_700_000_000_000


def test_two_fresh_nodes_reach_identical_roots(tmp_path):
    blocks = random_blocks(seed=1, blocks=20, txs_per_block=100)
    a = new_chain(tmp_path / "a")
    b = new_chain(tmp_path / "b", producer=False)
    codes = set()
    for h, batch in enumerate(blocks, start=1):
        result = a.produce_block(batch, time_ms=T0 + 1000 * h)
        codes.update(r.code for r in result.receipts)
        b.apply_block(result.record.encode())
        assert b.head == a.head
    assert len(blocks) * len(blocks[0]) >= 2000
    # The random stream exercised both successes and failures.
    assert "ok" in codes and len(codes) >= 3
    assert a.store.recompute_root() == a.head.state_root


def test_restart_and_replay_reach_the_same_roots(tmp_path):
    blocks = random_blocks(seed=2, blocks=8, txs_per_block=30)
    steady = new_chain(tmp_path / "steady")
    restarted = new_chain(tmp_path / "restarted")
    for h, batch in enumerate(blocks, start=1):
        steady.produce_block(batch, time_ms=T0 + 1000 * h)
        restarted.produce_block(batch, time_ms=T0 + 1000 * h)
        assert restarted.head == steady.head
        if h % 4 == 0:
            restarted.store.close()
            restarted = new_chain(tmp_path / "restarted")
            assert restarted.head == steady.head
    fresh = new_chain(tmp_path / "replayed", producer=False)
    replay(steady, fresh)
    assert fresh.head == steady.head
    assert fresh.store.recompute_root() == steady.head.state_root


def test_genesis_refuses_a_validator_listed_twice():
    import pytest

    from focusflow.chain import Genesis, GenesisError

    raw = genesis().to_json()
    raw["validators"] = raw["validators"] * 2
    with pytest.raises(GenesisError, match="duplicate validator"):
        Genesis.from_json(raw)


def test_store_refuses_another_genesis(tmp_path):
    import pytest

    from focusflow.core.errors import StoreError

    chain = new_chain(tmp_path)
    chain.store.close()
    with pytest.raises(StoreError):
        new_chain(tmp_path, genesis(fee_base=1))


def test_refused_block_leaves_the_follower_usable(tmp_path):
    """A validly signed block whose roots are wrong is refused and changes nothing."""
    from dataclasses import replace

    import pytest

    from focusflow.chain import BlockError, BlockRecord
    from focusflow.chain.block import Block, sign_certificate
    from focusflow.testing.chains import ALICE, VALIDATOR, link, tx

    a = new_chain(tmp_path / "a")
    b = new_chain(tmp_path / "b", producer=False)
    first = a.produce_block([tx(ALICE, 0, link(("x", "y")))], time_ms=T0 + 1000)
    b.apply_block(first.record.encode())
    good = a.produce_block([tx(ALICE, 1, link(("y", "z"), ("z", "x")))], time_ms=T0 + 2000)
    header = replace(good.block.header, focus_root=bytes(32))
    block = Block(header, good.block.txs)
    cert = sign_certificate(VALIDATOR, header.chain_id, header.height, block.hash)
    forged = BlockRecord(block, cert, good.record.deltas, good.record.last_commit)
    head, root = b.head, b.store.root
    with pytest.raises(BlockError, match="roots differ"):
        b.apply_block(forged.encode())
    assert b.head == head and b.store.root == root
    b.apply_block(good.record.encode())
    assert b.head == a.head


def test_a_chain_keeps_the_focus_algorithm_its_blocks_were_committed_with():
    """A node replays every stored block at start, so a genesis that names no
    focus choices keeps the first algorithm whatever the library's defaults
    become; a genesis may name the faster ones."""
    first = FocusState({"mode": "tri"}).params
    assert (first.anderson, first.start, first.heat_reuse, first.finish, first.arithmetic) == (
        2,
        "uniform",
        "exact",
        "fixed",
        "fast",
    )
    named = FocusState({"anderson": 6, "start": "diffusion", "heat_reuse": "bounded"}).params
    assert (named.anderson, named.start, named.heat_reuse) == (6, "diffusion", "bounded")


def test_a_new_genesis_names_the_librarys_tri_algorithm_in_full(tmp_path):
    """The devnet's and testnet's genesis spell out every focus choice, equal to
    the library's tri defaults today but for the arithmetic and the springs
    method: a chain runs the exact arithmetic (the same bits on every machine),
    library calls keep the fast one; the library's ``auto`` springs method
    decides by backend, which a chain's focus must not depend on, so chains
    name ``cg``. A change of default that should reach new chains has to change
    NEW_CHAIN_FOCUS too, and old genesis files keep what they name."""
    from focusflow.chain.focus_commit import CHAIN_FOCUS_DEFAULTS, NEW_CHAIN_FOCUS
    from focusflow.focus.params import EXACT_V3, make_params
    from focusflow.node.home import init_devnet, init_testnet

    assert FocusState(NEW_CHAIN_FOCUS).params == make_params(
        mode="tri", arithmetic=EXACT_V3, springs_method="cg"
    )
    assert make_params(mode="tri").springs_method == "auto"
    assert make_params(mode="tri").arithmetic == "fast"
    assert set(CHAIN_FOCUS_DEFAULTS) < set(NEW_CHAIN_FOCUS)
    devnet, _ = init_devnet(tmp_path / "devnet")
    homes = init_testnet(tmp_path / "testnet", 2, 27000)
    for home in (devnet, *homes):
        assert home.load_genesis().params.focus == NEW_CHAIN_FOCUS


def test_genesis_refuses_an_arithmetic_this_node_does_not_implement():
    """A node that cannot compute a chain's focus bits refuses its genesis at
    once, naming what it implements, instead of diverging at the first block."""
    import pytest

    from focusflow.chain import Genesis, GenesisError
    from focusflow.chain.focus_commit import NEW_CHAIN_FOCUS

    raw = genesis().to_json()
    raw["params"]["focus"] = {**NEW_CHAIN_FOCUS, "arithmetic": "exact-v9"}
    with pytest.raises(GenesisError, match=r"exact-v9.*implements fast, exact-v1, exact-v2") as err:
        Genesis.from_json(raw)
    assert err.value.code == "bad_genesis"
    raw["params"]["focus"] = dict(NEW_CHAIN_FOCUS)
    assert Genesis.from_json(raw).params.focus["arithmetic"] == "exact-v3"
