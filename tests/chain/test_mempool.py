"""Mempool admission, ordering and overload behaviour."""

from __future__ import annotations

import pytest

from focusflow.chain import ChainParams, Msg, make_tx
from focusflow.chain.errors import BadNonceError, DuplicateTxError, MempoolFullError
from focusflow.chain.mempool import MAX_NONCE_GAP, Mempool, MempoolLimits
from focusflow.modules.accounts import Account
from focusflow.testing.chains import ALICE, BOB, CAROL, CHAIN_ID, FEE, link, new_chain, particle

PARAMS = ChainParams()


def t(key, nonce, fee=FEE):
    return make_tx(key, CHAIN_ID, nonce, fee, [Msg("send", {"to": BOB.address_raw, "amount": 1})])


def zero(_):
    return 0


def funded(nonce: int = 0, balance: int = 10**15):
    """An account_of under which every sender has ``nonce`` and ``balance``."""
    return lambda _: Account(balance, nonce)


FUNDED = funded()


def test_duplicates_and_nonces_are_refused_with_codes():
    pool = Mempool(CHAIN_ID, PARAMS)
    first = t(ALICE, 0)
    pool.add(first.encoded, FUNDED)
    with pytest.raises(DuplicateTxError):
        pool.add(first.encoded, FUNDED)
    with pytest.raises(DuplicateTxError):
        pool.add(t(ALICE, 0, fee=FEE + 1).encoded, FUNDED)  # replacement must pay 10% more
    pool.add(t(ALICE, 0, fee=2 * FEE).encoded, FUNDED)
    assert len(pool) == 1
    with pytest.raises(BadNonceError):
        pool.add(t(ALICE, 2).encoded, funded(5))
    with pytest.raises(BadNonceError):
        pool.add(t(ALICE, MAX_NONCE_GAP + 1).encoded, FUNDED)


def test_reap_orders_by_priority_and_keeps_nonces_consecutive():
    pool = Mempool(CHAIN_ID, PARAMS)
    for nonce, fee in enumerate([FEE, 9 * FEE, 9 * FEE]):
        pool.add(t(ALICE, nonce, fee), FUNDED)
    pool.add(t(BOB, 0, 5 * FEE), FUNDED)
    pool.add(t(CAROL, 0, 2 * FEE), FUNDED)
    order = [(x.sender, x.nonce) for x in pool.reap(zero, 10, 1 << 20)]
    a, b, c = ALICE.public_key, BOB.public_key, CAROL.public_key
    # Alice's cheap nonce 0 holds back her expensive 1 and 2.
    assert order == [(b, 0), (c, 0), (a, 0), (a, 1), (a, 2)]
    assert [x.nonce for x in pool.reap(zero, 2, 1 << 20)] == [0, 0]


def test_karma_boost_raises_priority():
    boosted = Mempool(CHAIN_ID, PARAMS, boost=lambda a: 3.0 if a == ALICE.address_raw else 0.0)
    x, y = t(ALICE, 0), t(BOB, 0)
    assert boosted.priority(x) == pytest.approx(4 * boosted.priority(y), rel=0.01)


def test_overload_evicts_lowest_or_refuses_with_reason():
    pool = Mempool(CHAIN_ID, PARAMS, limits=MempoolLimits(max_txs=3))
    pool.add(t(ALICE, 0, 3 * FEE), FUNDED)
    pool.add(t(BOB, 0, FEE), FUNDED)
    pool.add(t(BOB, 1, 5 * FEE), FUNDED)
    # Full. Only queue tails can go (Bob's nonce 0 would leave a hole): the
    # lowest tail is Alice's, and Carol must outbid it.
    with pytest.raises(MempoolFullError) as info:
        pool.add(t(CAROL, 0, FEE), FUNDED)
    assert "does not beat the lowest kept" in str(info.value)
    assert info.value.code == "mempool_full"
    pool.add(t(CAROL, 0, 6 * FEE), FUNDED)
    assert len(pool) == 3
    kept = sorted((x.sender, x.nonce) for x in pool.reap(zero, 10, 1 << 20))
    assert kept == sorted([(BOB.public_key, 0), (BOB.public_key, 1), (CAROL.public_key, 0)])


def test_pool_feeds_blocks_and_forgets_included(tmp_path):
    chain = new_chain(tmp_path)
    pool = Mempool(CHAIN_ID, chain.params, boost=lambda a: chain.focus.view(chain.height).boost(a))

    def account_of(address):
        from focusflow.modules.accounts import get_account

        with chain.reader() as r:
            return get_account(r, address)

    def nonce_of(address):
        return account_of(address).nonce

    for nonce in range(3):
        pool.add(make_tx(ALICE, CHAIN_ID, nonce, FEE, [link((f"a{nonce}", "b"))]), account_of)
    txs = pool.reap(nonce_of, 100, 1 << 20)
    result = chain.produce_block(txs, verified=True)
    assert [r.code for r in result.receipts] == ["ok"] * 3
    pool.update(account_of)
    assert len(pool) == 0
    assert chain.focus.view(chain.height).boost(ALICE.address_raw) > 0


def test_next_nonce_skips_the_senders_pending_run():
    pool = Mempool(CHAIN_ID, PARAMS)
    assert pool.next_nonce(ALICE.address_raw, 3) == 3
    for nonce in (3, 4, 6):
        pool.add(t(ALICE, nonce).encoded, funded(3))
    assert pool.next_nonce(ALICE.address_raw, 3) == 5  # 6 waits behind the gap
    assert pool.next_nonce(ALICE.address_raw, 5) == 5
    assert pool.next_nonce(BOB.address_raw, 0) == 0


def test_transactions_behind_a_nonce_gap_are_not_ready():
    """A validator skips its commit pause only when the next block can include
    something; a sender's later nonces waiting behind a missing one cannot."""
    pool = Mempool(CHAIN_ID, PARAMS)
    assert not pool.has_ready(zero)
    for nonce in (1, 2, 3):
        pool.add(t(ALICE, nonce), FUNDED)
    assert len(pool) == 3 and not pool.has_ready(zero)
    assert pool.reap(zero, 10, 1 << 20) == []
    pool.add(t(BOB, 0), FUNDED)
    assert pool.has_ready(zero)
    assert pool.has_ready(lambda a: 1 if a == ALICE.address_raw else 9)


def test_pending_links_name_their_particles_until_they_leave():
    """The node keeps a particle's text only when a link names it; a pending link
    counts while it is pending, through replacement, and no longer once it left."""
    pool = Mempool(CHAIN_ID, PARAMS)
    first = make_tx(ALICE, CHAIN_ID, 0, FEE, [link(("cats", "mammals"))])
    other = make_tx(BOB, CHAIN_ID, 0, FEE, [link(("dogs", "mammals"))])
    pool.add(first, FUNDED)
    pool.add(other, FUNDED)
    cats, mammals, dogs = particle("cats"), particle("mammals"), particle("dogs")
    assert all(pool.names_particle(c) for c in (cats, mammals, dogs))
    assert not pool.names_particle(particle("birds"))

    replacement = make_tx(ALICE, CHAIN_ID, 0, 2 * FEE, [link(("birds", "mammals"))])
    pool.add(replacement, FUNDED)
    assert not pool.names_particle(cats) and pool.names_particle(particle("birds"))
    pool.discard(other.hash)
    assert not pool.names_particle(dogs) and pool.names_particle(mammals)
    pool.update(funded(nonce=1))  # the block took Alice's nonce 0
    assert len(pool) == 0 and not pool.names_particle(mammals)
