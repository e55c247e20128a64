"""Focus algorithm upgrades gated by height: block h runs the algorithm in force
at h, on every node, across restarts; a node without the algorithm stops at its
height; every bad schedule or vote is refused with its code and changes nothing."""

from __future__ import annotations

import shutil

import pytest

from focusflow.chain import Genesis, Msg
from focusflow.chain.errors import GenesisError, UpgradeNeededError
from focusflow.chain.focus_commit import FocusState
from focusflow.chain.focus_upgrade import UPGRADES_KEY, decode_decided
from focusflow.chain.module import Deltas
from focusflow.core.encoding import decode
from focusflow.focus.params import EXACT_V1
from focusflow.modules.upgrades import MAX_OPEN_VOTES
from focusflow.state_schema.votes import UPGRADE_OPEN_PREFIX as OPEN_PREFIX
from focusflow.state_schema.votes import UPGRADE_VOTES_PREFIX as VOTES_PREFIX
from focusflow.testing.chains import (
    ALICE,
    BALANCE,
    BOB,
    CHAIN_ID,
    STAKE,
    VALIDATOR,
    link,
    new_chain,
    tx,
)

T0 = 1_700_000_000_000
#: The algorithm the test chains start with, and the one they upgrade to.
OLD = {"mode": "tri", "arithmetic": EXACT_V1}
NEW = {"start": "diffusion", "heat_reuse": "bounded", "finish": "bounded", "anderson": 6}
PAIRS = [
    [("a", "b"), ("b", "c"), ("c", "a")],
    [("c", "d"), ("d", "a"), ("b", "d")],
    [("d", "e"), ("e", "a"), ("e", "b")],
    [("a", "f"), ("f", "c")],
    [("f", "g"), ("g", "b")],
]


def make_genesis(validators=((VALIDATOR, 1),), **params) -> Genesis:
    params.setdefault("focus", OLD)
    keys = {ALICE.address, *(k.address for k, _ in validators)}
    return Genesis.from_json(
        {
            "chain_id": CHAIN_ID,
            "genesis_time_ms": T0,
            "params": params,
            "accounts": [{"address": a, "balance": BALANCE, "stake": STAKE} for a in sorted(keys)],
            "validators": [
                {"name": f"v{i}", "public_key": k.public_key.hex(), "power": p}
                for i, (k, p) in enumerate(validators)
            ],
        }
    )


def link_blocks(chain, batches, nonce_from=0):
    """One block of ALICE's links ``PAIRS[b - 1]`` per ``b`` in ``batches``;
    returns the focus roots."""
    roots = []
    for i, b in enumerate(batches):
        time_ms = chain.head.time_ms + 1
        chain.produce_block([tx(ALICE, nonce_from + i, link(*PAIRS[b - 1]))], time_ms=time_ms)
        roots.append(chain.head.focus_root)
    return roots


def roots_of(chain) -> list[bytes]:
    return [r.block.header.focus_root for r in chain.records(1)]


def cold_root(focus: dict, chain, height: int) -> bytes:
    """The focus root of a fresh FocusState running ``focus`` fed every edge delta
    of blocks 0..height at once: one cold solve, no engine history."""
    everything = Deltas()
    for record in chain.records(0):
        if record.block.height > height:
            break
        everything.merge(record.edge_deltas())
    state = FocusState(focus)
    state.apply(everything)
    return state.root


def test_a_genesis_upgrade_switches_algorithm_at_its_height(tmp_path):
    upgraded = new_chain(
        tmp_path / "up", make_genesis(focus_upgrades=[{"height": 3, "focus": NEW}])
    )
    old = new_chain(tmp_path / "old", make_genesis())
    up_roots = link_blocks(upgraded, range(1, 6))
    old_roots = link_blocks(old, range(1, 6))
    # Before the upgrade: the old algorithm's roots, block by block.
    assert up_roots[:2] == old_roots[:2]
    # At the upgrade: the new algorithm's cold solve over the graph of blocks 0..3.
    assert up_roots[2] != old_roots[2]
    assert up_roots[2] == cold_root({**OLD, **NEW}, upgraded, 3)
    assert up_roots[2] != cold_root(OLD, upgraded, 3)
    assert upgraded.focus.params.heat_reuse == "bounded"
    assert old.focus.params.heat_reuse == "exact"


