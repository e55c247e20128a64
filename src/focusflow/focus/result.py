"""What a focus computation returns: the distribution and how it was reached."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from focusflow.core.structure import Check
from focusflow.focus.params import FocusParams

if TYPE_CHECKING:
    from focusflow.graph.tables import Key


@dataclass
class Diagnostics:
    """How the solver got there, for users who need to trust or tune it.

    ``contraction_rate`` is the geometric mean of the last successive residual
    ratios; ``spectral_gap`` (when asked for) is ``1 - contraction_rate``, an
    estimate of the gap of the iteration operator, not of the graph Laplacian.
    """

    iterations: int = 0
    residual: float = float("inf")
    converged: bool = False
    residual_history: list[float] = field(default_factory=list)
    contraction_rate: float | None = None
    spectral_gap: float | None = None
    timings: dict[str, float] = field(default_factory=dict)
    #: The inner solves' work (CG iterations, heat terms, Anderson restarts,
    #: push counts) and, for a tri solve, the springs method it took.
    inner: Mapping[str, int | str] = field(default_factory=dict)


@dataclass
class FocusResult:
    """Focus per particle (indexed by particle id, sums to 1) plus diagnostics.

    ``keys`` maps particle ids to the keys users gave (CIDs or edge-list ids);
    ``cyberank`` holds go-cyber's ``uint64(rank * 1e15)`` in cyberank mode.
    """

    focus: np.ndarray
    params: FocusParams
    backend: str
    diagnostics: Diagnostics
    keys: list[Key] | None = None
    cyberank: np.ndarray | None = None

    def check_structure(self, check: Check, n: int) -> None:
        """A plain result (not a deferred one) of ``n`` float64 values, its
        diagnostics and parameters of their own classes: what the next
        block's solve starts from is read as it is."""
        a = check.fields(self, FocusResult, FocusResult.__dataclass_fields__)
        check.array("focus", a["focus"], np.float64, n, finite=True)
        check.instance("params", a["params"], FocusParams)
        check.instance("diagnostics", a["diagnostics"], Diagnostics)
        check.instance("backend", a["backend"], str)
        if a["keys"] is not None:
            check.instance("keys", a["keys"], list)
        if a["cyberank"] is not None:
            check.fail("cyberank", "is set in an engine's result")

    @property
    def iterations(self) -> int:
        return self.diagnostics.iterations

    @property
    def residual(self) -> float:
        return self.diagnostics.residual

    @property
    def converged(self) -> bool:
        return self.diagnostics.converged

    def order(self) -> np.ndarray:
        """Particle ids by focus, descending; ties by id for a stable output."""
        return np.lexsort((np.arange(len(self.focus)), -self.focus))

    def top(self, k: int | None = None) -> list[tuple[Key, float]]:
        """The ``k`` particles with most focus as ``(key, focus)`` pairs."""
        ids = self.order()
        if k is not None:
            ids = ids[:k]
        names = self.keys
        return [(names[i] if names is not None else str(i), float(self.focus[i])) for i in ids]


class DeferredFocusResult(FocusResult):
    """A FocusResult whose vector stays on the GPU until ``focus`` is first read.

    Reading back 8M particles' focus costs more than the block's whole update
    on the device; a node that commits or serves only part of it per block
    should not pay for the rest. Everything else is available at once.
    """

    def __init__(
        self,
        fetch: Callable[[], np.ndarray],
        params: FocusParams,
        backend: str,
        diagnostics: Diagnostics,
        keys: list[Key] | None = None,
    ) -> None:
        self._fetch: Callable[[], np.ndarray] | None = fetch
        self._focus: np.ndarray | None = None
        self.params = params
        self.backend = backend
        self.diagnostics = diagnostics
        self.keys = keys
        self.cyberank = None

    @property
    def focus(self) -> np.ndarray:  # type: ignore[override]
        if self._fetch is not None:
            self._focus = self._fetch()
            self._fetch = None
        assert self._focus is not None  # fetched on the first read, kept since
        return self._focus
