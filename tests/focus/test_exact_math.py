"""exp and log for committed values: accurate, IEEE at the edges, and the same bits everywhere.

The reference is Python's ``decimal`` at 60 digits (its ``exp`` and ``ln`` are
correctly rounded at that precision), independent of any libm. The digests pin
the bits of grids of inputs that are themselves exact (integers over a power of
two, ``ldexp`` of short mantissas), so a machine, numba or LLVM version that
computed another bit for any of them fails here.
"""

from __future__ import annotations

import hashlib
import math
from decimal import Decimal, localcontext

import numpy as np
import pytest

from focusflow.focus.exact_math import (
    EXP_OVER,
    EXP_UNDER,
    exp_array,
    exp_exact,
    log_array,
    log_exact,
)

EXP_DIGEST = "b33f8ecfa32ef2efb2ef6b5eece9f0040a28a2c6b670e4d8d90dbe7cd893f9c9"
LOG_DIGEST = "b0114a53b077b11186aa2438bcce77cc6ae413d70371b58a56a46fbb682abaf9"


def _ulps(got: float, exact: Decimal) -> float:
    """|got - exact| in units of the last place of the exact value rounded to float64."""
    nearest = float(exact)
    if nearest == 0.0:
        return 0.0 if got == 0.0 else math.inf
    return float(abs(Decimal(got) - exact) / Decimal(math.ulp(nearest)))


@pytest.mark.parametrize(("lo", "hi"), [(-700.0, 700.0), (-1.0, 1.0), (-745.0, -708.0)])
def test_exp_is_within_one_ulp_of_the_exact_value(lo, hi):
    xs = np.random.default_rng(int(hi - lo)).uniform(lo, hi, 3000)
    with localcontext() as ctx:
        ctx.prec = 60
        worst = max(_ulps(exp_exact(float(x)), Decimal(float(x)).exp()) for x in xs)
    assert worst < 1.0


def test_log_is_within_one_ulp_of_the_exact_value():
    rng = np.random.default_rng(3)
    ys = np.concatenate(
        [
            np.ldexp(rng.uniform(0.5, 1.0, 3000), rng.integers(-1073, 1024, 3000)),
            rng.uniform(0.5, 2.0, 3000),  # near 1, where log is small
            [5e-324, 1e-310, 2.2250738585072014e-308, 1.7976931348623157e308],
        ]
    )
    with localcontext() as ctx:
        ctx.prec = 60
        worst = max(_ulps(log_exact(float(y)), Decimal(float(y)).ln()) for y in ys)
    assert worst < 1.0


def test_the_edges_are_ieees():
    assert exp_exact(0.0) == 1.0 and log_exact(1.0) == 0.0
    assert exp_exact(math.inf) == math.inf and exp_exact(-math.inf) == 0.0
    assert exp_exact(EXP_OVER + 1e-9) == math.inf and exp_exact(EXP_UNDER - 1e-9) == 0.0
    assert 0.0 < exp_exact(-745.0) < 1e-320  # the smallest subnormals
    assert exp_exact(709.78) < math.inf
    assert math.isnan(exp_exact(math.nan))
    assert log_exact(0.0) == -math.inf and log_exact(math.inf) == math.inf
    assert math.isnan(log_exact(-1.0)) and math.isnan(log_exact(math.nan))
    assert log_exact(5e-324) == pytest.approx(-744.4400719213812, rel=1e-15)


def test_the_bits_of_exact_grids_are_pinned():
    """93,185 exp inputs (every 1/64 from -746 to 710) and 307,200 log
    inputs (mantissas 1 + j/1024 at every seventh binary exponent, subnormals
    included): their outputs' SHA-256, recorded once."""
    x = np.arange(-746 * 64, 710 * 64 + 1, dtype=np.float64) / 64.0
    m = (1024.0 + np.arange(1024)) / 1024.0
    y = np.ldexp(np.tile(m, 300), np.repeat(np.arange(-1074, 1024, 7)[:300], 1024))
    ex, lx = np.empty_like(x), np.empty_like(y)
    exp_array(x, ex)
    log_array(y, lx)
    assert [exp_exact(float(v)) for v in x[::997]] == ex[::997].tolist()
    assert [log_exact(float(v)) for v in y[::997]] == lx[::997].tolist()
    assert hashlib.sha256(ex.tobytes()).hexdigest() == EXP_DIGEST
    assert hashlib.sha256(lx.tobytes()).hexdigest() == LOG_DIGEST
