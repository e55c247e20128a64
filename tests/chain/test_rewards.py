"""Stake rewards that mint value: each attack reproduced in-process through
block production, and the rules docs/economics.md gives against it.

* Tenure: stake added to an old bond starts its own tenure (a lot), so a
  veteran's top-up earns what a newcomer's identical stake earns.
* Fees: a block's fees and its mint go to the stake bonded throughout the
  block, so a stake sent as a block's last transaction takes none of them, and
  a stake unbonded early in a block takes none of that block's either.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from focusflow.chain import Genesis, Msg
from focusflow.chain.params import ChainParams
from focusflow.chain.pending import BlockResult
from focusflow.chain.state import PendingState
from focusflow.core.encoding import decode, encode
from focusflow.modules import rewards
from tests.chain.test_economy import (
    BPS,
    PLENTY,
    PPB,
    Econ,
    TenureModel,
    econ_genesis,
    economy_event,
    key,
    lots_tenure,
    send_h,
)

VETERAN = key("veteran")
NEWCOMER = key("newcomer")
HONEST = key("honest")
ATTACKER = key("attacker")
PAYERS = [key(f"payer{i}") for i in range(4)]


@pytest.fixture
def open_econ():
    """Opens chains (``open_econ(path, genesis)``) and closes their stores after the test."""
    opened: list[Econ] = []

    def open_(path: Path, genesis: Genesis) -> Econ:
        opened.append(Econ(path, genesis))
        return opened[-1]

    yield open_
    for econ in opened:
        econ.close()


def claimed(result: BlockResult, who) -> int:
    """The stake-and-tenure H ``who``'s claim in ``result`` paid (0: nothing to claim)."""
    for receipt in result.receipts:
        for event in receipt.events:
            if event["type"] == "rewards.claim" and event["neuron"] == who.address_raw:
                return int(event["stake"])
    return 0


def ramp_steps(first: int, last: int, start: int, ramp: int) -> int:
    """``sum(min(block - start, ramp))`` over blocks ``first .. last``."""
    return sum(min(b - start, ramp) for b in range(first, last + 1))


# --- 1. tenure of a top-up ------------------------------------------------------------


def tenure_only(**params: Any) -> dict[str, Any]:
    """Parameters under which only tenure pays stake: every base fee is sold
    (and, with no pool, burned), nothing is minted per block."""
    return {"tenure_rate_ppb": 10**7, "tenure_ramp_blocks": 100, "split_base_bps": BPS, **params}


def test_a_top_up_of_an_old_stake_earns_what_a_new_stake_earns(open_econ, tmp_path):
    """A veteran bonds 1 unit at genesis and waits out the 100-block ramp; then
    it and a newcomer each bond 10^9 in the same block and claim ten blocks
    later. The veteran's fresh 10^9 must ramp up as the newcomer's does: its
    claim exceeds the newcomer's by no more than what its 1 old unit earned
    (under a unit here). Without lots, its 10^9 took the full rate at once:
    100,000,000 H against the newcomer's 5,500,000 (18.2x)."""
    rate, ramp = 10**7, 100
    genesis = econ_genesis(
        [(VETERAN, PLENTY, 1, PLENTY), (NEWCOMER, PLENTY, 0, PLENTY)], **tenure_only()
    )
    econ = open_econ(tmp_path, genesis)
    while econ.chain.height < ramp:
        econ.block()
    stake = Msg("stake", {"amount": 10**9})
    start = econ.chain.height + 1
    result = econ.block([econ.tx(VETERAN, stake), econ.tx(NEWCOMER, stake)])
    assert [r.code for r in result.receipts] == ["ok", "ok"]
    while econ.chain.height < start + 9:
        econ.block()
    claim = Msg("rewards.claim", {})
    result = econ.block([econ.tx(VETERAN, claim), econ.tx(NEWCOMER, claim)])
    veteran, newcomer = claimed(result, VETERAN), claimed(result, NEWCOMER)
    # The claim in block start + 10 pays the blocks that ended: start .. start + 9.
    old_unit = 1 * rate * ramp_steps(start, start + 9, 0, ramp) // (ramp * PPB)
    assert veteran <= newcomer + old_unit + 1, (veteran, newcomer)
    assert newcomer == 10**9 * rate * ramp_steps(start, start + 9, start, ramp) // (ramp * PPB)
    assert newcomer == 4_500_000


