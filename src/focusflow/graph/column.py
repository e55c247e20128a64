"""Growable numpy arrays: appends of whole arrays in amortised O(1) per element.

The graph's link columns and the snapshot's per-block indexes grow by a block
at a time; re-allocating (``np.concatenate``) at every block copies everything
held so far and, on a virtual machine, pays page faults for fresh memory too.

A copy of a column (``copy.deepcopy``) shares its buffer: a validator copies
the chain's whole focus state for every block it proposes or checks, and at
10^7 links copying the link columns cost more than the block's solve. Sharing
is safe because the filled part is never rewritten in place except through
:meth:`Column.writable`, which first makes a shared buffer the column's own,
and because of the two columns that share a buffer only the one whose length
matches the buffer's claimed fill appends into it in place; the other copies
its part on its first append.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict, Unpack

import numpy as np

from focusflow.core.lazy import lazy_njit
from focusflow.core.structure import Check
from focusflow.graph.csr import search_sorted

if TYPE_CHECKING:
    # ``nb`` is bound when the first kernel compiles (``core.lazy``), so that
    # importing this module does not import numba; this line is also what
    # marks the module as one of kernels for ``core.kernel_cache``
    import numba as nb


class ContentBounds(TypedDict, total=False):
    """The bounds :meth:`Check.contents` takes, passed through by :meth:`Column.check_structure`."""

    lo: int | None
    hi: int | None
    finite: bool
    nonneg: bool


class Column:
    """A growable numpy column (amortised O(1) appends of whole arrays)."""

    def __init__(self, dtype: type) -> None:
        self._data: np.ndarray = np.empty(16, dtype=dtype)
        self._len = 0
        #: How far the buffer is filled, in one cell shared by every column
        #: that shares the buffer: a column appends in place only where the
        #: buffer ends at its own length.
        self._claim = [0]
        #: Whether another column may share the buffer (a copy was taken).
        self._shared = False

    def __len__(self) -> int:
        return self._len

    def extend(self, values: np.ndarray) -> None:
        need = self._len + len(values)
        if need > len(self._data):
            self._own(max(need, 2 * len(self._data)))
        elif self._claim[0] != self._len:
            self._own(len(self._data))
        self._data[self._len : need] = values
        self._len = need
        self._claim[0] = need

    @property
    def values(self) -> np.ndarray:
        """A view of the filled part (valid until the next extend); read only:
        writes go through :meth:`writable`."""
        return self._data[: self._len]

    def writable(self) -> np.ndarray:
        """The filled part, to be written in place: a buffer shared with a
        copy is first copied, so that the write changes this column only."""
        if self._shared:
            self._own(len(self._data))
        return self._data[: self._len]

    def _own(self, capacity: int) -> None:
        """Move the filled part into a new buffer of ``capacity`` values held
        by this column alone."""
        grown = np.empty(capacity, dtype=self._data.dtype)
        grown[: self._len] = self._data[: self._len]
        self._data = grown
        self._claim = [self._len]
        self._shared = False

    def __deepcopy__(self, memo: dict[int, object]) -> Column:
        """A copy that shares the buffer until one of the two writes (see the
        module docstring)."""
        twin = object.__new__(type(self))
        twin.__dict__.update(self.__dict__)
        twin._shared = self._shared = True
        memo[id(self)] = twin
        return twin

    def __getstate__(self) -> dict[str, object]:
        """The filled part only: a pickle holds neither spare capacity nor
        values another column appended to a shared buffer."""
        return {"_data": self.values, "_len": self._len}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._claim = [self._len]
        self._shared = False

    def check_structure(
        self, check: Check, dtype: type, **contents: Unpack[ContentBounds]
    ) -> np.ndarray:
        """A column of ``dtype`` whose filled part (``contents``: the bounds of
        :meth:`Check.contents`) fits its buffer; returns the filled part.

        ``extend`` writes from ``_len`` on, sized by the buffer's length: a
        length past the buffer would make later reads run off it.
        """
        attrs = check.fields(self, Column, ("_data", "_len", "_claim", "_shared"))
        data = check.array("_data", attrs["_data"], dtype)
        length = check.integer("_len", attrs["_len"], 0, len(data))
        claim = attrs["_claim"]
        check.instance("_claim", claim, list)
        if len(claim) != 1:
            check.fail("_claim", "is not one cell")
        check.integer("_claim[0]", claim[0], 0, len(data))
        if attrs["_shared"] is False and claim[0] != length:
            check.fail("_claim[0]", f"= {claim[0]}, not the unshared column's length {length}")
        check.instance("_shared", attrs["_shared"], bool)
        values = self.values
        check.contents("_data", values, **contents)
        return values


class SortedIndex:
    """Sorted int64 keys, each with an int64 value, merged with a block's keys at a time.

    Two buffers with spare capacity take turns as the merge's source and
    target, so a block's merge allocates nothing once they are large enough;
    ``keys``/``values`` are views valid until the next merge. A copy
    (``copy.deepcopy``) shares both buffers and merges only into buffers of
    its own: the merge reads the current buffer and writes the spare one.
    """

    def __init__(self) -> None:
        self._bufs = [(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)) for _ in range(2)]
        self._cur = 0
        self._len = 0
        #: Which buffers no copy shares (a merge writes only into those).
        self._mine = [True, True]

    def __deepcopy__(self, memo: dict[int, object]) -> SortedIndex:
        twin = object.__new__(SortedIndex)
        twin._bufs = list(self._bufs)
        twin._cur = self._cur
        twin._len = self._len
        twin._mine = [False, False]
        self._mine = [False, False]
        memo[id(self)] = twin
        return twin

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
        attrs = check.fields(self, SortedIndex, ("_bufs", "_cur", "_len", "_mine"))
        mine = attrs["_mine"]
        check.instance("_mine", mine, list)
        if len(mine) != 2 or any(type(m) is not bool for m in mine):
            check.fail("_mine", "is not two flags")
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
        if len(self._bufs[spare][0]) < need or not self._mine[spare]:
            cap = max(need, 2 * len(self._bufs[self._cur][0]))
            self._bufs[spare] = (np.empty(cap, dtype=np.int64), np.empty(cap, dtype=np.int64))
            self._mine[spare] = True
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


@lazy_njit(cache=True, parallel=True)
def merge_into(
    keys: np.ndarray,
    values: np.ndarray,
    new_keys: np.ndarray,
    new_values: np.ndarray,
    pos: np.ndarray,
    out_keys: np.ndarray,
    out_values: np.ndarray,
) -> None:
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
