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
* the spend incentive: ``spend_rebate_bps`` of the rest goes back to the
  block's fee payers, each by the base fees it paid (at most that share of
  what it paid, so no transaction pays for itself);
* the rest, with ``h_mint_per_block`` new H, goes to the stake bonded
  throughout the block (``modules.rewards``; burned while there is none).

Then the next block's base fee per byte follows EIP-1559's rule over the
block's transaction bytes (``chain.fees``). Every amount is an integer and
every division rounds down; the block's events carry ``{"type": "economy",
...}`` with each part, so the supply can be followed block by block.

Messages
    ``rewards.claim`` ``{}``: pays the sender's stake, tenure and learning
    rewards in H (``nothing_to_claim`` when they are all zero).
    ``economy.vote`` ``{"params": {name: value, ...}}``: a member of the
    validator set deciding the block votes to change economy parameters
    (``chain.params.governed``). Votes count for exactly their changes; once
    members holding more than 2/3 of the set's power voted for them, the
    changes are laid over the parameters from the next block on
    (``chain.governed``). Each validator holds one open vote: a new one
    replaces it, so votes never pile up. Keys: ``/kv/economy/votes/<sha256 of
    the changes>`` ``[changes, [voter keys]]``, ``/kv/economy/voter/<key>`` the
    hash of that validator's open vote.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from focusflow.chain.errors import (
    AlreadyVotedError,
    GenesisError,
    MalformedMessageError,
    NothingToClaimError,
    NotValidatorError,
    TxError,
)
from focusflow.chain.fees import current_fee_per_byte, next_fee_per_byte, set_fee_per_byte
from focusflow.chain.genesis import Genesis
from focusflow.chain.governed import GOVERNED_KEY, overrides
from focusflow.chain.module import BlockContext, Deltas, Handler, MessageBody, TxContext
from focusflow.chain.params import ChainParams, governed
from focusflow.chain.state import PendingState, Readable
from focusflow.consensus.validators import has_two_thirds
from focusflow.core.encoding import decode, encode
from focusflow.core.keys import encode_address
from focusflow.modules import amm, rewards
from focusflow.modules.accounts import field, only_fields
from focusflow.modules.dex import HaltedPools, swap_in, twap_q64
from focusflow.modules.economy_params import EconomyParams
from focusflow.modules.tokens import add, burn, mint
from focusflow.state_schema.accounts import get_account
from focusflow.state_schema.tokens import CYB, H
from focusflow.state_schema.votes import ECONOMY_VOTER_PREFIX, ECONOMY_VOTES_PREFIX


def premium_bps(state: Readable, params: ChainParams, now_ms: int) -> int | None:
    """H's premium over par in basis points from the ``cyb/h`` TWAP; None without a pool."""
    price = twap_q64(state, H, CYB, now_ms, params)
    par_bps = EconomyParams.of(params).h_par_bps
    if price is None or not par_bps:
        return None
    par = par_bps * amm.Q64 // amm.BPS
    # Rounded towards zero, so a price a hair under par reads 0, not -1 bps.
    gap = (abs(price - par) * amm.BPS) // par
    return gap if price >= par else -gap


def buyback_bps(state: Readable, params: ChainParams, now_ms: int) -> int:
    """The share of the base fees spent on CYB buyback-and-burn."""
    premium = premium_bps(state, params, now_ms) or 0
    economy = EconomyParams.of(params)
    share = economy.split_base_bps + economy.split_slope_bps * premium // amm.BPS
    return max(0, min(amm.BPS, share))


