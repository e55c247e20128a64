"""Rewards to bonded stake, settled lazily: O(1) per block whatever the number of stakers.

Under the economy (``economics`` 1) every block may pay H to bonded stake: the
H-reward part of the base fees and ``h_mint_per_block``. Instead of crediting
every staker each block, the chain keeps one cumulative index, the H earned by
one unit of bonded stake since genesis (scaled by :data:`SCALE`, rounded down,
F1 fee distribution's idea with one pool for all stake, since stake here is
bonded by its owner, not delegated), and each account keeps the index it last
settled at. Settling, which happens before every change of an account's bonded
stake and at its claim, adds ``bonded * (index - index_at) // SCALE`` to what
the account has accrued. Rounding down everywhere means the pool's holding
(``held``) always covers every account's share; the dust stays there.

Which stake earns a block's H: the stake bonded throughout the block, its
least bonded stake during the block (its *low*). Stake bonded in a block earns
from the next block on; stake unbonded in a block earns nothing of that block.
A block's fees are paid by its transactions one after another, and only stake
bonded before the first and after the last was bonded when each was paid: a
stake sent as a block's last transaction cannot take the fees the block's
other senders paid, nor can a stake unbonded by its first keep them. The index
moves by ``amount * SCALE // earning``, ``earning`` being the total bonded
less every account's rise above its low in the block; an account whose stake
rose above its low is settled at the block's end for its low and the block's
step. Those accounts are kept at ``/token/rewardlow/<address>`` ``[low,
bonded]`` during the block and deleted at its end (no committed state keeps
one), so the end of a block costs O(accounts whose stake rose in it), never
O(stakers).

Tenure: stake earns ``tenure_rate_ppb`` parts per billion of itself per block
at full tenure, reached linearly over ``tenure_ramp_blocks`` of unbroken
bonding (``min(t, R) / R`` of the rate in the block ``t`` blocks after the
stake's start). Each part of a bond keeps its own start, as lots: a top-up
is a new lot that starts at its block, so adding stake to an old bond earns
what the same stake bonded by a newcomer earns. Unbonding takes the youngest
lots first (LIFO): the lots are then exactly the staircase "the least bonded
stake since ``s``" over every ``s``, so each unit is credited with the
longest unbroken bonding it really had, and bonding then unbonding the same
amount leaves the lots as they were. A settlement in block ``h`` pays the
blocks that ended, ``last_height + 1 .. h - 1``, lot by lot in closed form
(O(lots)), one floor for the sum; it is minted as it is settled. Since lots
only shrink within a block and a new lot earns nothing in its own block
(``t = 0``), the lots a block leaves are the ones bonded throughout it.
Lots fully ramped by the block being settled merge into one at the youngest
of their starts (they earn the full rate alike; a start never moves earlier,
so a longer ramp voted later cannot overpay them). An account keeps at most
:data:`MAX_LOTS` lots; past them two neighbouring lots merge at the younger
one's start, the pair whose older lot loses least (:func:`add_lot`): a
unit's start only ever moves later, so the bound costs the holder a little
tenure and never pays more. A stake-weighted
single start is not sound: the ramp is concave, so by Jensen's inequality the
mean start pays more than the lots would (a veteran doubling its stake got the
full rate on the new half at once).

Learning: ``rewards.claim`` also pays ``karma * learning_per_block * blocks //
10^15`` new H, with the neuron's karma after the parent block (focus's fixed
point: all karma together is at most 10^15) and the blocks since its last
claim, at most ``learning_window`` (a neuron cannot hold a high karma for one
block and collect for a year). A neuron that never claimed counts from the
block its record was made (its first bonding, genesis included): counting a
whole window back from there paid a neuron bonded a block ago, even on a chain
five blocks old, ``learning_window`` blocks of its karma.

State: ``/token/rewards`` ``[index, total_bonded, held]``; ``/token/reward/<address>``
``[index_at, accrued, tenure_start, last_height, learning_at]``, with a sixth
entry ``[[start, amount], ...]`` only while the bond has lots younger than its
oldest (oldest first, starts rising). ``tenure_start`` is the oldest lot's
start (-1 while nothing is bonded) and the oldest lot holds what the younger
ones leave of the bond, so a record written before there were lots reads as
one lot, the whole bond since ``tenure_start``, as it was paid; a bond that
was never topped up keeps the five entries it always had. ``last_height`` is
the last block whose tenure is paid.
"""

from __future__ import annotations

