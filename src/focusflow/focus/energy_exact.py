"""The minimiser of the free energy F with the same bits on every machine.

``FreeEnergyModel.minimize`` (energy.py) finds ``phi_T = argmin F`` by L-BFGS,
whose path depends on the build: scipy's line search, BLAS's dot products and
libm's ``exp`` and ``log`` each round as the machine does, so two validators
would commit different roots. This module computes the same minimiser with
operations that this code fixes, so that a chain can commit it:

* the energy gradient ``grad E(phi)`` from the exact operator of ``exact-v2``
  (``backends.numba_cpu.ExactNumbaOperator``): its springs CG and heat
  Chebyshev series side by side (``springs_heat``, with the heat coefficients
  of ``spectral.heat_series(..., exact=True)``) and its diffusion pull; the
  diffusion adjoint is a pull over the out-links, one thread per particle, each
  row summed in storage order;
* every sum over particles in chunks of ``TREE_CHUNK`` values added in index
  order, their partials combined by ``reduce.tree_sum``, so the thread count
  cannot change a bit;
* every ``exp`` and ``log`` by ``exact_math``; no kernel contracts or
  reassociates (``fastmath=False``).

The iteration is mirror descent on the simplex in the entropy geometry, which
is the damped Boltzmann fixed point in the log domain::

    log phi <- (1 - eta) log phi + eta log softmax(-grad E(phi) / T)

(renormalised). Its fixed points are exactly F's minimiser (the Boltzmann form,
docs/focus.md section 9). Why eta matters: linearised at the fixed point the
step acts on log phi as ``(1 - eta) I - (eta / T) K``, where K (the energy's
Hessian scaled by phi, ``diag(phi)^1/2 Hess E diag(phi)^1/2``) has its
spectrum in ``[0, L]``; the step contracts iff ``eta < 2T / (T + L)``, fastest
at ``eta = 2T / (2T + L)``. L depends on the graph and on phi: on a random
directed graph of 200 particles at T = 1 the measured rate at eta = 0.5 was
0.60 (L near 2.2), and eta = 0.7, past the bound 0.63, cycled between two
vertices; on the bostrom sample eta settles near 0.07 at T = 1. So no fixed
eta serves every input, and the step is found as it goes: a step is kept when
it lowers F, or, once F's change is below its rounding, when it lowers the
residual ``m`` (below); a kept step multiplies eta by ``ETA_GROW``, a refused
one halves it. Every quantity these tests read is computed in the fixed
arithmetic above, so every machine keeps and refuses the
same steps, stops at the same iteration, and returns the same bits.

Why that alone is slow: eta held under the contraction bound makes the rate
``1 - eta`` on K's small eigenvalues, thousands of evaluations on R-MAT graphs.
So each step is first tried as a type-II Anderson step (Anderson 1965; Walker
and Ni 2011) on the log-domain map ``G(y) = log softmax(-grad E(softmax y)/T)``
with residual ``r = G(y) - y``, damped by the same eta::

    y+ = y + eta r - sum_j gamma_j (dy_j + eta dr_j)

over the last ``window`` differences ``dy_j``, ``dr_j`` of kept points, gamma
minimising ``|| r - sum_j gamma_j dr_j ||`` in the inner product of m (phi
weighted, phi-mean removed: the least squares minimise m to first order). The
Gram products are tree sums like every other; gamma comes from
``anderson.solve_gram``, an elimination in a fixed order in Python floats,
not LAPACK, whose kernels differ per CPU. The safeguard is the test above: an
Anderson step is kept only when it lowers F (or m, F level); otherwise the
history restarts and the plain damped step is taken from the same point.
Why it works here: linearised, the step's matrix ``(1 - eta) I - (eta / T) K``
is symmetric in that inner product, where Anderson mixing acts as a short
Krylov recurrence and its rate no longer waits on K's smallest eigenvalues.
Measured: 2 to 3 times fewer evaluations on the bostrom sample, about 10 times
fewer on R-MAT 12 (docs/focus.md section 9).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numba as nb
import numpy as np

from focusflow.core.errors import InvalidParameterError
from focusflow.focus.anderson import RCOND, solve_gram
from focusflow.focus.backends import get_backend
from focusflow.focus.backends.exact_tree import dot
from focusflow.focus.energy import energy_weights
from focusflow.focus.exact_math import exp_exact, log_exact
from focusflow.focus.params import EXACT_V2, FocusParams, make_params
from focusflow.focus.reduce import TREE_CHUNK, chunked_sum, tree_sum
from focusflow.focus.solver import make_operator, prior_vector, snapshot_of
from focusflow.focus.spectral import SpringsState, heat_series

if TYPE_CHECKING:
    from focusflow.focus.backends.numba_cpu import ExactNumbaOperator
    from focusflow.focus.result import Diagnostics
    from focusflow.focus.solver import GraphLike
    from focusflow.graph.snapshot import Snapshot

#: The springs solve's relative residual: far below the minimiser's own
#: accuracy, as in the float64 model (energy.CG_RTOL).
CG_TOL = 1e-13
#: The heat series' truncation bound, relative to ``||sigma phi||_2``.
HEAT_TOL = 1e-15
#: The default stop: ``sqrt(m) <= tol``, ``m`` the chi-square distance of the
#: Boltzmann target from phi, which bounds the L1 residual to first order.
TOL = 1e-12
#: The default cap on gradient evaluations (kept and refused steps).
MAX_ITER = 20_000
#: Growth of eta after a kept step, up to 1 (measured: 1.1 took the fewest
#: evaluations of 1.0, 1.1, 1.3 and 1.5 on a random graph and on the bostrom
#: sample at T = 1, 0.1 and 0.01).
ETA_GROW = 1.1
#: Below this eta no step can move phi by more than its rounding: the
#: iteration has stalled at the accuracy F and m can still tell apart.
ETA_MIN = 1e-12
#: How far above the previous F a step may end and still be kept when it
#: lowers m, relative to ``|E| + T |sum phi log phi|``: the rounding of F's
#: sums, where F no longer orders two nearby points.
F_SLACK = 1e-12
#: Where a warm start has a zero entry its logarithm starts here (the
#: smallest normal double's), so that mass can flow back to it.
LOG_FLOOR = -708.3964185322641
#: The default Anderson window: how many differences of kept points the
#: mixed step combines (0: the plain damped iteration). Measured at 3, 5 and 8
#: on a random graph, the bostrom sample and R-MAT 12 at T = 1 and 0.1: 5 took
#: fewer evaluations than 3 on every input; 8 a few fewer than 5 on some, but
#: more on bostrom at T = 0.1, and it stalled on R-MAT 12 at T = 0.1.
WINDOW = 5


# --- kernels: each output element by one thread, every sum in fixed chunks ----
@nb.njit(cache=True, parallel=True, fastmath=False)
def _degree(
    out_ptr: np.ndarray,
    out_w: np.ndarray,
    ov_out_ptr: np.ndarray,
    ov_out_w: np.ndarray,
    in_ptr: np.ndarray,
    in_w: np.ndarray,
    ov_in_ptr: np.ndarray,
    ov_in_w: np.ndarray,
    out: np.ndarray,
) -> None:
    """``out[p]``: the weight of ``A = W + W^T`` at p (out-links, then
    in-links, base before overlay, each row in storage order)."""
    for p in nb.prange(out.shape[0]):
        s = 0.0
        for k in range(out_ptr[p], out_ptr[p + 1]):
            s += out_w[k]
        for k in range(ov_out_ptr[p], ov_out_ptr[p + 1]):
            s += ov_out_w[k]
        for k in range(in_ptr[p], in_ptr[p + 1]):
            s += in_w[k]
        for k in range(ov_in_ptr[p], ov_in_ptr[p + 1]):
            s += ov_in_w[k]
        out[p] = s


@nb.njit(cache=True, parallel=True, fastmath=False)
def _adjoint_pull(
    out_ptr: np.ndarray,
    out_idx: np.ndarray,
    out_w: np.ndarray,
    ov_out_ptr: np.ndarray,
    ov_out_idx: np.ndarray,
    ov_out_w: np.ndarray,
    inv_out: np.ndarray,
    r: np.ndarray,
    out: np.ndarray,
) -> None:
    """``out = P r`` (``P = D_out^-1 W``, the transpose of the diffusion
    pull ``P^T``): each particle's out-row summed in storage order, base then
    overlay, then divided by its out-weight."""
    for p in nb.prange(out.shape[0]):
        s = 0.0
        for k in range(out_ptr[p], out_ptr[p + 1]):
            s += out_w[k] * r[out_idx[k]]
        for k in range(ov_out_ptr[p], ov_out_ptr[p + 1]):
            s += ov_out_w[k] * r[ov_out_idx[k]]
        out[p] = s * inv_out[p]


@nb.njit(cache=True, parallel=True, fastmath=False)
def _gradient(  # noqa: PLR0913 - a numba kernel takes flat arrays and scalars
    phi: np.ndarray,
    spr: np.ndarray,
    heat: np.ndarray,
    ginv: np.ndarray,
    r: np.ndarray,
    back: np.ndarray,
    dangling: np.ndarray,
    ur: float,
    alpha: float,
    lam_d: float,
    lam_s: float,
    lam_h: float,
    scale_d: float,
    out: np.ndarray,
) -> None:
    """``out = lam_s G (phi - S phi) + lam_h G (phi - H phi) + lam_d n (r - M_D^T r)``
    with ``M_D^T r = alpha P r + ((1 - alpha) + alpha [dangling]) (u . r)``."""
    tele = (1.0 - alpha) * ur
    for i in nb.prange(phi.shape[0]):
        adj = alpha * back[i] + tele
        if dangling[i]:
            adj = adj + alpha * ur
        g = lam_s * (ginv[i] * (phi[i] - spr[i]))
        g = g + lam_h * (ginv[i] * (phi[i] - heat[i]))
        out[i] = g + lam_d * (scale_d * (r[i] - adj))


@nb.njit(cache=True, parallel=True, fastmath=False)
def _log_softmax(a: np.ndarray, scale: float, out: np.ndarray) -> None:
    """``out = log softmax(scale * a)`` with exact exp and log; the maximum
    is the same whatever the order it is found in."""
    n = a.shape[0]
    top = -math.inf
    for i in range(n):
        v = scale * a[i]
        if v > top:
            top = v
    chunks = (n + TREE_CHUNK - 1) // TREE_CHUNK
    partial = np.zeros(chunks)
    for c in nb.prange(chunks):
        s = 0.0
        for i in range(c * TREE_CHUNK, min(n, (c + 1) * TREE_CHUNK)):
            v = scale * a[i] - top
            out[i] = v
            s += exp_exact(v)
        partial[c] = s
    shift = log_exact(tree_sum(partial))
    for i in nb.prange(n):
        out[i] = out[i] - shift


@nb.njit(cache=True, parallel=True, fastmath=False)
def _mix(z: np.ndarray, lq: np.ndarray, eta: float, out: np.ndarray) -> None:
    """``out = (1 - eta) z + eta lq`` (not normalised)."""
    keep = 1.0 - eta
    for i in nb.prange(z.shape[0]):
        out[i] = keep * z[i] + eta * lq[i]


@nb.njit(cache=True, parallel=True, fastmath=False)
def _exp_into(z: np.ndarray, out: np.ndarray) -> None:
    for i in nb.prange(z.shape[0]):
        out[i] = exp_exact(z[i])


@nb.njit(cache=True, parallel=True, fastmath=False)
def _log_into(x: np.ndarray, out: np.ndarray) -> None:
    """``out = log x``, LOG_FLOOR where ``x`` is 0."""
    for i in nb.prange(x.shape[0]):
        out[i] = log_exact(x[i]) if x[i] > 0.0 else LOG_FLOOR


@nb.njit(cache=True, parallel=True, fastmath=False)
def _residuals(phi: np.ndarray, z: np.ndarray, lq: np.ndarray) -> tuple[float, float]:
    """``(m, l1)``: ``m = sum phi (d - c)^2`` with ``d = log q - log phi``
    and ``c = sum phi d`` (the chi-square distance of q from phi to second
    order, zero exactly at a fixed point), and ``l1 = ||phi - q||_1``."""
    n = phi.shape[0]
    chunks = (n + TREE_CHUNK - 1) // TREE_CHUNK
    p_c = np.zeros(chunks)
    p_l1 = np.zeros(chunks)
    for c in nb.prange(chunks):
        s = 0.0
        a = 0.0
        for i in range(c * TREE_CHUNK, min(n, (c + 1) * TREE_CHUNK)):
            s += phi[i] * (lq[i] - z[i])
            a += abs(exp_exact(lq[i]) - phi[i])
        p_c[c] = s
        p_l1[c] = a
    centre = tree_sum(p_c)
    p_m = np.zeros(chunks)
    for c in nb.prange(chunks):
        s = 0.0
        for i in range(c * TREE_CHUNK, min(n, (c + 1) * TREE_CHUNK)):
            d = (lq[i] - z[i]) - centre
            s += phi[i] * (d * d)
        p_m[c] = s
    return tree_sum(p_m), tree_sum(p_l1)


@nb.njit(cache=True, parallel=True, fastmath=False)
def _record(
    z: np.ndarray,
    lq: np.ndarray,
    z_prev: np.ndarray,
    r_prev: np.ndarray,
    dz: np.ndarray,
    dr: np.ndarray,
    slot: int,
    have_prev: bool,
) -> None:
    """Put a kept point's differences from the previous kept one into row
    ``slot`` of ``dz`` and ``dr`` (``r = log q - log phi``, the fixed-point
    map's residual), then make it the previous point."""
    for i in nb.prange(z.shape[0]):
        r = lq[i] - z[i]
        if have_prev:
            dz[slot, i] = z[i] - z_prev[i]
            dr[slot, i] = r - r_prev[i]
        z_prev[i] = z[i]
        r_prev[i] = r


@nb.njit(cache=True, parallel=True, fastmath=False)
def _gram(dr: np.ndarray, z: np.ndarray, lq: np.ndarray, phi: np.ndarray, k: int) -> np.ndarray:
    """The ``(k + 1) x (k + 1)`` Gram matrix of ``dr[0..k-1]`` and the
    residual ``r = lq - z`` in the inner product ``<a, b> = sum phi (a - a')
    (b - b')``, ``a'`` the phi-mean of ``a``: the one of ``m``, which is
    ``<r, r>``, so the least squares minimise m to first order, and blind to
    the constant that the renormalisation removes. Means first, then the
    products, each in chunks of TREE_CHUNK combined by tree_sum."""
    n = phi.shape[0]
    chunks = (n + TREE_CHUNK - 1) // TREE_CHUNK
    size = k + 1
    part = np.zeros((size + 1, chunks))
    for c in nb.prange(chunks):
        for i in range(c * TREE_CHUNK, min(n, (c + 1) * TREE_CHUNK)):
            w = phi[i]
            part[size, c] += w
            for a in range(k):
                part[a, c] += w * dr[a, i]
            part[k, c] += w * (lq[i] - z[i])
    total = tree_sum(part[size])
    mean = np.zeros(size)
    for a in range(size):
        mean[a] = tree_sum(part[a]) / total
    pairs = size * (size + 1) // 2
    prod = np.zeros((pairs, chunks))
    for c in nb.prange(chunks):
        d = np.empty(size)
        for i in range(c * TREE_CHUNK, min(n, (c + 1) * TREE_CHUNK)):
            w = phi[i]
            for a in range(k):
                d[a] = dr[a, i] - mean[a]
            d[k] = (lq[i] - z[i]) - mean[k]
            q = 0
            for a in range(size):
                wa = w * d[a]
                for b in range(a, size):
                    prod[q, c] += wa * d[b]
                    q += 1
    gram = np.empty((size, size))
    q = 0
    for a in range(size):
        for b in range(a, size):
            v = tree_sum(prod[q])
            gram[a, b] = v
            gram[b, a] = v
            q += 1
    return gram


@nb.njit(cache=True, parallel=True, fastmath=False)
def _extrapolate(
    z: np.ndarray,
    lq: np.ndarray,
    dz: np.ndarray,
    dr: np.ndarray,
    gamma: np.ndarray,
    k: int,
    beta: float,
    out: np.ndarray,
) -> None:
    """``out = z + beta r - sum_j gamma_j (dz_j + beta dr_j)`` (``r = lq - z``,
    not normalised): the type-II Anderson step, each entry's terms added in
    the order of the slots."""
    for i in nb.prange(z.shape[0]):
        v = z[i] + beta * (lq[i] - z[i])
        for j in range(k):
            v = v - gamma[j] * (dz[j, i] + beta * dr[j, i])
        out[i] = v


# --- the model -----------------------------------------------------------------
def _temperature(temperature: float) -> float:
    t = float(temperature)
    if not (math.isfinite(t) and t > 0):
        raise InvalidParameterError(
            f"the exact minimiser needs a finite temperature > 0, got {temperature!r}"
        )
    return t


@dataclass(frozen=True)
class ExactMinimum:
    """What :meth:`ExactFreeEnergy.minimize` returns.

    ``focus`` is phi_T by particle id; ``log_focus`` its logarithm in the
    snapshot's internal order, which a later call resumes from (a chain's next
    block) without the rounding of taking it back from ``focus``.
    ``iterations`` counts gradient evaluations past the first, ``refused``
    the steps among them that were not kept; ``eta`` is the step the
    iteration ended with (a resumed call starts there). ``residual`` is the
    L1 Boltzmann residual ``||phi - softmax(-grad E / T)||_1`` and ``merit``
    ``sqrt(m)``, the quantity the stop reads; ``converged`` says the stop was
    ``merit <= tol`` (else eta fell below ETA_MIN or the cap was reached).
    ``accelerated`` counts the kept steps that were Anderson steps (the rest
    of the kept steps were plain ones).
    """

    focus: np.ndarray
    log_focus: np.ndarray
    temperature: float
    iterations: int
    refused: int
    eta: float
    free_energy: float
    residual: float
    merit: float
    converged: bool
    accelerated: int = 0


class _Point:
    """One iterate and what its gradient gives: phi, log phi, the Boltzmann
    target ``log q``, F, its rounding scale, m and the L1 residual."""

    __slots__ = ("f", "l1", "lq", "m", "phi", "scale", "z")

    def __init__(self, z: np.ndarray, phi: np.ndarray, lq: np.ndarray) -> None:
        self.z, self.phi, self.lq = z, phi, lq
        self.f = self.scale = self.m = self.l1 = 0.0


def _keeps(trial: _Point, point: _Point) -> bool:
    """Whether a step from ``point`` to ``trial`` is kept: F lower, or F
    level to its rounding and m lower."""
    if trial.f < point.f:
        return True
    return trial.f <= point.f + F_SLACK * point.scale and trial.m < point.m


class _History:
    """The Anderson window: the last ``window`` differences between kept
    points (log phi and the residual ``log q - log phi``) in a ring, and the
    previous kept point's. It holds vectors only; the coefficients are solved
    afresh at every step, because their inner product is weighted by the
    current phi."""

    def __init__(self, window: int, n: int) -> None:
        self.window = window
        self.dz = np.zeros((max(window, 1), n))
        self.dr = np.zeros((max(window, 1), n))
        self.z_prev = np.zeros(n)
        self.r_prev = np.zeros(n)
        self.restart()

    def restart(self) -> None:
        """Forget the differences; the next kept point starts a new history."""
        self.k = 0
        self.slot = 0
        self.have_prev = False

    def add(self, point: _Point) -> None:
        """Record a kept point (its difference from the last one, if any)."""
        _record(
            point.z, point.lq, self.z_prev, self.r_prev, self.dz, self.dr, self.slot, self.have_prev
        )
        if self.have_prev:
            self.k = min(self.k + 1, self.window)
            self.slot = (self.slot + 1) % self.window
        self.have_prev = True

    def step(self, point: _Point, beta: float) -> np.ndarray | None:
        """The mixed iterate's log phi (normalised) from the kept point
        ``point`` (the last recorded) with damping ``beta``, or None when the
        least-squares problem is degenerate or not finite: the caller then
        takes a plain step. ``gamma`` solves the normal equations of
        ``min || r - sum_j gamma_j dr_j ||`` by ``anderson.solve_gram``, this
        code's own elimination in a fixed order, not LAPACK's."""
        k = self.k
        if k == 0:
            return None
        gram = _gram(self.dr, point.z, point.lq, point.phi, k)
        gamma = solve_gram(gram[:k, :k], gram[:k, k], RCOND)
        if gamma is None:
            return None
        mixed = np.empty(point.z.shape[0])
        _extrapolate(point.z, point.lq, self.dz, self.dr, gamma, k, beta, mixed)
        z = np.empty(point.z.shape[0])
        _log_softmax(mixed, 1.0, z)
        return z if bool(np.isfinite(z).all()) else None


class ExactFreeEnergy:
    """F on one snapshot and one set of focus parameters, with its exact minimiser.

    The parameters are the engine's (alpha, mu, tau, weights, laplacian,
    prior); ``weights`` overrides F's coefficients as in ``FreeEnergyModel``.
    Vectors inside are in the snapshot's internal order, which fixes every
    sum's order.
    """

    def __init__(
        self,
        graph: GraphLike,
        params: FocusParams | None = None,
        *,
        weights: tuple[float, float, float] | None = None,
        **overrides: Any,
    ) -> None:
        p = make_params(params, **overrides)
        if p.mode == "cyberank":
            raise InvalidParameterError(
                "the free energy is defined for tri and diffusion focus, not cyberank"
            )
        self.params = p
        self.weights = energy_weights(weights, p)
        snap, _ = snapshot_of(graph)
        if snap.n == 0:
            raise InvalidParameterError("the free energy needs a graph with at least 1 particle")
        self.snapshot = snap
        self.n = snap.n
        op = cast(
            "ExactNumbaOperator", make_operator(get_backend("numba"), snap, "float64", EXACT_V2)
        )
        self.op = op
        op.setup_laplacian(p.laplacian)
        self.prior = prior_vector(snap, p.prior, op)
        self.inv_out = np.ascontiguousarray(op.inv_out, dtype=np.float64)
        self.dangling = np.ascontiguousarray(op.dangling)
        self._dangling_mask = self.dangling.astype(np.float64)
        self._out = (
            snap.out_indptr,
            snap.out_indices,
            snap.out_w,
            snap.ov_out_indptr,
            snap.ov_out_indices,
            snap.ov_out_w,
        )
        self.ginv = self._metric(snap, p)
        self.coeffs = heat_series(p.tau * op.lam_max / 2.0, HEAT_TOL, exact=True)[0]
        self._state = SpringsState()

    def _metric(self, snap: Snapshot, p: FocusParams) -> np.ndarray:
        """``1 / pi``: ``vol / d`` on the particles springs and heat link
        (the normalized Laplacian), ``n`` (the combinatorial one); 0 where
        a particle is unlinked, whose springs and heat gradients vanish."""
        linked = self.op.lap_diag > 0
        if p.laplacian != "normalized":
            return np.where(linked, float(self.n), 0.0)
        degree = np.empty(self.n)
        _degree(
            snap.out_indptr,
            snap.out_w,
            snap.ov_out_indptr,
            snap.ov_out_w,
            snap.in_indptr,
            snap.in_w,
            snap.ov_in_indptr,
            snap.ov_in_w,
            degree,
        )
        degree = np.where(linked, degree, 0.0)
        vol = chunked_sum(degree)
        return np.where(linked, vol / np.where(linked, degree, 1.0), 0.0)

    # --- the energy's gradient ---------------------------------------------
    def _energy_gradient(self, phi: np.ndarray) -> np.ndarray:
        """``grad E(phi)`` in internal order (E is quadratic: ``E = phi . grad / 2``)."""
        p, op, n = self.params, self.op, self.n
        lam_d, lam_s, lam_h = self.weights
        if op.lam_max > 0.0:
            sigma = op.lap_sigma
            spr, acc = op.springs_heat(
                phi, p.mu, self._state, CG_TOL, p.cg_max_iter, True, sigma * phi, self.coeffs
            )
            heat = acc / sigma
        else:
            spr = heat = phi
        alpha = p.alpha
        pulled = np.empty(n)
        op.pull(phi * self.inv_out, pulled, alpha)
        mass = alpha * dot(phi, self._dangling_mask, 0) + (1.0 - alpha) * chunked_sum(phi)
        r = phi - (pulled + mass * self.prior)
        back = np.empty(n)
        _adjoint_pull(*self._out, self.inv_out, r, back)
        grad = np.empty(n)
        _gradient(
            phi,
            spr,
            heat,
            self.ginv,
            r,
            back,
            self.dangling,
            dot(self.prior, r, 0),
            alpha,
            lam_d,
            lam_s,
            lam_h,
            float(n),
            grad,
        )
        return grad

    def energy_gradient(self, phi: np.ndarray) -> np.ndarray:
        """``grad E`` at a distribution given by particle id (the per-particle
        energies of the Boltzmann form), by particle id."""
        vec = self._vector(phi, "focus vector")
        return self.snapshot.to_particle_order(self._energy_gradient(vec))

    def _vector(self, x: np.ndarray, name: str) -> np.ndarray:
        """``x`` (particle order) checked and taken to internal order."""
        vec = np.asarray(x, dtype=np.float64)
        if vec.shape != (self.n,):
            raise InvalidParameterError(f"{name} must have {self.n} entries, got shape {vec.shape}")
        if not np.all(np.isfinite(vec)) or vec.min() < 0 or not vec.max() > 0:
            raise InvalidParameterError(f"{name} must be finite, >= 0 and not all zero")
        return np.ascontiguousarray(self.snapshot.to_internal_order(vec))

    def _evaluate(self, z: np.ndarray, t: float) -> _Point:
        phi = np.empty(self.n)
        _exp_into(z, phi)
        grad = self._energy_gradient(phi)
        lq = np.empty(self.n)
        _log_softmax(grad, -1.0 / t, lq)
        point = _Point(z, phi, lq)
        energy = 0.5 * dot(phi, grad, 0)
        neg_entropy = dot(phi, z, 0)
        point.f = energy + t * neg_entropy
        point.scale = abs(energy) + t * abs(neg_entropy)
        point.m, point.l1 = _residuals(phi, z, lq)
        return point

    def _plain_step(self, point: _Point, eta: float, t: float, mixed: np.ndarray) -> _Point:
        """The damped Boltzmann step from ``point``: ``log phi`` moved by ``eta``
        toward its target, renormalised, and evaluated (``mixed`` is scratch)."""
        _mix(point.z, point.lq, eta, mixed)
        z = np.empty(self.n)
        _log_softmax(mixed, 1.0, z)
        return self._evaluate(z, t)

    def _start(self, start: np.ndarray | ExactMinimum | None) -> np.ndarray:
        """The first iterate's log phi (normalised), internal order."""
        if isinstance(start, ExactMinimum):
            if start.log_focus.shape != (self.n,):
                raise InvalidParameterError(
                    f"warm start must have {self.n} entries, got shape {start.log_focus.shape}"
                )
            return start.log_focus.copy()
        vec = np.ones(self.n) if start is None else self._vector(start, "warm start")
        logs = np.empty(self.n)
        _log_into(vec, logs)
        z = np.empty(self.n)
        _log_softmax(logs, 1.0, z)
        return z

    # --- the minimiser ------------------------------------------------------
    def minimize(
        self,
        temperature: float,
        start: np.ndarray | ExactMinimum | None = None,
        *,
        tol: float = TOL,
        max_iter: int = MAX_ITER,
        eta: float | None = None,
        window: int = WINDOW,
    ) -> ExactMinimum:
        """``phi_T = argmin F`` over the simplex, the same bits on every machine.

        ``start``: the uniform distribution (None), a distribution by particle
        id, or a previous result (its log and its final eta, unless ``eta`` is
        given). The iteration stops when ``sqrt(m) <= tol``, when eta falls
        below ETA_MIN, or after ``max_iter`` evaluations; each of these is
        decided on exactly computed values. The springs solve starts afresh
        on every call, so the answer depends on the inputs alone.

        ``window``: how many differences of kept points each Anderson step
        combines; 0 is the plain damped iteration. Each pass first tries the
        Anderson step (once the history holds a difference) and keeps it by
        the plain step's own test; a refused one restarts the history and
        the plain step is taken from the same point, so a misstep costs one
        evaluation and the iteration never does worse than keep its point.
        """
        t = _temperature(temperature)
        if not (isinstance(tol, float | int) and math.isfinite(tol) and tol > 0):
            raise InvalidParameterError(f"tol must be finite and > 0, got {tol!r}")
        if not (isinstance(max_iter, int) and max_iter >= 0):
            raise InvalidParameterError(f"max_iter must be an integer >= 0, got {max_iter!r}")
        if not (isinstance(window, int) and window >= 0):
            raise InvalidParameterError(f"window must be an integer >= 0, got {window!r}")
        if eta is None:
            eta = start.eta if isinstance(start, ExactMinimum) else 1.0
        if not (math.isfinite(eta) and 0 < eta <= 1):
            raise InvalidParameterError(f"eta must be in (0, 1], got {eta!r}")
        self._state = SpringsState()
        point = self._evaluate(self._start(start), t)
        goal = float(tol) * float(tol)
        step = float(eta)
        iterations = refused = accelerated = 0
        history = _History(window, self.n) if window > 0 else None
        if history is not None:
            history.add(point)
        mixed = np.empty(self.n)
        while point.m > goal and step >= ETA_MIN and iterations < max_iter:
            if history is not None and history.k > 0:
                z = history.step(point, step)
                if z is not None:
                    trial = self._evaluate(z, t)
                    iterations += 1
                    if _keeps(trial, point):
                        point = trial
                        history.add(point)
                        accelerated += 1
                        continue
                    refused += 1
                history.restart()
                history.add(point)
                if iterations >= max_iter:
                    break
            trial = self._plain_step(point, step, t, mixed)
            iterations += 1
            if _keeps(trial, point):
                point = trial
                if history is not None:
                    history.add(point)
                step = min(1.0, step * ETA_GROW)
            else:
                refused += 1
                step = 0.5 * step
        return ExactMinimum(
            focus=self.snapshot.to_particle_order(point.phi),
            log_focus=point.z,
            temperature=t,
            iterations=iterations,
            refused=refused,
            eta=step,
            free_energy=point.f,
            residual=point.l1,
            merit=math.sqrt(point.m),
            converged=point.m <= goal,
            accelerated=accelerated,
        )

    def local_steps(
        self, temperature: float, start: np.ndarray | None, steps: int, eta: float
    ) -> ExactMinimum:
        """``steps`` steps of the local rule from ``start`` (a distribution by
        particle id; None: uniform), the same bits on every machine.

        A step is the plain iteration's with a fixed ``eta`` and no test:
        each particle moves its log-focus toward its Boltzmann target,
        ``log phi_i <- (1 - eta) log phi_i + eta (-grad_i E(phi) / T)``, from its
        own value and its neighbours' (the gradient is a sum over its links),
        and one global sum (the gossip) renormalises. It is the entropic form
        of the simulation's rule (focus/local_rule.py): its normalisation by
        division has F's minimiser as its fixed point, and focus stays
        positive. It contracts near that point iff ``eta < 2T / (T + L)``
        (module docstring); the result reports how far it ended
        (``residual``, ``merit``), and ``converged`` says ``merit <= TOL``.
        """
        t = _temperature(temperature)
        if not (isinstance(steps, int) and steps >= 1):
            raise InvalidParameterError(f"steps must be an integer >= 1, got {steps!r}")
        if not (isinstance(eta, float | int) and math.isfinite(eta) and 0 < eta <= 1):
            raise InvalidParameterError(f"eta must be in (0, 1], got {eta!r}")
        self._state = SpringsState()
        point = self._evaluate(self._start(start), t)
        mixed = np.empty(self.n)
        for _ in range(steps):
            point = self._plain_step(point, float(eta), t, mixed)
        return ExactMinimum(
            focus=self.snapshot.to_particle_order(point.phi),
            log_focus=point.z,
            temperature=t,
            iterations=steps,
            refused=0,
            eta=float(eta),
            free_energy=point.f,
            residual=point.l1,
            merit=math.sqrt(point.m),
            converged=point.m <= TOL * TOL,
        )


def model_focus(
    snap: Snapshot, params: FocusParams, start: np.ndarray | None = None
) -> tuple[np.ndarray, Diagnostics]:
    """The free-energy model's focus (``params.model``, ``params.temperature``)
    on ``snap``, by particle id, and how the minimiser got there: what a
    chain's engine and ``compute`` run for that model; for ``local-rule``
    its ``local_steps`` steps of size ``local_eta`` instead of the minimiser.

    ``start`` (by particle id, new particles at any positive value) warm-starts
    it; the answer depends on it and on the snapshot alone. The stop is
    ``sqrt(m) <= params.tol`` or ``params.max_iter`` gradient evaluations;
    ``residual`` is the L1 Boltzmann residual. A diffusion-mode model is F with
    the diffusion term alone.
    """
    from focusflow.focus.result import Diagnostics

    run = params.with_(weights=(1.0, 0.0, 0.0)) if params.mode == "diffusion" else params
    t = time.perf_counter()
    model = ExactFreeEnergy(snap, run)
    if params.model == "local-rule":
        found = model.local_steps(params.temperature, start, params.local_steps, params.local_eta)
    else:
        found = model.minimize(params.temperature, start, tol=params.tol, max_iter=params.max_iter)
    diag = Diagnostics(
        iterations=found.iterations,
        residual=found.residual,
        # The local rule commits what its steps reach by definition: a block
        # is never "not converged" (its residual says how far it is).
        converged=found.converged or params.model == "local-rule",
        timings={"minimise": time.perf_counter() - t},
        inner={"refused": found.refused, "accelerated": found.accelerated, "model": params.model},
    )
    return found.focus, diag


def exact_minimiser(
    graph: GraphLike,
    temperature: float,
    params: FocusParams | None = None,
    *,
    weights: tuple[float, float, float] | None = None,
    start: np.ndarray | ExactMinimum | None = None,
    window: int = WINDOW,
    **overrides: Any,
) -> ExactMinimum:
    """F's minimiser on a graph at temperature T, the same bits on every machine:
    ``exact_minimiser(g, 0.1).focus``. Parameters as ``free_energy``'s;
    ``window`` as :meth:`ExactFreeEnergy.minimize`'s."""
    model = ExactFreeEnergy(graph, params, weights=weights, **overrides)
    return model.minimize(temperature, start, window=window)


__all__ = ["ExactFreeEnergy", "ExactMinimum", "exact_minimiser", "model_focus"]
