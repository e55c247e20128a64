"""How far the compiled model is from exact focus flow: KL(phi*_c || q_c).

Contexts of 1-4 particles are drawn (seeded) with probability phi*, the
particles queries most likely start from; ``phi*_c`` is the personalized focus
(focusflow.focus.personal) in the same mode as the compilation, warm-started
from phi*. The baseline is KL(phi*_c || phi*): what
answering every query with the global focus costs, so a model that does not
beat it has learned nothing from the context.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypedDict

import numpy as np

from focusflow.compile.forward import forward_numpy
from focusflow.compile.weights import CompiledWeights
from focusflow.focus.params import Mode
from focusflow.focus.personal import personalized_focus
from focusflow.focus.solver import GraphLike


class FocusOverrides(TypedDict, total=False):
    """The :class:`FocusParams` fields the exact ``phi*_c`` is solved under: the
    compilation's own, so that the model is measured against what it was
    compiled from."""

    mode: Mode
    alpha: float


class KlSummary(TypedDict):
    """The ``kl`` entry of report.json: the contexts measured and KL(phi*_c || q_c)
    and KL(phi*_c || phi*) over them (``None`` when no context was drawn)."""

    contexts: int
    context_sizes: list[int]
    seed: int
    kl_mean: float | None
    kl_median: float | None
    kl_max: float | None
    baseline_phi_kl_mean: float | None
    baseline_phi_kl_median: float | None
    personalized_iterations_mean: float | None


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """``sum p log(p / q)`` over ``p > 0`` in float64 (inf if q is 0 where p is not)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    on = p > 0
    if np.any(q[on] <= 0):
        return float("inf")
    return float(np.sum(p[on] * np.log(p[on] / q[on])))


def sample_contexts(
    phi: np.ndarray, count: int, seed: int, sizes: tuple[int, int] = (1, 4)
) -> list[np.ndarray]:
    """``count`` contexts of ``sizes[0]..sizes[1]`` distinct particles drawn by phi."""
    rng = np.random.default_rng(seed)
    p = np.asarray(phi, dtype=np.float64)
    p = p / p.sum()
    support = int((p > 0).sum())
    out = []
    for _ in range(count):
        size = min(int(rng.integers(sizes[0], sizes[1] + 1)), support)
        out.append(np.sort(rng.choice(len(p), size=size, replace=False, p=p)))
    return out


def evaluate(
    graph: GraphLike,
    weights: CompiledWeights,
    phi: np.ndarray,
    *,
    count: int = 64,
    seed: int = 0,
    focus_params: FocusOverrides | None = None,
    progress: Callable[[int], None] | None = None,
) -> KlSummary:
    """KL mean and median over ``count`` contexts, and the phi* baseline's."""
    contexts = sample_contexts(phi, count, seed)
    base = phi / phi.sum()
    kls, baseline, solves = [], [], []
    for k, ctx in enumerate(contexts):
        res = personalized_focus(graph, ctx, x0=phi, **(focus_params or {}))
        exact = res.focus / res.focus.sum()
        row = np.full((1, max(len(ctx), 1)), -1, dtype=np.int64)
        row[0, : len(ctx)] = ctx
        q = forward_numpy(weights, row)[0]
        kls.append(kl_divergence(exact, q))
        baseline.append(kl_divergence(exact, base))
        solves.append(res.iterations)
        if progress is not None:
            progress(k + 1)
    kl = np.asarray(kls)
    bl = np.asarray(baseline)
    return {
        "contexts": len(contexts),
        "context_sizes": [1, 4],
        "seed": seed,
        "kl_mean": float(kl.mean()) if len(kl) else None,
        "kl_median": float(np.median(kl)) if len(kl) else None,
        "kl_max": float(kl.max()) if len(kl) else None,
        "baseline_phi_kl_mean": float(bl.mean()) if len(bl) else None,
        "baseline_phi_kl_median": float(np.median(bl)) if len(bl) else None,
        "personalized_iterations_mean": float(np.mean(solves)) if solves else None,
    }
