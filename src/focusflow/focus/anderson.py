"""Anderson acceleration of the focus fixed-point iteration.

The coupled iteration ``phi <- G(phi)`` converges linearly; Anderson mixing
(Anderson 1965; Walker and Ni, SIAM J. Numer. Anal. 2011, "type II") takes as the
next iterate the combination of the last ``m + 1`` steps whose residuals
``G(x) - x`` cancel best in least squares. The fixed point is the same; on
R-MAT graphs it needs about half the products (9 instead of 16 at scale 20).
The stop rule is unchanged: the solver stops when one plain step ``G(x) - x``
is below tol in L1 and returns ``G(x)``.

The history lives in preallocated ``(m, n)`` arrays and each step is two fused
passes over the particles (differences and Gram products; mixing, clipping and
the sum), so that at a million particles the mixing costs a fraction of one
graph product rather than a dozen numpy passes.

Safeguards: negative entries of a mixed iterate are clipped and the vector is
renormalised (focus is a distribution); a non-finite or degenerate least-squares
problem, or a residual more than twice the previous one, makes that step a
plain one and restarts the history, so a misstep costs one iteration.
"""

from __future__ import annotations

import math
from types import ModuleType

import numba as nb
import numpy as np

from focusflow.focus.backends.base import AndersonKernels, DeviceArray
from focusflow.focus.reduce import exact_twin, ordered_row_sum, ordered_sum

_PARTS = 64
#: Directions whose share of the Gram matrix is below this are left out.
RCOND = 1e-12


def solve_gram(gram: np.ndarray, rhs: np.ndarray, rcond: float = RCOND) -> np.ndarray | None:
    """``gamma`` with ``gram gamma = rhs`` for a symmetric positive semi-definite
    ``gram`` (k <= 10), by symmetric Gaussian elimination with diagonal pivoting,
    in Python floats: every operation is one IEEE-754 double operation in a
    fixed order, so every machine gets the same bits (the exact arithmetics'
    replacement for ``np.linalg.lstsq``).

    Pivots are taken largest diagonal first (the first such index on ties);
    elimination stops when the largest remaining one is at most ``rcond`` times
    the largest diagonal entry, and the directions left over get 0 (they are,
    to that precision, combinations of the ones kept). None when the input is
    not finite or is all zero: the caller then takes a plain step.
    """
    k = len(rhs)
    a = [[float(gram[i, j]) for j in range(k)] for i in range(k)]
    b = [float(x) for x in rhs]
    if not all(math.isfinite(v) for row in a for v in row) or not all(math.isfinite(v) for v in b):
        return None
    top = max((a[i][i] for i in range(k)), default=0.0)
    if not top > 0.0:
        return None
    left = list(range(k))
    order: list[int] = []
    while left:
        p = left[0]
        for i in left[1:]:
            if a[i][i] > a[p][p]:
                p = i
        if not a[p][p] > rcond * top:
            break
        left.remove(p)
        order.append(p)
        for i in left:
            f = a[i][p] / a[p][p]
            for j in left:
                a[i][j] = a[i][j] - f * a[p][j]
            b[i] = b[i] - f * b[p]
    x = [0.0] * k
    for n, p in enumerate(reversed(order)):
        s = b[p]
        for q in order[len(order) - n :]:
            s = s - a[p][q] * x[q]
        x[p] = s / a[p][p]
    return np.array(x)


