"""Mempool admission against flooding: balances cover pending fees, per-sender
and distinct-sender caps, eviction from the heaps, and refusals that change nothing."""

from __future__ import annotations

import random

import pytest

from focusflow.chain import ChainParams, Msg, make_tx
from focusflow.chain.errors import (
    InsufficientFundsError,
    MempoolFullError,
    SenderFullError,
    SendersFullError,
)
from focusflow.chain.mempool import Mempool, MempoolLimits
from focusflow.core.keys import KeyPair
from focusflow.modules.accounts import Account
from focusflow.testing.chains import ALICE, BOB, CAROL, CHAIN_ID, FEE

PARAMS = ChainParams()


def t(key: KeyPair, nonce: int, fee: int = FEE):
    return make_tx(key, CHAIN_ID, nonce, fee, [Msg("send", {"to": BOB.address_raw, "amount": 1})])


def fresh(i: int) -> KeyPair:
    return KeyPair.from_seed(i.to_bytes(4, "big").ljust(32, b"\x07"))


def ledger(balances: dict[bytes, int], nonces: dict[bytes, int] | None = None):
    """account_of over a table of committed balances (and nonces); unknown: empty."""
    nonces = nonces or {}
    return lambda a: Account(balances.get(a, 0), nonces.get(a, 0))


def snapshot(pool: Mempool) -> tuple:
    txs = pool.reap(lambda a: 0, 10**6, 1 << 40)
    return len(pool), pool.size_bytes, pool.n_senders, sorted(x.hash for x in txs)


def test_unfunded_keys_with_huge_fees_cannot_evict_funded_transactions():
    """The flood: fresh keys claim fees they do not have. Each is refused with
    insufficient_funds, the pool keeps every paying transaction, and blocks
    reaped from it are full of them."""
    honest = [ALICE, BOB, CAROL, *[fresh(10_000 + i) for i in range(7)]]
    balances = {k.address_raw: 100 * FEE for k in honest}
    account_of = ledger(balances)
    pool = Mempool(CHAIN_ID, PARAMS, limits=MempoolLimits(max_txs=10))
    for key in honest:
        pool.add(t(key, 0), account_of)
    before = snapshot(pool)
    for i in range(200):
        with pytest.raises(InsufficientFundsError) as info:
            pool.add(t(fresh(i), 0, fee=10**15), account_of)
        assert info.value.code == "insufficient_funds"
    assert snapshot(pool) == before
    block = pool.reap(lambda a: 0, 100, 1 << 20)
    assert {x.sender for x in block} == {k.public_key for k in honest}


