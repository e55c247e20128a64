"""Semcons by name: relation types a query may weigh, and the factors it asks for.

A link's semcon is its neuron's name (``wordnet:hypernym``; ``""`` for an
edge list's links). Focus-flow inference and a compiled model both take a
query's weighting as ``{name: weight}`` plus one weight for the semcons it
does not name; this module turns that into one factor per semcon, with the
same name rules in both places.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from focusflow.core.errors import InvalidParameterError

#: The weight of semcons a query does not name when it names some: enough flow
#: to get past a missing link of the named relation, little enough to keep the
#: weighting (WordNet's validation split in bench/infer.py: hits@10 0.20 with
#: 0.1, 0.165 with 1, 0.03 with 0).
OTHER_SEMCONS = 0.1


class UnknownSemconError(InvalidParameterError):
    """A semcon weight names a relation type the graph does not have."""

    code = "unknown_semcon"


class SemconNames:
    """The semcon names of a graph or model, looked up by exact name or suffix.

    The tables are built on first use, so a request naming many semcons costs
    a dictionary lookup each, not a scan of every neuron's name.
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self._exact: dict[str, int] | None = None
        self._suffix: dict[str, list[int]] = {}

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """The index of ``name``: exact, or the unique semcon whose part after
        its last ``:`` is ``name`` (``hypernym`` for ``wordnet:hypernym``)."""
        if self._exact is None:
            self._exact = {s: i for i, s in enumerate(self.names)}
            for i, s in enumerate(self.names):
                self._suffix.setdefault(s.rsplit(":", 1)[-1], []).append(i)
        if name in self._exact:
            return self._exact[name]
        matches = self._suffix.get(name, [])
        if len(matches) == 1:
            return matches[0]
        known = ", ".join(repr(s) for s in self.names[:20]) or "none"
        raise UnknownSemconError(
            f"semcon {name[:80]!r} is not in the graph"
            + (" (ambiguous)" if matches else "")
            + f"; its semcons: {known}"
        )

    def factors(
        self, weights: Mapping[str, float] | None, others: float | None = None
    ) -> np.ndarray | None:
        """One factor per semcon (named ones get their weight, the rest
        ``others``: by default ``OTHER_SEMCONS`` when any is named, else 1), or
        None when every factor is 1 (the graph as it is)."""
        if others is None:
            others = OTHER_SEMCONS if weights else 1.0
        if not weights and others == 1.0:
            return None
        if not (np.isfinite(others) and others >= 0):
            raise InvalidParameterError(f"the weight of other semcons must be >= 0, got {others}")
        factors = np.full(len(self.names), float(others))
        for name, w in (weights or {}).items():
            if not (np.isfinite(w) and w >= 0):
                raise InvalidParameterError(f"semcon {name!r}: weight must be >= 0, got {w}")
            factors[self.index(name)] = float(w)
        return None if np.all(factors == 1.0) else factors
