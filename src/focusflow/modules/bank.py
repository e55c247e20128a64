"""Bank: balances, transfers, staking with an unbonding period, and fees.

Messages
    ``send``    ``{"to": address, "amount": n}``, or with ``"denom"`` any token
                (``modules.tokens``; without it, ``cyb``)
    ``stake``   ``{"amount": n}``: liquid -> bonded; bonded stake is the
                neuron's weight in focus (its links share it, §3.1)
    ``unstake`` ``{"amount": n}``: bonded -> unbonding, liquid again after
                ``unbonding_blocks``; refused if the remaining stake could not
                carry the neuron's links (``over_link_budget``)

Every change of bonded stake is an edge delta: all the neuron's links are
re-weighed in the next focus update. Fees are taken by the ante step and paid
to the block's proposer at the end of the block. Unbonding entries live at
``/token/unbond/<release height, 8 bytes><address>``.

Slashing: for each offence the chain proved from the block's equivocation
evidence (``BlockContext.offences``: duplicate votes, proposals or answers, or
a batch slot signed twice), the end of the block takes
``floor(bonded * slash_fraction / 10_000)`` from the bonded stake of the
validator's account (the address of its Ed25519 public key) and burns it: no
account is credited, the token supply shrinks. Stake the validator started to
unbond at or after the offence height (it was bonded when the vote was signed)
loses the same fraction, entry by entry, so unstaking right after an offence
does not escape it; stake that began unbonding before the offence, and liquid
balance, are not touched. Integer arithmetic only, rounding down, so every
node computes the same amount (a stake below ``10_000 / slash_fraction`` loses
nothing, and that is recorded too). The punishment is recorded at the
offence's key (``Offence.key``: ``/token/slashed/<public key><offence height,
8 bytes>``, or ``/token/slashed_slot/...`` for a batch slot, chain/evidence_pool.py) as
``[block height, amount]`` (bonded and unbonding together), which the chain
reads to refuse the same offence again; the block's events get
``{"type": "slash", ...}``. The validators module then jails the validator.
"""

from __future__ import annotations

from collections.abc import Mapping

from focusflow.chain.errors import BadNonceError, InsufficientFundsError, OverLinkBudgetError
from focusflow.chain.genesis import Genesis
from focusflow.chain.module import BlockContext, Deltas, Handler, MessageBody, Offence, TxContext
from focusflow.chain.module_params import BASIS_POINTS
from focusflow.chain.params import ChainParams
from focusflow.chain.state import PendingState, Readable
from focusflow.core.encoding import decode, encode
from focusflow.core.keys import encode_address
from focusflow.modules import rewards
from focusflow.modules.accounts import (
    address_field,
    amount_field,
    credit,
    debit,
    only_fields,
    set_account,
)
from focusflow.modules.tokens import add, burn, denom_field, mint, sub
from focusflow.state_schema.accounts import get_account, get_neudeg
from focusflow.state_schema.staking import UNBOND_PREFIX, unbond_key, unbonding_at
from focusflow.state_schema.tokens import CYB, H, balance_of


def ante(state: PendingState, params: ChainParams, sender: bytes, nonce: int, fee: int) -> None:
    """The nonce must be the account's next one; the fee comes out of the balance
    of the gas token (``h`` under the economy, else ``cyb``)."""
    account = get_account(state, sender)
    if nonce != account.nonce:
        raise BadNonceError(f"{encode_address(sender)} nonce {nonce}, expected {account.nonce}")
    if params.economics:
        sub(state, sender, H, fee, "its fee")  # reads the h balance once
        account.nonce += 1
        set_account(state, sender, account)
        return
    if account.balance < fee:
        raise InsufficientFundsError(
            f"{encode_address(sender)} has {account.balance}, cannot pay fee {fee}"
        )
    account.balance -= fee
    account.nonce += 1
    set_account(state, sender, account)


def _minted(tenure: int) -> dict[str, int]:
    """The tenure reward a stake change minted, for its event (left out when 0,
    so the events of chains without the economy are what they were)."""
    return {"tenure_minted": tenure} if tenure else {}


def gas_balance(state: Readable, params: ChainParams, address: bytes) -> int:
    """What ``address`` can pay fees with: its ``h`` under the economy, else its ``cyb``."""
    return balance_of(state, address, H if params.economics else CYB)


