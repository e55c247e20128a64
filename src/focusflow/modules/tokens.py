"""Balances of every token: ``cyb`` in the account record, every other denom beside it.

``cyb`` is the chain's first token, the one that is staked: its liquid balance
is the account record's (``modules.accounts``), so chains started before there
were other tokens keep their state. Every other denom's balance of an address
lives at ``/token/bal/<20-byte address><denom>`` as one integer (absent when
zero), and its total supply at ``/token/supply/<denom>``: minting and burning
go through :func:`mint` and :func:`burn`, which keep the supply, so nothing is
created or destroyed elsewhere (the property tests sum every holding against
it). ``h`` is the utility token that pays gas under the economy; pools' shares
are denoms ``lp/<a>/<b>`` (``modules.dex``); a genesis may hold more denoms.
"""

from __future__ import annotations

import re

from focusflow.chain.errors import InsufficientFundsError, MalformedMessageError
from focusflow.chain.module import MessageBody
from focusflow.chain.state import PendingState
from focusflow.core.encoding import encode
from focusflow.core.keys import ADDRESS_SIZE, encode_address
from focusflow.modules.accounts import credit, debit
from focusflow.state_schema.tokens import (
    CYB,
    balance_key,
    balance_of,
    supply_key,
    supply_of,
)

#: A base denom: a lowercase letter, then up to 15 lowercase letters or digits.
BASE_DENOM = re.compile(r"[a-z][a-z0-9]{0,15}")
#: Pool shares name their pool's pair; pools of shares nest, up to this length.
MAX_DENOM = 128


def is_denom(denom: object) -> bool:
    """Whether ``denom`` names a token: a base denom, or ``lp/<a>/<b>`` of two."""
    if not isinstance(denom, str) or not 0 < len(denom) <= MAX_DENOM:
        return False
    return _denom_end(denom, 0) == len(denom)


def _denom_end(denom: str, start: int) -> int:
    """Where the denom that begins at ``start`` ends, or -1 if none does.

    A denom ends at a ``/`` or at the end of the text (a base denom has no
    ``/``, and ``lp/<a>/<b>`` ends where ``<b>`` does), so there is one reading
    at most and it is found in one pass. Trying every ``/`` as the split of
    ``lp/<a>/<b>`` instead takes time exponential in the nesting: a message
    naming a nested denom of 79 characters held every validator 1.7 s, and
    each two more levels multiplied that by about five.
    """
    if denom.startswith("lp/", start):
        first = _denom_end(denom, start + 3)
        if first < 0 or not denom.startswith("/", first):
            return -1
        return _denom_end(denom, first + 1)
    slash = denom.find("/", start)
    end = len(denom) if slash < 0 else slash
    if BASE_DENOM.fullmatch(denom, start, end) and denom[start:end] != "lp":
        return end
    return -1


def denom_field(body: MessageBody, name: str) -> str:
    """Body field ``name`` as a denom, or MalformedMessageError."""
    if name not in body:
        raise MalformedMessageError(f"message lacks field {name!r}")
    value = body[name]
    if not is_denom(value):
        raise MalformedMessageError(f"field {name!r} must be a denom (e.g. cyb, h, lp/cyb/h)")
    return str(value)


def add(state: PendingState, address: bytes, denom: str, amount: int) -> None:
    """Credit ``amount`` of ``denom`` that already exists (moved, not minted)."""
    if amount <= 0:
        return
    if denom == CYB:
        credit(state, address, amount)
        return
    state.put(balance_key(address, denom), encode(balance_of(state, address, denom) + amount))


def sub(state: PendingState, address: bytes, denom: str, amount: int, why: str) -> None:
    """Take ``amount`` of ``denom``, or raise InsufficientFundsError naming ``why``."""
    if amount <= 0:
        return
    if denom == CYB:
        debit(state, address, amount, why)
        return
    have = balance_of(state, address, denom)
    if have < amount:
        raise InsufficientFundsError(
            f"{encode_address(address)} has {have} {denom}, needs {amount} for {why}"
        )
    key = balance_key(address, denom)
    if have == amount:
        state.delete(key)
    else:
        state.put(key, encode(have - amount))


def _set_supply(state: PendingState, denom: str, value: int) -> None:
    key = supply_key(denom)
    if value:
        state.put(key, encode(value))
    else:
        state.delete(key)


def mint(state: PendingState, address: bytes | None, denom: str, amount: int) -> None:
    """Create ``amount`` of ``denom`` (not ``cyb``, whose supply is fixed at genesis
    but for burns), credited to ``address`` or, with None, held by a module that
    records the holding itself."""
    if amount <= 0:
        return
    if denom == CYB:
        raise ValueError("cyb is never minted")
    _set_supply(state, denom, supply_of(state, denom) + amount)
    if address is not None:
        add(state, address, denom, amount)


def burn(state: PendingState, address: bytes | None, denom: str, amount: int, why: str) -> None:
    """Destroy ``amount`` of ``denom``, taken from ``address`` (None: from a
    module's own holding, already taken off its record)."""
    if amount <= 0:
        return
    if address is not None:
        sub(state, address, denom, amount, why)
    if denom != CYB:
        _set_supply(state, denom, supply_of(state, denom) - amount)


def address_ok(address: bytes) -> bool:
    return len(address) == ADDRESS_SIZE
