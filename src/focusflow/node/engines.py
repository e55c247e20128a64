"""The consensus engine a validator runs, built from its genesis's choice.

Tendermint as before; Snowman, or Tendermint with the polling fallback, each
wrapped in :class:`~focusflow.consensus.notarise.Notarised` so that every
decision the node commits carries a commit certificate, as block sync, headers
and light clients require. Every engine gets the node's proposal checks: the
chain re-executes a proposal's block, and a fresh block must name its
proposal's signer as its maker.
"""

from __future__ import annotations

from collections.abc import Callable

from focusflow.consensus import (
    ConsensusEngine,
    EngineConfig,
    Fallback,
    Signer,
    Snowman,
    Tendermint,
    Timeouts,
)
from focusflow.consensus.notarise import Notarised
from focusflow.node.proposals import Proposals


def build_engine(
    config: EngineConfig,
    chain_id: str,
    *,
    signer: Signer | None,
    proposals: Proposals,
    timeouts: Timeouts | None,
    verify: Callable[[bytes, bytes, bytes], bool],
) -> ConsensusEngine:
    """The engine ``config`` names, wired to the node's proposals and signer."""
    if config.engine == "snowman":
        inner: Snowman | Fallback = Snowman(
            chain_id,
            signer=signer,
            get_value=proposals.get_value,
            is_valid=proposals.is_valid,
            params=config.snowman,
            value_id_of=proposals.value_id,
            verify=verify,
            validate_proposal=proposals.is_valid_proposal,
        )
    elif config.engine == "fallback":
        inner = Fallback(
            chain_id,
            signer=signer,
            get_value=proposals.get_value,
            is_valid=proposals.is_valid,
            timeouts=timeouts,
            params=config.snowman,
            switch_after_rounds=config.switch_after_rounds,
            value_id_of=proposals.value_id,
            verify=verify,
            validate_proposal=proposals.is_valid_proposal,
        )
    else:
        return Tendermint(
            chain_id,
            signer=signer,
            get_value=proposals.get_value,
            is_valid=proposals.is_valid,
            timeouts=timeouts,
            value_id_of=proposals.value_id,
            verify=verify,
            validate_proposal=proposals.is_valid_proposal,
        )
    return Notarised(inner, chain_id, signer=signer, verify=verify)


__all__ = ["build_engine"]
