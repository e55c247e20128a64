"""Sums that come out the same on every machine.

Inside a ``parallel=True`` numba function an array reduction such as
``partial.sum()`` is itself parallelised, and its partial results are combined
in an order that depends on the thread count: a 2-core and a 16-core node
would then disagree in the last bit, and a committed (quantised) focus vector
would differ between validators. Every kernel therefore sums its fixed number
of chunk partials with :func:`ordered_sum`, a plain sequential loop that numba
never parallelises.
"""

from __future__ import annotations

import numba as nb


@nb.njit(cache=True)
def ordered_sum(a):
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i]
    return s


@nb.njit(cache=True)
def ordered_row_sum(a):
    """``a.sum(axis=0)`` of a 2-D array, rows added in order."""
    out = a[0].copy()
    for r in range(1, a.shape[0]):
        for j in range(a.shape[1]):
            out[j] += a[r, j]
    return out
