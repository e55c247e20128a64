"""What a graph's structure and its focus look like as the graph grows, and a
stated rule for where such a curve changes regime.

The design claims that focus identifies "phase transitions" of the network.
To test a claim like that one needs numbers per graph and a rule that says
where a curve of them changes course, decided by arithmetic rather than by
looking at a plot. This module holds both:

- :func:`measure`: the connected components of ``A = W + W^T``, the spectral
  gap ``lambda_2`` of the normalized Laplacian ``I - D^-1/2 A D^-1/2`` of the
  largest component (the rate at which a walk on it forgets where it
  started), and, from one engine solve without acceleration, the iteration's
  contraction rate kappa (``Diagnostics.contraction_rate``) with the entropy
  and syntropy of the focus (``focus.measures``);
- :func:`regime_change`: the best continuous two-segment (hinge) fit of a
  curve and the largest jump between neighbouring samples, with the
  thresholds that call either a change of regime.

``lambda_2`` is computed in float64: densely (LAPACK ``eigvalsh``) for a
component of at most ``DENSE_LIMIT`` particles, otherwise by ARPACK
Lanczos on the inverse of ``L - sigma I`` (sigma just below 0) off the known
null vector, which finds the eigenvalue nearest 0 in a few dozen steps even
when the gap is small; the inverse is applied by sparse LU factors or by
conjugate gradients, whichever the component's density favours
(:func:`_second_smallest`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from focusflow.core.errors import InvalidParameterError
from focusflow.focus.measures import entropy, syntropy

if TYPE_CHECKING:
    import scipy.sparse as sp

#: Components up to this size get LAPACK's dense eigenvalues.
DENSE_LIMIT = 600
#: The shift of the inverse Lanczos run: below the spectrum, so that
#: ``L - sigma I`` is positive definite.
SHIFT = -1e-3
#: Relative residual of its inner solves by conjugate gradients.
CG_RTOL = 1e-12
#: Components with at most this many links per particle get sparse LU factors.
FACTOR_DEGREE = 3.0
#: A hinge fit calls a change of regime when it removes at least this share
#: of a single line's squared residual ...
HINGE_GAIN = 0.75
#: ... and the slopes on its two sides differ by at least this share of the
#: larger one (so a straight line bent by noise is not a change).
SLOPE_CHANGE = 0.5
#: A step between neighbouring samples is a jump when it is at least this
#: many times the median step.
JUMP_RATIO = 5.0
#: Neither counts unless the curve moves by at least this share of its
#: largest magnitude: a bend in a curve flat to 0.5 % is noise, not a regime.
MIN_SPREAD = 0.05


@dataclass(frozen=True)
class GraphPhase:
    """One graph's numbers. ``gap`` is ``lambda_2`` of the largest component's
    normalized Laplacian (0 for a component of one particle); ``kappa`` the
    engine's contraction rate (None when the solve converged too fast to
    measure it); entropies in nats, ``entropy_ratio = H / ln n``."""

    n: int
    links: int
    components: int
    giant: int
    gap: float
    kappa: float | None
    iterations: int
    entropy: float
    syntropy: float

    @property
    def giant_fraction(self) -> float:
        return self.giant / self.n if self.n else 0.0

    @property
    def entropy_ratio(self) -> float:
        return self.entropy / math.log(self.n) if self.n > 1 else 0.0


@dataclass(frozen=True)
class RegimeChange:
    """The hinge fit ``y ~ a + b x + c max(x - at, 0)`` of least squared
    residual over breakpoints at the samples (``min_side`` samples at least on
    each side), and the largest jump between neighbouring samples.

    ``gain = 1 - SSE(hinge) / SSE(line)``; ``left`` and ``right`` are the
    slopes ``b`` and ``b + c``; the largest step lies between ``jump_from``
    and ``jump_at``, ``jump_ratio`` is it over the median step. ``spread`` is
    ``(max y - min y) / max |y|``.
    """

    at: float
    left: float
    right: float
    gain: float
    jump_from: float
    jump_at: float
    jump_ratio: float
    spread: float

    @property
    def material(self) -> bool:
        return self.spread >= MIN_SPREAD

    @property
    def kink(self) -> bool:
        """The rule: the curve is material, ``gain >= HINGE_GAIN`` and
        ``|right - left| >= SLOPE_CHANGE * max(|left|, |right|)``."""
        bend = abs(self.right - self.left)
        return (
            self.material
            and self.gain >= HINGE_GAIN
            and bend >= SLOPE_CHANGE * max(abs(self.left), abs(self.right))
        )

    @property
    def jump(self) -> bool:
        """The rule: the curve is material and ``jump_ratio >= JUMP_RATIO``."""
        return self.material and self.jump_ratio >= JUMP_RATIO


def regime_change(x: Any, y: Any, *, min_side: int = 3) -> RegimeChange:
    """Where the curve ``y(x)`` bends or jumps, by :class:`RegimeChange`'s rule."""
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    n = len(xs)
    if xs.shape != ys.shape or n < 2 * min_side + 1:
        raise InvalidParameterError(
            f"a regime change needs x and y of one length, at least {2 * min_side + 1} samples"
        )
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))) or np.any(np.diff(xs) <= 0):
        raise InvalidParameterError("a regime change needs finite y and strictly increasing x")
    line = np.column_stack([np.ones(n), xs])
    sse_line = _sse(line, ys)
    best = (math.inf, 0.0, 0.0, 0.0)
    for k in range(min_side - 1, n - min_side):
        design = np.column_stack([line, np.maximum(xs - xs[k], 0.0)])
        coef, *_ = np.linalg.lstsq(design, ys, rcond=None)
        sse = float(((design @ coef - ys) ** 2).sum())
        if sse < best[0]:
            best = (sse, float(xs[k]), float(coef[1]), float(coef[1] + coef[2]))
    gain = 1.0 - best[0] / sse_line if sse_line > 0 else 0.0
    steps = np.abs(np.diff(ys))
    largest = int(steps.argmax())
    median = float(np.median(steps))
    ratio = float(steps[largest] / median) if median > 0 else math.inf
    if steps[largest] == 0:
        ratio = 0.0
    size = float(np.abs(ys).max())
    spread = float(ys.max() - ys.min()) / size if size > 0 else 0.0
    return RegimeChange(
        at=best[1],
        left=best[2],
        right=best[3],
        gain=gain,
        jump_from=float(xs[largest]),
        jump_at=float(xs[largest + 1]),
        jump_ratio=ratio,
        spread=spread,
    )


