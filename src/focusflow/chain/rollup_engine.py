"""The focus engine's side of a network of rollups, as the chain's modules see it.

The modules reach the focus engine only through the chain kernel; this module
hands them the rollups' rank engine (``focus.rollup_rank``: a rollup's
:class:`BucketRank`, the hub's :class:`HubMerge` and its snapshots) and the
focus parameters in force. It is its own module, not ``chain.interchain``'s,
because reading a genesis must not load numpy and the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from focusflow.chain.focus_upgrade import runnable_params
from focusflow.focus.params import FocusParams
from focusflow.focus.rollup_rank import (
    UNIT,
    BucketRank,
    HubMerge,
    RankUnsupportedError,
    Snapshot,
    check_inflow,
)

__all__ = [
    "UNIT",
    "BucketRank",
    "FocusParams",
    "HubMerge",
    "RankUnsupportedError",
    "Snapshot",
    "check_inflow",
    "rank_params",
]


def rank_params(focus: Mapping[str, Any]) -> FocusParams:
    """The focus parameters the rollups' exchange runs with: the chain's own."""
    return runnable_params(focus)