def test_an_upgrade_height_without_deltas_commits_the_new_focus(tmp_path):
    chain = new_chain(tmp_path / "c", make_genesis(focus_upgrades=[{"height": 3, "focus": NEW}]))
    link_blocks(chain, [1, 2])
    before = chain.head.focus_root
    chain.produce_block([], time_ms=T0 + 3)
    assert chain.head.focus_root != before
    assert chain.head.focus_root == cold_root({**OLD, **NEW}, chain, 3)
    chain.produce_block([], time_ms=T0 + 4)
    assert chain.head.focus_root == cold_root({**OLD, **NEW}, chain, 3)


def test_replay_across_the_upgrade_reproduces_the_stored_roots(tmp_path):
    gen = make_genesis(focus_upgrades=[{"height": 3, "focus": NEW}])
    chain = new_chain(tmp_path / "c", gen)
    link_blocks(chain, [1, 2])
    assert chain.checkpoint()
    saved = tmp_path / "before-upgrade.ckpt"
    shutil.copy(chain.checkpoint_path, saved)
    link_blocks(chain, [3, 4, 5], nonce_from=2)
    stored = roots_of(chain)
    chain.close()
    # From the checkpoint of block 2: blocks 3.. replay, the upgrade among them.
    shutil.copy(saved, chain.checkpoint_path)
    again = new_chain(tmp_path / "c", gen)
    assert again.restored_from == 2 and roots_of(again) == stored
    assert again.focus.params.finish == "bounded"
    again.store.close()
    # Without a checkpoint: every block from genesis, with the old algorithm up to 2.
    chain.checkpoint_path.unlink()
    scratch = new_chain(tmp_path / "c", gen)
    assert scratch.restored_from is None and scratch.focus.root == stored[-1]
    link_blocks(scratch, [5], nonce_from=5)
    scratch.store.close()


@pytest.mark.parametrize(
    ("upgrades", "message"),
    [
        ({"height": 3}, "params.focus_upgrades must be a list"),
        ([{"height": 3}], "params.focus_upgrades[0] must be an object with exactly height and"),
        ([{"height": 0, "focus": NEW}], "params.focus_upgrades[0].height 0 must be above 0"),
        ([{"height": -1, "focus": NEW}], "params.focus_upgrades[0].height must be a non-negative"),
        (
            [{"height": 5, "focus": NEW}, {"height": 5, "focus": {"anderson": 2}}],
            "params.focus_upgrades[1].height 5 must be above the previous entry's 5",
        ),
        ([{"height": 5, "focus": {}}], "params.focus_upgrades[0].focus is empty"),
        ([{"height": 5, "focus": [1]}], "params.focus_upgrades[0].focus: focus must be an object"),
        (
            [{"height": 5, "focus": NEW}, {"height": 9, "focus": {"arithmetic": "exact-v9"}}],
            "params.focus_upgrades[1] (height 9): arithmetic 'exact-v9' is not implemented here",
        ),
        (
            [{"height": 5, "focus": {"mode": "cyberank"}}],
            "params.focus_upgrades[0] (height 5): a chain's focus runs mode tri or diffusion",
        ),
        (
            [{"height": 5, "focus": {"warp": 9}}],
            "params.focus_upgrades[0] (height 5): unknown focus parameter(s): warp",
        ),
        ([{"height": 5, "focus": NEW}], None),
    ],
)
def test_the_genesis_checks_its_upgrade_schedule(upgrades, message):
    if message is None:
        assert make_genesis(focus_upgrades=upgrades).params.focus_upgrades == upgrades
        return
    with pytest.raises(GenesisError) as err:
        make_genesis(focus_upgrades=upgrades)
    assert err.value.code == "bad_genesis"
    assert str(err.value).startswith(message), str(err.value)


def test_an_absent_or_empty_schedule_leaves_the_genesis_hash_as_it_was():
    plain = make_genesis()
    assert "focus_upgrades" not in plain.to_json()["params"]
    assert "focus_upgrade_delay" not in plain.to_json()["params"]
    assert make_genesis(focus_upgrades=[], focus_upgrade_delay=100).hash == plain.hash
    scheduled = make_genesis(focus_upgrades=[{"height": 5, "focus": NEW}])
    assert scheduled.hash != plain.hash
    assert Genesis.from_json(scheduled.to_json()).hash == scheduled.hash


