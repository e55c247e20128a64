"""Account records and neuron link counts in the state.

An account (``chain.account.Account``) lives at ``/token/acct/<20-byte
address>`` as the canonical CBOR array ``[balance, nonce, bonded]`` (integers,
base units). A neuron's link count lives at ``/graph/neuron/<address>`` as
``[neudeg]``. Readers take a pending state or a committed store reader.
"""

from __future__ import annotations

from focusflow.chain.account import Account
from focusflow.chain.state import Readable
from focusflow.core.encoding import decode_stored, encode

ACCOUNT_PREFIX = b"/token/acct/"
NEURON_PREFIX = b"/graph/neuron/"


def account_key(address: bytes) -> bytes:
    return ACCOUNT_PREFIX + address


def encode_account(account: Account) -> bytes:
    return encode([account.balance, account.nonce, account.bonded])


def get_account(state: Readable, address: bytes) -> Account:
    raw = state.get(account_key(address))
    if raw is None:
        return Account()
    balance, nonce, bonded = decode_stored(raw, "account")
    return Account(balance, nonce, bonded)


def neuron_key(address: bytes) -> bytes:
    return NEURON_PREFIX + address


def get_neudeg(state: Readable, address: bytes) -> int:
    raw = state.get(neuron_key(address))
    return 0 if raw is None else int(decode_stored(raw, "neuron")[0])
