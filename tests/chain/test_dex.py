"""The exchange through a chain (``modules.dex``): every message, every refusal,
routes, fees, circuit breakers, the TWAP oracle, primary dealers, and the books
of every token kept across random blocks of exchange messages.

Expected amounts are computed here from ``modules.amm``'s formulas (tested
against Uniswap v2 in test_amm.py), hop by hop and side by side; the chain must
move exactly those amounts and nothing else.
"""

from __future__ import annotations

import itertools
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from focusflow.chain import Genesis, Msg
from focusflow.chain.fees import BASE_FEE_KEY
from focusflow.core.encoding import decode
from focusflow.modules import DexParams, amm, dex
from focusflow.node import open_chain
from focusflow.state_schema.accounts import ACCOUNT_PREFIX, account_key, get_account
from focusflow.state_schema.dex import POOL_PREFIX
from focusflow.state_schema.rewards import TOTALS_KEY, read_totals
from focusflow.state_schema.staking import UNBOND_PREFIX
from focusflow.state_schema.tokens import (
    BALANCE_PREFIX,
    SUPPLY_PREFIX,
    balance_key,
    balance_of,
    supply_of,
)
from focusflow.store import Store
from focusflow.testing.chains import ALICE, BALANCE, BOB, CAROL, CHAIN_ID, FEE, STAKE, VALIDATOR, tx

T0 = 1_700_000_000_000
#: What each trader holds of every denom beside cyb at genesis.
TOKENS = 10**15
DENOMS = ("cyb", "h", "v", "w")
TRADERS = (ALICE, BOB, CAROL)
DEALER_QUOTA = 10**6
PROTOCOL = dex.PROTOCOL_ADDRESS
ECONOMICS = pytest.mark.parametrize("economics", [0, 1])


def dex_genesis(**params) -> Genesis:
    params.setdefault("focus", {"mode": "diffusion"})
    params.setdefault("dex_dealers", [{"address": CAROL.address, "quota": DEALER_QUOTA}])
    return Genesis.from_json(
        {
            "chain_id": CHAIN_ID,
            "genesis_time_ms": T0,
            "params": params,
            "accounts": [
                {
                    "address": k.address,
                    "balance": BALANCE,
                    "stake": STAKE,
                    "tokens": {d: TOKENS for d in DENOMS if d != "cyb"},
                }
                for k in TRADERS
            ],
            "validators": [{"name": "v", "public_key": VALIDATOR.public_key.hex(), "power": 1}],
        }
    )


class Node:
    """A producing chain with its own clock and its senders' next nonces."""

    def __init__(self, path: Path, economics: int = 0, **params) -> None:
        if economics:
            # No buyback: under these tests only transactions trade in pools
            # (the property test at the end runs the economy's buyback too).
            params.setdefault("split_base_bps", 0)
            params.setdefault("split_slope_bps", 0)
        gen = dex_genesis(economics=economics, **params)
        self.chain = open_chain(Store(path, sync=False), gen, VALIDATOR)
        self.params = self.chain.params
        self.time_ms = T0
        self.nonces: Counter[bytes] = Counter()
        self.fee_denom = "h" if economics else "cyb"

    def tx(self, key, *msgs: Msg) -> bytes:
        nonce = self.nonces[key.public_key]
        self.nonces[key.public_key] += 1
        return tx(key, nonce, *msgs)

    def block(self, *txs: bytes, dt: int = 1_000):
        self.time_ms += dt
        result = self.chain.produce_block(list(txs), time_ms=self.time_ms)
        if result.rejected:  # left out (a fee it could not pay): its nonce is free again
            for key in TRADERS:
                with self.chain.reader() as r:
                    self.nonces[key.public_key] = get_account(r, key.address_raw).nonce
        return result

    def run(self, key, *msgs: Msg, dt: int = 1_000):
        """One transaction in a block of its own; its receipt."""
        (receipt,) = self.block(self.tx(key, *msgs), dt=dt).receipts
        return receipt

    def close(self) -> None:
        self.chain.store.close()

    @property
    def height(self) -> int:
        return self.chain.height

    def bal(self, who, denom: str) -> int:
        address = who if isinstance(who, bytes) else who.address_raw
        with self.chain.reader() as r:
            return balance_of(r, address, denom)

    def pool(self, a: str, b: str) -> dex.Pool | None:
        with self.chain.reader() as r:
            return dex.get_pool(r, a, b)

    def supply(self, denom: str) -> int:
        with self.chain.reader() as r:
            return supply_of(r, denom)

    def state(self) -> dict[bytes, bytes]:
        """Everything the token modules keep (accounts, balances, supplies,
        pools, the dealer reserve and quotas, rewards, the base fee)."""
        with self.chain.reader() as r:
            return dict(r.items(b"/token/"))

    def holdings(self) -> dict[tuple[bytes, str], int]:
        """Every liquid balance, ``(address, denom) -> amount``, non-zero only."""
        out: dict[tuple[bytes, str], int] = {}
        with self.chain.reader() as r:
            for key, raw in r.items(ACCOUNT_PREFIX):
                balance = decode(raw, "account")[0]
                if balance:
                    out[(key[len(ACCOUNT_PREFIX) :], "cyb")] = balance
            for key, raw in r.items(BALANCE_PREFIX):
                rest = key[len(BALANCE_PREFIX) :]
                out[(rest[:20], rest[20:].decode())] = decode(raw, "balance")
        return out


