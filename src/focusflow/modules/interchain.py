"""The interchain module: a chain's place in a network of rollups, and the
focus it exchanges with the other chains.

At genesis it records the chain's role and bucket (``state_schema.interchain``)
so the graph module refuses links of other buckets. On a rollup it answers
each of the hub's inflow packets with its bucket's rank; on the hub it merges
the rollups' ranks into the global snapshot (``modules.rank_rollup``,
``modules.rank_hub``). A chain whose genesis has no ``interchain`` section
writes nothing and does nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from focusflow.chain.genesis import Genesis
from focusflow.chain.module import BlockContext, Deltas, Handler
from focusflow.chain.state import PendingState
from focusflow.core.encoding import encode
from focusflow.state_schema.interchain import PLACE_KEY, chain_key


class InterchainPlace:
    name = "interchain"

    def handlers(self) -> Mapping[str, Handler]:
        return {}

    def init_genesis(self, state: PendingState, genesis: Genesis, deltas: Deltas) -> None:
        ic = genesis.interchain
        if ic is None:
            return
        state.put(PLACE_KEY, encode([ic.role, ic.bucket, ic.buckets, ic.rule]))
        for ref in ic.rollups:
            state.put(chain_key(ref.bucket), encode(ref.chain_id))

    def end_block(self, ctx: BlockContext) -> None:
        return None
