"""Links by particle, both directions: the ids of a particle's links in O(log² m + degree).

The graph keeps its links as append-only columns; finding a particle's links
there is a pass over all of them. :class:`LinkIndex` is a persistent index
beside those columns: each :meth:`LinkIndex.extend` returns a new index that
shares what it can with the old one and never changes it, so a reader holding
an older index (the API, through a block's ``FocusView``) is never disturbed
by the producer extending it.

It is a log-structured merge of sorted runs. Each run covers a range of link
ids and holds, per direction, the links' endpoint particles sorted ascending
(ties by link id) with the link ids in that order. A block's links become one
new run; then, while the run before the last is less than twice the size of
the last, the two are merged (stably, so ties stay in link-id order). Run
sizes therefore at least double from the newest to the oldest: at most
``log2(m) + 1`` runs, and each link takes part in ``O(log m)`` merges over its
life. A query binary-searches every run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Directions of a link as seen from a particle.
DIRECTIONS = ("out", "in")


@dataclass(frozen=True)
class _Run:
    """Links ``start .. start + len - 1`` sorted by endpoint, per direction."""

    start: int
    keys: tuple[np.ndarray, np.ndarray]  # (sources sorted, targets sorted)
    ids: tuple[np.ndarray, np.ndarray]  # link ids in those orders

    def __len__(self) -> int:
        return len(self.ids[0])


def _run(start: int, src: np.ndarray, dst: np.ndarray) -> _Run:
    ids = np.arange(start, start + len(src), dtype=np.int64)
    keys, orders = [], []
    for ends in (src, dst):
        order = np.argsort(ends, kind="stable")
        keys.append(np.asarray(ends, dtype=np.int64)[order])
        orders.append(ids[order])
    return _Run(start, (keys[0], keys[1]), (orders[0], orders[1]))


def _merge(old: _Run, new: _Run) -> _Run:
    """One run of two adjacent ones (``old`` holds the lower link ids)."""
    keys, ids = [], []
    for d in range(2):
        k = np.concatenate((old.keys[d], new.keys[d]))
        # Stable: equal endpoints keep old (lower) link ids first.
        order = np.argsort(k, kind="stable")
        keys.append(k[order])
        ids.append(np.concatenate((old.ids[d], new.ids[d]))[order])
    return _Run(old.start, (keys[0], keys[1]), (ids[0], ids[1]))


class LinkIndex:
    """An immutable index of link ids by source and by target particle."""

    __slots__ = ("_runs", "n_links")

    def __init__(self, runs: tuple[_Run, ...] = (), n_links: int = 0) -> None:
        self._runs = runs
        self.n_links = n_links

    @classmethod
    def of(cls, src: np.ndarray, dst: np.ndarray) -> LinkIndex:
        """The index of links ``0 .. len(src) - 1``."""
        return cls().extend(src, dst)

    @property
    def n_runs(self) -> int:
        return len(self._runs)

    def extend(self, src: np.ndarray, dst: np.ndarray) -> LinkIndex:
        """A new index that also holds links ``n_links ..`` with these endpoints."""
        if len(src) != len(dst):
            raise ValueError("src and dst must have the same length")
        if not len(src):
            return self
        runs = [*self._runs, _run(self.n_links, src, dst)]
        while len(runs) > 1 and len(runs[-2]) < 2 * len(runs[-1]):
            new = runs.pop()
            runs[-1] = _merge(runs[-1], new)
        return LinkIndex(tuple(runs), self.n_links + len(src))

    def links(self, particle: int, direction: str) -> np.ndarray:
        """Ids of the links leaving (``out``) or entering (``in``) ``particle``, ascending."""
        d = _direction(direction)
        parts = []
        for run in self._runs:
            keys = run.keys[d]
            lo = np.searchsorted(keys, particle, side="left")
            hi = np.searchsorted(keys, particle, side="right")
            if hi > lo:
                parts.append(run.ids[d][lo:hi])
        if not parts:
            return np.empty(0, dtype=np.int64)
        # Runs cover increasing id ranges from the first to the last.
        return np.concatenate(parts)

    def degree(self, particle: int, direction: str) -> int:
        """How many links leave or enter ``particle`` (counted, not gathered)."""
        d = _direction(direction)
        return sum(
            int(np.searchsorted(r.keys[d], particle, "right"))
            - int(np.searchsorted(r.keys[d], particle, "left"))
            for r in self._runs
        )


def _direction(direction: str) -> int:
    try:
        return DIRECTIONS.index(direction)
    except ValueError:
        raise ValueError(f"direction must be 'out' or 'in', got {direction!r}") from None


__all__ = ["DIRECTIONS", "LinkIndex"]
