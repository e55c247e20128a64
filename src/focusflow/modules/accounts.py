"""Account records and the typed reading of message bodies, shared by the modules.

An account (``chain.account.Account``) lives at ``/token/acct/<20-byte
address>`` and a neuron's link count at ``/graph/neuron/<address>``: their keys
and codecs are ``state_schema.accounts``'. Accessors are free functions over
the pending state (readers also take a committed store reader), in the style
of execution-specs' state.py.
"""

from __future__ import annotations

from typing import Any

from focusflow.chain.account import Account as Account
from focusflow.chain.errors import InsufficientFundsError, MalformedMessageError
from focusflow.chain.state import PendingState
from focusflow.core.encoding import encode
from focusflow.core.keys import ADDRESS_SIZE, encode_address
from focusflow.state_schema.accounts import account_key, encode_account, neuron_key

# ``Account`` and ``get_account`` stay importable from here (``as``: re-exported
# on purpose): the node's runtime and the test harness read accounts through this
# module; new readers take them from ``state_schema.accounts``.
from focusflow.state_schema.accounts import get_account as get_account


def set_account(state: PendingState, address: bytes, account: Account) -> None:
    state.put(account_key(address), encode_account(account))


def debit(state: PendingState, address: bytes, amount: int, why: str) -> Account:
    """Take ``amount`` from the liquid balance, or raise InsufficientFundsError naming ``why``."""
    account = get_account(state, address)
    if account.balance < amount:
        raise InsufficientFundsError(
            f"{encode_address(address)} has {account.balance}, needs {amount} for {why}"
        )
    account.balance -= amount
    set_account(state, address, account)
    return account


def credit(state: PendingState, address: bytes, amount: int) -> None:
    account = get_account(state, address)
    account.balance += amount
    set_account(state, address, account)


def set_neudeg(state: PendingState, address: bytes, neudeg: int) -> None:
    state.put(neuron_key(address), encode([neudeg]))


def field(body: dict[str, Any], name: str, kind: type[Any], *, size: int | None = None) -> Any:
    """Body field ``name`` of type ``kind`` (``size`` bytes if given), or MalformedMessageError."""
    if name not in body:
        raise MalformedMessageError(f"message lacks field {name!r}")
    value = body[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MalformedMessageError(f"field {name!r} must be {kind.__name__}")
    if size is not None and len(value) != size:
        raise MalformedMessageError(f"field {name!r} must be {size} bytes")
    return value


def amount_field(body: dict[str, Any], name: str = "amount") -> int:
    value: int = field(body, name, int)
    if not 0 < value < 2**63:
        raise MalformedMessageError(f"field {name!r} must be a positive amount")
    return value


def address_field(body: dict[str, Any], name: str) -> bytes:
    value: bytes = field(body, name, bytes, size=ADDRESS_SIZE)
    return value


def only_fields(body: dict[str, Any], *names: str) -> None:
    extra = set(body) - set(names)
    if extra:
        raise MalformedMessageError(f"unknown fields {', '.join(sorted(extra))}")