def test_a_sender_cannot_queue_more_fees_than_its_balance():
    account_of = ledger({ALICE.address_raw: 3 * FEE + FEE // 2})
    pool = Mempool(CHAIN_ID, PARAMS)
    for nonce in range(3):
        pool.add(t(ALICE, nonce), account_of)
    assert pool.pending_fees(ALICE.address_raw) == 3 * FEE
    before = snapshot(pool)
    with pytest.raises(InsufficientFundsError, match="plus the 3000000 of the sender's pending"):
        pool.add(t(ALICE, 3), account_of)
    # A replacement counts in place of the fee it replaces: 2 * FEE + 1.6 * FEE is too much ...
    with pytest.raises(InsufficientFundsError):
        pool.add(t(ALICE, 2, fee=FEE * 8 // 5), account_of)
    assert snapshot(pool) == before
    # ... and within the balance it is taken.
    pool.add(t(ALICE, 2, fee=FEE * 3 // 2 - 1), account_of)
    assert pool.pending_fees(ALICE.address_raw) == 3 * FEE + FEE // 2 - 1


def test_update_drops_the_highest_nonces_a_spent_balance_no_longer_covers():
    balances = {ALICE.address_raw: 10 * FEE}
    pool = Mempool(CHAIN_ID, PARAMS)
    for nonce in range(4):
        pool.add(t(ALICE, nonce), ledger(balances))
    balances[ALICE.address_raw] = 2 * FEE + 1  # a block spent the rest
    pool.update(ledger(balances))
    assert [x.nonce for x in pool.reap(lambda a: 0, 10, 1 << 20)] == [0, 1]


def test_per_sender_cap():
    account_of = ledger({ALICE.address_raw: 10**15, BOB.address_raw: 10**15})
    pool = Mempool(CHAIN_ID, PARAMS, limits=MempoolLimits(max_per_sender=3))
    for nonce in range(3):
        pool.add(t(ALICE, nonce), account_of)
    before = snapshot(pool)
    with pytest.raises(SenderFullError) as info:
        pool.add(t(ALICE, 3, fee=100 * FEE), account_of)
    assert info.value.code == "sender_full"
    assert snapshot(pool) == before
    pool.add(t(ALICE, 1, fee=2 * FEE), account_of)  # a replacement is not one more
    pool.add(t(BOB, 0), account_of)
    assert len(pool) == 4


def test_distinct_senders_cap_evicts_only_a_single_transaction_sender_it_outbids():
    account_of = ledger({k.address_raw: 10**15 for k in (ALICE, BOB, CAROL)})
    pool = Mempool(CHAIN_ID, PARAMS, limits=MempoolLimits(max_senders=2))
    pool.add(t(ALICE, 0, fee=FEE), account_of)
    pool.add(t(ALICE, 1, fee=FEE), account_of)
    pool.add(t(BOB, 0, fee=2 * FEE), account_of)
    before = snapshot(pool)
    # Alice pays least, but she has two pending: evicting one would not free a sender.
    with pytest.raises(SendersFullError) as info:
        pool.add(t(CAROL, 0, fee=2 * FEE), account_of)
    assert info.value.code == "mempool_senders_full"
    assert snapshot(pool) == before
    pool.add(t(CAROL, 0, fee=3 * FEE), account_of)
    assert pool.n_senders == 2 and not pool.has_nonce(BOB.address_raw, 0)


def test_eviction_takes_the_lowest_tail_and_never_leaves_a_hole():
    """Random admissions into a small pool against the rule written out: a
    newcomer that needs room evicts the lowest-priority last transaction of
    another sender if it outbids it and is refused otherwise, and each sender's
    pending nonces stay one run from its committed one."""
    rng = random.Random(5)
    keys = [fresh(20_000 + i) for i in range(12)]
    account_of = ledger({k.address_raw: 10**15 for k in keys})
    pool = Mempool(CHAIN_ID, PARAMS, limits=MempoolLimits(max_txs=15))
    evictions = refusals = 0
    for _ in range(300):
        key = rng.choice(keys)
        nonce = pool.next_nonce(key.address_raw, 0)
        tx = t(key, nonce, fee=FEE + rng.randrange(50 * FEE))
        queues = _queues(pool)
        tails = [q[-1] for s, q in queues.items() if s != key.public_key]
        expect = min(tails, key=lambda x: (pool.priority(x), 0)) if len(pool) == 15 else None
        try:
            pool.add(tx, account_of)
        except MempoolFullError:
            assert expect is None or pool.priority(expect) >= pool.priority(tx)
            assert _queues(pool) == queues
            refusals += 1
            continue
        gone = _hashes(queues) - _hashes(_queues(pool))
        assert gone == ({expect.hash} if expect is not None else set())
        evictions += expect is not None
        for q in _queues(pool).values():
            assert [x.nonce for x in q] == list(range(len(q)))
    assert evictions > 20 and refusals > 20


def test_a_refused_newcomer_that_needed_two_evictions_changes_nothing():
    """Room for a large newcomer needs two victims; it outbids the first but not
    the second: refused, and both stay (the eviction heaps too: a later
    newcomer that outbids both still evicts them)."""
    account_of = ledger({k.address_raw: 10**15 for k in (ALICE, BOB, CAROL)})
    a, b = t(ALICE, 0, fee=FEE), t(BOB, 0, fee=3 * FEE)
    limit = len(a.encoded) + len(b.encoded) + 10
    pool = Mempool(CHAIN_ID, PARAMS, limits=MempoolLimits(max_bytes=limit))
    pool.add(a, account_of)
    pool.add(b, account_of)

    def carol(fee):
        msgs = [Msg("send", {"to": BOB.address_raw, "amount": 1})] * 2
        return make_tx(CAROL, CHAIN_ID, 0, fee, msgs)

    size = len(carol(FEE).encoded)

    per_byte = [FEE / len(a.encoded), 3 * FEE / len(b.encoded)]
    before = snapshot(pool)
    with pytest.raises(MempoolFullError):
        pool.add(carol(int(size * (per_byte[0] + per_byte[1]) / 2)), account_of)
    assert snapshot(pool) == before
    pool.add(carol(int(size * per_byte[1] * 1.5)), account_of)
    assert len(pool) == 1 and pool.n_senders == 1


def _queues(pool: Mempool) -> dict[bytes, list]:
    txs = pool.reap(lambda a: 0, 10**6, 1 << 40)
    out: dict[bytes, list] = {}
    for x in sorted(txs, key=lambda x: x.nonce):
        out.setdefault(x.sender, []).append(x)
    return out


def _hashes(queues: dict[bytes, list]) -> set[bytes]:
    return {x.hash for q in queues.values() for x in q}
