"""Token balances and supplies in the state.

``cyb``'s liquid balance is the account record's (``state_schema.accounts``).
Every other denom's balance of an address lives at ``/token/bal/<20-byte
address><denom>`` as one integer (absent when zero), and its total supply at
``/token/supply/<denom>``. ``modules.tokens`` says which denoms exist and keeps
the supply as it mints and burns.
"""

from __future__ import annotations

from focusflow.chain.state import PendingState, Readable
from focusflow.core.encoding import decode, decode_stored
from focusflow.state_schema.accounts import get_account

#: The staked token, whose balance is the account record's.
CYB = "cyb"
#: The utility token that pays gas under the economy.
H = "h"
BALANCE_PREFIX = b"/token/bal/"
SUPPLY_PREFIX = b"/token/supply/"


def balance_key(address: bytes, denom: str) -> bytes:
    return BALANCE_PREFIX + address + denom.encode()


def supply_key(denom: str) -> bytes:
    return SUPPLY_PREFIX + denom.encode()


def balance_of(state: Readable, address: bytes, denom: str) -> int:
    """The liquid balance of ``address`` in ``denom``."""
    if denom == CYB:
        return get_account(state, address).balance
    raw = state.get(balance_key(address, denom))
    return 0 if raw is None else int(decode_stored(raw, "balance"))


def balances_of(state: PendingState, address: bytes) -> dict[str, int]:
    """Every non-zero liquid balance of ``address``, ``cyb`` first."""
    out = {CYB: get_account(state, address).balance}
    prefix = BALANCE_PREFIX + address
    for key, value in state.scan(prefix):
        out[key[len(prefix) :].decode()] = int(decode(value, "balance"))
    return {d: v for d, v in out.items() if v}


def supply_of(state: Readable, denom: str) -> int:
    """Total supply of a denom other than ``cyb`` (whose supply is not kept)."""
    raw = state.get(supply_key(denom))
    return 0 if raw is None else int(decode_stored(raw, "supply"))