def lots_of(econ, who) -> tuple[int, list[list[int]]]:
    """``(tenure_start, younger lots)`` of ``who``'s committed record."""
    with econ.chain.reader() as r:
        e = rewards.earner(r, who.address_raw)
    assert e is not None
    return e.tenure_start, e.lots


def tenure_minted(result: BlockResult) -> int:
    return sum(e.get("tenure_minted", 0) for r in result.receipts for e in r.events)


def test_bonding_then_unbonding_the_same_amount_leaves_the_lots_as_they_were(open_econ, tmp_path):
    """A top-up taken back leaves the youngest lots first (LIFO): the bond is
    again one lot since genesis, and from then on it earns what a twin that
    never topped up earns."""
    ramp = 10
    twin = key("twin")
    holders = [(VETERAN, PLENTY, 10**6, PLENTY), (twin, PLENTY, 10**6, PLENTY)]
    econ = open_econ(tmp_path, econ_genesis(holders, **tenure_only(tenure_ramp_blocks=ramp)))
    econ.block()
    econ.block([econ.tx(VETERAN, Msg("stake", {"amount": 5 * 10**5}))])
    assert lots_of(econ, VETERAN) == (0, [[2, 5 * 10**5]])
    econ.block([econ.tx(VETERAN, Msg("stake", {"amount": 10**5}))])
    assert lots_of(econ, VETERAN) == (0, [[2, 5 * 10**5], [3, 10**5]])
    econ.block([econ.tx(VETERAN, Msg("unstake", {"amount": 2 * 10**5}))])
    assert lots_of(econ, VETERAN) == (0, [[2, 4 * 10**5]])
    econ.block([econ.tx(VETERAN, Msg("unstake", {"amount": 4 * 10**5}))])
    assert lots_of(econ, VETERAN) == (0, [])
    claims = [econ.tx(k, Msg("rewards.claim", {})) for k in (VETERAN, twin)]
    econ.block(claims)
    later = econ.block([econ.tx(k, Msg("rewards.claim", {})) for k in (VETERAN, twin)])
    assert claimed(later, VETERAN) == claimed(later, twin) > 0


def test_lots_are_bounded_and_the_youngest_starts_over_past_the_bound(open_econ, tmp_path):
    """A top-up in each of 24 blocks within the ramp keeps at most MAX_LOTS lots:
    past the bound the youngest lot joins the new one and starts over with it
    (the holder loses that lot's few blocks of tenure, never gains). Once the
    ramp has passed, ramped lots fold into the oldest. Every tenure minted
    equals the lot-by-lot rule (tests/chain/test_economy.py's TenureModel)."""
    rate, ramp = 10**8, 30
    econ = open_econ(
        tmp_path,
        econ_genesis(
            [(VETERAN, PLENTY, 10**6, PLENTY)],
            **tenure_only(tenure_rate_ppb=rate, tenure_ramp_blocks=ramp),
        ),
    )
    model = TenureModel(
        rate, ramp, lots={VETERAN.address_raw: [[0, 10**6]]}, last={VETERAN.address_raw: 0}
    )
    bonded = 10**6
    for i in range(24):
        height = econ.chain.height + 1
        amount = 1_000 * (i + 1)
        result = econ.block([econ.tx(VETERAN, Msg("stake", {"amount": amount}))])
        expected = model.bonded_change(VETERAN.address_raw, bonded, bonded + amount, height)
        bonded += amount
        assert tenure_minted(result) == expected
        start, lots = lots_of(econ, VETERAN)
        assert len(lots) <= rewards.MAX_LOTS - 1
        assert [[start, bonded - sum(a for _, a in lots)], *lots] == model.lots[VETERAN.address_raw]
    assert len(lots) == rewards.MAX_LOTS - 1
    starts = [s for s, _ in lots]
    assert starts == sorted(set(starts)) and starts[-1] == 24
    while econ.chain.height < 24 + ramp:
        econ.block()
    height = econ.chain.height + 1
    result = econ.block([econ.tx(VETERAN, Msg("rewards.claim", {}))])
    assert tenure_minted(result) == model.settle(VETERAN.address_raw, height) > 0
    assert lots_of(econ, VETERAN) == (24, [])  # every lot ramped: one lot again


