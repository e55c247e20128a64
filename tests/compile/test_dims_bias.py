"""d*'s bias from a top-k spectrum: the interval the Frobenius norm allows, against dense SVDs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from focusflow.compile.dims import effective_rank, effective_rank_bounds
from focusflow.compile.pipeline import adjacency_of


def matrices(seed: int):
    """Dense, sparse and nearly low-rank matrices of a few sizes."""
    rng = np.random.default_rng(seed)
    for n in (7, 30, 64):
        yield rng.standard_normal((n, n))
        yield (rng.random((n, n)) < 0.1) * rng.exponential(1.0, (n, n))
        yield rng.standard_normal((n, 3)) @ rng.standard_normal(
            (3, n)
        ) + 1e-3 * rng.standard_normal((n, n))
        # A decaying spectrum like the graphs': sigma_i ~ i^-1.
        u, _ = np.linalg.qr(rng.standard_normal((n, n)))
        v, _ = np.linalg.qr(rng.standard_normal((n, n)))
        yield u @ np.diag(1.0 / np.arange(1, n + 1)) @ v.T


def rank_bound(a: np.ndarray) -> int:
    """A bound on the rank a compiler can read off the sparsity: nonzero rows and columns."""
    return int(min(np.count_nonzero(np.abs(a).sum(1)), np.count_nonzero(np.abs(a).sum(0))))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_interval_holds_the_full_spectrums_effective_rank(seed):
    for a in matrices(seed):
        s = np.linalg.svd(a, compute_uv=False)
        full = effective_rank(s)
        fro2 = float((a * a).sum())
        for k in range(1, len(s) + 1, max(1, len(s) // 9)):
            lo, hi = effective_rank_bounds(s[:k], fro2, rank_bound(a))
            assert lo <= full * (1 + 1e-8) and full <= hi * (1 + 1e-8), (k, lo, full, hi)
            # d* of the top k alone is the least the interval allows, or below it.
            assert effective_rank(s[:k]) <= lo * (1 + 1e-12)
            assert effective_rank(s[:k]) <= full * (1 + 1e-8)


def test_a_forced_tail_gives_one_point():
    # Top [1, 1]; the tail is two values of square sum 2, each at most 1: both 1.
    lo, hi = effective_rank_bounds(np.array([1.0, 1.0]), 4.0, 4)
    assert lo == pytest.approx(4.0, rel=1e-12) and hi == pytest.approx(4.0, rel=1e-12)
    # No room for a tail: the top k is the whole spectrum.
    s = np.array([3.0, 2.0, 1.0])
    assert effective_rank_bounds(s, 14.0, 3) == (effective_rank(s), effective_rank(s))
    assert effective_rank_bounds(s, 14.0, 10) == (effective_rank(s), effective_rank(s))


def test_upper_end_by_hand():
    # Top [2]; tail energy 3 over at most 3 values <= 2: L1 mass in [1.5, 3].
    # Upper: q* = 3 / (3 + e^0) = 0.75 is above q_hi = 3 / 5, so q = 0.6.
    lo, hi = effective_rank_bounds(np.array([2.0]), 7.0, 4)
    q = 0.6
    h = -q * math.log(q) - (1 - q) * math.log(1 - q)
    assert hi == pytest.approx(math.exp(h + q * math.log(3)), rel=1e-12)
    # Lower: q_lo = 1.5 / 3.5; collision term log(1.5^2 / 3) < 0 counts as 0.
    q_lo = 1.5 / 3.5
    h_lo = -q_lo * math.log(q_lo) - (1 - q_lo) * math.log(1 - q_lo)
    assert lo == pytest.approx(math.exp(min(h_lo, h)), rel=1e-12)


def test_compiled_spectrum_interval_holds_the_dense_d_star(small_compiled):
    """The compiler's randomized top-32 spectrum of diag(sqrt(phi*)) A, its
    Frobenius norm and nonzero rows and columns bound the dense SVD's d*, which
    the top 32 alone underestimates."""
    g, c = small_compiled
    a = adjacency_of(g)
    m = sp.diags(np.sqrt(c.focus.focus)).dot(a).tocsr()
    dense = np.linalg.svd(m.toarray(), compute_uv=False)
    full = effective_rank(dense)
    fro2 = float(m.multiply(m).sum())
    max_rank = int(min(np.count_nonzero(m.getnnz(axis=1)), np.count_nonzero(m.getnnz(axis=0))))
    lo, hi = effective_rank_bounds(c.svd.s, fro2, max_rank)
    assert lo <= full <= hi
    assert c.report["effective_rank"] < full
    assert lo > c.report["effective_rank"]  # the tail's mass alone lifts the lower end
    # The compiler computes the same interval into its report.
    assert c.report["d_star_interval"] == pytest.approx([lo, hi], rel=1e-9)