def _sse(design: np.ndarray, y: np.ndarray) -> float:
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(((design @ coef - y) ** 2).sum())


def laplacian_gap(w: sp.spmatrix) -> tuple[int, int, float]:
    """``(components, size of the largest, its lambda_2)`` for ``A = W + W^T``
    without self-loops (a loop does not connect anything)."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    a = sp.csr_matrix(w + w.T, dtype=np.float64)
    a.setdiag(0.0)
    a.eliminate_zeros()
    count, labels = connected_components(a, directed=False)
    sizes = np.bincount(labels)
    big = int(sizes.argmax())
    keep = np.flatnonzero(labels == big)
    giant = len(keep)
    if giant < 2:
        return int(count), giant, 0.0
    sub = a[keep][:, keep].tocsr()
    deg = np.asarray(sub.sum(axis=1)).ravel()
    s = sp.diags(1.0 / np.sqrt(deg))
    lap = (sp.identity(giant, format="csr") - s @ sub @ s).tocsr()
    null = np.sqrt(deg) / math.sqrt(float(deg.sum()))
    return int(count), giant, _second_smallest(lap, null)


def _second_smallest(lap: sp.csr_matrix, null: np.ndarray) -> float:
    """``lambda_2`` of a connected component's normalized Laplacian, whose null
    vector ``null`` (unit length) is known.

    Large components: Lanczos (ARPACK ``eigsh``) on ``P (L - sigma I)^-1 P``
    with P the projection off the null vector; its largest eigenvalue is
    ``1 / (lambda_2 - sigma)``. The inverse comes from sparse LU factors
    (SuperLU, minimum-degree order of ``A + A^T``) where the component is
    sparse enough for their fill to stay near linear (at most
    ``FACTOR_DEGREE`` links per particle: trees and near-trees, where the gap
    is smallest and Krylov solves are slowest), and from conjugate gradients
    otherwise (factors of expander-like graphs fill up quadratically: 2*10^7
    entries and 30 s for a random graph of 20,000 particles at mean degree 4).
    """
    n = lap.shape[0]
    if n <= DENSE_LIMIT:
        return float(np.linalg.eigvalsh(lap.toarray())[1])
    import scipy.sparse as sp
    from scipy.sparse.linalg import LinearOperator, cg, eigsh, splu

    shifted = (lap - SHIFT * sp.identity(n, format="csr")).tocsr()

    def project(v: np.ndarray) -> np.ndarray:
        out: np.ndarray = v - null * float(null @ v)
        return out

    if (lap.nnz - n) / n <= FACTOR_DEGREE:
        factors = splu(shifted.tocsc(), permc_spec="MMD_AT_PLUS_A")

        def solve(b: np.ndarray) -> np.ndarray:
            y: np.ndarray = factors.solve(b)
            return y

    else:

        def solve(b: np.ndarray) -> np.ndarray:
            y: np.ndarray
            y, info = cg(shifted, b, rtol=CG_RTOL, atol=0.0, maxiter=20 * n)
            if info != 0:
                raise ArithmeticError(f"the gap's inner solve did not converge (cg info {info})")
            return y

    op = LinearOperator(
        (n, n), matvec=lambda v: project(solve(project(np.ravel(v)))), dtype=np.float64
    )
    start = project(np.cos(np.arange(n, dtype=np.float64)))  # fixed: the same run each time
    top = eigsh(op, k=1, which="LA", tol=1e-10, v0=start, return_eigenvectors=False)[0]
    return float(1.0 / top + SHIFT)


def measure(w: sp.spmatrix, *, tol: float = 1e-10, **overrides: Any) -> GraphPhase:
    """A graph's :class:`GraphPhase`; the engine solve is ``compute(w, tol=tol,
    anderson=0, backend="numpy", **overrides)`` (no acceleration, so its
    residual ratios are the iteration's own contraction)."""
    from focusflow.focus.solver import compute

    components, giant, gap = laplacian_gap(w)
    overrides.setdefault("anderson", 0)
    overrides.setdefault("backend", "numpy")
    result = compute(w, tol=tol, **overrides)
    phi = result.focus
    return GraphPhase(
        n=int(w.shape[0]),
        links=int(w.nnz),
        components=components,
        giant=giant,
        gap=gap,
        kappa=result.diagnostics.contraction_rate,
        iterations=result.diagnostics.iterations,
        entropy=entropy(phi),
        syntropy=syntropy(phi),
    )
