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

Tenure: a stake bonded without a break since ``tenure_start`` earns
``tenure_rate_ppb`` parts per billion of itself per block at full tenure,
reached linearly over ``tenure_ramp_blocks`` (``min(t, R) / R`` of the rate in
the block ``t`` blocks after the start); the sum over the blocks since the last
settlement has a closed form, so this too costs O(1). It is minted as it is
settled.

Learning: ``rewards.claim`` also pays ``karma * learning_per_block * blocks //
10^15`` new H, with the neuron's karma after the parent block (focus's fixed
point: all karma together is at most 10^15) and the blocks since its last
claim, at most ``learning_window`` (a neuron cannot hold a high karma for one
block and collect for a year). A neuron that never claimed counts from the
block its record was made (its first bonding, genesis included): counting a
whole window back from there paid a neuron bonded a block ago, even on a chain
five blocks old, ``learning_window`` blocks of its karma.

State: ``/token/rewards`` ``[index, total_bonded, held]``; ``/token/reward/<address>``
``[index_at, accrued, tenure_start, last_height, learning_at]`` (``tenure_start``
-1 while nothing is bonded).
"""

from __future__ import annotations

from dataclasses import dataclass

from focusflow.chain.params import ChainParams
from focusflow.chain.state import PendingState, Readable
from focusflow.core.encoding import decode, decode_stored, encode
from focusflow.modules.accounts import ACCOUNT_PREFIX
from focusflow.modules.tokens import H, add, burn, mint

SCALE = 10**27
#: The fixed point of focus and karma (``round(phi * 10**15)``).
KARMA_UNIT = 10**15
PPB = 10**9
TOTALS_KEY = b"/token/rewards"
ACCOUNT_REWARD_PREFIX = b"/token/reward/"


@dataclass
class Totals:
    index: int = 0
    total_bonded: int = 0
    held: int = 0


@dataclass
class Earner:
    index_at: int = 0
    accrued: int = 0
    tenure_start: int = -1
    last_height: int = 0
    learning_at: int = -1


def totals(state: PendingState) -> Totals:
    """The reward pool; the first read on a chain that had none sums every bonded stake."""
    raw = state.get(TOTALS_KEY)
    if raw is not None:
        index, total, held = decode_stored(raw, "rewards")
        return Totals(index, total, held)
    total = sum(decode(v, "account")[2] for _, v in state.scan(ACCOUNT_PREFIX))
    return Totals(0, total, 0)


def read_totals(state: Readable) -> Totals | None:
    raw = state.get(TOTALS_KEY)
    if raw is None:
        return None
    index, total, held = decode(raw, "rewards")
    return Totals(index, total, held)


def save_totals(state: PendingState, t: Totals) -> None:
    state.put(TOTALS_KEY, encode([t.index, t.total_bonded, t.held]))


def earner(state: Readable, address: bytes) -> Earner | None:
    raw = state.get(ACCOUNT_REWARD_PREFIX + address)
    return None if raw is None else Earner(*decode_stored(raw, "reward"))


def _save_earner(state: PendingState, address: bytes, e: Earner) -> None:
    state.put(
        ACCOUNT_REWARD_PREFIX + address,
        encode([e.index_at, e.accrued, e.tenure_start, e.last_height, e.learning_at]),
    )


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
    """H the tenure reward owes ``bonded`` for blocks ``last_height + 1 .. height``."""
    if not params.tenure_rate_ppb or bonded <= 0 or e.tenure_start < 0:
        return 0
    ramp = params.tenure_ramp_blocks
    t0, t1 = e.last_height + 1 - e.tenure_start, height - e.tenure_start
    steps = ramp_sum(max(t0, 0), t1, ramp)
    return bonded * params.tenure_rate_ppb * steps // (ramp * PPB)


def settle(
    state: PendingState, params: ChainParams, height: int, address: bytes, bonded: int
) -> tuple[Earner, Totals, int]:
    """Bring ``address``'s accrual up to ``height`` for the ``bonded`` stake it
    held; returns the records and the tenure reward it minted."""
    t = totals(state)
    e = earner(state, address) or Earner(index_at=t.index, last_height=height, learning_at=height)
    e.accrued += bonded * (t.index - e.index_at) // SCALE
    tenure = tenure_earned(bonded, e, height, params)
    if tenure:
        mint(state, None, H, tenure)
        t.held += tenure
        e.accrued += tenure
    e.index_at = t.index
    e.last_height = height
    return e, t, tenure


def on_bonded_change(
    state: PendingState, params: ChainParams, height: int, address: bytes, before: int, after: int
) -> int:
    """Called before every change of an account's bonded stake (stake, unstake,
    slash, genesis): settles what ``before`` earned, then tracks the total.
    Returns the tenure reward minted, which the caller's event reports."""
    if not params.economics or before == after:
        return 0
    e, t, tenure = settle(state, params, height, address, before)
    if before <= 0 < after:
        e.tenure_start = height
    elif after <= 0:
        e.tenure_start = -1
    t.total_bonded += after - before
    _save_earner(state, address, e)
    save_totals(state, t)
    return tenure


def distribute(state: PendingState, amount: int) -> int:
    """Add ``amount`` H (already taken from its payers or minted into no
    account) to the stake reward pool; burned when nothing is bonded.
    Returns what the index took.

    The totals are saved even when nothing is bonded: :func:`totals` sums every
    account while they are missing, and a chain whose genesis bonds nothing
    would otherwise pay that scan, O(accounts), in every block's end."""
    if amount <= 0:
        return 0
    t = totals(state)
    if t.total_bonded <= 0:
        burn(state, None, H, amount, "rewards")
        if state.get(TOTALS_KEY) is None:
            save_totals(state, t)
        return 0
    t.index += amount * SCALE // t.total_bonded
    t.held += amount
    save_totals(state, t)
    return amount


def claim(
    state: PendingState, params: ChainParams, height: int, address: bytes, bonded: int, karma: int
) -> tuple[int, int, int]:
    """Settle and pay ``address``: ``(stake and tenure rewards, learning reward,
    tenure minted by this settlement)``, the first two credited in H."""
    e, t, tenure = settle(state, params, height, address, bonded)
    blocks = min(max(0, height - e.learning_at), params.learning_window)
    learned = karma * params.learning_per_block * blocks // KARMA_UNIT
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