from focusflow.chain.params import ChainParams
from focusflow.chain.state import PendingState
from focusflow.core.encoding import decode, decode_stored, encode
from focusflow.modules.economy_params import EconomyParams
from focusflow.modules.tokens import add, burn, mint
from focusflow.state_schema.accounts import ACCOUNT_PREFIX
from focusflow.state_schema.rewards import (
    ACCOUNT_REWARD_PREFIX,
    BLOCK_LOW_PREFIX,
    TOTALS_KEY,
    Earner,
    Totals,
    earner,
)
from focusflow.state_schema.tokens import H

SCALE = 10**27
#: The fixed point of focus and karma (``round(phi * 10**15)``).
KARMA_UNIT = 10**15
PPB = 10**9
#: The most lots one bond keeps (the oldest and the younger ones).
MAX_LOTS = 16


def totals(state: PendingState) -> Totals:
    """The reward pool; the first read on a chain that had none sums every bonded stake."""
    raw = state.get(TOTALS_KEY)
    if raw is not None:
        index, total, held = decode_stored(raw, "rewards")
        return Totals(index, total, held)
    total = sum(decode(v, "account")[2] for _, v in state.scan(ACCOUNT_PREFIX))
    return Totals(0, total, 0)


def save_totals(state: PendingState, t: Totals) -> None:
    state.put(TOTALS_KEY, t.encode())


def _save_earner(state: PendingState, address: bytes, e: Earner) -> None:
    state.put(ACCOUNT_REWARD_PREFIX + address, e.encode())


def ramp_sum(t0: int, t1: int, ramp: int) -> int:
    """``sum(min(t, ramp) for t in range(t0, t1 + 1))`` in O(1) (0 when empty)."""
    if t1 < t0:
        return 0
    total = 0
    lo, hi = t0, min(t1, ramp)
    if lo <= hi:
        total += (lo + hi) * (hi - lo + 1) // 2
    flat_from = max(t0, ramp + 1)
    if flat_from <= t1:
        total += ramp * (t1 - flat_from + 1)
    return total


def tenure_earned(bonded: int, e: Earner, height: int, params: ChainParams) -> int:
    """H the tenure reward owes ``bonded``, lot by lot, for blocks ``last_height + 1
    .. height``: the exact sum over lots and blocks, floored once."""
    economy = EconomyParams.of(params)
    if not economy.tenure_rate_ppb or bonded <= 0 or e.tenure_start < 0:
        return 0
    ramp = economy.tenure_ramp_blocks
    steps = 0
    for start, amount in e.all_lots(bonded):
        t0, t1 = e.last_height + 1 - start, height - start
        steps += amount * ramp_sum(max(t0, 0), t1, ramp)
    return economy.tenure_rate_ppb * steps // (ramp * PPB)


def merge_ramped(e: Earner, height: int, ramp: int) -> None:
    """Merge the lots fully ramped in block ``height`` (and so after it) into one,
    at the youngest of their starts: they earn the full rate alike, and a start
    that only moves later cannot overpay should a vote lengthen the ramp."""
    ramped = [i for i, (start, _) in enumerate(e.lots) if height - start >= ramp]
    if ramped:
        e.tenure_start = e.lots[ramped[-1]][0]
        e.lots = e.lots[ramped[-1] + 1 :]


def add_lot(e: Earner, bonded: int, height: int, amount: int) -> None:
    """A top-up of ``amount`` to the ``bonded`` stake in block ``height``: its
    own lot (one lot per block). Past :data:`MAX_LOTS`, two neighbouring lots
    merge at the younger one's start: the pair whose older lot gives up the
    least, its amount times the blocks between their starts (the older pair on
    a tie). A unit's start only ever moves later, so a merge never pays more."""
    if e.tenure_start == height:
        return  # the bond started in this block: the oldest lot holds it
    if e.lots and e.lots[-1][0] == height:
        e.lots[-1][1] += amount
        return
    lots = [[s, a] for s, a in e.all_lots(bonded)] + [[height, amount]]
    if len(lots) > MAX_LOTS:
        i = min(range(len(lots) - 1), key=lambda j: (lots[j][1] * (lots[j + 1][0] - lots[j][0]), j))
        lots[i : i + 2] = [[lots[i + 1][0], lots[i][1] + lots[i + 1][1]]]
    e.tenure_start = lots[0][0]
    e.lots = lots[1:]


def take_youngest(e: Earner, amount: int) -> None:
    """``amount`` leaves the bond, youngest lots first (what they lack comes off
    the oldest lot, which holds what the younger leave)."""
    while amount > 0 and e.lots:
        youngest = e.lots[-1]
        if youngest[1] > amount:
            youngest[1] -= amount
            return
        amount -= youngest[1]
        e.lots.pop()


