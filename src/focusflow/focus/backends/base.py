"""The seam between the focus algorithms and the hardware that runs them.

A backend turns a :class:`~focusflow.graph.Snapshot` into a
:class:`GraphOperator`: the few graph products the tri-kernel needs, on
vectors in the snapshot's internal order. The solver, CG and Chebyshev loops
are written once against this interface; a backend supplies fast products
(numba on CPUs now, CuPy and WebGPU later) and may override the loops where
fusing them pays.

An operator whose vectors live on a device that the host can only reach
through explicit transfers (wgpu) may also define ``solve_diffusion(prior, x0,
alpha, tol, max_iter, progress, anderson) -> (phi, residual_history, converged,
timings)``: the whole diffusion iteration on the device (``x0 = None`` is the
uniform start, ``anderson`` the mixing window), a few scalars as the only
per-step traffic, and the seconds spent in each part of the solve. The solver
uses it for diffusion (weights (1, 0, 0)) when present, because a host round
trip per step would cost more than the step itself. Likewise ``solve_tri(prior,
x0, params, springs_state, heat_state, progress, forcing) -> (phi,
residual_history, converged, timings)`` runs the whole tri iteration (springs,
heat, blend, mixing) on the device, with the solver's stop rule and inner-solve
schedule (``forcing``: the inner tolerances' fraction of the last change); the
solver uses it for tri mode when present.

Two smaller optional hooks (cuda has both): ``blend(phi, d, s, h, weights) ->
float`` writes the tri blend ``(ld d + ls s + lh h) / sum`` into ``d`` and
returns its L1 change from ``phi`` (``s`` or ``h`` None when that weight is 0),
one fused pass where the array expression needs several; and
``append_links(src, dst, weights, n)`` takes links (internal ids, ``n``
particles, new ones numbered after the old; the ids may be arrays on the
operator's device) without a snapshot patch, for
``FocusEngine``'s blocks whose links keep every weight the operator holds;
the next ``refresh(info)`` replaces them by the patched entries.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from focusflow.graph.snapshot import Snapshot


class GraphOperator(Protocol):
    """Graph products over one snapshot, in internal particle order."""

    name: str
    n: int
    snapshot: Snapshot

    def diffusion(self, x: np.ndarray, y: np.ndarray, alpha: float, prior: np.ndarray) -> float:
        """``y <- D(x)``, normalised to mass 1; returns ``||y - x||_1``.

        ``D(x) = alpha P^T x + (alpha * dangling_mass(x) + (1 - alpha)) * prior``.
        """
        ...

    def refresh(self, info=None) -> None:
        """Re-read the snapshot after a patch (``info``: the patch record, if known)."""
        ...

    def pull(self, z: np.ndarray, out: np.ndarray, scale: float) -> float:
        """``out[q] = scale * sum_p W[p, q] z[p]``; returns ``sum(out)``."""
        ...

    def setup_laplacian(self, kind: str) -> None:
        """Prepare ``Ls``, the symmetric form of the Laplacian behind springs and heat."""
        ...

    def lap_matvec(self, x: np.ndarray, out: np.ndarray) -> None:
        """``out <- Ls x``."""
        ...

    lap_sigma: np.ndarray
    lap_diag: np.ndarray
    lam_max: float


class Backend(Protocol):
    """A factory of operators; ``available()`` says whether it can run here."""

    name: str

    def available(self) -> tuple[bool, str]: ...

    def operator(self, snapshot: Snapshot, precision: str = "float64") -> GraphOperator: ...


def inverse_out_weight(out_weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(1 / W_p, linked)`` with 0 where a particle has no outgoing weight (dangling)."""
    linked = out_weight > 0
    return np.where(linked, 1.0 / np.where(linked, out_weight, 1.0), 0.0), linked


def uniform_value(prior) -> float | None:
    """The value of a constant (uniform) prior vector, None for any other: GPU
    backends then pass the value instead of reading the vector every step.
    Works on numpy and CuPy arrays."""
    if not len(prior):
        return None
    lo, hi = float(prior.min()), float(prior.max())
    return lo if lo == hi else None


class ScreenedCG:
    """The start of a springs solve, shared by the operators that fuse CG.

    The host needs ``n``, ``lap_sigma``, ``lap_diag``, ``_sym`` (the current
    symmetric matrix) and ``_mu`` (None after each Laplacian set-up).
    """

    def _matrix_version(self):
        """What a springs state's residual belongs to: the symmetric matrix as it
        is now (an operator that changes it in place gives each change a token)."""
        return self._sym

    def _cg_prepare(self, phi, mu: float, state, exact: bool) -> bool:
        """Cache ``diag + mu`` and its inverse, start ``y`` at ``sigma phi`` on a
        first solve; returns whether the previous solve's residual can be
        carried over (an inexact solve on the same matrix: the right-hand side
        then moves by ``mu sigma (phi - phi_prev)``, which saves the product
        that would recompute it)."""
        if self._mu != mu:
            self._mu = mu
            self._diag_mu = self.lap_diag + mu
            self._minv = 1.0 / self._diag_mu
        warm = state.y is not None and len(state.y) == self.n
        if not warm:
            state.y = self.lap_sigma * phi
        return (
            warm
            and not exact
            and state.owner is self._matrix_version()
            and state.r is not None
            and len(state.r) == self.n
        )


#: Least degree, relative to the largest, of a particle springs and heat link.
DEGREE_FLOOR = 1e-12


def laplacian_scaling(degree: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray, float]:
    """``(sigma, diag, lam_max)`` so that ``Ls = diag(diag) - sigma A sigma``.

    ``normalized``: the random-walk Laplacian ``I - A D^-1`` acting on
    distributions equals ``D^1/2 Ls D^-1/2`` with ``Ls = I - D^-1/2 A D^-1/2``;
    its spectrum lies in [0, 2]. ``combinatorial``: ``Ls = L = D - A``, spectrum
    in [0, 2 max(d)] (Gershgorin). Particles without links have a zero row.
    """
    linked = degree > 0
    if kind == "normalized":
        # A particle whose degree is at float noise next to the largest would be
        # scaled by d^-1/2 > 10^6: its entries would dominate every norm the
        # solvers take, and springs would stop to a tolerance meaningless for
        # all other particles (result depending on particle order, no
        # convergence). Such particles count as unlinked for springs and heat.
        if len(degree):
            linked &= degree > DEGREE_FLOOR * degree.max()
        sigma = np.where(linked, 1.0 / np.sqrt(np.where(linked, degree, 1.0)), 1.0)
        diag = linked.astype(np.float64)
        lam_max = 2.0
    elif kind == "combinatorial":
        sigma = np.ones_like(degree)
        diag = degree.astype(np.float64)
        lam_max = float(2.0 * degree.max()) if len(degree) else 0.0
    else:
        raise ValueError(f"unknown laplacian {kind!r}")
    return sigma, diag, lam_max
