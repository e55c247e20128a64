"""The base fee per byte under the economy: EIP-1559's rule over encoded bytes.

With ``economics`` 1 a transaction's least fee is ``fee_base + base_fee *
size``, and the base fee moves after every block towards ``gas_target_bytes``
of transactions per block: up by at most ``1/base_fee_change_denominator``
when the block held twice the target or more, down as much when it was empty, never under
``base_fee_min`` (EIP-1559's update, with bytes for gas, and at least one unit
up when a block is over its target, so a base fee of 1 can rise). The value
lives at ``/token/basefee`` from the first block after genesis; before that,
and with ``economics`` 0, the fee per byte is the ``fee_per_byte`` parameter.
The chain reads it before a block runs (``BlockContext.fee_per_byte``) and the
economy writes the next one in that block's end.
"""

from __future__ import annotations

from focusflow.chain.params import ChainParams
from focusflow.chain.state import PendingState, Readable
from focusflow.core.encoding import decode_stored, encode

BASE_FEE_KEY = b"/token/basefee"


def current_fee_per_byte(state: Readable, params: ChainParams) -> int:
    """The fee per byte the next block charges at least."""
    if not params.economics:
        return params.fee_per_byte
    raw = state.get(BASE_FEE_KEY)
    if raw is None:
        return max(params.fee_per_byte, params.base_fee_min)
    value: int = decode_stored(raw, "base fee")
    return value


def next_fee_per_byte(current: int, used_bytes: int, params: ChainParams) -> int:
    """EIP-1559's update of ``current`` after a block of ``used_bytes``."""
    target = params.gas_target_bytes
    denominator = params.base_fee_change_denominator
    # As EIP-1559's block limit is twice its target, bytes past twice the
    # target count as twice it: one block moves the fee by 1/denominator at most.
    used_bytes = min(used_bytes, 2 * target)
    if used_bytes > target:
        step = max(1, current * (used_bytes - target) // target // denominator)
        return current + step
    step = current * (target - used_bytes) // target // denominator
    return max(params.base_fee_min, current - step)


def set_fee_per_byte(state: PendingState, value: int) -> None:
    state.put(BASE_FEE_KEY, encode(value))


def with_headroom(fee_per_byte: int, params: ChainParams, blocks: int = 2) -> int:
    """The fee per byte a client offers so that its transaction still pays the
    base fee after ``blocks`` full blocks (each may raise it by
    ``1/base_fee_change_denominator``); what it pays above is the proposer's tip."""
    if not params.economics:
        return fee_per_byte
    d = params.base_fee_change_denominator
    return int(-(-fee_per_byte * (d + 1) ** blocks // d**blocks))