class Economy:
    name = "economy"

    def handlers(self) -> Mapping[str, Handler]:
        return {"rewards.claim": self.claim, "economy.vote": self.vote}

    def init_genesis(self, state: PendingState, genesis: Genesis, deltas: Deltas) -> None:
        """Nothing: the bank's genesis settles every bonded stake into the reward pool."""

    def claim(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body)
        if not ctx.params.economics:
            raise NothingToClaimError("this chain pays no rewards (params.economics is 0)")
        bonded = get_account(ctx.state, ctx.sender).bonded
        learns = EconomyParams.of(ctx.params).learning_per_block
        karma = ctx.block.karma_of(ctx.sender) if learns else 0
        paid, learned, tenure = rewards.claim(
            ctx.state, ctx.params, ctx.height, ctx.sender, bonded, karma
        )
        if not paid and not learned:
            raise NothingToClaimError("nothing earned since the last claim")
        ctx.emit(
            "rewards.claim", neuron=ctx.sender, stake=paid, learning=learned, tenure_minted=tenure
        )

    def vote(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "params")
        changes = _changes(ctx.params, field(body, "params", dict))
        validators = ctx.block.validators
        if validators is None or not validators.power_of(ctx.sender_key):
            raise NotValidatorError(
                f"{encode_address(ctx.sender)} is not in the validator set of block "
                f"{ctx.height}: only its members vote on economy parameters"
            )
        digest = hashlib.sha256(encode(changes)).digest()
        key = ECONOMY_VOTES_PREFIX + digest
        raw = ctx.state.get(key)
        voters = set() if raw is None else set(decode(raw, "economy votes")[1])
        if ctx.sender_key in voters:
            raise AlreadyVotedError(f"{encode_address(ctx.sender)} voted for these changes")
        _withdraw(ctx.state, ctx.sender_key)
        voters.add(ctx.sender_key)
        power = sum(validators.power_of(v) for v in voters)
        ctx.emit("economy_vote", validator=ctx.sender, params=changes, power=power,
                 total=validators.total_power)  # fmt: skip
        if has_two_thirds(power, validators.total_power):
            ctx.state.put(GOVERNED_KEY, encode({**overrides(ctx.state), **changes}))
            ctx.state.delete(key)
            for voter in voters - {ctx.sender_key}:
                ctx.state.delete(ECONOMY_VOTER_PREFIX + voter)
            ctx.emit("economy_params", params=changes, from_height=ctx.height + 1)
            return
        ctx.state.put(key, encode([changes, sorted(voters)]))
        ctx.state.put(ECONOMY_VOTER_PREFIX + ctx.sender_key, digest)

    def end_block(self, ctx: BlockContext) -> None:
        params = ctx.params
        if not params.economics:
            return
        base = ctx.counters.get("base_fees", 0)
        split = buyback_bps(ctx.state, params, ctx.time_ms)
        sold = base * split // amm.BPS
        burned_cyb = self._buyback(ctx, sold) if sold else 0
        economy = EconomyParams.of(params)
        rebated = self._rebate(ctx, (base - sold) * economy.spend_rebate_bps // amm.BPS)
        minted = economy.h_mint_per_block
        mint(ctx.state, None, H, minted)
        to_stake = rewards.distribute(ctx.state, base - sold - rebated + minted)
        burned_h = (0 if burned_cyb else sold) + (base - sold - rebated + minted - to_stake)
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
                "rebated_h": rebated,
                "burned_h": burned_h,
                "fee_per_byte": following,
            }
        )

    @staticmethod
    def _rebate(ctx: BlockContext, pool: int) -> int:
        """The spend incentive: ``pool`` H shared among the block's fee payers by
        the base fees each paid (rounded down, in address order); returns what
        was paid out (the dust stays in the reward part)."""
        total = sum(ctx.fee_payers.values())
        if pool <= 0 or total <= 0:
            return 0
        paid = 0
        for payer in sorted(ctx.fee_payers):
            share = pool * ctx.fee_payers[payer] // total
            if share:
                add(ctx.state, payer, H, share)
                paid += share
        return paid

    @staticmethod
    def _buyback(ctx: BlockContext, sold: int) -> int:
        """Swap ``sold`` H (the fees' buyback share) for CYB and burn it; burn
        the H instead when the pool cannot take it. Returns the CYB burned."""
        attempt = ctx.state.child()
        halted = ctx.section(HaltedPools)
        before = set(halted.pools)
        try:
            bought = swap_in(attempt, ctx, H, CYB, sold, None)
        except TxError:
            halted.pools = before  # the protocol's own trade halts no pool
            burn(ctx.state, None, H, sold, "buyback")
            return 0
        ctx.state.merge(attempt)
        burn(ctx.state, None, CYB, bought, "buyback")
        return bought


def _changes(params: ChainParams, raw: dict[str, Any]) -> dict[str, Any]:
    """The vote's changes, checked as the genesis checks parameters."""
    if not raw:
        raise MalformedMessageError("field 'params' names no parameter")
    unknown = sorted(set(raw) - governed())
    if unknown:
        raise MalformedMessageError(
            f"not votable: {', '.join(map(str, unknown))} (economy parameters but economics are)"
        )
    try:
        ChainParams.from_dict({**params.flat(), **raw})
    except GenesisError as exc:
        raise MalformedMessageError(f"field 'params': {exc.message}") from None
    return dict(sorted(raw.items()))


def _withdraw(state: PendingState, voter: bytes) -> None:
    """Take ``voter`` off its open vote, if any (one open vote per validator)."""
    digest = state.get(ECONOMY_VOTER_PREFIX + voter)
    if digest is None:
        return
    state.delete(ECONOMY_VOTER_PREFIX + voter)
    key = ECONOMY_VOTES_PREFIX + digest
    raw = state.get(key)
    if raw is None:
        return
    changes, voters = decode(raw, "economy votes")
    left = [v for v in voters if v != voter]
    if left:
        state.put(key, encode([changes, left]))
    else:
        state.delete(key)