def settle(
    state: PendingState, params: ChainParams, height: int, address: bytes, bonded: int
) -> tuple[Earner, Totals, int]:
    """Bring ``address``'s accrual up to the index and its tenure up to the last
    block that ended before ``height``, for the ``bonded`` stake it held;
    returns the records and the tenure reward it minted."""
    t = totals(state)
    e = earner(state, address) or Earner(index_at=t.index, last_height=height, learning_at=height)
    e.accrued += bonded * (t.index - e.index_at) // SCALE
    tenure = tenure_earned(bonded, e, height - 1, params)
    if tenure:
        mint(state, None, H, tenure)
        t.held += tenure
        e.accrued += tenure
    e.index_at = t.index
    e.last_height = max(e.last_height, height - 1)
    merge_ramped(e, height, EconomyParams.of(params).tenure_ramp_blocks)
    return e, t, tenure


def on_bonded_change(
    state: PendingState, params: ChainParams, height: int, address: bytes, before: int, after: int
) -> int:
    """Called before every change of an account's bonded stake (stake, unstake,
    slash, genesis at height 0): settles what ``before`` earned, moves the lots,
    notes a rise above the block's low, then tracks the total.
    Returns the tenure reward minted, which the caller's event reports."""
    if not params.economics or before == after:
        return 0
    e, t, tenure = settle(state, params, height, address, before)
    if after <= 0:
        e.tenure_start, e.lots = -1, []
    elif before <= 0:
        e.tenure_start, e.lots = height, []
    elif after > before:
        add_lot(e, before, height, after - before)
    else:
        take_youngest(e, before - after)
    if height > 0:  # the genesis bonds before the first block starts
        _note_low(state, address, before, after)
    t.total_bonded += after - before
    _save_earner(state, address, e)
    save_totals(state, t)
    return tenure


def _note_low(state: PendingState, address: bytes, before: int, after: int) -> None:
    """Keep ``[low, bonded]`` for an account whose stake is above its least in
    the current block (none is kept at the low: the index pays it as it is)."""
    key = BLOCK_LOW_PREFIX + address
    raw = state.get(key)
    low = min(before if raw is None else decode_stored(raw, "reward low")[0], after)
    if after > low:
        state.put(key, encode([low, after]))
    elif raw is not None:
        state.delete(key)


def distribute(state: PendingState, amount: int) -> int:
    """The end of a block: add ``amount`` H (already taken from its payers or
    minted into no account) to the stake reward pool, for the stake bonded
    throughout the block; burned when there is none. Then settle, for the
    block, each account whose stake rose above its low in it. Returns what
    the index took.

    The totals are saved even when nothing is bonded: :func:`totals` sums every
    account while they are missing, and a chain whose genesis bonds nothing
    would otherwise pay that scan, O(accounts), in every block's end."""
    risen = [
        (key[len(BLOCK_LOW_PREFIX) :], *decode_stored(raw, "reward low"))
        for key, raw in state.scan(BLOCK_LOW_PREFIX)
    ]
    if amount <= 0 and not risen:
        return 0
    t = totals(state)
    earning = t.total_bonded - sum(now - low for _, low, now in risen)
    paid = 0
    if amount > 0 and earning <= 0:
        burn(state, None, H, amount, "rewards")
        if state.get(TOTALS_KEY) is None:
            save_totals(state, t)
    elif amount > 0:
        t.index += amount * SCALE // earning
        t.held += amount
        save_totals(state, t)
        paid = amount
    for address, low, _ in risen:
        _settle_low(state, address, low, t.index)
        state.delete(BLOCK_LOW_PREFIX + address)
    return paid


def _settle_low(state: PendingState, address: bytes, low: int, index: int) -> None:
    """Pay the block that ends to ``address``'s low (its rise earned none of it)."""
    e = earner(state, address)
    if e is None:
        return
    e.accrued += low * (index - e.index_at) // SCALE
    e.index_at = index
    _save_earner(state, address, e)


def claim(
    state: PendingState, params: ChainParams, height: int, address: bytes, bonded: int, karma: int
) -> tuple[int, int, int]:
    """Settle and pay ``address``: ``(stake and tenure rewards, learning reward,
    tenure minted by this settlement)``, the first two credited in H. The
    stake part is what the blocks that ended paid."""
    e, t, tenure = settle(state, params, height, address, bonded)
    economy = EconomyParams.of(params)
    blocks = min(max(0, height - e.learning_at), economy.learning_window)
    learned = karma * economy.learning_per_block * blocks // KARMA_UNIT
    e.learning_at = height
    paid = e.accrued
    e.accrued = 0
    t.held -= paid
    _save_earner(state, address, e)
    save_totals(state, t)
    if paid:
        add(state, address, H, paid)
    if learned:
        mint(state, address, H, learned)
    return paid, learned, tenure
