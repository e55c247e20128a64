"""The economy's end of block: the base fees' split, H minting, the next base fee, claims.

With ``economics`` 1, every transaction pays its fee in H; the proposer keeps
the tip (what a fee pays above ``fee_base + base_fee * size``) and the base
part of every fee is split here, by the premium signal:

* ``p`` is the TWAP of one H in CYB in the ``cyb/h`` pool (``modules.dex``),
  ``d`` its par, ``h_par_bps / 10_000`` CYB; the premium is ``(p - d) / d``
  in basis points (0 while there is no pool: no signal);
* the buyback share is ``split_base_bps + split_slope_bps * premium / 10_000``,
  held within 0 and 10,000: the dearer H is against par, the more of the
  fees is sold for CYB, which pushes H back towards par;
* that share of the H is swapped for CYB in the pool, like any swap (its fee
  stays with liquidity providers, its breaker holds), and the CYB it buys is
  burned; if the pool is missing, halted or its breaker would trip, the H is
  burned instead;
* the rest, with ``h_mint_per_block`` new H, goes to bonded stake
  (``modules.rewards``; burned while nothing is bonded).

Then the next block's base fee per byte follows EIP-1559's rule over the
block's transaction bytes (``chain.fees``). Every amount is an integer and
every division rounds down; the block's events carry ``{"type": "economy",
...}`` with each part, so the supply can be followed block by block.

Message
    ``rewards.claim`` ``{}``: pays the sender's stake, tenure and learning
    rewards in H (``nothing_to_claim`` when they are all zero).
"""

from __future__ import annotations

from collections.abc import Mapping

from focusflow.chain.errors import NothingToClaimError, TxError
from focusflow.chain.fees import current_fee_per_byte, next_fee_per_byte, set_fee_per_byte
from focusflow.chain.genesis import Genesis
from focusflow.chain.module import BlockContext, Deltas, Handler, TxContext
from focusflow.chain.params import ChainParams
from focusflow.chain.state import PendingState, Readable
from focusflow.modules import amm, rewards
from focusflow.modules.accounts import get_account, only_fields
from focusflow.modules.dex import swap_in, twap_q64
from focusflow.modules.tokens import CYB, H, burn, mint


def premium_bps(state: Readable, params: ChainParams, now_ms: int) -> int | None:
    """H's premium over par in basis points from the ``cyb/h`` TWAP; None without a pool."""
    price = twap_q64(state, H, CYB, now_ms, params)
    if price is None or not params.h_par_bps:
        return None
    par = params.h_par_bps * amm.Q64 // amm.BPS
    return (price - par) * amm.BPS // par


def buyback_bps(state: Readable, params: ChainParams, now_ms: int) -> int:
    """The share of the base fees spent on CYB buyback-and-burn."""
    premium = premium_bps(state, params, now_ms) or 0
    share = params.split_base_bps + params.split_slope_bps * premium // amm.BPS
    return max(0, min(amm.BPS, share))


class Economy:
    name = "economy"

    def handlers(self) -> Mapping[str, Handler]:
        return {"rewards.claim": self.claim}

    def init_genesis(self, state: PendingState, genesis: Genesis, deltas: Deltas) -> None:
        """Nothing: the bank's genesis settles every bonded stake into the reward pool."""

    def claim(self, ctx: TxContext, body: dict) -> None:
        only_fields(body)
        if not ctx.params.economics:
            raise NothingToClaimError("this chain pays no rewards (params.economics is 0)")
        bonded = get_account(ctx.state, ctx.sender).bonded
        karma = ctx.block.karma_of(ctx.sender) if ctx.params.learning_per_block else 0
        paid, learned = rewards.claim(ctx.state, ctx.params, ctx.height, ctx.sender, bonded, karma)
        if not paid and not learned:
            raise NothingToClaimError("nothing earned since the last claim")
        ctx.emit("rewards.claim", neuron=ctx.sender, stake=paid, learning=learned)

    def end_block(self, ctx: BlockContext) -> None:
        params = ctx.params
        if not params.economics:
            return
        base = ctx.counters.get("base_fees", 0)
        split = buyback_bps(ctx.state, params, ctx.time_ms)
        sold = base * split // amm.BPS
        burned_cyb = self._buyback(ctx, sold) if sold else 0
        minted = params.h_mint_per_block
        mint(ctx.state, None, H, minted)
        to_stake = rewards.distribute(ctx.state, base - sold + minted)
        current = ctx.fee_per_byte or current_fee_per_byte(ctx.state, params)
        following = next_fee_per_byte(current, ctx.counters.get("tx_bytes", 0), params)
        set_fee_per_byte(ctx.state, following)
        ctx.events.append(
            {
                "type": "economy",
                "base_fees": base,
                "buyback_bps": split,
                "sold_h": sold,
                "burned_cyb": burned_cyb,
                "minted_h": minted,
                "to_stake": to_stake,
                "fee_per_byte": following,
            }
        )

    @staticmethod
    def _buyback(ctx: BlockContext, sold: int) -> int:
        """Swap ``sold`` H (the fees' buyback share) for CYB and burn it; burn
        the H instead when the pool cannot take it. Returns the CYB burned."""
        attempt = ctx.state.child()
        halted = set(ctx.halted_pools)
        try:
            bought = swap_in(attempt, ctx, H, CYB, sold, None)
        except TxError:
            ctx.halted_pools = halted  # the protocol's own trade halts no pool
            burn(ctx.state, None, H, sold, "buyback")
            return 0
        ctx.state.merge(attempt)
        burn(ctx.state, None, CYB, bought, "buyback")
        return bought