@nb.njit(cache=True, parallel=True)
def _record(
    x: np.ndarray,
    gx: np.ndarray,
    x_prev: np.ndarray,
    g_prev: np.ndarray,
    dx: np.ndarray,
    dg: np.ndarray,
    slot: int,
    have_prev: bool,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Store the new differences in ``slot``; return ``g . g_j`` products.

    Returns ``(cross, rhs)``: ``cross[j] = dg[slot] . dg[j]`` and
    ``rhs[j] = dg[j] . g`` for the ``k`` live slots, and overwrites
    ``x_prev, g_prev`` with ``x, g``.
    """
    n = x.shape[0]
    m = dx.shape[0]
    step = (n + _PARTS - 1) // _PARTS
    cross = np.zeros((_PARTS, m))
    rhs = np.zeros((_PARTS, m))
    for t in nb.prange(_PARTS):
        for i in range(t * step, min(n, (t + 1) * step)):
            g = gx[i] - x[i]
            if have_prev:
                dx[slot, i] = x[i] - x_prev[i]
                dg[slot, i] = g - g_prev[i]
                d_new = dg[slot, i]
                for j in range(k):
                    cross[t, j] += d_new * dg[j, i]
                    rhs[t, j] += dg[j, i] * g
            x_prev[i] = x[i]
            g_prev[i] = g
    return ordered_row_sum(cross), ordered_row_sum(rhs)


@nb.njit(cache=True, parallel=True)
def _mix(
    gx: np.ndarray, dx: np.ndarray, dg: np.ndarray, gamma: np.ndarray, k: int, out: np.ndarray
) -> float:
    """``out = max(gx - sum_j gamma_j (dx_j + dg_j), 0)``; returns ``sum(out)``."""
    n = gx.shape[0]
    step = (n + _PARTS - 1) // _PARTS
    partial = np.zeros(_PARTS)
    for t in nb.prange(_PARTS):
        s = 0.0
        for i in range(t * step, min(n, (t + 1) * step)):
            v = gx[i]
            for j in range(k):
                v -= gamma[j] * (dx[j, i] + dg[j, i])
            if v < 0.0:
                v = 0.0
            out[i] = v
            s += v
        partial[t] = s
    return ordered_sum(partial)


@nb.njit(cache=True, parallel=True)
def _scale(v: np.ndarray, factor: float) -> None:
    for i in nb.prange(v.shape[0]):
        v[i] *= factor


#: The passes of exact arithmetic: strict sums, no fastmath (reduce.exact_twin).
_record_exact = exact_twin(_record)
_mix_exact = exact_twin(_mix)


class AndersonWindow:
    """The coefficient side of Anderson mixing, shared by every loop that mixes
    (the host's :class:`Anderson`, the wgpu device loops): the ``m x m`` Gram
    matrix of the residual differences, which slot the next difference goes
    to, and the rules that restart the history.

    It holds no vectors: the loop records ``dx``, ``dg`` in slot :attr:`slot`
    wherever its vectors live and hands back the new Gram row (``cross``) and
    the right-hand side (``rhs``). One step is :meth:`admit` (the residual
    growth rule; False: this step only records its point), :meth:`add` (the
    Gram row) and :meth:`coefficients` (``gamma``, or None: a plain step and
    a restart).
    """

    def __init__(self, m: int, exact: bool = False) -> None:
        self.m = m
        # Exact arithmetic solves the small system by our own elimination
        # (solve_gram), not LAPACK's, whose kernels its build chooses per CPU.
        self.exact = exact
        self.restarts = 0
        self.gram = np.zeros((max(m, 1), max(m, 1)))
        self.reset()

    def reset(self) -> None:
        """Forget the history (the Gram entries are overwritten before use)."""
        self.k = 0
        self.slot = 0
        self.have_prev = False
        self.last = math.inf

    def restart(self) -> None:
        """Forget the history after a misstep, counted in :attr:`restarts`."""
        self.reset()
        self.restarts += 1

    def admit(self, res: float) -> bool:
        """Take a step's L1 change: a residual more than twice the last one
        restarts the history. Returns whether the step mixes; False: it is
        the first of a history and only records its point."""
        if res > 2.0 * self.last:
            self.restart()
        self.last = res
        if not self.have_prev:
            self.have_prev = True
            return False
        return True

    @property
    def live(self) -> int:
        """Slots the next recorded step makes live (its Gram row's length)."""
        return min(self.k + 1, self.m)

    def add(self, cross: np.ndarray, live: int) -> None:
        """Put the recorded step's Gram products (``cross[j] = dg[slot] . dg[j]``
        for the ``live`` slots) into the matrix and move to the next slot."""
        self.gram[self.slot, :live] = cross[:live]
        self.gram[:live, self.slot] = cross[:live]
        self.k = live
        self.slot = (self.slot + 1) % self.m

    def coefficients(self, rhs: np.ndarray) -> np.ndarray | None:
        """``gamma`` of the least-squares problem on the live slots (``rhs[j] =
        dg[j] . g``), or None after a restart when it is not finite or the
        system is degenerate."""
        k = self.k
        gamma: np.ndarray | None
        if self.exact:
            gamma = solve_gram(self.gram[:k, :k], rhs[:k], RCOND)
        else:
            try:
                gamma = np.linalg.lstsq(self.gram[:k, :k], rhs[:k], rcond=RCOND)[0]
            except np.linalg.LinAlgError:
                gamma = None
        if gamma is None or not np.all(np.isfinite(gamma)):
            self.restart()
            return None
        return gamma

    def recorded_step(self, res: float, cross: np.ndarray, rhs: np.ndarray) -> np.ndarray | None:
        """One step whose differences a device recorded in :attr:`slot` as it
        ran, with its Gram products ``cross`` and right-hand sides ``rhs`` (the
        device reduces all ``m`` of each): the next mix's coefficients, or None
        for a plain step (the history's first point, or a restart)."""
        if not self.admit(res):
            return None
        live = self.live
        self.add(cross, live)
        return self.coefficients(rhs)


class Anderson:
    """Mixing over a window of ``m`` differences; ``m = 0`` is the plain iteration."""

    def __init__(
        self,
        m: int,
        n: int,
        xp: ModuleType = np,
        kernels: AndersonKernels | None = None,
        exact: bool = False,
    ) -> None:
        self.m = m
        self.xp = xp
        self.exact = exact
        # An operator's own fused passes (a device backend's, exact-v3's:
        # record/mix with the numba kernels' signatures), used when given.
        self._kernels = kernels
        self.window = AndersonWindow(m, exact)
        if m > 0:
            self.dx = xp.zeros((m, n))
            self.dg = xp.zeros((m, n))
            self.x_prev = xp.zeros(n)
            self.g_prev = xp.zeros(n)

    @property
    def restarts(self) -> int:
        return self.window.restarts

    def _record(
        self, x: DeviceArray, gx: DeviceArray, live: bool, k: int
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        slot = self.window.slot
        if self._kernels is not None:
            args = (x, gx, self.x_prev, self.g_prev, self.dx, self.dg, slot, live, k)
            return self._kernels.record(*args)
        if self.xp is np:
            record = _record_exact if self.exact else _record
            return record(x, gx, self.x_prev, self.g_prev, self.dx, self.dg, slot, live, k)
        xp = self.xp
        g = gx - x
        cross = rhs = None
        if live:
            self.dx[slot] = x - self.x_prev
            self.dg[slot] = g - self.g_prev
            cross = xp.asnumpy(self.dg[:k] @ self.dg[slot])
            rhs = xp.asnumpy(self.dg[:k] @ g)
        self.x_prev[...] = x
        self.g_prev[...] = g
        return cross, rhs

    def _mix(self, gx: DeviceArray, gamma: np.ndarray, k: int, out: DeviceArray) -> float:
        if self._kernels is not None:
            return self._kernels.mix(gx, self.dx, self.dg, gamma, k, out)
        if self.xp is np:
            return (_mix_exact if self.exact else _mix)(gx, self.dx, self.dg, gamma, k, out)
        xp = self.xp
        coeff = xp.asarray(gamma)
        out[...] = gx - coeff @ (self.dx[:k] + self.dg[:k])
        xp.maximum(out, 0.0, out=out)
        return float(out.sum())

    def reset(self) -> None:
        self.window.reset()

    def step(self, x: DeviceArray, gx: DeviceArray, res: float, out: DeviceArray) -> DeviceArray:
        """Next iterate from ``x`` and ``gx = G(x)`` (``res = ||gx - x||_1``).

        Writes the mixed iterate into ``out`` and returns it, or returns ``gx``
        for a plain step. ``x``, ``gx`` and ``out`` may be reused by the caller
        afterwards: the history keeps copies.
        """
        if self.m <= 0:
            return gx
        window = self.window
        if not window.admit(res):
            self._record(x, gx, False, 0)
            return gx
        live = window.live
        cross, rhs = self._record(x, gx, True, live)
        assert cross is not None and rhs is not None  # a live record returns both
        window.add(cross, live)
        gamma = window.coefficients(rhs)
        if gamma is None:
            return gx
        total = self._mix(gx, gamma, window.k, out)
        if not np.isfinite(total) or total <= 0:
            window.restart()
            return gx
        if self.xp is np:
            _scale(out, 1.0 / total)
        else:
            out *= 1.0 / total
        return out
