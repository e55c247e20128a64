"""The consensus engine a validator runs, built from its genesis's choice.

Tendermint as before; Snowman, or Tendermint with the polling fallback, each
wrapped in :class:`~focusflow.consensus.notarise.Notarised` so that every
decision the node commits carries a commit certificate, as block sync, headers
and light clients require. Every engine gets the node's proposal checks: the
chain re-executes a proposal's block, and a fresh block must name its
proposal's signer as its maker.

A polling engine's timers are each node's own setting (like Tendermint's
``timeouts``), read from config.json's ``snowman_timeouts`` by
:func:`snowman_timeouts_of`: how long answers take depends on the node's
machine and network, not on the chain.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

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
from focusflow.consensus.snowball import SnowmanParams
from focusflow.core.errors import InvalidParameterError
from focusflow.node.proposals import Proposals

#: config.json's ``snowman_timeouts`` keys and the ``SnowmanParams`` field each sets.
SNOWMAN_TIMEOUT_KEYS = {
    "poll": "poll_timeout",
    "poll_max": "poll_timeout_max",
    "propose": "propose_timeout",
}
#: Seconds a Snowman timer may be set to.
SNOWMAN_TIMEOUT_RANGE = (0.01, 60.0)


def snowman_timeouts_of(config: Mapping[str, object]) -> dict[str, float]:
    """config.json's ``snowman_timeouts`` (``{"poll": s, "poll_max": s,
    "propose": s}``, each optional) as ``SnowmanParams`` fields;
    InvalidParameterError names what is wrong, before the node starts."""
    raw = config.get("snowman_timeouts", {})
    if not isinstance(raw, dict):
        raise InvalidParameterError("config.json: snowman_timeouts must be an object")
    unknown = sorted(set(raw) - set(SNOWMAN_TIMEOUT_KEYS))
    if unknown:
        raise InvalidParameterError(
            f"config.json: unknown snowman_timeouts {unknown} "
            f"(known: {', '.join(SNOWMAN_TIMEOUT_KEYS)})"
        )
    low, high = SNOWMAN_TIMEOUT_RANGE
    fields: dict[str, float] = {}
    for key, value in raw.items():
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not low <= value <= high:
            raise InvalidParameterError(
                f"config.json: snowman_timeouts.{key} must be {low} to {high:g} seconds, "
                f"not {value!r}"
            )
        fields[SNOWMAN_TIMEOUT_KEYS[key]] = float(value)
    try:
        with_timers(SnowmanParams(), fields)
    except InvalidParameterError as exc:
        raise InvalidParameterError(f"config.json: snowman_timeouts: {exc}") from exc
    return fields


def with_timers(params: SnowmanParams, fields: Mapping[str, float]) -> SnowmanParams:
    """``params`` with the timers ``fields`` sets (checked as SnowmanParams checks them)."""
    return dataclasses.replace(
        params,
        poll_timeout=fields.get("poll_timeout", params.poll_timeout),
        poll_timeout_max=fields.get("poll_timeout_max", params.poll_timeout_max),
        propose_timeout=fields.get("propose_timeout", params.propose_timeout),
    )


def build_engine(
    config: EngineConfig,
    chain_id: str,
    *,
    signer: Signer | None,
    proposals: Proposals,
    timeouts: Timeouts | None,
    verify: Callable[[bytes, bytes, bytes], bool],
    snowman_timeouts: Mapping[str, float] | None = None,
) -> ConsensusEngine:
    """The engine ``config`` names, wired to the node's proposals and signer;
    ``snowman_timeouts``: :func:`snowman_timeouts_of`'s fields, this node's timers."""
    params = with_timers(config.snowman, snowman_timeouts or {})
    if config.engine == "snowman":
        inner: Snowman | Fallback = Snowman(
            chain_id,
            signer=signer,
            get_value=proposals.get_value,
            is_valid=proposals.is_valid,
            params=params,
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
            params=params,
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


__all__ = ["SNOWMAN_TIMEOUT_KEYS", "build_engine", "snowman_timeouts_of"]
