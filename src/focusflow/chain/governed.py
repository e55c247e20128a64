"""Chain parameters the validators may change by vote: the economy's.

The genesis fixes every parameter; the economy's (the base fee's market,
``params.GOVERNED``, and the parameters the modules' sections name governed:
the exchange's fees and breakers, the fee split and rewards; not
``economics`` itself, which decides what state exists) may then be changed by
the validators (``economy.vote``, ``modules.economy``). A decided
change is kept at ``/kv/economy/params`` as the overrides in force, and every
block runs under the genesis parameters with those laid over them
(:func:`governed_params`, which the chain applies before the block's
transactions): the state commits them, so every node runs the same block
under the same numbers, and a node replaying old blocks sees each block's own.
"""

from __future__ import annotations

from typing import Any

from focusflow.chain.params import ChainParams
from focusflow.chain.state import Readable
from focusflow.core.encoding import decode

GOVERNED_KEY = b"/kv/economy/params"


def overrides(state: Readable) -> dict[str, Any]:
    """The decided changes in force (empty when none)."""
    raw = state.get(GOVERNED_KEY)
    return {} if raw is None else dict(decode(raw, "governed params"))


def governed_params(state: Readable, params: ChainParams) -> ChainParams:
    """``params`` with the decided changes laid over them."""
    changes = overrides(state)
    return params.with_changes(changes) if changes else params
