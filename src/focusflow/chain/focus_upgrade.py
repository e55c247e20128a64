"""Focus algorithm upgrades gated by height: which focus parameters decide block h.

A chain's focus algorithm is part of consensus: a block's focus root is what
its algorithm computes. Changing the algorithm (a new exact arithmetic, a
faster tri schedule) must therefore happen at one height on every node, and a
node with new code must still replay the old blocks with the old algorithm.
So the algorithm is a function of height:

* ``params.focus`` (the genesis) decides height 0 onwards;
* ``params.focus_upgrades`` (the genesis) lists ``{"height": h, "focus":
  {...}}`` entries, heights strictly increasing and above 0: from block ``h``
  on, the parameters are the previous ones with ``focus`` laid over them;
* the ``focus.upgrade`` transaction (modules/upgrades.py) adds, replaces or
  cancels an entry once validators holding more than 2/3 of the voting power
  voted for it, at least ``focus_upgrade_delay`` blocks ahead. Those entries
  are committed state under UPGRADES_KEY, so every node and a light client
  read the same schedule; an entry there replaces the genesis's entry of the
  same height, and an empty ``focus`` there cancels it.

At an upgrade height the focus state switches engine (focus_commit: a cold
solve with the new parameters over the graph after the block's deltas, even in
a block without deltas), so every node commits the same root. A node whose
code cannot run a scheduled algorithm still starts and follows the chain up to
the block before it; it then refuses the upgrade height with
UpgradeNeededError (``upgrade_needed``) instead of forking.

Kept apart from the engine (like focus_spec) so that reading a genesis needs
no numba kernels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from focusflow.chain.focus_spec import chain_focus_params
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import InvalidParameterError
from focusflow.focus.params import FocusParams

#: Committed schedule of the upgrades the ``focus.upgrade`` transaction decided:
#: canonical CBOR ``[[height, {focus overrides}], ...]`` by height; ``{}``
#: cancels the genesis's entry of that height. Absent: none decided.
UPGRADES_KEY = b"/kv/focus/upgrades"
#: Limits of one entry's overrides, so that a schedule stays small state.
MAX_UPGRADE_FIELDS = 32
MAX_UPGRADE_NAME = 32
MAX_UPGRADE_TEXT = 64
MAX_UPGRADE_LIST = 8

Schedule = dict[int, dict[str, Any]]


def check_overrides(focus: Any) -> dict[str, Any]:
    """Refuse focus overrides that are not plain data of bounded size
    (InvalidParameterError); returns them.

    Only their form is checked, not whether this node can run them: a
    ``focus.upgrade`` transaction must succeed or fail alike on nodes running
    older and newer code, or their state roots would split before the
    upgrade height. Values are text, integers, booleans, null or short lists
    of those (floats, which a genesis may hold, are never in a transaction:
    the canonical encoding has none)."""
    if not isinstance(focus, dict):
        raise InvalidParameterError("focus must be an object of focus parameters")
    if len(focus) > MAX_UPGRADE_FIELDS:
        raise InvalidParameterError(
            f"focus names {len(focus)} parameters, more than {MAX_UPGRADE_FIELDS}"
        )
    for name, value in focus.items():
        if not isinstance(name, str) or not 0 < len(name) <= MAX_UPGRADE_NAME:
            raise InvalidParameterError(
                f"focus parameter names are strings of 1..{MAX_UPGRADE_NAME} characters"
            )
        items = value if isinstance(value, list) else [value]
        if isinstance(value, list) and len(value) > MAX_UPGRADE_LIST:
            raise InvalidParameterError(
                f"focus.{name} lists {len(value)} values, more than {MAX_UPGRADE_LIST}"
            )
        for item in items:
            if isinstance(item, str) and len(item) > MAX_UPGRADE_TEXT:
                raise InvalidParameterError(
                    f"focus.{name} is longer than {MAX_UPGRADE_TEXT} characters"
                )
            if not (item is None or isinstance(item, str | int | float)):
                raise InvalidParameterError(
                    f"focus.{name} must be text, a number, a boolean, null or a list of those"
                )
    return focus


def runnable_params(focus: Mapping[str, Any]) -> FocusParams:
    """The focus parameters of the full overrides ``focus`` if this node can run
    them as a chain's focus; InvalidParameterError (naming the first bad value,
    an arithmetic this code does not implement among them) otherwise."""
    params = chain_focus_params(dict(focus))
    if params.mode == "cyberank":
        raise InvalidParameterError("a chain's focus runs mode tri or diffusion, not cyberank")
    return params


def genesis_schedule(entries: list[dict[str, Any]]) -> Schedule:
    """``params.focus_upgrades`` (checked by the genesis) as height -> overrides."""
    return {entry["height"]: dict(entry["focus"]) for entry in entries}


def decode_decided(raw: bytes | None) -> Schedule:
    """The committed schedule under UPGRADES_KEY (empty when absent)."""
    if raw is None:
        return {}
    return {height: focus for height, focus in decode(raw, "focus upgrades")}


def encode_decided(decided: Schedule) -> bytes:
    return encode([[height, decided[height]] for height in sorted(decided)])


def merge_schedule(genesis: Schedule, decided: Schedule) -> Schedule:
    """The schedule in force: the genesis's entries, those decided on chain
    replacing the same height's, and the cancelled ones (``{}``) left out."""
    merged = {**genesis, **decided}
    return {h: merged[h] for h in sorted(merged) if merged[h]}


def focus_in_force(base: Mapping[str, Any], schedule: Schedule, height: int) -> dict[str, Any]:
    """The full focus overrides that decide block ``height``: ``base`` (the
    genesis's ``params.focus``) with every entry up to ``height`` laid over it
    in height order."""
    focus = dict(base)
    for h in sorted(schedule):
        if h > height:
            break
        focus.update(schedule[h])
    return focus


__all__ = [
    "MAX_UPGRADE_FIELDS",
    "UPGRADES_KEY",
    "Schedule",
    "check_overrides",
    "decode_decided",
    "encode_decided",
    "focus_in_force",
    "genesis_schedule",
    "merge_schedule",
    "runnable_params",
]