@pytest.fixture
def new_node(tmp_path):
    """Makes nodes in the test's directory and closes their stores after it."""
    made: list[Node] = []

    def make(economics: int = 0, **params) -> Node:
        node = Node(tmp_path / f"node{len(made)}", economics, **params)
        made.append(node)
        return node

    yield make
    for node in made:
        node.close()


def expect(before, *moves) -> dict[tuple[bytes, str], int]:
    """``before`` with ``(who, denom, delta)`` moves applied (zero entries dropped)."""
    out = Counter(before)
    for who, denom, delta in moves:
        address = who if isinstance(who, bytes) else who.address_raw
        out[(address, denom)] += delta
    return {k: v for k, v in out.items() if v}


def fee_moves(node: Node, *senders):
    """The fee each transaction's sender pays (and, under ``economics`` 0, the
    proposer receives: under 1 its tip is left out of comparisons)."""
    moves = [(s, node.fee_denom, -FEE) for s in senders]
    if node.fee_denom == "cyb":
        moves.append((VALIDATOR, "cyb", FEE * len(senders)))
    return moves


def without_proposer(node: Node, holdings):
    """Holdings without the proposer's ``h`` under the economy (it gets the
    tips, whose split with the base fee is the economy's business)."""
    if node.fee_denom == "cyb":
        return holdings
    return {k: v for k, v in holdings.items() if k != (VALIDATOR.address_raw, "h")}


def assert_moved(node: Node, before, *moves) -> None:
    after = without_proposer(node, node.holdings())
    assert after == without_proposer(node, expect(before, *moves))


# --- message builders ---------------------------------------------------------------


def create(a, b, amount_a, amount_b) -> Msg:
    return Msg("dex.create", {"a": a, "b": b, "amount_a": amount_a, "amount_b": amount_b})


def add(a, b, max_a, max_b, min_shares=0) -> Msg:
    body = {"a": a, "b": b, "max_a": max_a, "max_b": max_b, "min_shares": min_shares}
    return Msg("dex.add", body)


def remove(a, b, shares, min_a=0, min_b=0) -> Msg:
    return Msg("dex.remove", {"a": a, "b": b, "shares": shares, "min_a": min_a, "min_b": min_b})


def swap(path, amount_in, min_out=0) -> Msg:
    return Msg("dex.swap", {"path": list(path), "amount_in": amount_in, "min_out": min_out})


def swap_out(path, amount_out, max_in) -> Msg:
    return Msg("dex.swap_out", {"path": list(path), "amount_out": amount_out, "max_in": max_in})


def dealer_mint(amount) -> Msg:
    return Msg("dex.mint", {"amount": amount})


def dealer_redeem(amount) -> Msg:
    return Msg("dex.redeem", {"amount": amount})


# --- expected amounts, from the formulas ------------------------------------------------


def least_gross(net: int, fee: int, protocol: int) -> int:
    """The least input that still has ``net`` left after the protocol's cut (a search)."""
    lo, hi = net, 2 * net + 2
    while lo < hi:
        mid = (lo + hi) // 2
        if mid - amm.protocol_cut(mid, fee, protocol) >= net:
            hi = mid
        else:
            lo = mid + 1
    return lo


def route_in(node: Node, path, amount: int):
    """Exact in: ``(out, [(denom, cut) per hop], {pool key: (new ra, new rb)})``."""
    fee, protocol = (
        DexParams.of(node.params).dex_fee_bps,
        DexParams.of(node.params).dex_protocol_bps,
    )
    cuts, reserves = [], {}
    for x, y in itertools.pairwise(path):
        pool = node.pool(x, y)
        assert pool is not None
        r_in, r_out = pool.reserves(x)
        cut = amm.protocol_cut(amount, fee, protocol)
        out = amm.amount_out(amount - cut, r_in, r_out, fee)
        pool.set_reserves(x, r_in + amount - cut, r_out - out)
        reserves[dex.pair(x, y)] = (pool.reserve_a, pool.reserve_b)
        cuts.append((x, cut))
        amount = out
    return amount, cuts, reserves


def route_out(node: Node, path, want: int):
    """Exact out: ``(input, [(denom, cut) per hop], {pool: (new ra, new rb)})``:
    backwards from ``want``, each hop's input is v2's getAmountIn of what the
    next hop needs, grossed up to the least input that leaves that much after
    the protocol's cut."""
    fee, protocol = (
        DexParams.of(node.params).dex_fee_bps,
        DexParams.of(node.params).dex_protocol_bps,
    )
    hops = list(itertools.pairwise(path))
    needs = [want]
    for x, y in reversed(hops):
        pool = node.pool(x, y)
        assert pool is not None
        r_in, r_out = pool.reserves(x)
        needs.insert(0, least_gross(amm.amount_in(needs[0], r_in, r_out, fee), fee, protocol))
    cuts, reserves = [], {}
    for (x, y), gross, paid in zip(hops, needs[:-1], needs[1:], strict=True):
        pool = node.pool(x, y)
        assert pool is not None
        r_in, r_out = pool.reserves(x)
        cut = amm.protocol_cut(gross, fee, protocol)
        pool.set_reserves(x, r_in + gross - cut, r_out - paid)
        reserves[dex.pair(x, y)] = (pool.reserve_a, pool.reserve_b)
        cuts.append((x, cut))
    return needs[0], cuts, reserves


