"""Drawing the next particle from a distribution: temperature, top-k, top-p.

The same rules as language-model decoding (Holtzman et al. 2020 for top-p),
applied to a next-particle distribution over the whole graph. Only the
candidates that can be drawn are sorted: top-k takes the k largest by
partition, and top-p first tries the largest ``TOP_P_WINDOW`` and sorts
everything only when their mass falls short of p.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from focusflow.core.errors import InvalidParameterError

#: Candidates top-p looks at before it sorts the whole distribution.
TOP_P_WINDOW = 4096


@dataclass(frozen=True)
class Sampling:
    """``temperature`` > 0 sharpens (< 1) or flattens (> 1) ``p ** (1 / T)``;
    ``top_k`` keeps the k most likely (0: all); ``top_p`` keeps the fewest most
    likely whose mass reaches p (1: all)."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def validate(self) -> Sampling:
        if not (np.isfinite(self.temperature) and self.temperature > 0):
            raise InvalidParameterError(f"temperature must be > 0, got {self.temperature}")
        if not (isinstance(self.top_k, int) and self.top_k >= 0):
            raise InvalidParameterError(f"top_k must be an integer >= 0, got {self.top_k}")
        if not (0 < self.top_p <= 1):
            raise InvalidParameterError(f"top_p must be in (0, 1], got {self.top_p}")
        return self


def candidates(probs: np.ndarray, sampling: Sampling) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, probabilities)`` that may be drawn, summing to 1; most likely first
    whenever top-k or top-p cut the list. Empty when the distribution has no mass.
    """
    ids = np.flatnonzero(probs > 0)
    if ids.size == 0:
        return ids, np.empty(0)
    p = _tempered(probs[ids], sampling.temperature)
    ranked = False
    if 0 < sampling.top_k < ids.size:
        ids, p = _largest(ids, p, sampling.top_k)
        ranked = True
    if sampling.top_p < 1.0:
        reach = sampling.top_p * float(p.sum())
        if not ranked:
            window_ids, window_p = _largest(ids, p, min(ids.size, TOP_P_WINDOW))
            if float(window_p.sum()) < reach:
                window_ids, window_p = _largest(ids, p, ids.size)
            ids, p = window_ids, window_p
        cut = int(np.searchsorted(np.cumsum(p), reach * (1 - 1e-12))) + 1
        ids, p = ids[:cut], p[:cut]
    return ids, p / p.sum()


def draw(probs: np.ndarray, sampling: Sampling, rng: np.random.Generator) -> tuple[int, float]:
    """One particle drawn under ``sampling``, and its probability after the rules;
    ``(-1, 0.0)`` when nothing can be drawn."""
    ids, p = candidates(probs, sampling)
    if ids.size == 0:
        return -1, 0.0
    j = int(rng.choice(ids.size, p=p))
    return int(ids[j]), float(p[j])


def _tempered(p: np.ndarray, temperature: float) -> np.ndarray:
    """``p ** (1 / T)`` up to a constant, in log space shifted by its maximum."""
    if temperature == 1.0:
        return p
    logp = np.log(p) / temperature
    tempered: np.ndarray = np.exp(logp - logp.max())
    return tempered


def _largest(ids: np.ndarray, p: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest of ``p`` (ties by smaller id), in descending order."""
    part = np.argpartition(-p, k - 1)[:k] if k < p.size else np.arange(p.size)
    order = part[np.lexsort((ids[part], -p[part]))]
    return ids[order], p[order]
