"""The design's local update rule for focus, run as a simulation of F's descent.

docs/focus.md ("Free energy") describes a rule each particle could run on its
own: move by

    dphi_i = -eta * (dE/dphi_i + s * T * (1 + ln phi_i))

then renormalise to mass 1 without a global softmax. ``s = +1`` (``sign=
"corrected"``) makes the step a gradient step on ``F = E - T S``, whose
minimiser is ``FreeEnergyModel.minimize(T)``; ``s = -1`` (``sign="design"``)
is the sign the design writes, a gradient step on ``E + T S``, which pushes
focus to the simplex's corners.

Two renormalisations, each with the total known exactly or estimated by
gossip:

- ``renorm="shift"``: ``phi_i = x_i - (t - 1) / n``, the Euclidean projection
  onto the hyperplane ``sum = 1``. Its fixed points are exactly the points
  where ``dF/dphi_i`` is the same on every particle: F's minimiser.
- ``renorm="divide"``: ``phi_i = x_i / t``, the design's wording. Its fixed
  points satisfy ``dF/dphi_i = phi_i * sum_j dF/dphi_j`` instead, which F's
  minimiser meets only when it is uniform or its multiplier is zero; the
  rule then settles at another point (measured by bench/local_rule.py).

Gossip (``total="gossip"``): every particle estimates the total from
``rounds`` of neighbour averaging with lazy Metropolis weights on ``A = W +
W^T`` (Xiao and Boyd 2004): ``y <- M y``, ``M_ij = 1 / (2 (1 + max(d_i,
d_j)))`` on each link, the rest of each row on the diagonal. M is symmetric
and doubly stochastic with eigenvalues in [0, 1], so each particle's ``n y_i``
tends to the total and after k rounds ``|n y_i - t| <= n rho^k ||x - mean||_2``
with ``rho`` its second largest eigenvalue (:meth:`LocalRule.gossip_bound`).
Particle count n is known to every particle (it is part of the graph's state).
On a graph of several components averaging never crosses between them, so
gossip is refused there.

How the rule's step must be bounded: near the minimiser the shift rule is
``phi <- phi - eta P H P (phi - phi_T)`` with ``H = Q + T diag(1 / phi)`` the
Hessian of F (Q the energy's, constant since E is quadratic) and P the
projection onto ``sum = 0``. It contracts iff ``eta < 2 / mu_max`` for
``mu_max`` the largest eigenvalue of PHP, at rate ``max |1 - eta mu|`` over
its eigenvalues; ``mu_max <= lambda_max(Q) + T / min phi``, so the entropy
term's curvature sets the bound wherever focus is small.
(:meth:`LocalRule.step_bound`.) The bound is local: far from the minimiser
(the first steps from a uniform start) a step under it can still take a
particle below zero, which ``guard`` (each particle keeps a share of its own
focus through a step) prevents without moving the fixed point.

Everything is float64 in a fixed order; the exact total is ``math.fsum``
(correctly rounded). The energy gradient is ``FreeEnergyModel``'s (scipy),
which is not a consensus computation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from focusflow.core.errors import InvalidParameterError
from focusflow.focus.energy import FreeEnergyModel

if TYPE_CHECKING:
    import scipy.sparse as sp

    from focusflow.focus.params import FocusParams
    from focusflow.focus.solver import GraphLike

Sign = Literal["corrected", "design"]
Renorm = Literal["shift", "divide"]
Total = Literal["exact", "gossip"]

#: Statuses of a run: the L1 change of a step fell below ``tol``; all steps
#: were taken; a particle's focus reached zero or below under the corrected
#: sign (the step overshot: ``ln phi`` is undefined there); under ``divide``
#: every entry of the step fell to zero or below, leaving nothing to share.
STATUSES = ("converged", "steps", "left_simplex", "no_mass")


@dataclass(frozen=True)
class LocalRun:
    """One run of the rule: its last distribution and per-step records.

    ``l1`` is the L1 distance to the target after each step (empty without a
    target); ``mass`` the exact sum after each step; ``total_error`` the largest
    relative error of the particles' estimates of the total (0 for the exact
    total); ``support`` how many particles hold focus; ``change`` the L1 size
    of each step.
    """

    phi: np.ndarray
    status: str
    steps: int
    l1: np.ndarray
    mass: np.ndarray
    total_error: np.ndarray
    support: np.ndarray
    change: np.ndarray


@dataclass(frozen=True)
class StepBound:
    """The curvature of F along the simplex at one point, and what it allows.

    ``mu_min`` and ``mu_max`` are the extreme eigenvalues of the projected
    Hessian PHP on ``sum = 0``; ``eta_max = 2 / mu_max`` is the largest step
    under which the shift rule contracts there; ``eta_best = 2 / (mu_min +
    mu_max)`` the step of fastest contraction, at ``rate_best``;
    ``lipschitz`` is the a-priori bound ``lambda_max(Q) + T / min phi`` on
    ``mu_max``.
    """

    mu_min: float
    mu_max: float
    lipschitz: float

    @property
    def eta_max(self) -> float:
        return 2.0 / self.mu_max

    @property
    def eta_best(self) -> float:
        return 2.0 / (self.mu_min + self.mu_max)

    @property
    def rate_best(self) -> float:
        return (self.mu_max - self.mu_min) / (self.mu_max + self.mu_min)

    def rate(self, eta: float) -> float:
        """The local contraction factor ``max |1 - eta mu|`` of the shift rule."""
        return max(abs(1.0 - eta * self.mu_min), abs(1.0 - eta * self.mu_max))


class LocalRule:
    """The local rule on one graph, with F's model and the gossip operator built once."""

    def __init__(
        self,
        graph: GraphLike,
        params: FocusParams | None = None,
        *,
        weights: tuple[float, float, float] | None = None,
        **overrides: Any,
    ) -> None:
        from focusflow.focus.solver import snapshot_of

        self.model = FreeEnergyModel(graph, params, weights=weights, **overrides)
        self.n = self.model.n
        snap, _ = snapshot_of(graph)
        self._mixing = _lazy_metropolis(snap.to_scipy())
        self._rho: float | None = None

    # --- gossip -------------------------------------------------------------
    @property
    def connected(self) -> bool:
        from scipy.sparse.csgraph import connected_components

        count, _ = connected_components(self._mixing, directed=False)
        return bool(count == 1)

    def gossip_total(self, x: np.ndarray, rounds: int) -> np.ndarray:
        """Each particle's estimate ``n y_i`` of ``sum x`` after ``rounds`` averagings."""
        if rounds < 0:
            raise InvalidParameterError(f"gossip rounds must be >= 0, got {rounds}")
        y = np.asarray(x, dtype=np.float64).copy()
        for _ in range(rounds):
            y = self._mixing @ y
        estimate: np.ndarray = self.n * y
        return estimate

    def gossip_rate(self) -> float:
        """``rho``: the second largest eigenvalue of the lazy Metropolis matrix
        (ARPACK Lanczos on M with its top eigenvector, the constant, deflated)."""
        if self._rho is None:
            self._rho = _second_eigenvalue(self._mixing)
        return self._rho

    def gossip_bound(self, x: np.ndarray, rounds: int) -> float:
        """The bound ``n rho^k ||x - mean||_2`` on every particle's error after k rounds."""
        x = np.asarray(x, dtype=np.float64)
        spread = float(np.linalg.norm(x - math.fsum(x.tolist()) / self.n))
        return float(self.n * self.gossip_rate() ** rounds * spread)

    def gossip_rounds_for(self, relative: float) -> int:
        """Rounds that bound every estimate's relative error by ``relative`` for
        any non-negative x (``||x - mean||_2 <= sum x``): ``ln(n / relative) /
        ln(1 / rho)`` rounded up."""
        if not (0 < relative < 1):
            raise InvalidParameterError(f"relative error must be in (0, 1), got {relative}")
        rho = self.gossip_rate()
        if rho <= 0:
            return 1
        return max(1, math.ceil(math.log(self.n / relative) / -math.log(rho)))

    # --- the rule -----------------------------------------------------------
    def gradient(self, phi: np.ndarray, temperature: float, sign: Sign = "corrected") -> np.ndarray:
        """``dE/dphi + s T (1 + ln phi)`` on the particles holding focus (0 elsewhere)."""
        g = self.model.energy_gradient(phi)
        if temperature > 0:
            s = 1.0 if sign == "corrected" else -1.0
            pos = phi > 0
            g[pos] += s * temperature * (1.0 + np.log(phi[pos]))
        return g

    def run(  # noqa: PLR0913 - keyword-only settings of one run, each with a default
        self,
        temperature: float,
        eta: float,
        steps: int,
        *,
        sign: Sign = "corrected",
        renorm: Renorm = "shift",
        total: Total = "exact",
        gossip_rounds: int = 0,
        phi0: np.ndarray | None = None,
        target: np.ndarray | None = None,
        tol: float = 0.0,
        guard: float = 0.0,
    ) -> LocalRun:
        """Run the rule from ``phi0`` (uniform by default) for at most ``steps`` steps.

        Under the design's sign a particle whose focus reaches zero stays there
        (its step would be ``-inf``) and negative entries after renormalising
        are cut to zero (so the mass can drift from 1: ``mass`` records it);
        ``shift`` then spreads the excess over the particles still holding
        focus, whose count is a total like the mass (gossiped alike);
        under the corrected sign reaching zero ends the run as
        ``left_simplex``. ``shift`` renormalises the step before anything is
        cut, so the constant part of the gradient never matters; ``divide``
        needs a non-negative vector to share out, so it cuts first.

        ``guard`` in [0, 1): each particle keeps at least that share of its
        focus through a step (``phi_i <- max(phi_i', guard * phi_i)``), a
        rule it can apply alone. It never binds at a fixed point, so the fixed
        points stay F's minimiser, but it stops a step far from the minimiser
        (the first steps from a uniform start) from overshooting zero; the mass
        it adds is taken back by the next renormalisation.
        """
        if not (0.0 <= guard < 1.0):
            raise InvalidParameterError(f"guard must be in [0, 1), got {guard}")
        self._check_run(temperature, eta, sign, renorm, total)
        n = self.n
        phi = np.full(n, 1.0 / n) if phi0 is None else np.array(phi0, dtype=np.float64)
        if phi.shape != (n,) or not np.all(np.isfinite(phi)) or phi.min() < 0:
            raise InvalidParameterError(f"phi0 must hold {n} finite values >= 0")
        l1: list[float] = []
        mass: list[float] = []
        err: list[float] = []
        support: list[int] = []
        change: list[float] = []
        status = "steps"
        for _ in range(steps):
            x = phi - eta * self.gradient(phi, temperature, sign)
            new, status, error = self._renormalise(
                phi, x, sign, renorm, total, gossip_rounds, guard
            )
            if new is None:
                break
            err.append(error)
            step = float(np.abs(new - phi).sum())
            phi = new
            change.append(step)
            mass.append(math.fsum(phi.tolist()))
            support.append(int(np.count_nonzero(phi)))
            if target is not None:
                l1.append(float(np.abs(phi - target).sum()))
            if step <= tol:
                status = "converged"
                break
        return LocalRun(
            phi=phi,
            status=status,
            steps=len(change),
            l1=np.array(l1),
            mass=np.array(mass),
            total_error=np.array(err),
            support=np.array(support, dtype=np.int64),
            change=np.array(change),
        )

    def _check_run(
        self, temperature: float, eta: float, sign: str, renorm: str, total: str
    ) -> None:
        if not (math.isfinite(eta) and eta > 0):
            raise InvalidParameterError(f"step size eta must be finite and > 0, got {eta}")
        if not (math.isfinite(temperature) and temperature > 0):
            raise InvalidParameterError(f"temperature must be finite and > 0, got {temperature}")
        if sign not in ("corrected", "design"):
            raise InvalidParameterError(f"sign must be 'corrected' or 'design', got {sign!r}")
        if renorm not in ("shift", "divide"):
            raise InvalidParameterError(f"renorm must be 'shift' or 'divide', got {renorm!r}")
        if total not in ("exact", "gossip"):
            raise InvalidParameterError(f"total must be 'exact' or 'gossip', got {total!r}")
        if total == "gossip" and not self.connected:
            raise InvalidParameterError(
                "gossip cannot estimate the total on a graph of several components"
            )

    def _renormalise(
        self,
        phi: np.ndarray,
        x: np.ndarray,
        sign: str,
        renorm: str,
        total: str,
        rounds: int,
        guard: float,
    ) -> tuple[np.ndarray | None, str, float]:
        """``(new phi, status, relative error of the total)`` after one step
        ``x``; no new phi when the step leaves the simplex or has no mass. The
        guard acts on the step before dividing (a share needs x > 0) and after
        shifting (the shift can take a small entry below zero)."""
        n = self.n
        frozen = phi <= 0  # reached zero under the design's sign: stays there
        x[frozen] = 0.0
        if not np.all(np.isfinite(x)):
            return None, "left_simplex", 0.0
        if renorm == "divide" and guard > 0:
            x = np.maximum(x, guard * phi)
        if renorm == "divide":  # a share of a total needs x >= 0 already
            if sign == "corrected" and x.min() <= 0:
                return None, "left_simplex", 0.0
            np.maximum(x, 0.0, out=x)
        exact = math.fsum(x.tolist())
        if renorm == "divide" and exact <= 0:
            return None, "no_mass", 0.0
        live = ~frozen
        if total == "exact":
            t = np.full(n, exact)
            count = np.full(n, float(np.count_nonzero(live)))
            error = 0.0
        else:
            t = self.gossip_total(x, rounds)
            count = self.gossip_total(live.astype(np.float64), rounds)
            error = float(np.abs(t - exact).max()) / abs(exact)
        if renorm == "shift":
            new = np.where(live, x - (t - 1.0) / np.where(live, count, 1.0), 0.0)
        else:
            new = x / t
        if renorm == "shift" and guard > 0:
            new = np.maximum(new, guard * phi)
        if sign == "corrected" and new.min() <= 0:
            return None, "left_simplex", error
        np.maximum(new, 0.0, out=new)
        new[frozen] = 0.0
        return new, "steps", error

    # --- the step bound -----------------------------------------------------
    def energy_hessian(self, v: np.ndarray) -> np.ndarray:
        """``Q v`` for the energy's constant Hessian Q. E is a quadratic form, so
        its gradient is linear: ``Q v = grad E(v+) - grad E(v-)`` with v's
        positive and negative parts (the model takes non-negative vectors)."""
        v = np.asarray(v, dtype=np.float64)
        plus = self.model.energy_gradient(np.maximum(v, 0.0))
        minus = self.model.energy_gradient(np.maximum(-v, 0.0))
        out: np.ndarray = plus - minus
        return out

    def step_bound(self, phi: np.ndarray, temperature: float, *, tol: float = 1e-10) -> StepBound:
        """The extreme eigenvalues of F's Hessian along the simplex at ``phi > 0``.

        ARPACK Lanczos (scipy ``eigsh``, float64) on ``v -> P H P v``; for the
        smallest one the constant direction (PHP's null vector) is lifted to
        ``mu_max`` so that it is not returned. ``lambda_max(Q)`` for the a-priori
        bound is a Lanczos run on Q alone.
        """
        from scipy.sparse.linalg import LinearOperator, eigsh

        phi = np.asarray(phi, dtype=np.float64)
        if phi.shape != (self.n,) or phi.min() <= 0:
            raise InvalidParameterError("the step bound needs phi > 0 everywhere")
        n = self.n
        inv = temperature / phi

        def project(v: np.ndarray) -> np.ndarray:
            out: np.ndarray = v - v.mean()
            return out

        def php(v: np.ndarray) -> np.ndarray:
            w = project(np.ravel(v))
            return project(self.energy_hessian(w) + inv * w)

        op = LinearOperator((n, n), matvec=php, dtype=np.float64)
        start = np.cos(np.arange(n, dtype=np.float64))  # fixed, not random: same run each time
        top = float(eigsh(op, k=1, which="LA", tol=tol, v0=start, return_eigenvectors=False)[0])

        def lifted(v: np.ndarray) -> np.ndarray:
            v = np.ravel(v)
            out: np.ndarray = php(v) + top * float(v.mean())
            return out

        low_op = LinearOperator((n, n), matvec=lifted, dtype=np.float64)
        low = float(eigsh(low_op, k=1, which="SA", tol=tol, v0=start, return_eigenvectors=False)[0])
        q_op = LinearOperator((n, n), matvec=self.energy_hessian, dtype=np.float64)
        q_top = float(eigsh(q_op, k=1, which="LA", tol=tol, v0=start, return_eigenvectors=False)[0])
        return StepBound(mu_min=low, mu_max=top, lipschitz=q_top + float(inv.max()))