def assert_reserves(node: Node, reserves) -> None:
    for (a, b), (ra, rb) in reserves.items():
        pool = node.pool(a, b)
        assert pool is not None and (pool.reserve_a, pool.reserve_b) == (ra, rb)


# --- refusals -------------------------------------------------------------------------


def assert_refused(node: Node, key, msg: Msg, code: str) -> None:
    """The transaction is in its block with ``code``, and all it changed is its
    fee and nonce: every other key of the token state is the same bytes."""
    before = node.state()
    receipt = node.run(key, msg)
    assert receipt.code == code, receipt.log
    after = node.state()
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    sender = key.address_raw
    acct_before = get_account(before, sender)
    acct_after = get_account(after, sender)
    assert acct_after.nonce == acct_before.nonce + 1
    assert acct_after.bonded == acct_before.bonded
    if node.fee_denom == "cyb":
        assert changed <= {account_key(sender), account_key(VALIDATOR.address_raw)}
        assert acct_after.balance == acct_before.balance - FEE
    else:
        fee_keys = {
            account_key(sender),
            balance_key(sender, "h"),
            balance_key(VALIDATOR.address_raw, "h"),
            SUPPLY_PREFIX + b"h",
            TOTALS_KEY,
            BASE_FEE_KEY,
        }
        assert changed <= fee_keys
        assert acct_after.balance == acct_before.balance
        assert balance_of(after, sender, "h") == balance_of(before, sender, "h") - FEE


def two_pools(node: Node) -> None:
    """ALICE opens h/v (10^9 each) and v/w (4 10^9 v, 10^9 w: 2 10^9 shares)."""
    r = node.block(
        node.tx(ALICE, create("h", "v", 10**9, 10**9)),
        node.tx(ALICE, create("v", "w", 4 * 10**9, 10**9)),
    )
    assert [x.code for x in r.receipts] == ["ok", "ok"]


@ECONOMICS
def test_every_refusal_changes_nothing_but_fee_and_nonce(new_node, economics):
    node = new_node(economics)
    two_pools(node)
    assert node.run(CAROL, dealer_mint(10**5)).ok  # the dealer reserve holds 10^5 cyb
    alice_shares = node.bal(ALICE, "lp/h/v")
    total_shares = node.pool("h", "v").shares
    cases = [
        (ALICE, create("h", "v", 10**6, 10**6), "pool_exists"),
        (BOB, create("v", "h", 10**6, 10**6), "pool_exists"),
        (BOB, create("h", "w", 1_000, 1_000), "insufficient_liquidity"),
        (BOB, create("h", "h", 10**6, 10**6), "malformed_message"),
        (BOB, create("cyb", "w", 10**6, TOKENS + 1), "insufficient_funds"),
        (BOB, add("h", "w", 10**6, 10**6), "unknown_pool"),
        (BOB, add("h", "v", 10**6, 10**6, min_shares=10**6 + 1), "slippage"),
        (BOB, add("h", "v", TOKENS + 10**6, TOKENS + 10**6), "insufficient_funds"),
        # 1 v and 1 w mint min(1 * 2e9 // 4e9, 1 * 2e9 // 1e9) = 0 shares.
        (BOB, add("v", "w", 1, 1), "slippage"),
        (BOB, remove("h", "w", 10**3), "unknown_pool"),
        (BOB, remove("h", "v", 10**3), "insufficient_funds"),
        (ALICE, remove("h", "v", alice_shares, min_a=10**9), "slippage"),
        (ALICE, remove("v", "h", alice_shares, min_b=10**9), "slippage"),
        (ALICE, remove("h", "v", total_shares), "insufficient_liquidity"),
        (BOB, swap(["h", "w"], 10**6), "unknown_pool"),
        (BOB, swap(["h", "v", "cyb"], 10**6), "unknown_pool"),
        (BOB, swap(["h", "v", "w"], 10**6, min_out=10**6), "slippage"),
        (BOB, swap(["h", "v", "h"], 10**6), "malformed_message"),
        (BOB, swap(["h", "h"], 10**6), "malformed_message"),
        # Four hops (dex_max_hops) pass the path's checks; five do not.
        (BOB, swap(["h", "v", "w", "cyb", "h"], 10**6), "unknown_pool"),
        (BOB, swap(["h", "v", "w", "cyb", "h", "w"], 10**6), "malformed_message"),
        (BOB, swap(["h"], 10**6), "malformed_message"),
        (BOB, swap(["h", "v"], TOKENS + 1), "insufficient_funds"),
        (BOB, swap_out(["w", "cyb"], 10**6, 10**9), "unknown_pool"),
        (BOB, swap_out(["h", "v"], 10**9, 10**15), "insufficient_liquidity"),
        (BOB, swap_out(["h", "v", "w"], 10**6, max_in=10**6), "slippage"),
        (BOB, dealer_mint(10), "not_dealer"),
        (BOB, dealer_redeem(10), "not_dealer"),
        (CAROL, dealer_mint(DEALER_QUOTA), "quota_exceeded"),
        (CAROL, dealer_redeem(10**5 + 1), "insufficient_liquidity"),
    ]
    for key, msg, code in cases:
        assert_refused(node, key, msg, code)


