"""Symbols as integers: every string a query sees is interned to a 64-bit id.

Soufflé does the same: joins then compare machine integers, and a CID of 59
characters costs 8 bytes in every table. A source numbers its own strings
(particles first, so a particle's symbol is its node id in the graph
operators); a query's own string constants that the source does not know get
ids past the source's, in an overlay that lives as long as the query.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


class SymbolTable:
    """A source's strings: ``lookup`` finds an id (or -1), ``spell`` writes ids out.

    Only the strings of answered rows are ever spelled, so a source with
    millions of particles never renders them all.
    """

    def __init__(
        self,
        size: int,
        lookup: Callable[[str], int],
        spell: Callable[[np.ndarray], list[str]],
    ) -> None:
        self.size = size
        self._lookup = lookup
        self._spell = spell

    def get(self, text: str) -> int:
        return self._lookup(text)

    def spell(self, ids: np.ndarray) -> list[str]:
        return self._spell(ids)


class QuerySymbols:
    """A source's symbol table plus the strings one query introduces."""

    def __init__(self, base: SymbolTable) -> None:
        self.base = base
        self._local: dict[str, int] = {}
        self._local_names: list[str] = []

    def id_of(self, text: str) -> int:
        found = self.base.get(text)
        if found >= 0:
            return found
        local = self._local.get(text)
        if local is None:
            local = self.base.size + len(self._local_names)
            self._local[text] = local
            self._local_names.append(text)
        return local

    def decode(self, ids: np.ndarray) -> list[str]:
        """Strings of ``ids``."""
        ids = np.asarray(ids, dtype=np.int64)
        if not len(ids):
            return []
        if ids.max() < self.base.size:
            return self.base.spell(ids)
        out: list[str] = [""] * len(ids)
        inside = np.flatnonzero(ids < self.base.size)
        for k, text in zip(inside.tolist(), self.base.spell(ids[inside]), strict=True):
            out[k] = text
        for k in np.flatnonzero(ids >= self.base.size).tolist():
            out[k] = self._local_names[int(ids[k]) - self.base.size]
        return out