def _lazy_metropolis(w: sp.spmatrix) -> sp.csr_matrix:
    """``M = (I + Metropolis(A)) / 2`` on the pattern of ``A = W + W^T`` without
    self-loops: symmetric, doubly stochastic, eigenvalues in [0, 1]."""
    import scipy.sparse as sp

    a = (w + w.T).tocoo()
    keep = (a.row != a.col) & (a.data > 0)
    n = w.shape[0]
    pattern = sp.csr_matrix((np.ones(int(keep.sum())), (a.row[keep], a.col[keep])), shape=(n, n))
    pattern.data[:] = 1.0  # duplicates summed by the constructor: one link each
    deg = np.asarray(pattern.sum(axis=1)).ravel()
    coo = pattern.tocoo()
    vals = 0.5 / (1.0 + np.maximum(deg[coo.row], deg[coo.col]))
    off = sp.csr_matrix((vals, (coo.row, coo.col)), shape=(n, n))
    diag = 1.0 - np.asarray(off.sum(axis=1)).ravel()
    mixing: sp.csr_matrix = (off + sp.diags(diag)).tocsr()
    return mixing


def _second_eigenvalue(m: sp.csr_matrix) -> float:
    """The second largest eigenvalue of a symmetric doubly stochastic M."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    n = m.shape[0]
    if n < 3:
        return float(np.sort(np.linalg.eigvalsh(m.toarray()))[-2]) if n == 2 else 0.0
    op = LinearOperator((n, n), matvec=lambda v: m @ (v - v.mean()), dtype=np.float64)
    start = np.cos(np.arange(n, dtype=np.float64))
    return float(eigsh(op, k=1, which="LA", tol=1e-12, v0=start, return_eigenvectors=False)[0])
