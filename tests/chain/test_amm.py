"""The constant-product pool arithmetic (``modules.amm``): Uniswap v2's formulas
and the invariants a pool must keep whatever sequence of operations it sees.

The reference formulas are written out here from their sources, independently
of the module under test:

* the Uniswap v2 whitepaper (Adams, Zinsmeister, Robinson, 2020) for the
  constant-product rule with the fee taken from the input (only ``(1 - fee)``
  of it counts against ``x y = k``) and for the first deposit's ``sqrt(x y)``
  shares with ``MINIMUM_LIQUIDITY`` locked;
* ``UniswapV2Library.sol`` (v2-periphery) for ``getAmountOut`` and
  ``getAmountIn``, with the fee fixed at 0.3 % (``997 / 1000``);
* ``UniswapV2Pair.sol`` (v2-core) for ``mint`` (``Math.sqrt``, the Babylonian
  method, then ``min(amount0 S / R0, amount1 S / R1)``) and ``burn``
  (``liquidity * balance / totalSupply``).
"""

from __future__ import annotations

from fractions import Fraction

from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from focusflow.chain.params import ChainParams
from focusflow.modules import amm
from focusflow.modules.dex import gross_up

# --- Uniswap v2, as written in its contracts --------------------------------------


def v2_get_amount_out(amount_in: int, reserve_in: int, reserve_out: int) -> int:
    """UniswapV2Library.getAmountOut: the 0.3 % fee as 997/1000."""
    amount_in_with_fee = amount_in * 997
    numerator = amount_in_with_fee * reserve_out
    denominator = reserve_in * 1000 + amount_in_with_fee
    return numerator // denominator


def v2_get_amount_in(amount_out: int, reserve_in: int, reserve_out: int) -> int:
    """UniswapV2Library.getAmountIn: rounded down, plus one."""
    numerator = reserve_in * amount_out * 1000
    denominator = (reserve_out - amount_out) * 997
    return numerator // denominator + 1