class Bank:
    name = "bank"

    def handlers(self) -> Mapping[str, Handler]:
        return {"send": self.send, "stake": self.stake, "unstake": self.unstake}

    def init_genesis(self, state: PendingState, genesis: Genesis, deltas: Deltas) -> None:
        for acct in genesis.accounts:
            account = get_account(state, acct.address)
            before = account.bonded
            account.balance += acct.balance
            account.bonded += acct.stake
            rewards.on_bonded_change(state, genesis.params, 0, acct.address, before, account.bonded)
            set_account(state, acct.address, account)
            if acct.stake:
                deltas.stakes[acct.address] = account.bonded
            for denom, amount in sorted(acct.tokens.items()):
                mint(state, acct.address, denom, amount)

    def send(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "to", "amount", "denom")
        to = address_field(body, "to")
        amount = amount_field(body)
        if "denom" in body:
            denom = denom_field(body, "denom")
            sub(ctx.state, ctx.sender, denom, amount, "send")
            add(ctx.state, to, denom, amount)
            ctx.emit("send", sender=ctx.sender, to=to, amount=amount, denom=denom)
            return
        debit(ctx.state, ctx.sender, amount, "send")
        credit(ctx.state, to, amount)
        ctx.emit("send", sender=ctx.sender, to=to, amount=amount)

    def stake(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "amount")
        amount = amount_field(body)
        account = debit(ctx.state, ctx.sender, amount, "stake")
        tenure = rewards.on_bonded_change(
            ctx.state, ctx.params, ctx.height, ctx.sender, account.bonded, account.bonded + amount
        )
        account.bonded += amount
        set_account(ctx.state, ctx.sender, account)
        ctx.deltas.stakes[ctx.sender] = account.bonded
        ctx.emit("stake", neuron=ctx.sender, amount=amount, bonded=account.bonded,
                 **_minted(tenure))  # fmt: skip

    def unstake(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "amount")
        amount = amount_field(body)
        account = get_account(ctx.state, ctx.sender)
        if account.bonded < amount:
            raise InsufficientFundsError(f"bonded stake {account.bonded} is less than {amount}")
        left = account.bonded - amount
        links = get_neudeg(ctx.state, ctx.sender)
        need = links * ctx.params.min_link_weight
        if left < need:
            raise OverLinkBudgetError(
                f"{links} links need {need} bonded stake; unstaking {amount} leaves {left}"
            )
        tenure = rewards.on_bonded_change(
            ctx.state, ctx.params, ctx.height, ctx.sender, account.bonded, left
        )
        account.bonded = left
        set_account(ctx.state, ctx.sender, account)
        release = ctx.height + ctx.params.unbonding_blocks
        key = unbond_key(release, ctx.sender)
        pending = ctx.state.get(key)
        total = amount + (0 if pending is None else decode(pending, "unbonding"))
        ctx.state.put(key, encode(total))
        ctx.deltas.stakes[ctx.sender] = left
        ctx.emit("unstake", neuron=ctx.sender, amount=amount, release_height=release,
                 **_minted(tenure))  # fmt: skip

    def end_block(self, ctx: BlockContext) -> None:
        """Slash the block's offences, pay its fees to its proposer, release matured unbonding."""
        for offence in ctx.offences:
            self.slash(ctx, offence)
        if ctx.params.economics:
            # The base part of every fee is the economy's (modules.economy);
            # the tip is the proposer's.
            tips = ctx.fees - ctx.counters.get("base_fees", 0)
            if tips and ctx.proposer:
                add(ctx.state, ctx.proposer, H, tips)
            elif tips:
                burn(ctx.state, None, H, tips, "tips")
        elif ctx.fees and ctx.proposer:
            credit(ctx.state, ctx.proposer, ctx.fees)
        prefix = unbonding_at(ctx.height)
        for key, value in ctx.state.scan(prefix):
            credit(ctx.state, key[len(prefix) :], decode(value, "unbonding"))
            ctx.state.delete(key)

    def slash(self, ctx: BlockContext, offence: Offence) -> int:
        """Burn ``slash_fraction`` of the offender's bonded stake; record the punishment.

        Returns the amount burned. The stake change is an edge delta, so the
        validator's links weigh less from this block's focus update on.
        """
        fraction = ctx.params.slash_fraction
        account = get_account(ctx.state, offence.address)
        amount = account.bonded * fraction // BASIS_POINTS
        tenure = 0
        if amount:
            tenure = rewards.on_bonded_change(
                ctx.state, ctx.params, ctx.height, offence.address, account.bonded,
                account.bonded - amount,
            )  # fmt: skip
            account.bonded -= amount
            set_account(ctx.state, offence.address, account)
            ctx.deltas.stakes[offence.address] = account.bonded
        unbonding = 0
        # Entries release at (start + unbonding_blocks); started at or after the offence.
        first_release = offence.height + ctx.params.unbonding_blocks
        for key, value in ctx.state.scan(UNBOND_PREFIX):
            release = int.from_bytes(key[len(UNBOND_PREFIX) : len(UNBOND_PREFIX) + 8], "big")
            if release < first_release or key[len(UNBOND_PREFIX) + 8 :] != offence.address:
                continue
            held = decode(value, "unbonding")
            cut = held * fraction // BASIS_POINTS
            if cut:
                ctx.state.put(key, encode(held - cut))
                unbonding += cut
        amount += unbonding
        ctx.state.put(offence.key, encode([ctx.height, amount]))
        ctx.events.append(
            {
                "type": "slash",
                "validator": offence.address,
                "public_key": offence.public_key,
                "height": offence.height,
                "evidence": offence.evidence_hash,
                "amount": amount,
                "unbonding": unbonding,
                "bonded": account.bonded,
                **_minted(tenure),
            }
        )
        return amount