def upgrade_msg(height: int, focus: dict, **extra) -> Msg:
    return Msg("focus.upgrade", {"height": height, "focus": focus, **extra})


def test_validators_decide_an_upgrade_by_more_than_two_thirds_of_the_power(tmp_path):
    # VALIDATOR holds 3 of 4 powers, BOB 1: BOB alone does not decide.
    gen = make_genesis(validators=((VALIDATOR, 3), (BOB, 1)), focus_upgrade_delay=2)
    chain = new_chain(tmp_path / "c", gen)
    r = chain.produce_block([tx(BOB, 0, upgrade_msg(4, NEW))], time_ms=T0 + 1)
    assert [x.code for x in r.receipts] == ["ok"]
    assert r.receipts[0].events[0]["power"] == 1 and r.receipts[0].events[0]["total"] == 4
    with chain.reader() as rd:
        assert rd.get(UPGRADES_KEY) is None and len(list(rd.items(VOTES_PREFIX))) == 1
    r = chain.produce_block([tx(BOB, 1, upgrade_msg(4, NEW))], time_ms=T0 + 2)
    assert [x.code for x in r.receipts] == ["already_voted"]
    # The vote in block 3 can only name height 5 on: block 4's is too soon now.
    r = chain.produce_block([tx(VALIDATOR, 0, upgrade_msg(4, NEW))], time_ms=T0 + 3)
    assert [x.code for x in r.receipts] == ["upgrade_too_soon"]
    r = chain.produce_block([tx(VALIDATOR, 1, upgrade_msg(6, NEW))], time_ms=T0 + 4)
    assert [x.code for x in r.receipts] == ["ok"]
    assert r.receipts[0].events[-1] == {"type": "focus_upgrade", "height": 6, "focus": NEW}
    with chain.reader() as rd:
        assert decode_decided(rd.get(UPGRADES_KEY)) == {6: NEW}
        # BOB's undecided vote for height 4 was deleted once it could not pass.
        assert list(rd.items(VOTES_PREFIX)) == []
    assert chain.focus_schedule == {6: NEW}
    chain.produce_block([], time_ms=T0 + 5)
    assert chain.focus.params.heat_reuse == "exact"
    chain.produce_block([tx(ALICE, 0, link(*PAIRS[0], *PAIRS[1]))], time_ms=T0 + 6)
    assert chain.focus.params.heat_reuse == "bounded"
    assert chain.head.focus_root == cold_root({**OLD, **NEW}, chain, 6)
    stored = roots_of(chain)
    chain.close()
    chain.checkpoint_path.unlink()
    again = new_chain(tmp_path / "c", gen)
    assert roots_of(again) == stored and again.focus.root == stored[-1]
    assert again.focus_schedule == {6: NEW}