def v2_sqrt(y: int) -> int:
    """Math.sol's Babylonian square root (v2-core), rounded down."""
    z = 0
    if y > 3:
        z = y
        x = y // 2 + 1
        while x < z:
            z = x
            x = (y // x + x) // 2
    elif y != 0:
        z = 1
    return z


V2_MINIMUM_LIQUIDITY = 10**3


def v2_mint(amount0: int, amount1: int, reserve0: int, reserve1: int, total: int) -> int:
    """UniswapV2Pair.mint: the liquidity a deposit of ``amount0``/``amount1`` mints."""
    if total == 0:
        return v2_sqrt(amount0 * amount1) - V2_MINIMUM_LIQUIDITY
    return min(amount0 * total // reserve0, amount1 * total // reserve1)


def v2_burn(liquidity: int, balance0: int, balance1: int, total: int) -> tuple[int, int]:
    """UniswapV2Pair.burn: what ``liquidity`` shares take out of each reserve."""
    return liquidity * balance0 // total, liquidity * balance1 // total


# --- the whitepaper's formulas with any fee, in exact rationals -----------------------


def gamma(fee_bps: int) -> Fraction:
    """The share of an input that counts after the fee (whitepaper's 1 - fee)."""
    return Fraction(10_000 - fee_bps, 10_000)


def exact_out(x: int, r_in: int, r_out: int, fee_bps: int) -> Fraction:
    """The constant-product rule: the output that keeps
    ``(r_in + g x)(r_out - out) = r_in r_out``, exactly."""
    g = gamma(fee_bps)
    return g * x * r_out / (r_in + g * x)


def exact_in(out: int, r_in: int, r_out: int, fee_bps: int) -> Fraction:
    """The constant-product rule backwards: the input whose part after the fee
    buys exactly ``out``."""
    return Fraction(r_in * out) / ((r_out - out) * gamma(fee_bps))


def floor(q: Fraction) -> int:
    return q.numerator // q.denominator


reserves = st.integers(min_value=1, max_value=2**96)
amounts = st.integers(min_value=1, max_value=2**96)
fees = st.one_of(st.sampled_from([0, 1, 5, 30, 100, 1_000, 9_999]), st.integers(0, 9_999))


# --- differential tests ---------------------------------------------------------------


@settings(max_examples=2_000, deadline=None)
@given(x=amounts, r_in=reserves, r_out=reserves)
@example(x=1, r_in=1, r_out=1)
@example(x=2**96, r_in=1, r_out=2**96)
def test_amount_out_at_30_bps_is_v2_get_amount_out(x, r_in, r_out):
    """At 30 bps the fee is v2's 997/1000 exactly: the same output, to the unit."""
    assert amm.amount_out(x, r_in, r_out, 30) == v2_get_amount_out(x, r_in, r_out)


@st.composite
def exact_out_trades(draw):
    """``(out, r_in, r_out)`` with ``out < r_out``: an output the pool can pay."""
    r_out = draw(st.integers(min_value=2, max_value=2**96))
    out = draw(st.integers(min_value=1, max_value=r_out - 1))
    return out, draw(reserves), r_out


@settings(max_examples=2_000, deadline=None)
@given(trade=exact_out_trades())
@example(trade=(1, 1, 2))
def test_amount_in_at_30_bps_is_v2_get_amount_in(trade):
    out, r_in, r_out = trade
    assert amm.amount_in(out, r_in, r_out, 30) == v2_get_amount_in(out, r_in, r_out)


@settings(max_examples=1_000, deadline=None)
@given(x=amounts, r_in=reserves, r_out=reserves, fee=fees)
def test_amount_out_is_the_whitepaper_output_rounded_down(x, r_in, r_out, fee):
    out = amm.amount_out(x, r_in, r_out, fee)
    assert out == floor(exact_out(x, r_in, r_out, fee))
    assert 0 <= out < r_out
    # The pool keeps its invariant with only the part after the fee counted,
    # hence with the whole input too.
    g = gamma(fee)
    assert (r_in + g * x) * (r_out - out) >= r_in * r_out
    assert (r_in + x) * (r_out - out) >= r_in * r_out


@settings(max_examples=1_000, deadline=None)
@given(trade=exact_out_trades(), fee=fees)
def test_amount_in_is_the_whitepaper_input_rounded_down_plus_one(trade, fee):
    out, r_in, r_out = trade
    need = amm.amount_in(out, r_in, r_out, fee)
    exact = exact_in(out, r_in, r_out, fee)
    assert need == floor(exact) + 1
    # It buys at least ``out`` (the pool never pays more than it was paid for)...
    assert amm.amount_out(need, r_in, r_out, fee) >= out
    # ...and one unit less buys less, but where the exact input is an integer
    # (v2's ``+ 1`` then overpays by one unit, as v2 does).
    if exact.denominator != 1:
        assert amm.amount_out(need - 1, r_in, r_out, fee) < out


@settings(max_examples=500, deadline=None)
@given(a=amounts, b=amounts)
def test_initial_shares_are_v2_first_mint(a, b):
    assert amm.initial_shares(a, b) == v2_mint(a, b, 0, 0, 0)
    assert amm.MINIMUM_LIQUIDITY == V2_MINIMUM_LIQUIDITY


@settings(max_examples=1_000, deadline=None)
@given(max_a=amounts, max_b=amounts, ra=reserves, rb=reserves, shares=reserves)
def test_deposit_mints_v2_shares_for_what_it_takes(max_a, max_b, ra, rb, shares):
    a, b, minted = amm.deposit(max_a, max_b, ra, rb, shares)
    assert 0 < a <= max_a and 0 < b <= max_b
    # v2's pair mints min(a S / A, b S / B) for what it was sent.
    assert minted == v2_mint(a, b, ra, rb, shares)
    # One side is taken whole, the other is the least amount that keeps the
    # deposit's ratio at the pool's (v2's router rounds its quote down; here
    # the depositor pays the odd unit).
    b_is_cut = a == max_a and b * ra >= a * rb and (b - 1) * ra < a * rb
    a_is_cut = b == max_b and a * rb >= b * ra and (a - 1) * rb < b * ra
    assert b_is_cut or a_is_cut
    # Paid at least the pool's ratio on both sides for the shares minted.
    assert a * shares >= minted * ra and b * shares >= minted * rb


@settings(max_examples=500, deadline=None)
@given(ra=reserves, rb=reserves, shares=reserves, data=st.data())
def test_withdrawal_is_v2_burn(ra, rb, shares, data):
    burned = data.draw(st.integers(1, shares))
    assert amm.withdrawal(burned, ra, rb, shares) == v2_burn(burned, ra, rb, shares)


@settings(max_examples=1_000, deadline=None)
@given(x=amounts, fee=fees, protocol=st.integers(0, 10_000))
def test_protocol_cut_is_its_share_of_the_fee_rounded_down(x, fee, protocol):
    cut = amm.protocol_cut(x, fee, protocol)
    exact = Fraction(x * fee, 10_000) * Fraction(protocol, 10_000)
    assert cut == floor(exact)
    assert cut <= floor(Fraction(x * fee, 10_000))  # never more than the whole fee


@settings(max_examples=1_000, deadline=None)
@given(
    net=st.integers(1, 2**80),
    fee=fees,
    protocol=st.one_of(st.sampled_from([0, 1, 1_667, 5_000, 10_000]), st.integers(0, 10_000)),
)
@example(net=1, fee=30, protocol=1_667)
def test_gross_up_is_the_least_input_left_with_net_after_the_cut(net, fee, protocol):
    """An exact-out swap pays ``gross_up(net)``: after the protocol's cut at least
    ``net`` must enter the pool, and one unit less must not suffice (else the
    trader pays more than the swap needs)."""
    params = ChainParams.from_dict(dict(dex_fee_bps=fee, dex_protocol_bps=protocol))
    gross = gross_up(net, params)

    def left(x: int) -> int:
        return x - amm.protocol_cut(x, fee, protocol)

    assert left(gross) >= net
    assert left(gross - 1) < net


@settings(max_examples=1_000, deadline=None)
@given(ra=reserves, rb=reserves)
def test_price_q64_is_the_ratio_in_q64_rounded_down(ra, rb):
    assert amm.price_q64(ra, rb) == floor(Fraction(rb * 2**64, ra))
    assert amm.price_q64(0, rb) == 0


# --- the circuit breaker's bound ------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(
    bound=st.integers(1, 9_999),
    r=st.integers(1, 10**6),
    price=st.integers(1, 10**6),
    shift=st.integers(0, 40),
)
def test_beyond_bound_fires_one_unit_past_the_bound(bound, r, price, shift):
    """Reserves whose price is exactly ``bound`` bps above or below the
    reference are within it; one unit of ``b`` further out trips it."""
    # Reference price ``price / 2^shift`` of one ``a`` in ``b``: with
    # ``reserve_a = 10_000 r 2^shift`` the reserves at the bound are integers.
    reference = (price << 64) >> shift
    assert reference == Fraction(price, 2**shift) * 2**64
    reserve_a = 10_000 * r << shift
    at_reference = price * r * 10_000
    assert amm.price_q64(reserve_a, at_reference) == reference
    high = price * r * (10_000 + bound)
    low = price * r * (10_000 - bound)
    assert not amm.beyond_bound(reserve_a, at_reference, reference, bound)
    assert not amm.beyond_bound(reserve_a, high, reference, bound)
    assert amm.beyond_bound(reserve_a, high + 1, reference, bound)
    assert not amm.beyond_bound(reserve_a, low, reference, bound)
    assert amm.beyond_bound(reserve_a, low - 1, reference, bound)
    # Widening the bound by one basis point lets the unit further through.
    if bound < 9_999:
        assert not amm.beyond_bound(reserve_a, high + 1, reference, bound + 1)


def test_beyond_bound_at_ten_percent_of_par():
    # Price 1, bound 1,000 bps: 11,000 b for 10,000 a is at the bound, 11,001 past it.
    assert not amm.beyond_bound(10_000, 11_000, amm.Q64, 1_000)
    assert amm.beyond_bound(10_000, 11_001, amm.Q64, 1_000)
    assert not amm.beyond_bound(10_000, 9_000, amm.Q64, 1_000)
    assert amm.beyond_bound(10_000, 8_999, amm.Q64, 1_000)


@settings(max_examples=1_000, deadline=None)
@given(ra=reserves, rb=reserves, reference=st.integers(1, 2**128), bound=st.integers(0, 10_000))
def test_beyond_bound_is_the_exact_relative_distance(ra, rb, reference, bound):
    price = Fraction(rb, ra)
    ref = Fraction(reference, 2**64)
    assert amm.beyond_bound(ra, rb, reference, bound) == (
        abs(price - ref) > Fraction(bound, 10_000) * ref
    )


# --- a pool and its traders, over any sequence of operations ------------------------

TRADERS = 3
#: Fees and protocol shares the machine runs under (v2's 30 bps among them).
FEES = [0, 1, 30, 100, 3_000, 9_999]
PROTOCOL = [0, 1, 1_667, 10_000]

parts = st.integers(min_value=1, max_value=10_000)  # a part of a holding, in bps
sides = st.sampled_from([0, 1])
trader_ids = st.integers(0, TRADERS - 1)


def part_of(holding: int, bps: int) -> int:
    return holding * bps // 10_000


class PoolModel(RuleBasedStateMachine):
    """One pool of tokens 0 and 1 run as ``modules.dex`` runs it, on the pure
    functions: traders' balances, the pool's reserves and shares, and the
    protocol's holding, with every token's total fixed."""

    @initialize(
        fee=st.sampled_from(FEES),
        protocol=st.sampled_from(PROTOCOL),
        funds=st.lists(
            st.tuples(st.integers(10**3, 10**24), st.integers(10**3, 10**24)),
            min_size=TRADERS,
            max_size=TRADERS,
        ),
    )
    def setup(self, fee, protocol, funds):
        self.fee, self.protocol = fee, protocol
        self.params = ChainParams.from_dict(dict(dex_fee_bps=fee, dex_protocol_bps=protocol))
        self.bal = [list(f) for f in funds]
        self.shares = [0] * TRADERS
        self.protocol_bal = [0, 0]
        self.reserve: list[int] | None = None
        self.supply = 0
        self.totals = [sum(f[0] for f in funds), sum(f[1] for f in funds)]
        self.k_per_share2 = Fraction(0)

    # -- helpers --
    def k(self) -> int:
        assert self.reserve is not None
        return self.reserve[0] * self.reserve[1]

    def swap_exact_in(self, who: int, side: int, x: int) -> int | None:
        """Swap ``x`` of token ``side`` for the other; None if refused."""
        if self.reserve is None or not 0 < x <= self.bal[who][side]:
            return None
        other = 1 - side
        r_in, r_out = self.reserve[side], self.reserve[other]
        cut = amm.protocol_cut(x, self.fee, self.protocol)
        net = x - cut
        out = amm.amount_out(net, r_in, r_out, self.fee)
        if out <= 0:
            return None
        # Rounded in the pool's favour: never more than the exact output.
        assert out <= exact_out(net, r_in, r_out, self.fee)
        k_before = self.k()
        self.bal[who][side] -= x
        self.protocol_bal[side] += cut
        self.reserve[side] += net
        self.reserve[other] -= out
        self.bal[who][other] += out
        assert self.k() >= k_before
        return out

    # -- rules --
    @rule(who=trader_ids, pa=parts, pb=parts)
    def create(self, who, pa, pb):
        if self.reserve is not None:
            return  # one pool per pair: the chain refuses a second
        a, b = part_of(self.bal[who][0], pa), part_of(self.bal[who][1], pb)
        minted = amm.initial_shares(a, b)
        if a <= 0 or b <= 0 or minted <= 0:
            return  # the chain refuses a first deposit this small
        self.bal[who][0] -= a
        self.bal[who][1] -= b
        self.reserve = [a, b]
        self.supply = minted + amm.MINIMUM_LIQUIDITY
        self.shares[who] += minted
        self.k_per_share2 = Fraction(self.k(), self.supply**2)
        assert self.k_per_share2 >= 1  # isqrt rounds the supply down

    @rule(who=trader_ids, pa=parts, pb=parts)
    def add(self, who, pa, pb):
        if self.reserve is None:
            return  # unknown pool
        max_a, max_b = part_of(self.bal[who][0], pa), part_of(self.bal[who][1], pb)
        if max_a <= 0 or max_b <= 0:
            return
        ra, rb, s = self.reserve[0], self.reserve[1], self.supply
        a, b, minted = amm.deposit(max_a, max_b, ra, rb, s)
        assert a <= max_a and b <= max_b
        if minted <= 0:
            return  # refused (slippage: it mints nothing)
        self.bal[who][0] -= a
        self.bal[who][1] -= b
        self.reserve = [ra + a, rb + b]
        self.supply += minted
        self.shares[who] += minted
        # Withdrawing the shares just minted gives back no more than was paid.
        back_a, back_b = amm.withdrawal(minted, *self.reserve, self.supply)
        assert back_a <= a and back_b <= b

    @rule(who=trader_ids, p=parts)
    def remove(self, who, p):
        if self.reserve is None:
            return
        burned = part_of(self.shares[who], p)
        if burned <= 0:
            return
        out_a, out_b = amm.withdrawal(burned, *self.reserve, self.supply)
        # The locked shares keep some of each reserve in the pool.
        assert out_a < self.reserve[0] and out_b < self.reserve[1]
        assert Fraction(out_a) <= Fraction(burned * self.reserve[0], self.supply)
        self.shares[who] -= burned
        self.supply -= burned
        self.reserve = [self.reserve[0] - out_a, self.reserve[1] - out_b]
        self.bal[who][0] += out_a
        self.bal[who][1] += out_b

    @rule(who=trader_ids, side=sides, p=parts)
    def swap_in(self, who, side, p):
        self.swap_exact_in(who, side, part_of(self.bal[who][side], p))

    @rule(who=trader_ids, side=sides, p=st.integers(1, 9_999))
    def swap_out(self, who, side, p):
        """Exact out, as ``dex.swap_out`` prices it: v2's input, grossed up for
        the protocol's cut."""
        if self.reserve is None:
            return
        other = 1 - side
        r_in, r_out = self.reserve[side], self.reserve[other]
        want = part_of(r_out, p)
        if not 0 < want < r_out:
            return
        net_needed = amm.amount_in(want, r_in, r_out, self.fee)
        gross = gross_up(net_needed, self.params)
        if gross > self.bal[who][side]:
            return  # refused: insufficient funds
        assert gross >= exact_in(want, r_in, r_out, self.fee)  # never under the exact price
        cut = amm.protocol_cut(gross, self.fee, self.protocol)
        net = gross - cut
        # What the input would buy is at least what the pool pays out.
        assert amm.amount_out(net, r_in, r_out, self.fee) >= want
        k_before = self.k()
        self.bal[who][side] -= gross
        self.protocol_bal[side] += cut
        self.reserve[side] += net
        self.reserve[other] -= want
        self.bal[who][other] += want
        assert self.k() >= k_before

    @rule(who=trader_ids, side=sides, p=parts)
    def round_trip(self, who, side, p):
        """Swap ``x`` in, then all its output back: never more than ``x`` returns."""
        x = part_of(self.bal[who][side], p)
        out = self.swap_exact_in(who, side, x)
        if out is None:
            return
        back = self.swap_exact_in(who, 1 - side, out)
        assert back is None or back <= x

    @rule(who=trader_ids, pa=parts, pb=parts)
    def add_then_remove(self, who, pa, pb):
        """Deposit and withdraw the shares at once: never more back on either side."""
        before = list(self.bal[who])
        held = self.shares[who]
        self.add(who, pa, pb)
        minted = self.shares[who] - held
        if minted <= 0:
            return
        paid = [before[0] - self.bal[who][0], before[1] - self.bal[who][1]]
        self.shares[who] -= minted
        out_a, out_b = amm.withdrawal(minted, *self.reserve, self.supply)
        self.supply -= minted
        self.reserve = [self.reserve[0] - out_a, self.reserve[1] - out_b]
        self.bal[who][0] += out_a
        self.bal[who][1] += out_b
        assert out_a <= paid[0] and out_b <= paid[1]
        assert self.bal[who][0] <= before[0] and self.bal[who][1] <= before[1]

    # -- invariants --
    @invariant()
    def tokens_are_conserved(self):
        reserve = self.reserve or [0, 0]
        for t in (0, 1):
            held = sum(b[t] for b in self.bal) + self.protocol_bal[t] + reserve[t]
            assert held == self.totals[t]
            assert all(b[t] >= 0 for b in self.bal)

    @invariant()
    def shares_are_conserved(self):
        if self.reserve is None:
            assert self.supply == 0 and not any(self.shares)
            return
        assert sum(self.shares) + amm.MINIMUM_LIQUIDITY == self.supply
        assert all(s >= 0 for s in self.shares)

    @invariant()
    def k_per_share_never_decreases(self):
        """``k / S^2``, the invariant per share squared, only grows: swaps add
        fees and rounding to ``k`` and liquidity changes round for the pool."""
        if self.reserve is None:
            return
        now = Fraction(self.k(), self.supply**2)
        assert now >= self.k_per_share2
        self.k_per_share2 = now


TestPoolModel = PoolModel.TestCase
TestPoolModel.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
