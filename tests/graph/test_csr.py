"""The CSR searches a block's patch relies on, against numpy's answers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from focusflow.graph.csr import (
    find_entries,
    positions_in,
    radix_argsort,
    row_sums,
    search_sorted,
)


def test_positions_in_matches_isin_and_searchsorted():
    rng = np.random.default_rng(1)
    keys = np.unique(rng.integers(-50_000, 50_000, 20_000))
    values = rng.integers(-60_000, 60_000, 50_000)
    pos = positions_in(keys, values)
    hit = np.isin(values, keys)
    assert np.array_equal(pos >= 0, hit)
    assert np.array_equal(pos[hit], np.searchsorted(keys, values[hit]))
    assert positions_in(keys[:0], values[:5]).tolist() == [-1] * 5


def test_find_entries_and_row_sums_match_scipy():
    rng = np.random.default_rng(2)
    n = 3000
    m = sp.random(n, n, density=0.002, format="csr", random_state=3)
    m.sort_indices()
    rows, cols = rng.integers(0, n, (2, 40_000))
    pos = find_entries(m.indptr.astype(np.int64), m.indices, rows, cols)
    dense = m.toarray()
    present = dense[rows, cols] != 0
    assert np.array_equal(pos >= 0, present)
    assert np.array_equal(m.data[pos[present]], dense[rows, cols][present])
    assert np.allclose(row_sums(m.indptr.astype(np.int64), m.data), dense.sum(axis=1))


@pytest.mark.parametrize(
    ("low", "high"),
    [(0, 2), (-(10**6), 10**8), (0, 2**55), (-(2**62), 2**62), (7, 8)],
)
@pytest.mark.parametrize("size", [0, 1, 2, 1000, 50_000])
def test_radix_argsort_is_numpys_stable_argsort(low, high, size):
    keys = np.random.default_rng(size).integers(low, high, size, dtype=np.int64)
    assert np.array_equal(radix_argsort(keys), np.argsort(keys, kind="stable"))


@pytest.mark.parametrize("right", [False, True])
def test_search_sorted_is_numpys_searchsorted(right):
    rng = np.random.default_rng(3)
    keys = np.sort(rng.integers(-1000, 1000, 5000))
    values = rng.integers(-1200, 1200, 20_000)
    side = "right" if right else "left"
    assert np.array_equal(search_sorted(keys, values, right), np.searchsorted(keys, values, side))
    assert np.array_equal(search_sorted(keys[:0], values[:3], right), [0, 0, 0])
