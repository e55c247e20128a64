"""Upgrades: the validators schedule a new focus algorithm at a future height.

Message
    ``focus.upgrade``  ``{"height": int, "focus": {...}}``: the sender, a
                       member of the validator set deciding the block, votes
                       for laying ``focus`` over the chain's focus parameters
                       from block ``height`` on (an empty ``focus`` cancels
                       the upgrade scheduled at ``height``)

A vote counts for exactly its ``(height, focus)``. Once the members of the set
deciding the block that voted for it hold more than 2/3 of that set's power,
the upgrade is decided: it goes into the committed schedule (UPGRADES_KEY,
chain/focus_upgrade.py) and its votes are deleted. Power is counted from the
set of the block that carries each vote, so a member that left the set no
longer counts. ``height`` must be at least ``focus_upgrade_delay`` blocks
after the block that carries the vote, and a vote left undecided is deleted
once no later vote could still meet that, so votes never pile up.

Only the form of ``focus`` is checked here (focus_upgrade.check_overrides),
never whether this node implements it: the vote must succeed or fail alike on
nodes running older and newer code. A node that cannot run a decided
algorithm stops before its height (``upgrade_needed``); validators cancel a
mistaken upgrade by voting an empty ``focus`` at its height before then.

Every undecided vote is state that every node keeps, paid for once by its
fee. Heights reach 2^63 and ``focus`` has many forms, so without a bound one
validator could pile up votes for far-away heights that no deletion reaches
for ages. A validator therefore holds at most ``MAX_OPEN_VOTES`` undecided
votes (``too_many_votes`` beyond); a vote that decides its upgrade at once is
never open and always allowed. The count per validator is kept beside the
votes and falls as its votes are decided or deleted.

Keys: ``/kv/focus/upgrade_votes/<height, 8 bytes><sha256 of focus>`` ->
``[focus, [voter public keys, sorted]]``; ``/kv/focus/upgrade_open/<public key>``
-> the number of that validator's undecided votes (absent when none);
``/kv/focus/upgrades`` (the schedule).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from focusflow.chain.errors import (
    AlreadyVotedError,
    MalformedMessageError,
    NotValidatorError,
    TooManyVotesError,
    UpgradeTooSoonError,
)
from focusflow.chain.focus_upgrade import (
    UPGRADES_KEY,
    check_overrides,
    decode_decided,
    encode_decided,
    genesis_schedule,
    merge_schedule,
)
from focusflow.chain.genesis import Genesis
from focusflow.chain.module import BlockContext, Deltas, Handler, MessageBody, TxContext
from focusflow.chain.state import PendingState
from focusflow.consensus.validators import has_two_thirds
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import InvalidParameterError
from focusflow.core.hashing import sha256
from focusflow.core.keys import encode_address
from focusflow.modules.accounts import field, only_fields
from focusflow.state_schema.votes import UPGRADE_OPEN_PREFIX, UPGRADE_VOTES_PREFIX

#: Undecided votes one validator may hold at once.
MAX_OPEN_VOTES = 8


def vote_key(height: int, focus: dict[str, Any]) -> bytes:
    """Where the votes for laying ``focus`` over the algorithm at ``height`` are."""
    return UPGRADE_VOTES_PREFIX + height.to_bytes(8, "big") + sha256(encode(focus))


def _open_votes(state: PendingState, voter: bytes) -> int:
    raw = state.get(UPGRADE_OPEN_PREFIX + voter)
    return 0 if raw is None else decode(raw, "open upgrade votes")


def _count_open(state: PendingState, voter: bytes, change: int) -> None:
    """Add ``change`` to ``voter``'s undecided votes; a count of 0 is no key."""
    held = _open_votes(state, voter) + change
    if held:
        state.put(UPGRADE_OPEN_PREFIX + voter, encode(held))
    else:
        state.delete(UPGRADE_OPEN_PREFIX + voter)


class Upgrades:
    name = "upgrades"

    def handlers(self) -> Mapping[str, Handler]:
        return {"focus.upgrade": self.upgrade}

    def init_genesis(self, state: PendingState, genesis: Genesis, deltas: Deltas) -> None:
        """Nothing: the genesis's own schedule is in its parameters."""

    def upgrade(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "height", "focus")
        height = field(body, "height", int)
        if not 0 < height < 2**63:
            raise MalformedMessageError("field 'height' must be a positive block height")
        try:
            focus = check_overrides(field(body, "focus", dict))
        except InvalidParameterError as exc:
            raise MalformedMessageError(f"field 'focus': {exc.message}") from None
        validators = ctx.block.validators
        if validators is None or not validators.power_of(ctx.sender_key):
            raise NotValidatorError(
                f"{encode_address(ctx.sender)} is not in the validator set of block "
                f"{ctx.height}: only its members vote on focus upgrades"
            )
        earliest = ctx.height + ctx.params.focus_upgrade_delay
        if height < earliest:
            raise UpgradeTooSoonError(
                f"a focus upgrade voted in block {ctx.height} takes effect at height {earliest} "
                f"or later (focus_upgrade_delay={ctx.params.focus_upgrade_delay}), not {height}"
            )
        decided = decode_decided(ctx.state.get(UPGRADES_KEY))
        if not focus and height not in merge_schedule(
            genesis_schedule(ctx.params.focus_upgrades), decided
        ):
            raise MalformedMessageError(
                f"an empty focus cancels the upgrade at height {height}, and none is scheduled"
            )
        key = vote_key(height, focus)
        raw = ctx.state.get(key)
        voters = set() if raw is None else set(decode(raw, "upgrade votes")[1])
        if ctx.sender_key in voters:
            raise AlreadyVotedError(
                f"{encode_address(ctx.sender)} voted for this upgrade at height {height} already"
            )
        voters.add(ctx.sender_key)
        power = sum(validators.power_of(v) for v in voters)
        total = validators.total_power
        decides = has_two_thirds(power, total)
        if not decides and _open_votes(ctx.state, ctx.sender_key) >= MAX_OPEN_VOTES:
            raise TooManyVotesError(
                f"{encode_address(ctx.sender)} holds {MAX_OPEN_VOTES} undecided focus upgrade "
                "votes, the most one validator may hold; one must be decided or expire first"
            )
        ctx.emit(
            "focus_upgrade_vote",
            validator=ctx.sender,
            height=height,
            focus=focus,
            power=power,
            total=total,
        )
        if decides:
            decided[height] = focus
            ctx.state.put(UPGRADES_KEY, encode_decided(decided))
            if raw is not None:
                ctx.state.delete(key)
            for voter in voters - {ctx.sender_key}:
                _count_open(ctx.state, voter, -1)
            ctx.emit("focus_upgrade", height=height, focus=focus)
        else:
            ctx.state.put(key, encode([focus, sorted(voters)]))
            _count_open(ctx.state, ctx.sender_key, 1)

    def end_block(self, ctx: BlockContext) -> None:
        """Delete the votes no later vote could complete: a vote in the next
        block must name a height of at least its height + focus_upgrade_delay."""
        first_open = ctx.height + 1 + ctx.params.focus_upgrade_delay
        for key, raw in ctx.state.scan(UPGRADE_VOTES_PREFIX):
            height = int.from_bytes(
                key[len(UPGRADE_VOTES_PREFIX) : len(UPGRADE_VOTES_PREFIX) + 8], "big"
            )
            if height >= first_open:
                break
            ctx.state.delete(key)
            for voter in decode(raw, "upgrade votes")[1]:
                _count_open(ctx.state, voter, -1)


__all__ = ["MAX_OPEN_VOTES", "Upgrades", "vote_key"]