def test_ramped_lots_merge_at_the_youngest_start_so_a_longer_ramp_cannot_overpay():
    """Lots ramped under ``R = 100`` merge at the youngest of their starts: exact
    while the ramp holds, and under a ramp a vote lengthens to 1,000 the merged
    lot earns no more than its lots would (here, less)."""
    e = rewards.Earner(tenure_start=0, last_height=199, lots=[[50, 1_000], [150, 7]])
    rewards.merge_ramped(e, 200, 100)
    assert (e.tenure_start, e.lots) == (50, [[150, 7]])
    lots = [[0, 5_000], [50, 1_000], [150, 7]]
    for ramp in (100, 1_000):
        params = ChainParams.from_dict(dict(tenure_rate_ppb=10**8, tenure_ramp_blocks=ramp))
        merged = rewards.tenure_earned(6_007, e, 400, params)
        exact = lots_tenure(lots, 199, 400, 10**8, ramp)
        assert merged == exact if ramp == 100 else merged < exact


def test_a_record_written_before_lots_reads_as_one_lot():
    """A chain upgraded in place keeps its five-entry records: one reads as the
    whole bond since ``tenure_start`` (as it was paid), and a bond never
    topped up is written back in the same five entries, byte for byte."""
    address = VETERAN.address_raw
    old = encode([7 * rewards.SCALE, 11, 3, 40, 5])
    stored = {rewards.ACCOUNT_REWARD_PREFIX + address: old}
    state = PendingState(stored.get)
    e = rewards.earner(state, address)
    assert e == rewards.Earner(7 * rewards.SCALE, 11, 3, 40, 5, [])
    assert e.all_lots(900) == [(3, 900)]
    params = ChainParams.from_dict(dict(economics=1, tenure_rate_ppb=10**7, tenure_ramp_blocks=100))
    want = 900 * 10**7 * sum(min(b - 3, 100) for b in range(41, 50)) // (100 * PPB)
    assert rewards.tenure_earned(900, e, 49, params) == want
    rewards.on_bonded_change(state, params, 50, address, 900, 800)  # a partial unstake
    raw = state.get(rewards.ACCOUNT_REWARD_PREFIX + address)
    assert raw is not None and len(decode(raw, "reward")) == 5


# --- 2. which stake earns a block's fees ---------------------------------------------


def fees_only(**params: Any) -> dict[str, Any]:
    """Parameters under which only base fees pay stake: none sold, none rebated,
    nothing minted, no tenure."""
    return {"split_base_bps": 0, "split_slope_bps": 0, "fee_base": 10**6, **params}


def fee_block(econ, *extra_last: bytes, first: tuple[bytes, ...] = ()) -> BlockResult:
    """A block in which every payer sends H (paying base fees), with ``first``
    before them and ``extra_last`` after them."""
    payments = [econ.tx(p, send_h(HONEST)) for p in PAYERS]
    result = econ.block([*first, *payments, *extra_last])
    paid = result.receipts[len(first) : len(first) + len(payments)]
    assert all(r.code == "ok" for r in paid), [r.log for r in paid]
    return result


def test_a_stake_placed_last_in_a_block_takes_none_of_its_fees(open_econ, tmp_path):
    """An honest staker bonds 10^6 across blocks; in block h the payers pay
    their fees, and the attacker bonds 10^9 as the block's last transaction,
    unbonds it first thing in block h + 1 and claims. The attacker must get
    nothing of block h (nor of h + 1, which it left); the honest staker gets
    both blocks' stake share, less the rounding. Split by the stake at the
    block's end, the attacker took 99.9 % of block h's fees."""
    holders = [(HONEST, PLENTY, 10**6, PLENTY), (ATTACKER, PLENTY, 0, PLENTY)]
    holders += [(p, PLENTY, 0, PLENTY) for p in PAYERS]
    econ = open_econ(tmp_path, econ_genesis(holders, **fees_only()))
    econ.block()
    stake = econ.tx(ATTACKER, Msg("stake", {"amount": 10**9}))
    attacked = economy_event(fee_block(econ, stake))
    assert attacked["to_stake"] > 10**6
    with econ.chain.reader() as r:  # the block's lows live only within it
        assert list(r.items(rewards.BLOCK_LOW_PREFIX)) == []
    leave = [econ.tx(ATTACKER, Msg("unstake", {"amount": 10**9}))]
    leave.append(econ.tx(ATTACKER, Msg("rewards.claim", {})))
    after = fee_block(econ, econ.tx(HONEST, Msg("rewards.claim", {})), first=tuple(leave))
    attacker, honest = claimed(after, ATTACKER), claimed(after, HONEST)
    assert attacker == 0, f"the last-in-block stake took {attacker} of {attacked['to_stake']}"
    assert after.receipts[1].code == "nothing_to_claim"
    # The honest claim in block h + 1 pays block h's whole share (the index's floor aside).
    assert attacked["to_stake"] - 1 <= honest <= attacked["to_stake"]


