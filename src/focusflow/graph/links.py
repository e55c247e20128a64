"""Cyberlinks and the columnar batches that carry them through the engine.

A cyberlink ``(from, to, neuron, semcon)`` says that a neuron (an account with
stake) connects two particles. Users hand us :class:`Cyberlink` objects or files;
inside, links travel as :class:`LinkBatch` columns of dense ids so that every
later step is a vectorised numpy operation, never a Python loop per link.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from focusflow.core.structure import Check

#: Neuron id of a link that carries its own explicit weight (plain edge lists).
ANONYMOUS = -1

#: Link weights below this count as zero. Dividing focus by an out-weight this
#: small would overflow float64, and no stake or edge weight that means anything
#: is 10^300 times smaller than another.
MIN_WEIGHT = 1e-300


def flush_tiny(weights: np.ndarray) -> np.ndarray:
    """``weights`` with values below MIN_WEIGHT set to exactly 0 (a copy if needed)."""
    tiny = weights < MIN_WEIGHT
    if tiny.any():
        weights = np.where(tiny, 0.0, weights)
    return weights


@dataclass(frozen=True)
class Cyberlink:
    """One signed statement "``from`` relates to ``to``", by ``neuron``."""

    from_: str
    to: str
    neuron: str
    semcon: str | None = None


@dataclass(frozen=True)
class LinkBatch:
    """Links as columns of ids: the unit appended to the delta log.

    ``neuron`` is ``ANONYMOUS`` (-1) for links of a plain weighted edge list; those
    use ``weight`` as is. Links made by a neuron ignore ``weight``: their weight is
    the neuron's per-link stake (docs/architecture.md §3.1).
    """

    src: np.ndarray  # int32 particle ids
    dst: np.ndarray  # int32 particle ids
    neuron: np.ndarray  # int32 neuron ids or ANONYMOUS
    weight: np.ndarray  # float64, used for ANONYMOUS links only

    def __len__(self) -> int:
        return len(self.src)

    def check_structure(self, check: Check, n_particles: int, n_neurons: int) -> None:
        """Ids within the interned counts (neurons or ANONYMOUS), finite
        weights >= 0, one of each per link: the graph indexes its tables
        and stakes by these ids."""
        attrs = check.fields(self, LinkBatch, ("src", "dst", "neuron", "weight"))
        m = len(check.array("src", attrs["src"], np.int32, lo=0, hi=n_particles))
        check.array("dst", attrs["dst"], np.int32, m, lo=0, hi=n_particles)
        check.array("neuron", attrs["neuron"], np.int32, m, lo=ANONYMOUS, hi=n_neurons)
        check.array("weight", attrs["weight"], np.float64, m, finite=True, nonneg=True)


@dataclass(frozen=True)
class FactorBatch:
    """New weight factors for some links (a factor multiplies the link's
    staked weight: ``Cybergraph.set_factors``). Logged so that a consumer that
    appends links without re-reading the graph (the engine's raw-link path)
    knows older links were re-weighed."""

    link: np.ndarray  # int64 link ids
    factor: np.ndarray  # float64, finite and > 0

    def __len__(self) -> int:
        return len(self.link)

    def check_structure(self, check: Check, n_links: int) -> None:
        """Link ids within the graph's links, factors finite and > 0."""
        attrs = check.fields(self, FactorBatch, ("link", "factor"))
        m = len(check.array("link", attrs["link"], np.int64, lo=0, hi=n_links))
        factor = check.array("factor", attrs["factor"], np.float64, m, finite=True, nonneg=True)
        if np.any(factor == 0):
            check.fail("factor", "holds a 0 (a factor is > 0)")


@dataclass(frozen=True)
class StakeBatch:
    """New stakes for some neurons (a stake change moves all of their links at once)."""

    neuron: np.ndarray  # int32 neuron ids
    stake: np.ndarray  # float64, >= 0

    def __len__(self) -> int:
        return len(self.neuron)

    def check_structure(self, check: Check, n_neurons: int) -> None:
        """Neuron ids within the interned count, stakes finite and >= 0."""
        attrs = check.fields(self, StakeBatch, ("neuron", "stake"))
        m = len(check.array("neuron", attrs["neuron"], np.int32, lo=0, hi=n_neurons))
        check.array("stake", attrs["stake"], np.float64, m, finite=True, nonneg=True)
