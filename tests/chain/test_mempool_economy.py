"""Admission under the economy: H pays the fees of native transactions, CYB those
of Ethereum transactions, and the mempool checks each against its own token."""

from __future__ import annotations

import pytest

from focusflow.chain import Msg, make_tx
from focusflow.chain.errors import InsufficientFundsError
from focusflow.chain.mempool import Mempool
from focusflow.chain.params import ChainParams
from focusflow.modules.accounts import Account
from focusflow.testing.chains import ALICE, CHAIN_ID
from tests.chain.test_evm import SENDER, eth

ECONOMY = ChainParams(economics=1)
EVM_COST = 200_000 * 10  # gas * max fee per gas


def _pool(h: int, cyb: int) -> Mempool:
    pool = Mempool(CHAIN_ID, ECONOMY)
    pool.native_of = lambda _address: cyb
    pool.fee_per_byte = 1
    return pool


def test_an_ethereum_transaction_is_admitted_on_cyb_alone():
    pool = _pool(h=0, cyb=EVM_COST)
    pool.add(eth(0, SENDER), lambda _a: Account(balance=0))
    assert len(pool) == 1
    # A second one needs twice the CYB: the pending one is counted.
    with pytest.raises(InsufficientFundsError, match="cyb"):
        pool.add(eth(1, SENDER), lambda _a: Account(balance=0))


def test_an_ethereum_transaction_without_cyb_is_refused_whatever_h_it_has():
    pool = _pool(h=10**12, cyb=EVM_COST - 1)
    with pytest.raises(InsufficientFundsError, match="cyb"):
        pool.add(eth(0, SENDER), lambda _a: Account(balance=10**12))
    assert len(pool) == 0


def test_native_fees_are_counted_in_h_apart_from_cyb():
    send = [Msg("send", {"to": ALICE.address_raw, "amount": 1})]
    first = make_tx(ALICE, CHAIN_ID, 0, 1_000, send)
    second = make_tx(ALICE, CHAIN_ID, 1, 1_000, send)
    pool = _pool(h=0, cyb=10**18)  # plenty of CYB does not pay H fees
    pool.add(first.encoded, lambda _a: Account(balance=1_500))
    with pytest.raises(InsufficientFundsError):
        pool.add(second.encoded, lambda _a: Account(balance=1_500))
    # After a block, a sender whose H no longer covers its pending fees loses the last.
    pool.add(second.encoded, lambda _a: Account(balance=2_000))
    pool.update(lambda _a: Account(balance=1_000))
    assert len(pool) == 1
