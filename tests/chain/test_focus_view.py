"""FocusView ranks: binary searches in a cached sort must equal the definition."""

from __future__ import annotations

import numpy as np

from focusflow.chain.focus_view import FocusView


def _view(q: np.ndarray) -> FocusView:
    view = FocusView.__new__(FocusView)
    object.__setattr__(view, "q", q)
    return view


def test_rank_is_one_plus_larger_plus_earlier_ties():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 60))
        q = rng.integers(0, int(rng.integers(1, 8)), n).astype(np.uint64)  # many ties
        view = _view(q)
        ranks = [view.rank(i) for i in range(n)]
        expected = [
            int(np.count_nonzero(q > q[i]) + np.count_nonzero(q[:i] == q[i])) + 1 for i in range(n)
        ]
        assert ranks == expected
        assert sorted(ranks) == list(range(1, n + 1))
