"""Constant-product pool arithmetic: integers only, every rounding in the pool's favour.

The formulas are Uniswap v2's (its whitepaper, section 3, and the periphery
library's ``getAmountOut`` / ``getAmountIn``), with the fee in basis points:

* a swap of ``x`` in pays ``out = x f R_out // (R_in * 10_000 + x f)`` with
  ``f = 10_000 - fee_bps``: rounded down, so ``(R_in + x)(R_out - out)``
  never falls below ``R_in R_out``; the fee stays in the pool;
* to get exactly ``out``, one pays ``R_in out 10_000 // ((R_out - out) f) + 1``
  (one unit more than the exact quotient, as v2 does);
* the first deposit mints ``isqrt(a b) - MINIMUM_LIQUIDITY`` shares and locks
  ``MINIMUM_LIQUIDITY`` forever (no one can own the whole pool and inflate a
  share's price); a later one mints ``min(a S // A, b S // B)``, having paid
  the other side rounded up; withdrawing ``s`` shares pays ``s A // S`` and
  ``s B // S``, rounded down;
* the protocol's share of a swap's fee, ``x fee_bps protocol_bps // 10^8``
  rounded down, is taken from the input before it enters the pool.

Prices are ``Q64`` fixed point: ``(R_b << 64) // R_a`` is the price of one
``a`` in ``b``; the TWAP and the circuit breaker compare such integers exactly.
"""

from __future__ import annotations

from math import isqrt

BPS = 10_000
MINIMUM_LIQUIDITY = 1_000
Q64 = 1 << 64


def amount_out(amount_in: int, reserve_in: int, reserve_out: int, fee_bps: int) -> int:
    """What a swap of ``amount_in`` pays out (v2's getAmountOut)."""
    kept = amount_in * (BPS - fee_bps)
    return kept * reserve_out // (reserve_in * BPS + kept)


def amount_in(amount_out_: int, reserve_in: int, reserve_out: int, fee_bps: int) -> int:
    """What a swap must put in to pay exactly ``amount_out_`` (v2's getAmountIn);
    the caller checks ``amount_out_ < reserve_out``."""
    return reserve_in * amount_out_ * BPS // ((reserve_out - amount_out_) * (BPS - fee_bps)) + 1


def protocol_cut(amount_in_: int, fee_bps: int, protocol_bps: int) -> int:
    """The protocol's share of a swap's fee, taken from the input (rounded down)."""
    return amount_in_ * fee_bps * protocol_bps // (BPS * BPS)


def initial_shares(amount_a: int, amount_b: int) -> int:
    """Shares the first deposit mints (0 or less: the deposit is too small)."""
    return isqrt(amount_a * amount_b) - MINIMUM_LIQUIDITY


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def deposit(
    max_a: int, max_b: int, reserve_a: int, reserve_b: int, shares: int
) -> tuple[int, int, int]:
    """``(a, b, minted)`` for a deposit of at most ``max_a`` and ``max_b``: the
    larger side is cut to the pool's ratio, rounded up (the depositor pays
    the odd unit), and the shares are rounded down."""
    need_b = ceil_div(max_a * reserve_b, reserve_a)
    if need_b <= max_b:
        a, b = max_a, need_b
    else:
        a, b = ceil_div(max_b * reserve_a, reserve_b), max_b
    minted = min(a * shares // reserve_a, b * shares // reserve_b)
    return a, b, minted


def withdrawal(burned: int, reserve_a: int, reserve_b: int, shares: int) -> tuple[int, int]:
    """What ``burned`` shares take out, each side rounded down."""
    return burned * reserve_a // shares, burned * reserve_b // shares


def price_q64(reserve_a: int, reserve_b: int) -> int:
    """The price of one ``a`` in ``b``, Q64 fixed point (0 for an empty pool)."""
    return (reserve_b << 64) // reserve_a if reserve_a else 0


def beyond_bound(reserve_a: int, reserve_b: int, reference_q64: int, bound_bps: int) -> bool:
    """Whether the pool's price ``reserve_b / reserve_a`` is more than
    ``bound_bps`` away from ``reference_q64``, exactly: ``|R_b 2^64 - ref R_a|
    * 10_000 > bound * ref R_a`` (a price exactly at the bound is within it)."""
    scaled = reference_q64 * reserve_a
    return abs((reserve_b << 64) - scaled) * BPS > bound_bps * scaled
