"""Personalized focus: the tri-kernel with a context as its source.

The global focus ``phi*`` teleports to a prior spread over every particle. A
query's focus ``phi*_c`` is the same equilibrium with the teleport distribution
``u`` concentrated on the query's context particles: mass enters the graph at
the context, diffusion carries it along links, springs and heat smooth it over
the neighbourhoods it reaches, and the fixed point pools where the context is
well connected. With mass-preserving springs and heat the composite map is
affine in ``u``, so ``phi*_c`` is linear in the prior: a context that mixes in
a share ``mix`` of the global prior gets ``(1 - mix) phi*_context + mix phi*``.

This module holds only the prior and the solve; how a query names its context,
weighs semcons and turns ``phi*_c`` into a next-particle distribution is
``focusflow.infer``'s business.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np

from focusflow.core.errors import InvalidParameterError
from focusflow.focus.backends.base import Progress
from focusflow.focus.params import FocusParams
from focusflow.focus.result import FocusResult
from focusflow.focus.solver import GraphLike, compute

if TYPE_CHECKING:
    import scipy.sparse as sp


def context_prior(
    n: int,
    context: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    base: np.ndarray | None = None,
    mix: float = 0.0,
) -> np.ndarray:
    """The teleport distribution of a context, in particle order, summing to 1.

    ``context`` holds particle ids (repeats add up), ``weights`` one non-negative
    weight each (equal when None). ``mix`` in [0, 1) blends in ``base`` (uniform
    when None): a little global prior keeps mass on particles the context cannot
    reach, so a distribution drawn from it has full support.
    """
    ids = np.asarray(context, dtype=np.int64).reshape(-1)
    if ids.size == 0:
        raise InvalidParameterError("the context is empty: give at least one particle")
    if ids.min() < 0 or ids.max() >= n:
        bad = int(ids[(ids < 0) | (ids >= n)][0])
        raise InvalidParameterError(f"context particle id {bad} is out of range [0, {n})")
    w = context_weights(ids, weights)
    if not (0.0 <= mix < 1.0):
        raise InvalidParameterError(f"mix must be in [0, 1), got {mix}")
    u = np.bincount(ids, weights=w, minlength=n).astype(np.float64)
    u /= u.sum()
    if mix > 0:
        if base is None:
            b = np.full(n, 1.0 / n)
        else:
            b = np.asarray(base, dtype=np.float64)
            if b.shape != (n,) or not np.all(np.isfinite(b)) or b.min() < 0 or b.sum() <= 0:
                raise InvalidParameterError(f"base must be a distribution over {n} particles")
            b = b / b.sum()
        u = (1.0 - mix) * u + mix * b
    return u


def context_weights(ids: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """One weight per context particle (ones when None), checked: finite,
    non-negative, not all zero."""
    if weights is None:
        return np.ones(ids.size)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape != ids.shape:
        raise InvalidParameterError(
            f"context weights need one value per particle ({ids.size}), got {w.size}"
        )
    if not np.all(np.isfinite(w)) or w.min() < 0 or w.sum() <= 0:
        raise InvalidParameterError("context weights must be finite, >= 0 and not all zero")
    return w


def personalized_focus(
    graph: GraphLike,
    context: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    mix: float = 0.0,
    base: np.ndarray | None = None,
    params: FocusParams | None = None,
    x0: np.ndarray | None = None,
    backend: str = "auto",
    progress: Progress | None = None,
    **overrides: Any,
) -> FocusResult:
    """``phi*_c``: the focus equilibrium with the context as teleport source.

    ``x0`` (particle order) warm-starts the solve, e.g. from the previous step
    of a walk whose context grew by one particle; other keywords override
    :class:`FocusParams` fields as in :func:`focusflow.focus.compute`.
    """
    n = _size(graph)
    u = context_prior(n, context, weights, base=base, mix=mix)
    return compute(graph, params, backend=backend, x0=x0, progress=progress, prior=u, **overrides)


def _size(graph: GraphLike) -> int:
    n = getattr(graph, "n_particles", None)
    if n is None:
        n = getattr(graph, "n", None)
    if n is None:  # a scipy sparse matrix: the one kind of graph left
        n = cast("sp.spmatrix", graph).shape[0]
    return int(n)
