"""Anderson acceleration of the focus fixed-point iteration.

The coupled iteration ``phi <- G(phi)`` converges linearly; Anderson mixing
(Anderson 1965; Walker and Ni, SIAM J. Numer. Anal. 2011, "type II") takes as the
next iterate the combination of the last ``m + 1`` steps whose residuals
``G(x) - x`` cancel best in least squares. The fixed point is the same; on the
bostrom sample and R-MAT graphs it needs about half the products (9 instead of
16 at scale 20). The stop rule is unchanged: the solver stops when one plain
step ``G(x) - x`` is below tol in L1 and returns ``G(x)``.

Safeguards: negative entries of a mixed iterate are clipped and the vector is
renormalised (focus is a distribution); a non-finite or degenerate least-squares
problem, or a residual more than twice the previous one, makes that step a
plain one and restarts the history, so a misstep costs one iteration.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Dot = Callable[[np.ndarray, np.ndarray], float]


class Anderson:
    """Mixing over a window of ``m`` differences; ``m = 0`` is the plain iteration."""

    def __init__(self, m: int, dot: Dot) -> None:
        self.m = m
        self.dot = dot
        self._x: np.ndarray | None = None
        self._g: np.ndarray | None = None
        self._dx: list[np.ndarray] = []
        self._dg: list[np.ndarray] = []
        self._last_res = np.inf
        self.restarts = 0

    def reset(self) -> None:
        self._x = self._g = None
        self._dx.clear()
        self._dg.clear()
        self._last_res = np.inf

    def step(self, x: np.ndarray, gx: np.ndarray, res: float) -> np.ndarray:
        """Next iterate from ``x`` and ``gx = G(x)`` (``res = ||gx - x||_1``)."""
        if self.m <= 0:
            return gx
        if res > 2.0 * self._last_res:
            # The mixed iterate did much worse than the one before it: take the
            # plain step from here and start the history afresh.
            self.reset()
            self.restarts += 1
            self._last_res = res
            return gx
        self._last_res = res
        g = gx - x
        if self._x is not None:
            self._dx.append(x - self._x)
            self._dg.append(g - self._g)
            if len(self._dx) > self.m:
                self._dx.pop(0)
                self._dg.pop(0)
        self._x, self._g = x, g
        if not self._dg:
            return gx
        k = len(self._dg)
        gram = np.empty((k, k))
        rhs = np.empty(k)
        for i in range(k):
            rhs[i] = self.dot(self._dg[i], g)
            for j in range(i, k):
                gram[i, j] = gram[j, i] = self.dot(self._dg[i], self._dg[j])
        try:
            gamma = np.linalg.lstsq(gram, rhs, rcond=1e-12)[0]
        except np.linalg.LinAlgError:
            gamma = None
        if gamma is None or not np.all(np.isfinite(gamma)):
            self.reset()
            self.restarts += 1
            return gx
        nxt = gx.copy()
        for i in range(k):
            nxt -= gamma[i] * (self._dx[i] + self._dg[i])
        np.maximum(nxt, 0.0, out=nxt)
        total = nxt.sum()
        if not np.isfinite(total) or total <= 0:
            self.reset()
            self.restarts += 1
            return gx
        nxt /= total
        return nxt
