"""The free energy F(phi) of a focus distribution, its terms, and its minimiser.

The engine computes focus as the fixed point of a linear blend of three
operators (solver.py). The same operators also define a free energy over
distributions: the two Laplacian operators are exact gradient steps on a
spring and a heat energy, and the diffusion step leaves a residual whose
square measures how far a distribution is from diffusion's own equilibrium.
Adding an entropy term at temperature T gives

    F(phi) = lambda_s E_spring(phi) + lambda_d E_diff(phi) + lambda_h C(phi) - T S(phi)

whose unique minimiser over the simplex (T > 0) is a Boltzmann distribution
``phi_i ~ exp(-dE/dphi_i / T)`` of the energies' own gradients. docs/focus.md
("Free energy") derives each term, shows why the engine's fixed point is not
this minimiser, and gives the measured distance between the two.

Everything here is float64 and built with scipy.sparse from the snapshot's
weights, independently of the engine's backends, so it can check them. scipy is
imported when a model is built, not when this module is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from focusflow.core.errors import InvalidParameterError
from focusflow.focus.params import FocusParams, make_params

if TYPE_CHECKING:
    import scipy.sparse as sp

    from focusflow.focus.solver import GraphLike
    from focusflow.graph.snapshot import Snapshot

#: A particle whose degree in ``A = W + W^T`` is at most this fraction of the
#: largest counts as unlinked for springs and heat, as in the engine
#: (backends.base.DEGREE_FLOOR; docs/focus.md, "The Laplacian").
DEGREE_FLOOR = 1e-12
#: Relative residual of the springs solve: far below anything F is compared at.
CG_RTOL = 1e-13


@dataclass(frozen=True)
class FreeEnergy:
    """The terms of F at one distribution, and the coefficients that weigh them.

    ``spring``, ``diffusion`` and ``heat`` are E_spring, E_diff and C (each >= 0,
    dimensionless: chi-square-like quadratic forms); ``entropy`` is the Shannon
    entropy in nats. ``total`` is F.
    """

    spring: float
    diffusion: float
    heat: float
    entropy: float
    weights: tuple[float, float, float]
    temperature: float

    @property
    def energy(self) -> float:
        """The weighted energy without the entropy term (F at T = 0)."""
        lam_d, lam_s, lam_h = self.weights
        return lam_s * self.spring + lam_d * self.diffusion + lam_h * self.heat

    @property
    def total(self) -> float:
        """``F = energy - T * entropy``."""
        return self.energy - self.temperature * self.entropy

    def as_dict(self) -> dict[str, float]:
        return {
            "F": self.total,
            "energy": self.energy,
            "E_spring": self.spring,
            "E_diff": self.diffusion,
            "C_heat": self.heat,
            "entropy_nats": self.entropy,
            "temperature": self.temperature,
        }


def energy_weights(
    weights: tuple[float, float, float] | None, params: FocusParams
) -> tuple[float, float, float]:
    """F's coefficients (diffusion, springs, heat): ``weights``, or the blend's."""
    w = tuple(float(x) for x in (params.weights if weights is None else weights))
    if len(w) != 3 or any(not math.isfinite(x) or x < 0 for x in w):
        raise InvalidParameterError(
            f"energy weights need 3 finite values >= 0 (diffusion, springs, heat), got {w}"
        )
    return w[0], w[1], w[2]


def _temperature(temperature: float) -> float:
    t = float(temperature)
    if not (math.isfinite(t) and t >= 0):
        raise InvalidParameterError(f"temperature must be finite and >= 0, got {temperature}")
    return t


class FreeEnergyModel:
    """F for one graph and one set of focus parameters, with its operators built once.

    Vectors are indexed by particle id (as ``FocusResult.focus``). The
    quadratic terms are

    - ``E_spring = 1/2 <phi, (I - S) phi>_G`` with ``S = mu (L + mu I)^-1``;
    - ``C = 1/2 <phi, (I - H) phi>_G`` with ``H = exp(-tau L)``;
    - ``E_diff = n/2 ||phi - D(phi)||^2`` with D the diffusion step;

    where L is the engine's Laplacian and ``G = diag(1/pi)`` the chi-square
    metric of its reference distribution pi (degree-proportional for the
    normalized Laplacian, uniform for the combinatorial one), in which L, S and H
    are self-adjoint. In the symmetric frame ``psi = sigma * phi`` (sigma =
    d^-1/2, or 1) these read ``kappa/2 psi^T (I - S_s) psi`` with kappa = vol
    or n, which is how they are computed.
    """

    def __init__(
        self,
        graph: GraphLike,
        params: FocusParams | None = None,
        *,
        weights: tuple[float, float, float] | None = None,
        **overrides: Any,
    ) -> None:
        import scipy.sparse as sp

        from focusflow.focus.solver import snapshot_of

        p = make_params(params, **overrides)
        if p.mode == "cyberank":
            raise InvalidParameterError("the free energy is defined for tri and diffusion focus")
        self.params = p
        self.weights = energy_weights(weights, p)
        snap, _ = snapshot_of(graph)
        w = snap.to_scipy().astype(np.float64)
        n = w.shape[0]
        self.n = n
        out = np.asarray(w.sum(axis=1)).ravel()
        self.dangling = out <= 0
        inv = np.divide(1.0, out, out=np.zeros(n), where=~self.dangling)
        self._pt = (sp.diags(inv) @ w).T.tocsr()  # P^T, P = row-normalised W
        self.prior = self._prior(snap, w, out)
        a = (w + w.T).tocsr()
        degree = np.asarray(a.sum(axis=1)).ravel()
        linked = degree > 0
        if p.laplacian == "normalized":
            if n:
                linked &= degree > DEGREE_FLOOR * degree.max()
            keep = sp.diags(linked.astype(np.float64))
            a = (keep @ a @ keep).tocsr()
            degree = np.where(linked, degree, 0.0)
            sigma = np.where(linked, 1.0 / np.sqrt(np.where(linked, degree, 1.0)), 0.0)
            ls = sp.diags(linked.astype(np.float64)) - sp.diags(sigma) @ a @ sp.diags(sigma)
            self.kappa = float(degree.sum())
        else:
            sigma = np.ones(n)
            ls = sp.diags(degree) - a
            self.kappa = float(n)
        self.sigma = sigma
        self.linked = linked
        self._ls = ls.tocsr()
        self._shifted = (self._ls + p.mu * sp.identity(n, format="csr")).tocsr()
        self._jacobi = 1.0 / (self._ls.diagonal() + p.mu)

    def _prior(self, snap: Snapshot, w: sp.csr_matrix, out: np.ndarray) -> np.ndarray:
        """The teleport distribution u in particle order, as solver.prior_vector defines it."""
        prior = self.params.prior
        n = self.n
        if isinstance(prior, str) and prior == "uniform":
            return np.full(n, 1.0 / n)
        if isinstance(prior, str):  # "stake": weight touching each particle
            touch = out + np.asarray(w.sum(axis=0)).ravel()
            total = touch.sum()
            return touch / total if total > 0 else np.full(n, 1.0 / n)
        vec = np.asarray(prior, dtype=np.float64)
        if vec.shape != (n,) or not np.all(np.isfinite(vec)) or vec.min() < 0 or vec.sum() <= 0:
            raise InvalidParameterError(
                f"prior vector must have {n} finite entries >= 0, not all zero"
            )
        normalised: np.ndarray = vec / vec.sum()
        return normalised

    # --- the operators ------------------------------------------------------
    def diffusion(self, phi: np.ndarray) -> np.ndarray:
        """``D(phi) = alpha P^T phi + (alpha * dangling mass + (1 - alpha) * mass) u``."""
        alpha = self.params.alpha
        mass = alpha * float(phi[self.dangling].sum()) + (1.0 - alpha) * float(phi.sum())
        step: np.ndarray = alpha * (self._pt @ phi) + mass * self.prior
        return step

    def _diffusion_adjoint(self, r: np.ndarray) -> np.ndarray:
        """``M_D^T r`` for the matrix ``M_D`` with ``D(phi) = M_D phi``."""
        alpha = self.params.alpha
        back: np.ndarray = alpha * (self._pt.T @ r)
        ur = float(self.prior @ r)
        back += (1.0 - alpha) * ur
        back[self.dangling] += alpha * ur
        return back

    def springs(self, phi: np.ndarray) -> np.ndarray:
        """``S(phi) = mu (L + mu I)^-1 phi`` (identity on unlinked particles)."""
        return self._from_frame(self._springs_frame(self.sigma * phi), phi)

    def heat(self, phi: np.ndarray) -> np.ndarray:
        """``H(phi) = exp(-tau L) phi`` (identity on unlinked particles)."""
        return self._from_frame(self._heat_frame(self.sigma * phi), phi)

    def _from_frame(self, y: np.ndarray, phi: np.ndarray) -> np.ndarray:
        out = np.array(phi, dtype=np.float64)
        out[self.linked] = y[self.linked] / self.sigma[self.linked]
        return out

    def _springs_frame(self, psi: np.ndarray) -> np.ndarray:
        from scipy.sparse.linalg import LinearOperator, cg

        n = self.n
        pre = LinearOperator((n, n), matvec=lambda v: self._jacobi * v, dtype=np.float64)
        rhs = self.params.mu * psi
        y: np.ndarray
        y, info = cg(
            self._shifted, rhs, x0=psi.copy(), rtol=CG_RTOL, atol=0.0, M=pre, maxiter=50 * n + 100
        )
        if info != 0:
            raise ArithmeticError(f"springs solve did not converge (cg info {info})")
        return y

    def _heat_frame(self, psi: np.ndarray) -> np.ndarray:
        from scipy.sparse.linalg import expm_multiply

        heated: np.ndarray = expm_multiply(-self.params.tau * self._ls, psi)
        return heated

    # --- F ------------------------------------------------------------------
    def _parts(
        self, phi: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        phi = np.asarray(phi, dtype=np.float64)
        if phi.shape != (self.n,):
            raise InvalidParameterError(f"focus vector must have {self.n} entries, got {phi.shape}")
        if not np.all(np.isfinite(phi)) or (self.n and phi.min() < 0):
            raise InvalidParameterError("focus vector must be finite and >= 0")
        psi = self.sigma * phi
        ks = psi - self._springs_frame(psi)  # (I - S_s) psi
        kh = psi - self._heat_frame(psi)  # (I - H_s) psi
        r = phi - self.diffusion(phi)
        return phi, psi, ks, kh, r

    def terms(self, phi: np.ndarray, temperature: float = 0.0) -> FreeEnergy:
        """Each term of F at ``phi`` (which should sum to 1: F is defined on the simplex)."""
        t = _temperature(temperature)
        phi, psi, ks, kh, r = self._parts(phi)
        pos = phi[phi > 0]
        return FreeEnergy(
            spring=0.5 * self.kappa * float(psi @ ks),
            diffusion=0.5 * self.n * float(r @ r),
            heat=0.5 * self.kappa * float(psi @ kh),
            entropy=float(-(pos * np.log(pos)).sum()),
            weights=self.weights,
            temperature=t,
        )

    def value(self, phi: np.ndarray, temperature: float) -> float:
        return self.terms(phi, temperature).total

    def value_and_gradient(self, phi: np.ndarray, temperature: float) -> tuple[float, np.ndarray]:
        """F and its Euclidean gradient at a positive ``phi``.

        ``dE_spring = kappa sigma (I - S_s) psi`` (G(I - S) is symmetric),
        likewise heat; ``dE_diff = n (I - M_D)^T r`` with ``r = phi - D(phi)``;
        ``d(-T S) = T (1 + ln phi)``.
        """
        t = _temperature(temperature)
        logp = None
        if t > 0:
            p = np.asarray(phi, dtype=np.float64)
            if self.n and p.min() <= 0:
                raise InvalidParameterError("the entropy gradient needs phi > 0 everywhere")
            logp = np.log(p)
        return self._value_and_gradient(phi, logp, t)

    def _value_and_gradient(
        self, phi: np.ndarray, logp: np.ndarray | None, t: float
    ) -> tuple[float, np.ndarray]:
        """As value_and_gradient, with ``ln phi`` given (the minimiser keeps it in
        the log domain, where entries far below 1e-308 still have a logarithm)."""
        phi, psi, ks, kh, r = self._parts(phi)
        lam_d, lam_s, lam_h = self.weights
        grad = self.kappa * self.sigma * (lam_s * ks + lam_h * kh)
        grad += lam_d * self.n * (r - self._diffusion_adjoint(r))
        value = 0.5 * self.kappa * float(psi @ (lam_s * ks + lam_h * kh))
        value += 0.5 * lam_d * self.n * float(r @ r)
        if t > 0 and logp is not None:
            grad += t * (1.0 + logp)
            value += t * float(phi @ logp)
        return value, grad

    def energy_gradient(self, phi: np.ndarray) -> np.ndarray:
        """The gradient of the energy alone (F at T = 0): the per-particle energies
        ``E_i`` of the Boltzmann form ``phi_i ~ exp(-E_i / T)``."""
        return self.value_and_gradient(phi, 0.0)[1]

    def boltzmann_residual(self, phi: np.ndarray, temperature: float) -> float:
        """``||phi - softmax(-E(phi) / T)||_1``: zero exactly at the minimiser of F."""
        t = _temperature(temperature)
        if t == 0:
            raise InvalidParameterError("the Boltzmann form needs temperature > 0")
        return self._boltzmann(np.asarray(phi), t)[0]

    def _boltzmann(self, phi: np.ndarray, t: float) -> tuple[float, np.ndarray]:
        """``(||phi - q||_1, q)`` with ``q = softmax(-E(phi) / T)``."""
        e = -self.energy_gradient(phi) / t
        q = np.exp(e - e.max())
        q /= q.sum()
        return float(np.abs(phi - q).sum()), q

    def minimize(
        self,
        temperature: float,
        x0: np.ndarray | None = None,
        *,
        gtol: float = 1e-12,
        max_iter: int = 20_000,
    ) -> np.ndarray:
        """The minimiser of F over the simplex (unique for T > 0).

        L-BFGS over logits ``z`` with ``phi = softmax(z)``: F is strictly convex
        on the simplex for T > 0, and every stationary point in z satisfies the
        simplex's KKT condition (the gradient equal on every particle), so the
        point found is the minimiser. ``x0`` (a positive distribution) starts it.
        """
        from scipy.optimize import minimize
        from scipy.special import logsumexp

        t = _temperature(temperature)
        if t == 0:
            raise InvalidParameterError("the minimiser is computed for temperature > 0")
        start = np.full(self.n, 1.0 / self.n) if x0 is None else np.asarray(x0, dtype=np.float64)
        z0 = np.log(np.maximum(start, 1e-300))

        def fun(z: np.ndarray) -> tuple[float, np.ndarray]:
            logp = z - logsumexp(z)
            phi = np.exp(logp)
            f, g = self._value_and_gradient(phi, logp, t)
            return f, phi * (g - float(phi @ g))

        res = minimize(
            fun,
            z0 - z0.max(),
            jac=True,
            method="L-BFGS-B",
            options={"gtol": gtol, "ftol": 0.0, "maxiter": max_iter, "maxcor": 30},
        )
        minimiser: np.ndarray = np.exp(res.x - logsumexp(res.x))
        return self._polish(minimiser, t)

    def _polish(self, phi: np.ndarray, t: float, steps: int = 64) -> np.ndarray:
        """Damped Boltzmann steps ``phi <- (1 - eta) phi + eta softmax(-E(phi) / T)``,
        each kept only if it lowers :meth:`boltzmann_residual`.

        L-BFGS-B stops where F's change falls below its rounding (a distance
        near the square root of machine precision from the minimiser, and where
        exactly depends on the SciPy release); the stationarity residual is
        still measurable there, so these steps go on from where values can no
        longer tell better from worse, and never make the point worse.
        """
        residual, target = self._boltzmann(phi, t)
        eta = 1.0
        for _ in range(steps):
            if residual == 0.0 or eta < 1e-6:
                break
            trial = (1.0 - eta) * phi + eta * target
            got, trial_target = self._boltzmann(trial, t)
            if got < residual:
                phi, residual, target = trial, got, trial_target
            else:
                eta *= 0.5
        return phi


def free_energy(
    graph: GraphLike,
    phi: np.ndarray,
    params: FocusParams | None = None,
    *,
    temperature: float = 0.0,
    weights: tuple[float, float, float] | None = None,
    **overrides: Any,
) -> FreeEnergy:
    """F and its terms for a focus vector on a graph: ``free_energy(g, result.focus)``.

    ``params`` and the keyword overrides are those of ``compute`` (alpha, mu,
    tau, laplacian, prior); ``weights`` are F's coefficients (lambda_d,
    lambda_s, lambda_h), by default the blend's; ``temperature`` is T >= 0.
    """
    model = FreeEnergyModel(graph, params, weights=weights, **overrides)
    return model.terms(phi, temperature)
