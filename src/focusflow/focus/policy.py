"""The outer iteration's rules for tri mode, written once for every loop that runs it.

The host solver (``solver._iterate``) and the wgpu device loop
(``backends.webgpu_tri``) both ask a :class:`TriPolicy` for the inner solves'
tolerances of each outer step, and tell it each step's L1 change to learn
whether to stop, to switch to exact steps, and whether that switch drops the
Anderson history. It holds no vectors and reads no operator: where a rule
needs a property of the current iterate (the spread ``F`` of
:meth:`TriPolicy.exact_tolerances`), the loop measures it where its vectors
live and passes the number in.

Inexact inner solves (Dembo, Eisenstat and Steihaug 1982, for fixed points):
while the outer iteration is far from its equilibrium, springs and heat are
solved to a relative accuracy proportional to the last outer change; once the
change drops below tol, the iteration continues with inner solves at full
accuracy until the change is below tol again, so the answer is a fixed point
of the exact map. With ``finish="bounded"`` the exact phase begins one step
earlier (when the next change is predicted below tol: the last one times the
last contraction ratio; the Anderson history is kept) and its inner solves are
only as accurate as the result needs. Like diffusion it then stops at its
first (exact) step below tol; ``"fixed"`` also needs an inexact one first.
R-MAT scales 17 and 19 (numba): 62 and 61 pair passes -> 51 and 50, one outer
iteration less, and an answer about 1.5x farther from the fixed point
(docs/focus.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from focusflow.focus.params import EXACT_SHARE, FocusParams

#: Inner solves aim at this fraction of the last outer L1 change.
FORCING = 0.05
#: Loosest relative accuracy an inner solve is ever asked for.
LOOSEST = 1e-2


class Verdict(NamedTuple):
    """What one outer step's L1 change decides: ``stop`` (the step is the
    answer), ``exact`` (the next steps' inner solves are exact), ``reset``
    (the Anderson history starts over: the switch to exact steps on a change
    below tol)."""

    stop: bool
    exact: bool
    reset: bool


@dataclass(frozen=True)
class TriPolicy:
    """The inner tolerances, the switch to exact steps and the stop rule."""

    tol: float
    cg_tol: float
    heat_tol: float
    bounded: bool
    forcing: float = FORCING
    exact_share: float = EXACT_SHARE

    @classmethod
    def of(cls, params: FocusParams) -> TriPolicy:
        return cls(
            params.tol,
            params.cg_tol,
            params.heat_tol,
            params.finish == "bounded",
            exact_share=params.exact_share,
        )

    def loose_tolerances(self, res: float) -> tuple[float, float]:
        """``(cg_tol, heat_tol)`` of an inexact step after an outer change ``res``:
        ``forcing * res``, at least the floors, at most ``LOOSEST``."""
        return (
            min(LOOSEST, max(self.cg_tol, self.forcing * res)),
            min(LOOSEST, max(self.heat_tol, self.forcing * res)),
        )

    def needs_spread(self, exact: bool) -> bool:
        """Whether :meth:`tolerances` needs the iterate's spread ``F``."""
        return exact and self.bounded

    def exact_tolerances(self, spread: float) -> tuple[float, float]:
        """``(cg_tol, heat_tol)`` of an exact step under ``finish="bounded"``.

        Both are relative to ``||sigma phi||_2`` (CG's right-hand side is ``mu
        sigma phi`` and ``L_s + mu I >= mu``, so its error is as small; heat's
        budget is stated so), and the outputs return through ``1 / sigma``, so
        each adds at most ``tol_inner * F`` to the result's L1 error, with
        ``spread = F = ||sigma phi||_2 ||1 / sigma||_2`` (Cauchy-Schwarz, over
        linked particles; about 2 on R-MAT graphs). ``exact_share * tol / F``
        keeps that below ``exact_share`` of tol (1 % by default); ``cg_tol`` and
        ``heat_tol`` stay the floors.
        """
        share = self.exact_share * self.tol / spread if spread > 0 else LOOSEST
        share = min(LOOSEST, share)
        return max(self.cg_tol, share), max(self.heat_tol, share)

    def tolerances(self, res: float, exact: bool, spread: float = 0.0) -> tuple[float, float]:
        """``(cg_tol, heat_tol)`` of the next step: loose ones until the switch,
        then the floors (``finish="fixed"``) or :meth:`exact_tolerances`
        (``"bounded"``; ``spread`` as :meth:`needs_spread` asks)."""
        if not exact:
            return self.loose_tolerances(res)
        if self.bounded:
            return self.exact_tolerances(spread)
        return self.cg_tol, self.heat_tol

    def judge(self, res: float, last: float | None, exact: bool) -> Verdict:
        """The verdict on a step with L1 change ``res`` (``last``: the step
        before's, None on the first) taken with inner solves ``exact`` or not."""
        if res < self.tol and exact:
            return Verdict(True, True, False)
        if not exact and res < self.tol:
            return Verdict(False, True, True)
        if not exact and self.bounded and last is not None:
            return Verdict(False, res * min(1.0, res / last) < self.tol, False)
        return Verdict(False, exact, False)
