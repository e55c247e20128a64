"""Dense integer ids for string keys (particle CIDs, neuron addresses).

Every array in the graph and the focus engine is indexed by these ids; the table
beside them turns ids back into the strings users know. Ids are handed out in
first-seen order and never change, so an id stays valid across blocks.

A copy of a table (``copy.deepcopy``, what the chain takes of its focus state
for every block it proposes or checks) shares the key list and the index: a
table is append-only, so each copy needs only its own length. Of the tables
that share them, the one whose length is the list's appends in place; another
that appends copies its part first. Keys another table appended past this
one's length are not this table's: lookups ignore ids past its length.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from focusflow.core.structure import Check

#: A key: text (a CID string, a name) in a graph built from files, or bytes (a
#: raw CID, an account address) in a chain's graph; one table holds one kind.
Key = str | bytes

#: Batches up to this many keys are interned through a dict, larger ones
#: through pandas.factorize: a block's handful of keys then costs microseconds,
#: not pandas's import (about half a second at a node's start).
DICT_BATCH = 4096


class KeyTable:
    """A bijection between keys and ids ``0..len-1``, in first-seen order."""

    def __init__(self) -> None:
        self._keys: list[Key] = []
        self._index: dict[Key, int] = {}
        #: This table's keys are ``_keys[:_n]``; the list may be longer when
        #: a copy sharing it appended.
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str | bytes) and self._index.get(key, self._n) < self._n

    def intern(self, keys: Sequence[Key] | np.ndarray) -> np.ndarray:
        """Ids of ``keys``, adding the unseen ones in first-seen order;
        vectorised through pandas.factorize beyond ``DICT_BATCH`` keys.

        Only the distinct keys of the batch pass through Python, so ten million
        links over a few million particles intern in seconds.
        """
        if len(keys) <= DICT_BATCH:
            batch = keys.tolist() if isinstance(keys, np.ndarray) else list(keys)
            distinct = list(dict.fromkeys(batch))
            ids = dict(zip(distinct, self.intern_distinct(distinct).tolist(), strict=True))
            return np.fromiter((ids[k] for k in batch), dtype=np.int64, count=len(batch))
        # pandas is imported here, not with the module: readers that factorize
        # through Arrow load the graph without paying for its import.
        import pandas as pd

        codes, uniques = pd.factorize(np.asarray(keys, dtype=object), sort=False)
        interned: np.ndarray = self.intern_distinct(uniques.tolist())[codes]
        return interned

    def intern_distinct(self, keys: Sequence[Key]) -> np.ndarray:
        """Ids of ``keys``, which are pairwise distinct, adding the unseen ones in order.

        Into an empty table the keys go in one step (``dict(zip(...))`` runs in
        C); otherwise each is looked up.
        """
        if len(self._keys) != self._n:
            self._own()
        index = self._index
        table = self._keys
        if not table:
            index.update(zip(keys, range(len(keys)), strict=True))
            if len(index) != len(keys):
                index.clear()
                raise ValueError("intern_distinct was given a repeated key")
            table.extend(keys)
            self._n = len(table)
            return np.arange(len(keys), dtype=np.int64)
        unique_ids = np.empty(len(keys), dtype=np.int64)
        for i, key in enumerate(keys):
            found = index.get(key)
            if found is None:
                found = len(table)
                index[key] = found
                table.append(key)
            unique_ids[i] = found
        self._n = len(table)
        return unique_ids

    def _own(self) -> None:
        """Take this table's keys into a list and index of its own (another
        table sharing them appended past this one's length)."""
        self._keys = self._keys[: self._n]
        self._index = dict(zip(self._keys, range(self._n), strict=True))

    def id_of(self, key: Key) -> int:
        """The id of a known key; KeyError names the key otherwise."""
        found = self._index.get(key, self._n)
        if found >= self._n:
            raise KeyError(f"unknown key {key!r}")
        return found

    def get(self, key: Key, default: int = -1) -> int:
        found = self._index.get(key, self._n)
        return default if found >= self._n else found

    def key_of(self, ident: int) -> Key:
        if not -self._n <= ident < self._n:
            raise IndexError(f"key id {ident} out of range [0, {self._n})")
        return self._keys[ident]

    def keys(self) -> list[Key]:
        """All keys in id order (a copy-free view; do not mutate)."""
        if len(self._keys) != self._n:
            self._own()
        return self._keys

    def __deepcopy__(self, memo: dict[int, object]) -> KeyTable:
        """A copy sharing the key list and index (see the module docstring)."""
        twin = object.__new__(KeyTable)
        twin.__dict__.update(self.__dict__)
        memo[id(self)] = twin
        memo[id(self._keys)] = self._keys
        return twin

    def __getstate__(self) -> dict[str, object]:
        if len(self._keys) != self._n:
            self._own()
        return {"_keys": self._keys, "_index": self._index}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._n = len(self._keys)

    def check_structure(self, check: Check) -> int:
        """The table is a bijection: the index maps the ``i``-th key to ``i``,
        in the list's order. Returns the count of keys.

        ``intern`` hands out the index's ids as array indices: an id past the
        list would index the graph's per-particle arrays out of range.
        """
        attrs = check.fields(self, KeyTable, ("_keys", "_index", "_n"))
        keys, index = attrs["_keys"], attrs["_index"]
        check.instance("_keys", keys, list)
        check.instance("_index", index, dict)
        check.integer("_n", attrs["_n"], len(keys), len(keys))
        if list(index) != keys:
            check.fail("_index", "does not hold the keys in the table's order")
        ids = np.fromiter(index.values(), dtype=object, count=len(index))
        wrong = np.flatnonzero(ids != np.arange(len(keys)))
        if len(wrong):
            i = int(wrong[0])
            check.fail(f"_index[{keys[i]!r}]", f"= {ids[i]!r}, not its position {i}")
        return len(keys)
