"""The interchain module: a chain's place in a network of rollups, and the
focus it exchanges with the other chains.

At genesis it records the chain's role and bucket (``state_schema.interchain``)
so the graph module refuses links of other buckets. It is the application of
the ``rank`` port (an IBC ``PacketApp``): on a rollup it answers each of the
hub's inflow packets with its bucket's rank (``modules.rank_rollup``); on the
hub it checks the rollups' ranks and merges them into the global snapshot
(``modules.rank_hub``). It runs its end of block first of all modules, so the
hub's demand pool takes its share of the block's fees before the bank pays the
proposer. A chain whose genesis has no ``interchain`` section writes nothing
and does nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from focusflow.chain.errors import MalformedMessageError
from focusflow.chain.genesis import Genesis
from focusflow.chain.module import BlockContext, Deltas, Handler, TxContext
from focusflow.chain.state import PendingState
from focusflow.core.encoding import encode
from focusflow.state_schema.ibc import Packet

if TYPE_CHECKING:
    from focusflow.chain.rollup_engine import FocusParams
    from focusflow.modules.rank_hub import HubRank
    from focusflow.modules.rank_rollup import RollupRank
from focusflow.state_schema.interchain import (
    HUB_KEY,
    PLACE_KEY,
    bucket_key,
    chain_key,
    place,
)


def _params(focus: Mapping[str, Any]) -> FocusParams:
    """The focus parameters the exchange runs with (the engine loads only on a
    chain of a network of rollups)."""
    from focusflow.chain.rollup_engine import rank_params

    return rank_params(focus)


#: The port the exchange binds on both sides.
PORT = "rank"


class InterchainPlace:
    name = "interchain"
    port = PORT

    def __init__(self) -> None:
        self._rollup: RollupRank | None = None
        self._hub: HubRank | None = None

    @property
    def rollup(self) -> RollupRank:
        """The rollup's side, loaded (with the engine) on a rollup's first use."""
        if self._rollup is None:
            from focusflow.modules.rank_rollup import RollupRank

            self._rollup = RollupRank()
        return self._rollup

    @property
    def hub(self) -> HubRank:
        if self._hub is None:
            from focusflow.modules.rank_hub import HubRank

            self._hub = HubRank()
        return self._hub

    def handlers(self) -> Mapping[str, Handler]:
        return {}

    def init_genesis(self, state: PendingState, genesis: Genesis, deltas: Deltas) -> None:
        ic = genesis.interchain
        if ic is None:
            return
        state.put(
            PLACE_KEY,
            encode(
                [ic.role, ic.bucket, ic.buckets, ic.rule, ic.merge_interval_ms, ic.stale_after_ms]
            ),
        )
        state.put(HUB_KEY, encode(ic.hub.chain_id))
        for ref in ic.rollups:
            state.put(chain_key(ref.bucket), encode(ref.chain_id))
            state.put(bucket_key(ref.chain_id), encode(ref.bucket))

    def end_block(self, ctx: BlockContext) -> None:
        here = place(ctx.state)
        if here is None:
            return
        params = _params(ctx.params.focus)
        if here.role == "hub":
            self.hub.end_block(ctx, here, params)
        else:
            self.rollup.end_block(ctx, here, params)

    # --- the rank port -------------------------------------------------------------
    def on_recv(self, ctx: TxContext, packet: Packet) -> bytes:
        here = place(ctx.state)
        if here is None:
            raise MalformedMessageError("this chain is in no network of rollups")
        if here.role == "hub":
            return self.hub.on_recv(ctx, packet, here, _params(ctx.params.focus))
        return self.rollup.on_recv(ctx, packet, here)

    def on_ack(self, ctx: TxContext, packet: Packet, ack: bytes) -> None:
        here = place(ctx.state)
        if here is not None and here.role == "hub":
            self.hub.on_ack(ctx, packet)

    def on_timeout(self, ctx: TxContext, packet: Packet) -> None:
        here = place(ctx.state)
        if here is not None and here.role == "hub":
            self.hub.on_timeout(ctx, packet)