def test_a_validator_holds_a_bounded_number_of_undecided_votes(tmp_path):
    # BOB (1 of 4 powers) votes alone: none of his votes can pass, so each stays
    # open until no later vote could complete it. Without the bound one
    # validator piles up votes for far-away heights that no deletion reaches.
    gen = make_genesis(validators=((VALIDATOR, 3), (BOB, 1)), focus_upgrade_delay=2)
    chain = new_chain(tmp_path / "c", gen)
    far = 2**62
    msgs = [upgrade_msg(far + k, NEW) for k in range(MAX_OPEN_VOTES - 1)]
    msgs.append(upgrade_msg(5, NEW))
    r = chain.produce_block([tx(BOB, 0, *msgs)], time_ms=T0 + 1)
    assert [x.code for x in r.receipts] == ["ok"]
    with chain.reader() as rd:
        before = dict(rd.items(b"/kv/focus/"))
    assert len([k for k in before if k.startswith(VOTES_PREFIX)]) == MAX_OPEN_VOTES
    r = chain.produce_block([tx(BOB, 1, upgrade_msg(far + 100, NEW))], time_ms=T0 + 2)
    assert [x.code for x in r.receipts] == ["too_many_votes"]
    assert "holds 8 undecided" in r.receipts[0].log
    with chain.reader() as rd:
        assert dict(rd.items(b"/kv/focus/")) == before
    # Block 4's votes may name height 6 on: the vote for 5 is deleted, which
    # frees one of BOB's places.
    chain.produce_block([], time_ms=T0 + 3)
    chain.produce_block([], time_ms=T0 + 4)
    r = chain.produce_block([tx(BOB, 2, upgrade_msg(far + 100, NEW))], time_ms=T0 + 5)
    assert [x.code for x in r.receipts] == ["ok"]
    # A vote that decides its upgrade at once is never open, whatever BOB holds;
    # deciding one of BOB's upgrades frees his place in it.
    r = chain.produce_block([tx(BOB, 3, upgrade_msg(far + 101, NEW))], time_ms=T0 + 6)
    assert [x.code for x in r.receipts] == ["too_many_votes"]
    r = chain.produce_block([tx(VALIDATOR, 0, upgrade_msg(far, NEW))], time_ms=T0 + 7)
    assert [x.code for x in r.receipts] == ["ok"]
    assert r.receipts[0].events[-1]["type"] == "focus_upgrade"
    r = chain.produce_block([tx(VALIDATOR, 1, upgrade_msg(far + 1, NEW))], time_ms=T0 + 8)
    assert [x.code for x in r.receipts] == ["ok"]
    with chain.reader() as rd:
        assert rd.get(OPEN_PREFIX + VALIDATOR.public_key) is None
        assert decode(rd.get(OPEN_PREFIX + BOB.public_key), "count") == MAX_OPEN_VOTES - 2
    r = chain.produce_block([tx(BOB, 4, upgrade_msg(far + 101, NEW))], time_ms=T0 + 9)
    assert [x.code for x in r.receipts] == ["ok"]


@pytest.mark.parametrize(
    ("sender", "msg", "code"),
    [
        (ALICE, upgrade_msg(50, NEW), "not_validator"),
        (VALIDATOR, upgrade_msg(2, NEW), "upgrade_too_soon"),
        (VALIDATOR, upgrade_msg(0, NEW), "malformed_message"),
        (VALIDATOR, upgrade_msg(50, {"start": {"a": 1}}), "malformed_message"),
        (VALIDATOR, upgrade_msg(50, {"start": "x" * 65}), "malformed_message"),
        (VALIDATOR, upgrade_msg(50, {f"k{i}": 1 for i in range(33)}), "malformed_message"),
        (VALIDATOR, upgrade_msg(50, NEW, why="faster"), "malformed_message"),
        (VALIDATOR, Msg("focus.upgrade", {"height": 50}), "malformed_message"),
        (VALIDATOR, upgrade_msg(50, {}), "malformed_message"),
    ],
)
def test_a_bad_upgrade_vote_fails_with_its_code_and_changes_nothing(tmp_path, sender, msg, code):
    chain = new_chain(tmp_path / "c", make_genesis(focus_upgrade_delay=5))
    r = chain.produce_block([tx(sender, 0, msg)], time_ms=T0 + 1)
    assert [x.code for x in r.receipts] == [code]
    with chain.reader() as rd:
        assert rd.get(UPGRADES_KEY) is None and list(rd.items(VOTES_PREFIX)) == []
    assert chain.focus_schedule == {}


def test_an_empty_focus_cancels_a_scheduled_upgrade(tmp_path):
    gen = make_genesis(focus_upgrade_delay=2, focus_upgrades=[{"height": 9, "focus": NEW}])
    chain = new_chain(tmp_path / "c", gen)
    assert chain.focus_schedule == {9: NEW}
    r = chain.produce_block([tx(VALIDATOR, 0, upgrade_msg(9, {}))], time_ms=T0 + 1)
    assert [x.code for x in r.receipts] == ["ok"]
    assert chain.focus_schedule == {}
    with chain.reader() as rd:
        assert decode_decided(rd.get(UPGRADES_KEY)) == {9: {}}


