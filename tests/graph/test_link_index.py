"""LinkIndex: a particle's links found by search equal those found by a full scan."""

from __future__ import annotations

import numpy as np
import pytest

from focusflow.core.errors import InvalidParameterError
from focusflow.graph.link_index import LinkIndex


def _scan(src: np.ndarray, dst: np.ndarray, particle: int, direction: str) -> np.ndarray:
    ends = src if direction == "out" else dst
    return np.flatnonzero(ends == particle)


@pytest.mark.parametrize("seed", range(8))
def test_index_equals_scan_on_random_graphs_grown_block_by_block(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 300))
    index, src, dst = LinkIndex(), np.empty(0, np.int32), np.empty(0, np.int32)
    older = []
    for _ in range(int(rng.integers(1, 40))):
        m = int(rng.integers(0, 200))
        # Skewed endpoints: a few hubs with many links, many particles with none.
        s = (rng.zipf(1.5, m) % n).astype(np.int32)
        d = rng.integers(0, n, m).astype(np.int32)
        older.append((index, len(src)))
        index = index.extend(s, d)
        src, dst = np.concatenate((src, s)), np.concatenate((dst, d))
        assert index.n_links == len(src)
        assert index.n_runs <= max(1, int(np.log2(max(len(src), 1))) + 2)
    for p in range(n):
        for direction in ("out", "in"):
            expected = _scan(src, dst, p, direction)
            assert index.links(p, direction).tolist() == expected.tolist()
            assert index.degree(p, direction) == len(expected)
    # Extending made new indexes; the old ones still answer for their own links.
    for old, m in older:
        for p in range(0, n, 7):
            expected = _scan(src[:m], dst[:m], p, "in")
            assert old.links(p, "in").tolist() == expected.tolist()


def test_unknown_direction_and_uneven_columns_are_refused():
    index = LinkIndex.of(np.array([0, 1]), np.array([1, 0]))
    with pytest.raises(InvalidParameterError, match="direction"):
        index.links(0, "both")
    with pytest.raises(ValueError, match="same length"):
        index.extend(np.array([0]), np.array([1, 2]))
    assert index.links(5, "out").tolist() == [] and index.degree(5, "in") == 0
