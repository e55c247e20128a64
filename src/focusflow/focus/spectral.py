"""Springs and heat: the two Laplacian operators of the tri-kernel.

Both act on a distribution ``phi`` through the symmetric form ``Ls`` of the
chosen Laplacian (see ``backends.base.laplacian_scaling``): with ``sigma`` the
scaling vector, ``L = sigma^-1 Ls sigma`` is the operator on distributions, so

* springs ``S(phi) = mu (L + mu I)^-1 phi = sigma^-1 y`` where
  ``(Ls + mu I) y = mu sigma phi`` is solved by Jacobi-preconditioned conjugate
  gradients, warm-started from the previous solution (Hestenes and Stiefel 1952);
* heat ``H(phi) = exp(-tau L) phi = sigma^-1 exp(-tau Ls) sigma phi`` is the
  Chebyshev expansion of ``exp(-tau x)`` on ``[0, lam_max]`` with coefficients
  from exponentially scaled modified Bessel functions, truncated where the
  coefficient tail bounds the error (Hochbruck and Lubich 1997; Higham, *Functions
  of Matrices*, 2008, ch. 10).

Both preserve total mass and non-negativity (exactly, and to the solver
tolerance respectively).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ive

from focusflow.focus.backends.base import GraphOperator


def heat_coefficients(c: float, tol: float) -> np.ndarray:
    """Chebyshev coefficients of ``exp(-c (1 + z))`` on ``z in [-1, 1]``.

    ``exp(-c(1+z)) = ive(0,c) + 2 sum_k (-1)^k ive(k,c) T_k(z)``; the series is cut
    at the first K whose remaining coefficients sum to at most ``tol`` (an upper
    bound of the truncation error in the 2-norm, since ``|T_k| <= 1``).
    """
    if c <= 0:
        return np.array([1.0])
    kmax = int(c + 12.0 * np.sqrt(c) + 60.0)
    k = np.arange(kmax + 1)
    a = 2.0 * ive(k, c) * np.where(k % 2 == 0, 1.0, -1.0)
    a[0] = ive(0, c)
    tail = np.cumsum(np.abs(a)[::-1])[::-1]
    keep = np.flatnonzero(tail <= tol)
    cut = int(keep[0]) if len(keep) else kmax + 1
    return a[: max(cut, 1)]


@dataclass
class SpringsState:
    """Warm-start state of the springs solve between iterations or blocks."""

    y: np.ndarray | None = None
    iterations: int = 0
    #: Residual and right-hand side of the last solve, and the operator they
    #: belong to (backends with ``springs_solve`` carry them to the next solve).
    r: np.ndarray | None = None
    rhs: np.ndarray | None = None
    owner: object = None


def _dot(op: GraphOperator, a: np.ndarray, b: np.ndarray) -> float:
    fast = getattr(op, "dot", None)
    return float(fast(a, b)) if fast is not None else float(a @ b)


def _norm(op: GraphOperator, a: np.ndarray) -> float:
    return float(np.sqrt(_dot(op, a, a)))


def springs(
    op: GraphOperator,
    phi: np.ndarray,
    mu: float,
    state: SpringsState,
    tol: float,
    max_iter: int,
    exact: bool = True,
) -> np.ndarray:
    """``S(phi)``: solve ``(Ls + mu I) y = mu sigma phi`` by PCG from ``state.y``.

    A backend may supply the whole solve (``op.springs_solve``); with ``exact``
    false it may start from the previous solve's residual instead of
    recomputing it.
    """
    fast = getattr(op, "springs_solve", None)
    if fast is not None:
        return fast(phi, mu, state, tol, max_iter, exact)
    sigma = op.lap_sigma
    rhs = mu * sigma * phi
    y = state.y.copy() if state.y is not None and len(state.y) == len(phi) else sigma * phi
    ap = np.empty_like(y)
    op.lap_matvec(y, ap)
    r = rhs - (ap + mu * y)
    minv = 1.0 / (op.lap_diag + mu)
    goal = tol * _norm(op, rhs)
    z = minv * r
    p = z.copy()
    rz = _dot(op, r, z)
    it = 0
    while _norm(op, r) > goal and it < max_iter:
        op.lap_matvec(p, ap)
        ap += mu * p
        step = rz / _dot(op, p, ap)
        y += step * p
        r -= step * ap
        z = minv * r
        rz_new = _dot(op, r, z)
        p *= rz_new / rz
        p += z
        rz = rz_new
        it += 1
    state.y = y
    state.iterations += it
    return y / sigma


@dataclass
class HeatState:
    """Last input and output of the heat operator, to apply it to differences."""

    phi: np.ndarray | None = None
    out: np.ndarray | None = None
    terms: int = 0
    #: Relative accuracy ``out`` was computed to.
    tol: float = np.inf


def _chebyshev(op: GraphOperator, v: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """``sum_k a_k T_k(Z) v`` with ``Z = (2 / lam_max) Ls - I`` (three-term recurrence)."""
    fast = getattr(op, "chebyshev", None)
    if fast is not None:
        return fast(v, coeffs)
    acc = coeffs[0] * v
    if len(coeffs) == 1:
        return acc
    scale = 2.0 / op.lam_max
    buf = np.empty_like(v)
    op.lap_matvec(v, buf)
    t_prev = v
    t_cur = scale * buf - v
    acc += coeffs[1] * t_cur
    for a_k in coeffs[2:]:
        op.lap_matvec(t_cur, buf)
        t_next = 2.0 * (scale * buf - t_cur) - t_prev
        acc += a_k * t_next
        t_prev, t_cur = t_cur, t_next
    return acc


def _heat_input(op, phi, tau, state, tol, incremental):
    """What to expand for ``H(phi)``: ``(v, coeffs, rel, base)``.

    ``v`` (symmetric frame) is ``sigma phi``, or the change ``sigma (phi -
    state.phi)`` when ``incremental`` and the stored result is at least as
    accurate as asked (then ``base`` is that result and ``rel`` the relative
    accuracy that keeps the absolute error at ``tol * ||sigma phi||``).
    """
    sigma = op.lap_sigma
    c = tau * op.lam_max / 2.0
    if incremental and state.phi is not None and len(state.phi) == len(phi) and state.tol <= tol:
        delta = sigma * (phi - state.phi)
        size = _norm(op, delta)
        base = _norm(op, sigma * phi)
        rel = min(0.5, tol * base / size) if size > 0 else 0.5
        return delta, heat_coefficients(c, rel), rel, state.out
    return sigma * phi, heat_coefficients(c, tol), tol, None


def _heat_finish(op, phi, state, tol, acc, coeffs, base) -> np.ndarray:
    out = acc / op.lap_sigma
    if base is not None:
        out += base
    state.phi = phi.copy()
    state.out = out
    state.tol = tol
    state.terms += len(coeffs)
    return out


def heat(
    op: GraphOperator,
    phi: np.ndarray,
    tau: float,
    state: HeatState,
    tol: float,
    incremental: bool = True,
) -> np.ndarray:
    """``H(phi)`` to within ``tol * ||sigma phi||_2`` (in the symmetric frame).

    Heat is linear, so ``H(phi) = H(phi_prev) + H(phi - phi_prev)``: with
    ``incremental`` the operator is applied to the difference, which shrinks as
    the solver converges and needs fewer Chebyshev terms for the same error
    bound. The errors of successive differences add up in the running sum, so
    this is only used with a tight ``tol``, and only on top of a result that
    was itself computed to ``tol`` or better; loose solves apply heat afresh.
    """
    if op.lam_max <= 0.0:
        return phi.copy()
    v, coeffs, _, base = _heat_input(op, phi, tau, state, tol, incremental)
    acc = _chebyshev(op, v, coeffs)
    return _heat_finish(op, phi, state, tol, acc, coeffs, base)


def springs_and_heat(
    op: GraphOperator,
    phi: np.ndarray,
    mu: float,
    tau: float,
    s_state: SpringsState,
    h_state: HeatState,
    cg_tol: float,
    heat_tol: float,
    cg_max_iter: int,
    exact: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """``(S(phi), H(phi))`` as ``springs`` and ``heat`` compute them.

    A backend with ``springs_heat`` runs the CG steps and the Chebyshev terms
    side by side, one pass over the matrix for each pair (the two solves are
    independent given ``phi``); the answers are the same as apart.
    """
    fused = getattr(op, "springs_heat", None)
    if fused is None or op.lam_max <= 0.0:
        return (
            springs(op, phi, mu, s_state, cg_tol, cg_max_iter, exact),
            heat(op, phi, tau, h_state, heat_tol, incremental=exact),
        )
    v, coeffs, _, base = _heat_input(op, phi, tau, h_state, heat_tol, exact)
    s_out, acc = fused(phi, mu, s_state, cg_tol, cg_max_iter, exact, v, coeffs)
    return s_out, _heat_finish(op, phi, h_state, heat_tol, acc, coeffs, base)
