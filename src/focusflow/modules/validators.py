"""Validators: who may join the set, and the set of each epoch from bonded stake.

Messages
    ``validator.register``    ``{"name": str}`` (optional, 1..32 printable
                              characters): the sender's key becomes a
                              candidate; it needs one unit of power bonded
                              (``power_unit``) when it registers
    ``validator.unregister``  ``{}``: the sender leaves at the next epoch

A validator is an Ed25519 key whose account (the key's address) bonds stake
with the bank's ``stake``; its voting power is ``bonded // power_unit``. The
genesis validators are registered at genesis, and the genesis file's powers
hold until the first epoch boundary.

After every block whose height is a multiple of ``epoch_blocks``, the set of
the next height is recomputed: the registered, unjailed candidates with at
least one unit of power, the ``max_validators`` largest (ties: smaller
address). A validator whose duplicate votes the block punished (the bank
slashes it) is also removed at once, whatever the height, and jailed for
``jail_blocks``: no epoch takes it back before then. An unstake lowers power
at once too: a validator of the set that unstaked in a block votes from the
next height with ``bonded // power_unit`` when that is below its power (and
leaves the set below one unit), so stake on its way out never keeps voting
power it no longer backs; unbonding stake stays slashable for offences from
its unstake height on (bank), and ``unbonding_blocks`` exceeds the evidence
window (ChainParams.check). Increases wait for the epoch boundary. A change that would leave
no validator at all is not made (the block's events say so), so the chain
never halts itself. Changes go through :meth:`ValidatorSet.update` (CometBFT's
rules: a newcomer starts with the lowest proposer priority) and are recorded in
state (chain/valsets.py), so every node derives the same set at every height.

Keys: ``/token/validator/<public key>`` -> ``[name]``,
``/token/jailed/<public key>`` -> first height it may return.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from focusflow.chain.errors import (
    InsufficientStakeError,
    MalformedMessageError,
    NotValidatorError,
    ValidatorRegisteredError,
)
from focusflow.chain.genesis import Genesis
from focusflow.chain.module import BlockContext, Deltas, Handler, MessageBody, TxContext
from focusflow.chain.params import ChainParams
from focusflow.chain.state import PendingState
from focusflow.chain.valsets import encode_set, valset_key
from focusflow.consensus.errors import InvalidValidatorSetError
from focusflow.consensus.validators import ValidatorSet
from focusflow.core.encoding import decode, encode
from focusflow.core.keys import address_bytes, encode_address
from focusflow.modules.accounts import only_fields
from focusflow.state_schema.accounts import get_account
from focusflow.state_schema.staking import (
    VALIDATOR_PREFIX,
    jailed_key,
    unbonding_at,
    validator_key,
)

MAX_NAME_CHARS = 32


def jailed_until(state: PendingState, public_key: bytes) -> int:
    """First height the key may be in a set again (0: never jailed)."""
    raw = state.get(jailed_key(public_key))
    return 0 if raw is None else decode(raw, "jail")


def epoch_powers(state: PendingState, params: ChainParams, height: int) -> dict[bytes, int]:
    """Public key -> power of the set an epoch boundary at ``height`` picks."""
    ranked = []
    for key, _ in state.scan(VALIDATOR_PREFIX):
        public_key = key[len(VALIDATOR_PREFIX) :]
        if jailed_until(state, public_key) > height:
            continue
        address = address_bytes(public_key)
        power = get_account(state, address).bonded // params.power_unit
        if power >= 1:
            ranked.append((-power, address, public_key))
    ranked.sort()
    return {pk: -neg for neg, _, pk in ranked[: params.max_validators]}


def unstaked_powers(ctx: BlockContext, current: ValidatorSet) -> dict[bytes, int]:
    """Public key -> lowered power of each member of ``current`` whose unstake in
    this block left it less bonded stake than its power stands for.

    The block's unstakes are the unbonding entries that release at
    ``height + unbonding_blocks`` (the bank writes one per account and release
    height), so no other module's bookkeeping is needed.
    """
    release = ctx.height + ctx.params.unbonding_blocks
    prefix = unbonding_at(release)
    unstaked = {key[len(prefix) :] for key, _ in ctx.state.scan(prefix)}
    if not unstaked:
        return {}
    lowered = {}
    for v in current.validators:
        address = address_bytes(v.public_key)
        if address not in unstaked:
            continue
        power = get_account(ctx.state, address).bonded // ctx.params.power_unit
        if power < v.power:
            lowered[v.public_key] = power
    return lowered


def _name(body: dict[str, Any]) -> str:
    name = body.get("name", "")
    if not isinstance(name, str) or len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise MalformedMessageError(
            f"field 'name' must be a printable string of at most {MAX_NAME_CHARS} characters"
        )
    return name


class Validators:
    name = "validators"

    def handlers(self) -> Mapping[str, Handler]:
        return {"validator.register": self.register, "validator.unregister": self.unregister}

    def init_genesis(self, state: PendingState, genesis: Genesis, deltas: Deltas) -> None:
        for v in genesis.validators:
            state.put(validator_key(v.public_key), encode([v.name]))
        state.put(valset_key(1), encode_set(genesis.validator_set()))

    def register(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "name")
        name = _name(body)
        key = validator_key(ctx.sender_key)
        if ctx.state.get(key) is not None:
            raise ValidatorRegisteredError(f"{encode_address(ctx.sender)} is registered already")
        bonded = get_account(ctx.state, ctx.sender).bonded
        if bonded < ctx.params.power_unit:
            raise InsufficientStakeError(
                f"{encode_address(ctx.sender)} bonds {bonded}; a validator needs at least "
                f"power_unit={ctx.params.power_unit} (stake first)"
            )
        ctx.state.put(key, encode([name]))
        ctx.emit("validator_register", validator=ctx.sender, public_key=ctx.sender_key, name=name)

    def unregister(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body)
        key = validator_key(ctx.sender_key)
        if ctx.state.get(key) is None:
            raise NotValidatorError(f"{encode_address(ctx.sender)} is not a registered validator")
        ctx.state.delete(key)
        ctx.emit("validator_unregister", validator=ctx.sender, public_key=ctx.sender_key)

    def end_block(self, ctx: BlockContext) -> None:
        """Jail this block's offenders; at an epoch boundary, pick the next set."""
        current = ctx.validators
        if current is None:
            return
        changes: dict[bytes, int] = {}
        for offence in ctx.offences:
            until = max(
                ctx.height + ctx.params.jail_blocks, jailed_until(ctx.state, offence.public_key)
            )
            ctx.state.put(jailed_key(offence.public_key), encode(until))
            ctx.events.append(
                {
                    "type": "jail",
                    "validator": offence.address,
                    "public_key": offence.public_key,
                    "until": until,
                }
            )
            if current.power_of(offence.public_key):
                changes[offence.public_key] = 0
        for public_key, power in unstaked_powers(ctx, current).items():
            changes.setdefault(public_key, power)
        if ctx.height % ctx.params.epoch_blocks == 0:
            wanted = epoch_powers(ctx.state, ctx.params, ctx.height)
            for v in current.validators:
                if v.public_key not in wanted:
                    changes[v.public_key] = 0
            for public_key, power in wanted.items():
                if current.power_of(public_key) != power:
                    changes[public_key] = power
        if changes:
            self._change(ctx, current, changes)

    def _change(self, ctx: BlockContext, current: ValidatorSet, changes: dict[bytes, int]) -> None:
        try:
            updated = current.update(changes)
        except InvalidValidatorSetError as exc:
            ctx.events.append({"type": "validator_set_kept", "reason": exc.message})
            return
        following = updated.next_height()
        ctx.state.put(valset_key(ctx.height + 1), encode_set(following))
        ctx.next_validators = following
        ctx.events.append(
            {
                "type": "validator_set",
                "height": ctx.height + 1,
                "validators": [[v.public_key, v.power] for v in following.validators],
            }
        )


__all__ = [
    "Validators",
    "epoch_powers",
    "jailed_until",
    "unstaked_powers",
]
