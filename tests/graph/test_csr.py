"""The CSR searches a block's patch relies on, against numpy's answers."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from focusflow.graph.csr import find_entries, positions_in, row_sums


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