def test_a_node_without_the_algorithm_stops_before_its_height_and_still_starts(tmp_path):
    gen = make_genesis(focus_upgrade_delay=2)
    chain = new_chain(tmp_path / "c", gen)
    r = chain.produce_block(
        [tx(VALIDATOR, 0, upgrade_msg(4, {"arithmetic": "exact-v9"}))], time_ms=T0 + 1
    )
    # The vote is valid on any code: it is the form that is checked.
    assert [x.code for x in r.receipts] == ["ok"]
    link_blocks(chain, [2, 3])
    assert chain.height == 3
    needed = chain.upgrade_needed
    assert isinstance(needed, UpgradeNeededError) and needed.code == "upgrade_needed"
    assert needed.height == 4
    assert str(needed).startswith("UPGRADE NEEDED at height 4")
    assert "arithmetic 'exact-v9' is not implemented here" in str(needed)
    head = chain.head
    with pytest.raises(UpgradeNeededError):
        chain.produce_block([tx(ALICE, 2, link(*PAIRS[3]))], time_ms=T0 + 4)
    with pytest.raises(UpgradeNeededError):
        chain.propose([], time_ms=T0 + 4)
    assert chain.head == head
    chain.close()
    # It starts again (it never refuses its store) and still stops there.
    again = new_chain(tmp_path / "c", gen)
    assert again.head == head and again.upgrade_needed is not None
    with pytest.raises(UpgradeNeededError):
        again.produce_block([], time_ms=T0 + 4)


def test_a_block_at_the_upgrade_height_from_elsewhere_is_refused_with_upgrade_needed(tmp_path):
    gen = make_genesis(focus_upgrade_delay=2)
    source = new_chain(tmp_path / "src", gen)
    source.produce_block(
        [tx(VALIDATOR, 0, upgrade_msg(3, {"arithmetic": "exact-v9"}))], time_ms=T0 + 1
    )
    source.produce_block([], time_ms=T0 + 2)
    follower = new_chain(tmp_path / "follower", gen, producer=False)
    for record in source.records(1):
        follower.apply_block(record)
    assert follower.height == 2
    # The source cannot make block 3 either; a block at 3 is refused before anything runs.
    with pytest.raises(UpgradeNeededError):
        source.produce_block([], time_ms=T0 + 3)
    assert follower.upgrade_needed is not None and follower.upgrade_needed.height == 3


def _random_pairs(rng, count: int, top: int) -> list[tuple[str, str]]:
    """``count`` random links among ``top`` particles, without self-links."""
    pairs = []
    while len(pairs) < count:
        a, b = (int(v) for v in rng.integers(0, top, 2))
        if a != b:
            pairs.append((f"q{a}", f"q{b}"))
    return pairs


def test_an_upgrade_to_exact_v3_changes_the_sums_at_its_height(tmp_path):
    """A chain on exact-v2 (what a genesis named before exact-v3) scheduled to
    move to exact-v3 at height 3, beside one scheduled to restart exact-v2 at
    the same height and one with no schedule: the same roots before the
    height; at it, both upgraded chains solve cold over the same graph, and
    only the arithmetic tells their roots apart; v3's engine goes on from
    there. The graph has hundreds of particles: below 65 the two versions
    group every sum alike (v2's 64 chunks then hold one value each)."""
    import numpy as np

    from focusflow.chain.focus_commit import engine_identity
    from focusflow.chain.focus_spec import NEW_CHAIN_FOCUS
    from focusflow.focus.params import EXACT_V2, EXACT_V3

    v2 = {**NEW_CHAIN_FOCUS, "arithmetic": EXACT_V2}
    chains = {
        "v3": make_genesis(
            focus=v2, focus_upgrades=[{"height": 3, "focus": {"arithmetic": EXACT_V3}}]
        ),
        "v2 again": make_genesis(
            focus=v2, focus_upgrades=[{"height": 3, "focus": {"arithmetic": EXACT_V2}}]
        ),
        "v2": make_genesis(focus=v2),
    }
    rng = np.random.default_rng(5)
    batches = [_random_pairs(rng, 150, 400) for _ in range(5)]
    roots = {}
    for name, gen in chains.items():
        chain = new_chain(tmp_path / name.replace(" ", "_"), gen)
        for i, pairs in enumerate(batches):
            chain.produce_block([tx(ALICE, i, link(*pairs))], time_ms=chain.head.time_ms + 1)
        roots[name] = roots_of(chain)
        chains[name] = chain
    assert roots["v3"][:2] == roots["v2 again"][:2] == roots["v2"][:2]
    assert roots["v3"][2] != roots["v2 again"][2]
    assert all(a != b for a, b in zip(roots["v3"][2:], roots["v2"][2:], strict=True))
    assert engine_identity(chains["v3"].focus.params) == "tri/exact-v3"
    assert engine_identity(chains["v2 again"].focus.params) == "tri/exact-v2"
