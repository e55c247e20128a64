"""exp and log with the same bits on every machine, for values that go into a committed root.

``math.exp``, ``np.exp`` and their numba lowering call the platform's libm
(or a vector library), whose last bit differs between glibc versions, CPUs
with and without FMA, and vector widths. Focus commits only sums, products
and quotients today, all correctly rounded by IEEE 754 on every CPU; a model
whose equilibrium is a Boltzmann distribution (``focus.energy``) needs exp
and log too. These are written with those operations alone, in a fixed order,
with no fused multiply-add (``fastmath=False`` keeps LLVM from contracting),
so any machine that runs them computes the same bits:

* ``exp_exact``: Cody and Waite's reduction ``x = k ln2 + r``, ``|r| <=
  ln2 / 2`` (``ln2`` split in two so that ``k ln2_hi`` is exact), the Taylor
  polynomial of ``e^r`` to degree 14 (its terms past ``1 + r`` in Horner's
  order, then ``1 + (r + r^2 p)``), and ``ldexp`` by ``k``
  (exact, or one rounding into the subnormals);
* ``log_exact``: ``x = 2^e m`` with ``m`` in ``[sqrt(1/2), sqrt(2))``
  (``frexp``, exact), ``log m = 2 atanh(s)``, ``s = (m - 1) / (m + 1)``, as
  its odd series to ``s^21`` arranged around the exact ``m - 1`` as fdlibm's
  ``__ieee754_log`` arranges its own, plus ``e ln2`` in two parts.

They are not correctly rounded (nor is any libm's exp): tests/focus/test_exact_math.py
measures their error against ``decimal`` at 60 digits, at most one unit in the last place on
its random points, and pins the bits of a fixed grid of inputs by a digest, so a machine that
computed other bits would fail it. The ranges are IEEE's: ``exp`` is ``inf``
past ``EXP_OVER`` and 0 below ``EXP_UNDER``; ``log`` of 0 is ``-inf``, of a
negative number or NaN is NaN.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

#: ln 2 in two parts (fdlibm's): the first has 32 trailing zero bits, so
#: ``k * LN2_HI`` is exact for every ``|k| < 2^20``; the sum is ln 2 to about
#: 2^-85.
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
#: 1 / ln 2, rounded: it only picks ``k``, which any nearby value would do.
INV_LN2 = 1.44269504088896338700e00
#: Past this ``exp`` overflows to inf, below EXP_UNDER it underflows to 0.
EXP_OVER = 709.782712893383973096
EXP_UNDER = -745.133219101941108420
#: sqrt(1/2): the lower end of ``log``'s reduced mantissa.
SQRT_HALF = 0.70710678118654752440

#: 1 / n! for n = 0 .. 14, as float64 (the Taylor coefficients of e^r;
#: numba freezes a global array into the compiled code).
_EXP_COEF = np.array([1.0 / math.factorial(n) for n in range(15)])
#: 2 / (2n + 1) for n = 0 .. 10 (the series 2 atanh(s) = sum 2 s^(2n+1) / (2n + 1)).
_LOG_COEF = np.array([2.0 / (2 * n + 1) for n in range(11)])


@nb.njit(cache=True, fastmath=False)
def exp_exact(x: float) -> float:
    """``e^x``, the same bits on every machine (within one unit in the last place)."""
    if x != x:
        return x
    if x > EXP_OVER:
        return math.inf
    if x < EXP_UNDER:
        return 0.0
    k = math.floor(x * INV_LN2 + 0.5)
    r = (x - k * LN2_HI) - k * LN2_LO
    p = _EXP_COEF[14]
    for i in range(13, 1, -1):
        p = p * r + _EXP_COEF[i]
    # 1 + r + r^2 (1/2 + r/6 + ...): the terms past 1 summed first, small,
    # and 1 added last, so the one rounding that matters is the last.
    p = 1.0 + (r + (r * r) * p)
    return math.ldexp(p, int(k))


@nb.njit(cache=True, fastmath=False)
def log_exact(x: float) -> float:
    """``ln x``, the same bits on every machine (within one unit in the last place)."""
    if x != x or x < 0.0:
        return math.nan
    if x == 0.0:
        return -math.inf
    if x == math.inf:
        return x
    m, e = math.frexp(x)
    if m < SQRT_HALF:
        m = m * 2.0
        e -= 1
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    q = _LOG_COEF[10]
    for i in range(9, 0, -1):
        q = q * z + _LOG_COEF[i]
    # log(1 + f) = 2 atanh(s) = 2s + s R with R = z q, rewritten (as fdlibm
    # does) around f, which is exact, so that only small terms are rounded:
    # f - (hfsq - s (hfsq + R)), hfsq = f^2 / 2.
    r = z * q
    hfsq = 0.5 * f * f
    k = float(e)
    out: float = k * LN2_HI - ((hfsq - (s * (hfsq + r) + k * LN2_LO)) - f)
    return out


@nb.njit(cache=True, fastmath=False)
def exp_array(a: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = exp_exact(a[i])``: elementwise, so the thread count cannot change a bit."""
    for i in range(a.shape[0]):
        out[i] = exp_exact(a[i])


@nb.njit(cache=True, fastmath=False)
def log_array(a: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = log_exact(a[i])``."""
    for i in range(a.shape[0]):
        out[i] = log_exact(a[i])


__all__ = ["exp_array", "exp_exact", "log_array", "log_exact"]
