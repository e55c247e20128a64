"""Where the EVM's accounts, code and storage live in the chain's key-space.

Kept apart from ``evm_state`` (which loads py-evm, most of a second) so that
readers of these keys (the JSON-RPC, tests) need no interpreter.
"""

from __future__ import annotations

ACCOUNT_PREFIX = b"/token/acct/"
CODE_PREFIX = b"/vm/evm/code/"
STORE_PREFIX = b"/vm/evm/store/"


def code_key(address: bytes) -> bytes:
    return CODE_PREFIX + address


def storage_key(address: bytes, slot: int) -> bytes:
    return STORE_PREFIX + address + slot.to_bytes(32, "big")


def encode_word(value: int) -> bytes:
    """A storage value as its minimal big-endian bytes (no key for zero)."""
    return value.to_bytes((value.bit_length() + 7) // 8, "big")