def test_a_stake_unbonded_early_in_a_block_takes_none_of_its_fees(open_econ, tmp_path):
    """The other direction: a stake bonded for many blocks unbonds as block h's
    first transaction; the fees paid after it in that block go to the stake
    still bonded, all of them."""
    holders = [(HONEST, PLENTY, 10**6, PLENTY), (ATTACKER, PLENTY, 10**9, PLENTY)]
    holders += [(p, PLENTY, 0, PLENTY) for p in PAYERS]
    econ = open_econ(tmp_path, econ_genesis(holders, **fees_only()))
    econ.block()
    settle = [
        econ.tx(ATTACKER, Msg("rewards.claim", {})),
        econ.tx(HONEST, Msg("rewards.claim", {})),
    ]
    settled = economy_event(econ.block(settle))  # both are paid up to its start
    leave = econ.tx(ATTACKER, Msg("unstake", {"amount": 10**9}))
    block_h = economy_event(fee_block(econ, first=(leave,)))
    claims = [
        econ.tx(ATTACKER, Msg("rewards.claim", {})),
        econ.tx(HONEST, Msg("rewards.claim", {})),
    ]
    result = econ.block(claims)
    # What the settling block itself paid stake, each by its stake.
    step = settled["to_stake"] * rewards.SCALE // (10**9 + 10**6)
    assert claimed(result, ATTACKER) == 10**9 * step // rewards.SCALE
    honest = claimed(result, HONEST) - 10**6 * step // rewards.SCALE
    assert block_h["to_stake"] - 1 <= honest <= block_h["to_stake"]


def test_a_stake_risen_and_fallen_within_a_block_earns_on_its_low(open_econ, tmp_path):
    """Unbonding and bonding back in one block: the stake was bonded at 4 * 10^5
    at its least, and that is what earns the block (the rise above it earns
    from the next block on); an honest staker of 10^6 takes the rest."""
    holders = [(HONEST, PLENTY, 10**6, PLENTY), (ATTACKER, PLENTY, 10**6, PLENTY)]
    holders += [(p, PLENTY, 0, PLENTY) for p in PAYERS]
    econ = open_econ(tmp_path, econ_genesis(holders, **fees_only()))
    econ.block()
    settle = [econ.tx(k, Msg("rewards.claim", {})) for k in (ATTACKER, HONEST)]
    settled = economy_event(econ.block(settle))
    move = [
        econ.tx(ATTACKER, Msg("unstake", {"amount": 6 * 10**5})),
        econ.tx(ATTACKER, Msg("stake", {"amount": 9 * 10**5})),
    ]
    block_h = economy_event(fee_block(econ, first=tuple(move)))
    claims = [econ.tx(k, Msg("rewards.claim", {})) for k in (ATTACKER, HONEST)]
    result = econ.block(claims)
    first = settled["to_stake"] * rewards.SCALE // (2 * 10**6)
    step = block_h["to_stake"] * rewards.SCALE // (10**6 + 4 * 10**5)
    # The attacker's low was settled at block h's end, apart from its claim.
    attacker = 10**6 * first // rewards.SCALE + 4 * 10**5 * step // rewards.SCALE
    assert claimed(result, ATTACKER) == attacker
    assert claimed(result, HONEST) == 10**6 * (first + step) // rewards.SCALE
