"""Growable numpy arrays: appends of whole arrays in amortised O(1) per element.

The graph's link columns and the snapshot's per-block indexes grow by a block
at a time; re-allocating (``np.concatenate``) at every block copies everything
held so far and, on a virtual machine, pays page faults for fresh memory too.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from focusflow.core.structure import Check
from focusflow.graph.csr import search_sorted


class Column:
    """A growable numpy column (amortised O(1) appends of whole arrays)."""

    def __init__(self, dtype: type) -> None:
        self._data: np.ndarray = np.empty(16, dtype=dtype)
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def extend(self, values: np.ndarray) -> None:
        need = self._len + len(values)
        if need > len(self._data):
            grown = np.empty(max(need, 2 * len(self._data)), dtype=self._data.dtype)
            grown[: self._len] = self._data[: self._len]
            self._data = grown
        self._data[self._len : need] = values
        self._len = need

    @property
    def values(self) -> np.ndarray:
        """A view of the filled part (valid until the next extend)."""
        return self._data[: self._len]

    def check_structure(self, check: Check, dtype: type, **contents) -> np.ndarray:
        """A column of ``dtype`` whose filled part (``contents``: the bounds of
        :meth:`Check.contents`) fits its buffer; returns the filled part.

        ``extend`` writes from ``_len`` on, sized by the buffer's length: a
        length past the buffer would make later reads run off it.
        """
        attrs = check.fields(self, Column, ("_data", "_len"))
        data = check.array("_data", attrs["_data"], dtype)
        check.integer("_len", attrs["_len"], 0, len(data))
        values = self.values
        check.contents("_data", values, **contents)
        return values


class SortedIndex:
    """Sorted int64 keys, each with an int64 value, merged with a block's keys at a time.

    Two buffers with spare capacity take turns as the merge's source and
    target, so a block's merge allocates nothing once they are large enough;
    ``keys``/``values`` are views valid until the next merge.
    """

    def __init__(self) -> None:
        self._bufs = [(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)) for _ in range(2)]
        self._cur = 0
        self._len = 0

    def __len__(self) -> int:
        return self._len

    @property
    def keys(self) -> np.ndarray:
        return self._bufs[self._cur][0][: self._len]

    @property
    def values(self) -> np.ndarray:
        return self._bufs[self._cur][1][: self._len]

    def check_structure(self, check: Check, length: int) -> tuple[np.ndarray, np.ndarray]:
        """``length`` keys, non-decreasing, in two buffers of int64 keys and
        values of equal lengths; returns ``(keys, values)``.

        ``merge`` writes into the spare buffers by the keys' capacity and
        binary-searches the keys: buffers of unequal lengths would take a
        write past the values' end. What the values mean is the owner's check.
        """
        attrs = check.fields(self, SortedIndex, ("_bufs", "_cur", "_len"))
        bufs = attrs["_bufs"]
        check.instance("_bufs", bufs, list)
        if len(bufs) != 2:
            check.fail("_bufs", f"holds {len(bufs)} buffers, not 2")
        for i, pair in enumerate(bufs):
            check.instance(f"_bufs[{i}]", pair, tuple)
            if len(pair) != 2:
                check.fail(f"_bufs[{i}]", "is not a (keys, values) pair")
            keys = check.array(f"_bufs[{i}][0]", pair[0], np.int64)
            check.array(f"_bufs[{i}][1]", pair[1], np.int64, len(keys))
        cur = check.integer("_cur", attrs["_cur"], 0, 1)
        check.integer("_len", attrs["_len"], length, length)
        if len(bufs[cur][0]) < length:
            check.fail("_len", f"= {length} is past its buffer's {len(bufs[cur][0])} keys")
        keys = self.keys
        down = np.flatnonzero(keys[1:] < keys[:-1])
        if len(down):
            check.fail(f"_bufs[{cur}][0][{int(down[0]) + 1}]", "is below the key before it")
        return keys, self.values

    def merge(self, new_keys: np.ndarray, new_values: np.ndarray) -> None:
        """Insert sorted ``new_keys``; one equal to a held key goes after it."""
        need = self._len + len(new_keys)
        spare = 1 - self._cur
        if len(self._bufs[spare][0]) < need:
            cap = max(need, 2 * len(self._bufs[self._cur][0]))
            self._bufs[spare] = (np.empty(cap, dtype=np.int64), np.empty(cap, dtype=np.int64))
        out_keys, out_values = self._bufs[spare]
        new_keys = np.asarray(new_keys, dtype=np.int64)
        merge_into(
            self.keys,
            self.values,
            new_keys,
            np.asarray(new_values, dtype=np.int64),
            search_sorted(self.keys, new_keys, True),
            out_keys,
            out_values,
        )
        self._cur = spare
        self._len = need


@nb.njit(cache=True, parallel=True)
def merge_into(keys, values, new_keys, new_values, pos, out_keys, out_values):
    """Merge sorted ``new_keys`` into sorted ``keys``, writing the first
    ``len(keys) + len(new_keys)`` places of the outputs; ``pos`` is
    ``searchsorted(keys, new_keys, side="right")``.

    The held keys between two consecutive new ones move as one block, the
    blocks in parallel: an index holds millions of keys and a block brings
    10^5, and a sequential merge spent tens of milliseconds moving them.
    """
    m = keys.shape[0]
    k = new_keys.shape[0]
    for j in nb.prange(k + 1):
        a = pos[j - 1] if j > 0 else 0
        b = pos[j] if j < k else m
        for i in range(a, b):
            out_keys[i + j] = keys[i]
            out_values[i + j] = values[i]
        if j < k:
            out_keys[pos[j] + j] = new_keys[j]
            out_values[pos[j] + j] = new_values[j]