# --- liquidity --------------------------------------------------------------------------


@ECONOMICS
def test_create_opens_the_pool_in_pair_order_and_locks_minimum_liquidity(new_node, economics):
    node = new_node(economics)
    before = node.holdings()
    # Named as (v, h): the pool is h/v, its sides swapped to byte order.
    receipt = node.run(BOB, create("v", "h", 9 * 10**6, 4 * 10**6))
    assert receipt.ok, receipt.log
    shares = 6 * 10**6 - 1_000  # isqrt(4e6 * 9e6) less the locked 1,000
    pool = node.pool("v", "h")
    assert (pool.a, pool.b, pool.reserve_a, pool.reserve_b) == ("h", "v", 4 * 10**6, 9 * 10**6)
    assert pool.shares == 6 * 10**6 == node.supply("lp/h/v")
    assert_moved(
        node,
        before,
        (BOB, "h", -4 * 10**6),
        (BOB, "v", -9 * 10**6),
        (BOB, "lp/h/v", shares),
        *fee_moves(node, BOB),
    )
    assert pool.last_ms == node.time_ms and pool.observations == [[node.time_ms, 0, 0]]


@ECONOMICS
def test_add_takes_the_pool_ratio_rounded_up_and_remove_pays_shares_rounded_down(
    new_node, economics
):
    node = new_node(economics)
    assert node.run(ALICE, create("h", "v", 3 * 10**9, 7 * 10**9 + 1)).ok
    pool = node.pool("h", "v")
    ra, rb, s = pool.reserve_a, pool.reserve_b, pool.shares
    # BOB offers 10^6 h and far more v: v is cut to 10^6 * rb / ra, rounded up.
    need_v = -(-(10**6) * rb // ra)
    minted = min(10**6 * s // ra, need_v * s // rb)
    # One share more than the deposit mints: refused.
    assert_refused(node, BOB, add("h", "v", 10**6, 10**8, min_shares=minted + 1), "slippage")
    before = node.holdings()
    receipt = node.run(BOB, add("v", "h", 10**8, 10**6, min_shares=minted))
    assert receipt.ok, receipt.log
    assert receipt.events[0]["shares"] == minted
    assert_moved(
        node,
        before,
        (BOB, "h", -(10**6)),
        (BOB, "v", -need_v),
        (BOB, "lp/h/v", minted),
        *fee_moves(node, BOB),
    )
    pool = node.pool("h", "v")
    assert (pool.reserve_a, pool.reserve_b, pool.shares) == (ra + 10**6, rb + need_v, s + minted)
    assert node.supply("lp/h/v") == s + minted

    # Remove exactly the minimums: what the shares are worth, rounded down.
    ra, rb, s = pool.reserve_a, pool.reserve_b, pool.shares
    out_h, out_v = minted * ra // s, minted * rb // s
    assert out_h <= 10**6 and out_v <= need_v  # no more back than was put in
    assert_refused(node, BOB, remove("h", "v", minted, out_h + 1, out_v), "slippage")
    assert_refused(node, BOB, remove("v", "h", minted, out_v + 1, out_h), "slippage")
    before = node.holdings()
    receipt = node.run(BOB, remove("v", "h", minted, min_a=out_v, min_b=out_h))
    assert receipt.ok, receipt.log
    assert_moved(
        node,
        before,
        (BOB, "h", out_h),
        (BOB, "v", out_v),
        (BOB, "lp/h/v", -minted),
        *fee_moves(node, BOB),
    )
    pool = node.pool("h", "v")
    assert (pool.reserve_a, pool.reserve_b, pool.shares) == (ra - out_h, rb - out_v, s - minted)
    assert node.supply("lp/h/v") == s - minted


# --- swaps ------------------------------------------------------------------------------


def three_pools(node: Node) -> None:
    """h/v, v/w and w/cyb at different depths and prices."""
    r = node.block(
        node.tx(ALICE, create("h", "v", 10**12, 2 * 10**12)),
        node.tx(ALICE, create("v", "w", 3 * 10**12, 10**12)),
        node.tx(BOB, create("w", "cyb", 10**11, 5 * 10**10)),
    )
    assert [x.code for x in r.receipts] == ["ok", "ok", "ok"], [x.log for x in r.receipts]


@ECONOMICS
@pytest.mark.parametrize("protocol_bps", [0, 1_667])
def test_exact_in_routes_through_three_pools(new_node, economics, protocol_bps):
    node = new_node(economics, dex_protocol_bps=protocol_bps)
    three_pools(node)
    path = ["h", "v", "w", "cyb"]
    amount = 10**9 + 7
    out, cuts, reserves = route_in(node, path, amount)
    # One unit more than comes out is refused; exactly what comes out is accepted.
    assert_refused(node, CAROL, swap(path, amount, min_out=out + 1), "slippage")
    before = node.holdings()
    receipt = node.run(CAROL, swap(path, amount, min_out=out))
    assert receipt.ok, receipt.log
    assert receipt.events[0]["amount_out"] == out
    assert_moved(
        node,
        before,
        (CAROL, "h", -amount),
        (CAROL, "cyb", out),
        *[(PROTOCOL, denom, cut) for denom, cut in cuts],
        *fee_moves(node, CAROL),
    )
    assert_reserves(node, reserves)
    if protocol_bps:
        assert all(cut > 0 for _, cut in cuts)
        # The protocol's share of the first hop: 1,667 bps of the 30 bps fee.
        assert cuts[0][1] == amount * 30 * 1_667 // 10**8
    else:
        assert all(cut == 0 for _, cut in cuts)


@ECONOMICS
@pytest.mark.parametrize("protocol_bps", [0, 1_667])
def test_exact_out_pays_exactly_the_amount_for_the_least_input(new_node, economics, protocol_bps):
    node = new_node(economics, dex_protocol_bps=protocol_bps)
    three_pools(node)
    path = ["cyb", "w", "v", "h"]
    want = 123_456_789
    need, cuts, reserves = route_out(node, path, want)
    assert_refused(node, BOB, swap_out(path, want, max_in=need - 1), "slippage")
    before = node.holdings()
    receipt = node.run(BOB, swap_out(path, want, max_in=need))
    assert receipt.ok, receipt.log
    assert receipt.events[0]["amount_in"] == need
    assert_moved(
        node,
        before,
        (BOB, "cyb", -need),
        (BOB, "h", want),
        *[(PROTOCOL, denom, cut) for denom, cut in cuts],
        *fee_moves(node, BOB),
    )
    assert_reserves(node, reserves)
    # A single hop, too: exactly the amount out.
    w_before, v_before = node.bal(CAROL, "w"), node.bal(CAROL, "v")
    need1, _, reserves1 = route_out(node, ["v", "w"], 10**6)
    assert node.run(CAROL, swap_out(["v", "w"], 10**6, max_in=need1)).ok
    assert node.bal(CAROL, "w") == w_before + 10**6
    assert node.bal(CAROL, "v") == v_before - need1
    assert_reserves(node, reserves1)


@ECONOMICS
def test_protocol_share_is_paid_in_cyb_to_the_protocol_account(new_node, economics):
    node = new_node(economics, dex_protocol_bps=10_000)
    three_pools(node)
    assert node.bal(PROTOCOL, "cyb") == 0
    out, _, reserves = route_in(node, ["cyb", "w"], 10**9)
    w_before = node.bal(BOB, "w")
    assert node.run(BOB, swap(["cyb", "w"], 10**9)).ok
    assert node.bal(BOB, "w") == w_before + out
    # All of the 30 bps fee is the protocol's: 3 * 10^6, in the protocol's account.
    assert node.bal(PROTOCOL, "cyb") == 3 * 10**6
    assert node.bal(PROTOCOL, "w") == 0
    pool = node.pool("cyb", "w")
    assert (pool.reserve_a, pool.reserve_b) == reserves[("cyb", "w")]
    assert pool.reserve_a == 5 * 10**10 + 10**9 - 3 * 10**6


# --- circuit breaker -----------------------------------------------------------------


@ECONOMICS
def test_breaker_refuses_a_move_past_the_bound_and_halts_the_pool(new_node, economics):
    node = new_node(economics, dex_breaker_bps=1_000, dex_breaker_blocks=2)
    assert node.run(ALICE, create("h", "v", 10**9, 10**9)).ok
    # Each swap alone moves the price about 6 %; the second, in the same block,
    # would leave it about 11 % below the TWAP (the price the block found).
    first = swap(["h", "v"], 3 * 10**7)
    out_first, _, after_first = route_in(node, ["h", "v"], 3 * 10**7)
    holdings = node.holdings()
    r = node.block(
        node.tx(BOB, first),
        node.tx(CAROL, swap(["h", "v"], 3 * 10**7)),
        node.tx(ALICE, swap(["v", "h"], 10**5)),  # even the other way, after the trip
    )
    assert [x.code for x in r.receipts] == ["ok", "circuit_breaker", "pool_halted"]
    tripped = node.height
    assert_reserves(node, after_first)
    assert_moved(
        node,
        holdings,
        (BOB, "h", -3 * 10**7),
        (BOB, "v", out_first),
        *fee_moves(node, BOB, CAROL, ALICE),
    )
    assert node.pool("h", "v").halted_until == tripped + 2
    # Halted for the two blocks after the tripping one, for every kind of swap
    # (a refusal that changes nothing but fee and nonce).
    assert_refused(node, ALICE, swap(["v", "h"], 10**5), "pool_halted")
    assert_refused(node, ALICE, swap_out(["v", "h"], 10**5, 10**6), "pool_halted")
    assert node.height == tripped + 2
    # Then it trades again.
    receipt = node.run(ALICE, swap(["v", "h"], 10**5))
    assert node.height == tripped + 3 and receipt.ok, receipt.log
    assert node.pool("h", "v").halted_until == tripped + 2


def test_breaker_is_at_the_twap_and_off_at_zero(new_node):
    node = new_node(dex_breaker_bps=1_000)
    assert node.run(ALICE, create("h", "v", 10**9, 10**9)).ok
    # dex_breaker_blocks 0: the tripping block only.
    r = node.block(node.tx(BOB, swap(["h", "v"], 6 * 10**7)), node.tx(CAROL, swap(["v", "h"], 1)))
    assert [x.code for x in r.receipts] == ["circuit_breaker", "pool_halted"]
    assert node.run(BOB, swap(["h", "v"], 3 * 10**7)).ok  # about 6 %: within the bound
    # Another 6 % once that price has held for a whole window: the TWAP has
    # followed it, so the move is measured from there and stays within the bound.
    assert node.run(BOB, swap(["h", "v"], 3 * 10**7), dt=600_000).ok
    # Liquidity is no swap: a pool halted in this block still takes a deposit.
    r = node.block(
        node.tx(BOB, swap(["h", "v"], 2 * 10**8)),
        node.tx(CAROL, add("h", "v", 10**6, 10**6)),
    )
    assert [x.code for x in r.receipts] == ["circuit_breaker", "ok"]

    off = new_node(dex_breaker_bps=0)
    assert off.run(ALICE, create("h", "v", 10**9, 10**9)).ok
    r = off.block(off.tx(BOB, swap(["h", "v"], 6 * 10**8)), off.tx(CAROL, swap(["v", "h"], 1)))
    assert [x.code for x in r.receipts] == ["ok", "ok"]


def test_breaker_in_a_pools_first_block_measures_from_its_opening_price(new_node):
    node = new_node(dex_breaker_bps=1_000)
    r = node.block(
        node.tx(ALICE, create("h", "v", 10**9, 10**9)),
        node.tx(BOB, swap(["h", "v"], 3 * 10**7)),  # about 6 % from the opening price
        node.tx(BOB, swap(["h", "v"], 3 * 10**7)),  # about 11 %
    )
    assert [x.code for x in r.receipts] == ["ok", "ok", "circuit_breaker"]


# --- the oracle -----------------------------------------------------------------------


def twap(node: Node, base: str, quote: str, now_ms: int) -> int | None:
    with node.chain.reader() as r:
        return dex.twap_q64(r, base, quote, now_ms, node.params)


def test_twap_is_the_time_weighted_average_of_block_end_prices(new_node):
    node = new_node(dex_breaker_bps=0)
    assert node.run(ALICE, create("h", "v", 10**9, 10**9)).ok
    t1 = node.time_ms
    p1 = amm.price_q64(10**9, 10**9)
    assert twap(node, "h", "v", t1) == p1 == amm.Q64
    # Block at t2 swaps: its own price does not count at t2.
    assert node.run(BOB, swap(["h", "v"], 10**8), dt=40_000).ok
    t2 = node.time_ms
    assert twap(node, "h", "v", t2) == p1
    pool = node.pool("h", "v")
    p2, q2 = (
        amm.price_q64(pool.reserve_a, pool.reserve_b),
        amm.price_q64(pool.reserve_b, pool.reserve_a),
    )
    assert node.run(BOB, swap(["v", "h"], 3 * 10**8), dt=100_000).ok
    t3 = node.time_ms
    pool = node.pool("h", "v")
    p3, q3 = (
        amm.price_q64(pool.reserve_a, pool.reserve_b),
        amm.price_q64(pool.reserve_b, pool.reserve_a),
    )
    q1 = p1
    t4 = t3 + 70_000  # read later, with no block since: the last price held until then
    expected_h = (p1 * (t2 - t1) + p2 * (t3 - t2) + p3 * (t4 - t3)) // (t4 - t1)
    expected_v = (q1 * (t2 - t1) + q2 * (t3 - t2) + q3 * (t4 - t3)) // (t4 - t1)
    assert twap(node, "h", "v", t4) == expected_h
    assert twap(node, "v", "h", t4) == expected_v
    # A block that only touches the pool (a tiny add) commits the same average.
    assert node.run(CAROL, add("h", "v", 10**6, 10**6), dt=t4 - t3).ok
    assert node.time_ms == t4
    pool = node.pool("h", "v")
    assert twap(node, "h", "v", t4) == expected_h
    assert pool.cum_a == p1 * (t2 - t1) + p2 * (t3 - t2) + p3 * (t4 - t3)
    # Missing pool: no price.
    assert twap(node, "h", "w", t4) is None


def test_twap_window_drops_prices_older_than_the_window(new_node):
    window = 80_000  # an observation every 10 s at most
    node = new_node(dex_breaker_bps=0, dex_twap_window_ms=window)
    assert node.run(ALICE, create("h", "v", 10**9, 10**9)).ok
    t1 = node.time_ms
    p1 = amm.Q64
    # Exactly the spacing (window / 8) after the last observation: a new one.
    assert node.run(BOB, swap(["h", "v"], 10**8), dt=window // 8).ok
    t2 = node.time_ms
    pool = node.pool("h", "v")
    p2 = amm.price_q64(pool.reserve_a, pool.reserve_b)
    assert node.run(BOB, swap(["h", "v"], 10**8), dt=30_000).ok
    t3 = node.time_ms
    pool = node.pool("h", "v")
    p3 = amm.price_q64(pool.reserve_a, pool.reserve_b)
    assert [o[0] for o in pool.observations] == [t1, t2, t3]
    now = t3 + 60_000
    # The window starts at now - 80 s = t2 + 10 s: the newest observation at
    # least that old is t2's, so the average runs from t2 and p1 is dropped.
    assert twap(node, "h", "v", now) == (p2 * (t3 - t2) + p3 * (now - t3)) // (now - t2)
    # An observation exactly the window old is the start.
    edge = t2 + window
    assert twap(node, "h", "v", edge) == (p2 * (t3 - t2) + p3 * (edge - t3)) // (edge - t2)
    # Before the window has passed t2, the average still reaches back to t1.
    early = t1 + window
    assert early > t3
    expected = (p1 * (t2 - t1) + p2 * (t3 - t2) + p3 * (early - t3)) // (early - t1)
    assert twap(node, "h", "v", early) == expected


# --- primary dealers -------------------------------------------------------------------


@ECONOMICS
def test_dealers_mint_and_redeem_at_par_within_their_quota_per_period(new_node, economics):
    node = new_node(economics, h_par_bps=20_000, dealer_period=6)
    supply_h = node.supply("h")

    def reserve() -> int:
        with node.chain.reader() as r:
            return dex.dealer_reserve(r)

    # Period 0 is blocks 1 to 5. Block 1: 600,000 cyb for 300,000 h at 2 cyb per h.
    before = node.holdings()
    receipt = node.run(CAROL, dealer_mint(600_000))
    assert receipt.ok, receipt.log
    assert_moved(node, before, (CAROL, "cyb", -600_000), (CAROL, "h", 300_000),
                 *fee_moves(node, CAROL))  # fmt: skip
    assert node.supply("h") == supply_h + 300_000 and reserve() == 600_000
    # Block 2: 400,001 more would use one more than the quota of 1,000,000.
    assert_refused(node, CAROL, dealer_mint(400_001), "quota_exceeded")
    # Block 3: 100,000 h redeem for 200,000 cyb out of the reserve; the quota
    # counts the cyb: 800,000 used.
    before = node.holdings()
    receipt = node.run(CAROL, dealer_redeem(100_000))
    assert receipt.ok, receipt.log
    assert_moved(node, before, (CAROL, "cyb", 200_000), (CAROL, "h", -100_000),
                 *fee_moves(node, CAROL))  # fmt: skip
    assert node.supply("h") == supply_h + 200_000 and reserve() == 400_000
    # Block 4: 200,002 is over what is left; block 5: 200,000 uses it exactly.
    assert_refused(node, CAROL, dealer_mint(200_002), "quota_exceeded")
    assert node.run(CAROL, dealer_mint(200_000)).ok
    assert node.height == 5 and reserve() == 600_000
    # Block 6 starts period 1: the whole quota again, and nothing more.
    receipt = node.run(CAROL, dealer_mint(DEALER_QUOTA))
    assert receipt.ok, receipt.log
    assert node.height == 6 and reserve() == 1_600_000
    assert_refused(node, CAROL, dealer_mint(2), "quota_exceeded")  # 2 cyb buy 1 h
    assert_refused(node, CAROL, dealer_redeem(1), "quota_exceeded")  # 1 h pays 2 cyb
    # Not a dealer: refused whatever the amount.
    assert_refused(node, BOB, dealer_mint(2), "not_dealer")
    assert_refused(node, BOB, dealer_redeem(1), "not_dealer")
    assert node.height == 10
    node.block()
    # Block 12, period 2: 500,000 h take 1,000,000 cyb, the whole quota.
    before = node.holdings()
    receipt = node.run(CAROL, dealer_redeem(500_000))
    assert receipt.ok, receipt.log
    assert_moved(node, before, (CAROL, "cyb", DEALER_QUOTA), (CAROL, "h", -500_000),
                 *fee_moves(node, CAROL))  # fmt: skip
    assert reserve() == 600_000
    assert node.supply("h") == supply_h + 300_000 + 100_000 + 500_000 - 100_000 - 500_000


def test_dealer_par_rounds_for_the_reserve(new_node):
    node = new_node(h_par_bps=3_333)
    # 1 cyb buys 1 * 10,000 // 3,333 = 3 h; 3 h redeem 3 * 3,333 // 10,000 = 0 cyb.
    assert node.run(CAROL, dealer_mint(1)).ok
    assert node.bal(CAROL, "h") == TOKENS + 3
    assert_refused(node, CAROL, dealer_redeem(3), "insufficient_liquidity")
    assert node.run(CAROL, dealer_mint(1_000)).ok  # 3,000 h; reserve 1,001
    assert node.run(CAROL, dealer_redeem(3_003)).ok  # 1,000 cyb
    with node.chain.reader() as r:
        assert dex.dealer_reserve(r) == 1


# --- the books across random blocks -----------------------------------------------------


def books(node: Node, burned_cyb: int) -> None:
    """Every denom's holdings add up: balances (liquid, bonded, unbonding) +
    pool reserves + the dealer reserve + locked shares + the reward pool's
    holding = the genesis total (cyb, less what the buyback burned) or the
    recorded supply (every other denom); each pool's shares are its supply."""
    held: Counter[str] = Counter()
    with node.chain.reader() as r:
        for _, raw in r.items(ACCOUNT_PREFIX):
            balance, _, bonded = decode(raw, "account")
            held["cyb"] += balance + bonded
        for _, raw in r.items(UNBOND_PREFIX):
            held["cyb"] += decode(raw, "unbonding")
        for key, raw in r.items(BALANCE_PREFIX):
            held[key[len(BALANCE_PREFIX) + 20 :].decode()] += decode(raw, "balance")
        pools = [
            dex.get_pool(r, *k[len(POOL_PREFIX) :].decode().split("|"))
            for k, _ in r.items(POOL_PREFIX)
        ]
        for pool in pools:
            assert pool is not None
            held[pool.a] += pool.reserve_a
            held[pool.b] += pool.reserve_b
            held[dex.share_denom(pool.a, pool.b)] += amm.MINIMUM_LIQUIDITY  # locked
            assert pool.shares == supply_of(r, dex.share_denom(pool.a, pool.b))
        held["cyb"] += dex.dealer_reserve(r)
        totals = read_totals(r)
        if totals is not None:
            held["h"] += totals.held
        supplies = {
            k[len(SUPPLY_PREFIX) :].decode(): decode(v, "supply") for k, v in r.items(SUPPLY_PREFIX)
        }
    assert held.pop("cyb") == 3 * (BALANCE + STAKE) - burned_cyb
    assert {d: n for d, n in held.items() if n} == supplies


def pool_states(node: Node) -> dict[str, tuple[int, int, int]]:
    with node.chain.reader() as r:
        return {k.decode(): decode(v, "pool")[:3] for k, v in r.items(POOL_PREFIX)}


#: The pools every random run opens first, along the line cyb - h - v - w.
LINE = ["cyb", "h", "v", "w"]
denoms = st.sampled_from([*DENOMS, "lp/h/v"])
small = st.integers(1, 10**10)
amounts = st.one_of(small, st.integers(1, 10**13))


@st.composite
def line_paths(draw) -> list[str]:
    """A route along the opened pools, either way, one to three hops."""
    i = draw(st.integers(0, 2))
    j = draw(st.integers(i + 2, 4))
    path = LINE[i:j]
    return path[::-1] if draw(st.booleans()) else path


paths = st.one_of(line_paths(), line_paths(), st.lists(denoms, min_size=2, max_size=4, unique=True))
pairs = st.one_of(
    line_paths().map(lambda p: p[:2]), st.lists(denoms, min_size=2, max_size=2, unique=True)
)


@st.composite
def actions(draw) -> tuple:
    """A sender and one exchange message (the dealer's messages mostly from the dealer)."""
    kind = draw(st.sampled_from(["create", "add", "remove", "swap", "swap", "swap_out", "dealer"]))
    who = draw(st.sampled_from(TRADERS))
    if kind == "create":
        a, b = draw(pairs)
        return who, create(a, b, draw(amounts), draw(amounts))
    if kind == "add":
        a, b = draw(pairs)
        return who, add(a, b, draw(amounts), draw(amounts), draw(st.sampled_from([0, 0, 10**9])))
    if kind == "remove":
        a, b = draw(pairs)
        return who, remove(a, b, draw(amounts), draw(st.sampled_from([0, 0, 10**9])), 0)
    if kind == "swap":
        return who, swap(draw(paths), draw(amounts), draw(st.sampled_from([0, 0, 10**12])))
    if kind == "swap_out":
        max_in = draw(st.sampled_from([10**14, 10**14, 10**6]))
        return who, swap_out(draw(paths), draw(small), max_in)
    who = draw(st.sampled_from([CAROL, CAROL, who]))
    amount = draw(st.integers(1, DEALER_QUOTA))
    return who, draw(st.sampled_from([dealer_mint(amount), dealer_redeem(amount)]))


blocks_of_msgs = st.lists(st.lists(actions(), min_size=1, max_size=5), min_size=2, max_size=5)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    economics=st.sampled_from([0, 1]),
    protocol_bps=st.sampled_from([0, 1_667]),
    breaker_blocks=st.sampled_from([0, 2]),
    blocks=blocks_of_msgs,
    data=st.data(),
)
def test_random_blocks_keep_every_books_and_k_per_share(
    economics, protocol_bps, breaker_blocks, blocks, data
):
    with tempfile.TemporaryDirectory(prefix="dex-") as path:
        node = Node(
            Path(path),
            economics,
            dex_protocol_bps=protocol_bps,
            dex_breaker_blocks=breaker_blocks,
            dealer_period=3,
            # The economy's defaults: a buyback of H for CYB in the cyb/h pool each block.
            split_base_bps=5_000,
            split_slope_bps=10_000,
        )
        try:
            run_random_blocks(node, blocks, data)
        finally:
            node.close()


def run_random_blocks(node: Node, blocks, data) -> None:
    r = node.block(
        node.tx(ALICE, create("cyb", "h", 10**11, 10**11)),
        node.tx(ALICE, create("h", "v", 10**11, 2 * 10**11)),
        node.tx(BOB, create("v", "w", 10**11, 10**11)),
    )
    assert all(x.ok for x in r.receipts)
    burned = sum(e["burned_cyb"] for e in r.events if e.get("type") == "economy")
    books(node, burned)
    last = pool_states(node)
    for msgs in blocks:
        dt = data.draw(st.sampled_from([1_000, 60_000, 700_000]))
        r = node.block(*[node.tx(key, msg) for key, msg in msgs], dt=dt)
        burned += sum(e["burned_cyb"] for e in r.events if e.get("type") == "economy")
        books(node, burned)
        now = pool_states(node)
        for key, (ra, rb, s) in now.items():
            if key not in last:
                continue
            ra0, rb0, s0 = last[key]
            assert ra * rb * s0 * s0 >= ra0 * rb0 * s * s  # k per share squared
            if s == s0:
                assert ra * rb >= ra0 * rb0
        last = now
