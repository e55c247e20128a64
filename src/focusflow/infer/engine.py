"""Focus-flow inference: the context becomes the source, the tri-kernel reconverges.

A query's context particles become the teleport distribution of the
tri-kernel (``focus.personal``): mass enters the graph at the context, flows
along links (diffusion), is smoothed over neighbourhoods (springs, heat), and
the equilibrium ``phi*_c`` pools at particles the graph connects to the
context. The next-particle distribution is ``phi*_c`` with the context's own
entries multiplied by ``context_weight`` (0 by default: a particle already in
the context is not its own continuation) and renormalised.

A query is first answered locally (``focus.local_push``): a push from the
context that touches only the particles the answer reaches, stopping once its
certified L1 error bound is at most ``local_tol``. When the push reaches more
than ``local_share`` of the particles or reads more than ``local_work`` whole
passes' worth of the graph first, the whole-graph solve answers instead.
Either way the answer names its path and an L1 error bound on ``phi*_c``.

A walk samples the next particle, adds it to the context and reconverges,
warm-started from the previous step's equilibrium, which differs from the new
one only by the share of the prior that moved to the added particle. Repeated
queries on an unchanged graph are answered from a small cache.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict

import numpy as np

from focusflow.core.errors import InvalidParameterError
from focusflow.focus.params import PRECISIONS, FocusParams
from focusflow.infer.graph import InferGraph
from focusflow.infer.sampling import Sampling, draw

if TYPE_CHECKING:
    from focusflow.focus.result import FocusResult
    from focusflow.graph.snapshot import Snapshot

MODES = ("tri", "diffusion")
#: How an answer was computed: by a push from the context, or over the whole graph.
LOCAL = "local"
WHOLE_GRAPH = "whole-graph"
#: ``InferParams.path``: local first with the whole graph as fallback, or the whole graph.
PATHS = ("auto", WHOLE_GRAPH)
#: Floors of the local path's limits, whatever the graph's size: on a small
#: graph (or a small component of a large one) the push may reach this many
#: particles and read this many entries, about a millisecond's work.
LOCAL_MIN_PARTICLES = 1_000
LOCAL_MIN_WORK = 50_000
#: The push's buffers hold ``local_push.STATES`` states per particle (about 17
#: bytes each, pages made resident only where a query writes): past this many
#: states (2.4M particles) a graph is answered by the whole-graph solve alone.
LOCAL_MAX_STATES = 1 << 25
#: After this many pushes in a row gave up on a graph's weighting, only one
#: query in ``LOCAL_RETRY_EVERY`` tries the push (a failed push cost about 3.8 ms
#: of a 38 ms query on R-MAT 16, where no answer is local).
LOCAL_SKIP_AFTER = 8
LOCAL_RETRY_EVERY = 16
#: Answers kept per Inference (context, semcons) -> distribution.
CACHED_ANSWERS = 32
#: A walk is at most this many steps.
MAX_STEPS = 1024
#: The most particles one answer lists.
MAX_TOP = 10_000


@dataclass(frozen=True)
class InferParams:
    """How ``phi*_c`` is computed and turned into a next-particle distribution.

    ``tol`` is the L1 stop rule of the solve: 1e-3 scored the same on WordNet's
    validation split as 1e-4 (bench/infer.py) in fewer iterations.
    ``context_weight`` multiplies the context particles' own probability
    (0 excludes them, 1 keeps ``phi*_c`` as it is). ``precision`` is the
    operator's storage: float32 values (sums stay float64) made a tri query
    on 10^6 links 1.5-1.7x faster than float64 at the same distance to a
    1e-9 solve and the same top 10 (bench/infer_latency.py), since a pass of
    the springs-and-heat series streams the matrix's values; an answer is no
    consensus value, so nothing needs float64's bits. ``exact_share`` is
    ``FocusParams.exact_share``: the exact phase's inner solves may move the
    answer by that share of ``tol``; 0.1 took a tri query on 10^6 links from
    52 to 49 ms at the same distance to a 1e-9 solve and the same top 10
    (bench/infer_latency.py), where the solve's default 0.01 buys accuracy
    that a ranking does not use. ``start_tol`` is ``FocusParams.start_tol``:
    the diffusion start only needs to carry the context's mass a few links
    out; stopping it at 0.5 (3 products instead of 7) took a tri query on
    10^6 links from 50 to 44 ms at the same distance to a 1e-9 solve and the
    same top 10 (bench/infer_latency.py).
    """

    mode: str = "tri"
    alpha: float = 0.85
    tol: float = 1e-3
    context_weight: float = 0.0
    backend: str = "numba"
    precision: str = "float32"
    exact_share: float = 0.1
    start_tol: float = 0.5
    path: str = "auto"
    local_tol: float | None = None
    local_share: float = 0.1
    local_work: float = 0.02

    def validate(self) -> InferParams:
        if self.mode not in MODES:
            raise InvalidParameterError(
                f"mode must be one of {', '.join(MODES)}, got {self.mode!r}"
            )
        if not (0.0 <= self.context_weight <= 1.0):
            raise InvalidParameterError(
                f"context_weight must be in [0, 1], got {self.context_weight}"
            )
        if not (0 < self.tol < 1):
            raise InvalidParameterError(f"tol must be in (0, 1), got {self.tol}")
        if not (0 < self.alpha < 1):
            raise InvalidParameterError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.precision not in PRECISIONS:
            raise InvalidParameterError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if not (0 < self.exact_share <= 1):
            raise InvalidParameterError(f"exact_share must be in (0, 1], got {self.exact_share}")
        if not (0 < self.start_tol <= 1):
            raise InvalidParameterError(f"start_tol must be in (0, 1], got {self.start_tol}")
        if self.path not in PATHS:
            raise InvalidParameterError(
                f"path must be one of {', '.join(PATHS)}, got {self.path!r}"
            )
        if self.local_tol is not None and not (0 < self.local_tol < 2):
            raise InvalidParameterError(f"local_tol must be in (0, 2), got {self.local_tol}")
        if not (0 < self.local_share <= 1):
            raise InvalidParameterError(f"local_share must be in (0, 1], got {self.local_share}")
        if not (0 < self.local_work <= 1e3):
            raise InvalidParameterError(f"local_work must be in (0, 1000], got {self.local_work}")
        return self

    @property
    def contraction(self) -> float:
        """How much one step of the composite map shrinks L1 differences: ``lam_d
        alpha + lam_s + lam_h`` (diffusion contracts by alpha, springs and heat
        do not expand)."""
        lam_d = 1.0 if self.mode == "diffusion" else FocusParams().weights[0]
        return 1.0 - lam_d * (1.0 - self.alpha)

    def whole_graph_bound(self, residual: float) -> float:
        """The L1 error bound of a whole-graph answer whose last step moved it by
        ``residual``: the returned step ``T(phi)`` is within ``(kappa residual +
        delta) / (1 - kappa)`` of the fixed point, where ``kappa`` is the
        contraction and ``delta`` what inexact inner solves may add to a step
        (``exact_share * tol`` in tri, ``FocusParams.exact_share``)."""
        kappa = self.contraction
        delta = self.exact_share * self.tol if self.mode == "tri" else 0.0
        return min((kappa * residual + delta) / (1.0 - kappa), 2.0)

    @property
    def local_target(self) -> float:
        """The bound a local answer must certify: ``local_tol``, or by default what
        the whole-graph solve's stop rule certifies at ``tol``."""
        return self.local_tol if self.local_tol is not None else self.whole_graph_bound(self.tol)


class InferOptions(TypedDict, total=False):
    """:class:`InferParams`' fields as keyword arguments (``infer(..., mode=...)``):
    a misspelt name or a value of the wrong type is then a type error where it
    is written, not at run time."""

    mode: str
    alpha: float
    tol: float
    context_weight: float
    backend: str
    precision: str
    exact_share: float
    start_tol: float
    path: str
    local_tol: float | None
    local_share: float
    local_work: float


@dataclass(frozen=True)
class Prediction:
    """The next-particle distribution of one context.

    A local answer holds only the particles it reached (``support``, ``values``):
    ``probs``, the distribution over every particle, is built when first read,
    and ``top`` never builds it. ``path`` says how it was computed (``local`` or
    ``whole-graph``) and ``error_bound`` bounds the L1 distance of the focus
    it was drawn from to the exact ``phi*_c`` (None where nothing bounds it).
    ``continuation`` is the share of that focus outside the context: what a
    next particle other than the context's own is drawn from.
    """

    context: np.ndarray
    dense: np.ndarray | None
    focus: FocusResult | None
    seconds: float
    path: str = WHOLE_GRAPH
    error_bound: float | None = None
    support: np.ndarray | None = None
    values: np.ndarray | None = None
    n: int = 0
    continuation: float = 1.0

    @property
    def probs(self) -> np.ndarray:
        if self.dense is None:
            assert self.support is not None and self.values is not None
            dense = np.zeros(self.n)
            dense[self.support] = self.values
            object.__setattr__(self, "dense", dense)
            return dense
        return self.dense

    def top(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, probabilities)`` of the k most likely, most likely first (ties by id)."""
        if not (1 <= k <= MAX_TOP):
            raise InvalidParameterError(f"top must be in 1..{MAX_TOP}, got {k}")
        if self.dense is None and self.support is not None and self.values is not None:
            ids, p = self.support, self.values
        else:
            p = self.probs
            ids = np.arange(p.size)
        k = min(k, p.size)
        if k == 0:
            return ids[:0], p[:0]
        part = np.argpartition(-p, k - 1)[:k] if k < p.size else np.arange(p.size)
        order = part[np.lexsort((ids[part], -p[part]))]
        keep = order[p[order] > 0]
        return ids[keep], p[keep]


@dataclass(frozen=True)
class WalkStep:
    step: int
    particle: int
    probability: float
    seconds: float


@dataclass
class Inference:
    """Focus-flow inference over one graph; thread-safe for concurrent queries."""

    graph: InferGraph
    params: InferParams = field(default_factory=InferParams)
    #: Answers (``phi*_c``) by (context ids, semcon factors, context weights) as
    #: bytes, oldest first.
    _cache: OrderedDict[tuple[bytes, bytes | None, bytes | None], _Answer] = field(
        default_factory=OrderedDict, repr=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: Local pushes that gave up in a row, by semcon factors' bytes.
    _misses: dict[bytes | None, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.params = self.params.validate()

    def predict(
        self,
        context: Sequence[str | int],
        *,
        semcons: Mapping[str, float] | None = None,
        other_semcons: float | None = None,
        weights: Sequence[float] | None = None,
        x0: np.ndarray | None = None,
    ) -> Prediction:
        """The next-particle distribution after ``context`` (keys, CIDs, text or ids).

        ``semcons`` weighs links by relation type (``{"hypernym": 2.0}``); links
        of semcons not named get ``other_semcons`` (0 restricts the flow to the
        named ones; by default ``graph.semcons.OTHER_SEMCONS`` when any is
        named). ``weights``
        gives each context particle its share of the source (equal by default).
        """
        t0 = time.perf_counter()
        ids = self.graph.resolve(context)
        factors = self.graph.semcon_factors(semcons, other_semcons)
        w = None if weights is None else np.asarray(weights, dtype=np.float64)
        key = (
            ids.tobytes(),
            None if factors is None else factors.tobytes(),
            None if w is None else w.tobytes(),
        )
        with self._lock:
            answer = self._cache.get(key)
            if answer is not None:
                self._cache.move_to_end(key)
        if answer is None:
            snap = self.graph.snapshot(factors)
            answer = None
            if self._try_local(factors):
                answer = self._local(factors, ids, w)
                self._count_miss(factors, answer is None)
            elif self.params.path == "auto":
                self._count_miss(factors, True)
            if answer is None:
                answer = self._whole_graph(snap, ids, w, x0)
            with self._lock:
                self._cache[key] = answer
                while len(self._cache) > CACHED_ANSWERS:
                    self._cache.popitem(last=False)
        seconds = time.perf_counter() - t0
        cw = self.params.context_weight
        if answer.support is None:
            assert answer.result is not None
            phi = answer.result.focus
            probs = next_distribution(phi, ids, cw)
            return Prediction(
                ids,
                probs,
                answer.result,
                seconds,
                WHOLE_GRAPH,
                answer.bound,
                n=self.graph.n,
                continuation=_outside(np.arange(phi.size), phi, ids),
            )
        assert answer.values is not None
        support, values = answer.support, next_values(answer.support, answer.values, ids, cw)
        return Prediction(
            ids,
            None,
            None,
            seconds,
            LOCAL,
            answer.bound,
            support,
            values,
            self.graph.n,
            _outside(answer.support, answer.values, ids),
        )

    def _try_local(self, factors: np.ndarray | None) -> bool:
        """Whether to push first: with ``path="auto"``, unless the last
        ``LOCAL_SKIP_AFTER`` pushes on this weighting all gave up, in which case
        one query in ``LOCAL_RETRY_EVERY`` still tries (a graph whose answers are
        not local then pays for a failed push rarely, not on every query)."""
        if self.params.path != "auto":
            return False
        misses = self._misses.get(None if factors is None else factors.tobytes(), 0)
        return misses < LOCAL_SKIP_AFTER or misses % LOCAL_RETRY_EVERY == 0

    def _count_miss(self, factors: np.ndarray | None, missed: bool) -> None:
        key = None if factors is None else factors.tobytes()
        with self._lock:
            if missed:
                self._misses[key] = self._misses.get(key, 0) + 1
            else:
                self._misses.pop(key, None)
            while len(self._misses) > 4 * CACHED_ANSWERS:
                self._misses.pop(next(iter(self._misses)))

    def _local(
        self, factors: np.ndarray | None, ids: np.ndarray, w: np.ndarray | None
    ) -> _Answer | None:
        """The answer of a push from the context, or None when it would reach too
        far (``local_share``, ``local_work``) before certifying ``local_target``."""
        from focusflow.focus.local_push import STATES, local_focus
        from focusflow.focus.personal import context_weights

        if self.graph.n * STATES > LOCAL_MAX_STATES:
            return None
        p = self.params
        local, scratch, walks = self.graph.local(factors, p.alpha, p.mode)
        got = local_focus(
            local,
            scratch,
            walks,
            ids,
            context_weights(ids, w),
            p.local_target,
            max(int(p.local_share * self.graph.n), LOCAL_MIN_PARTICLES),
            max(int(p.local_work * local.entries), LOCAL_MIN_WORK),
        )
        if not got.converged:
            return None
        return _Answer(None, got.error_bound, got.support, got.values)

    def _whole_graph(
        self, snap: Snapshot, ids: np.ndarray, w: np.ndarray | None, x0: np.ndarray | None
    ) -> _Answer:
        # The solver's modules are imported by the first query that needs them:
        # a process whose answers are all local never loads them.
        from focusflow.focus.personal import personalized_focus

        p = self.params
        result = personalized_focus(
            snap,
            ids,
            w,
            x0=x0,
            backend=p.backend,
            mode=p.mode,
            alpha=p.alpha,
            tol=p.tol,
            precision=p.precision,
            exact_share=p.exact_share,
            start_tol=p.start_tol,
        )
        bound = p.whole_graph_bound(result.diagnostics.residual) if result.converged else None
        return _Answer(result, bound, None, None)

    def walk(
        self,
        context: Sequence[str | int],
        steps: int,
        *,
        seed: int = 0,
        sampling: Sampling | None = None,
        semcons: Mapping[str, float] | None = None,
        other_semcons: float | None = None,
    ) -> Iterator[WalkStep]:
        """Sample, add to the context, reconverge: ``steps`` times, reproducibly.

        The same graph, context, parameters and ``seed`` give the same walk.
        It ends early when the distribution has no mass left to draw from, and,
        when the context's own particles are discounted (``context_weight`` below
        1), when the focus outside the context is no more than the answer's error
        bound: from a context with no way out (a dangling particle in diffusion)
        the exact focus stays on the context, and what a solve leaves elsewhere
        is its own error, not a continuation.
        """
        if not (isinstance(steps, int) and 1 <= steps <= MAX_STEPS):
            raise InvalidParameterError(f"steps must be in 1..{MAX_STEPS}, got {steps}")
        rules = (sampling or Sampling()).validate()
        rng = np.random.default_rng(seed)
        current = [int(i) for i in self.graph.resolve(context)]
        x0 = None
        for step in range(1, steps + 1):
            t = time.perf_counter()
            pred = self.predict(current, semcons=semcons, other_semcons=other_semcons, x0=x0)
            if self.params.context_weight < 1.0 and pred.continuation <= (pred.error_bound or 0.0):
                return
            if pred.dense is None and pred.support is not None and pred.values is not None:
                # A local answer is drawn from its support, in particle order
                # (what the whole distribution's nonzero entries would be), so
                # a step costs the support, not the graph.
                order = np.argsort(pred.support, kind="stable")
                keys: np.ndarray | None = pred.support[order]
                nxt, p = draw(pred.values[order], rules, rng)
            else:
                keys = None
                nxt, p = draw(pred.probs, rules, rng)
            if nxt < 0:
                return
            if keys is not None:
                nxt = int(keys[nxt])
            current.append(nxt)
            x0 = pred.focus.focus if pred.focus is not None else None
            yield WalkStep(step, nxt, p, time.perf_counter() - t)


@dataclass(frozen=True)
class _Answer:
    """``phi*_c`` as a whole-graph solve's result, or a local answer's support
    and values (summing to 1), with its L1 error bound."""

    result: FocusResult | None
    bound: float | None
    support: np.ndarray | None
    values: np.ndarray | None


def _outside(support: np.ndarray, values: np.ndarray, context: np.ndarray) -> float:
    """The share of ``values`` (held on ``support``) outside ``context``."""
    total = float(np.sum(values))
    if total <= 0:
        return 0.0
    return float(np.sum(values[~np.isin(support, context)])) / total


def next_values(
    support: np.ndarray, values: np.ndarray, context: np.ndarray, context_weight: float
) -> np.ndarray:
    """:func:`next_distribution` of a focus held on ``support`` only."""
    probs = np.array(values, dtype=np.float64)
    if context_weight != 1.0:
        probs[np.isin(support, context)] *= context_weight
    total = float(probs.sum())
    if total <= 0:
        return values / max(float(np.sum(values)), 1e-300)
    return probs / total


def next_distribution(phi: np.ndarray, context: np.ndarray, context_weight: float) -> np.ndarray:
    """``phi`` with the context's entries scaled by ``context_weight``, summing to 1.

    When the context holds all the mass (a context with no way out), the
    distribution stays ``phi``: there is nothing else to predict.
    """
    probs = np.array(phi, dtype=np.float64)
    if context_weight != 1.0:
        probs[np.unique(context)] *= context_weight
    total = float(probs.sum())
    if total <= 0:
        return np.asarray(phi, dtype=np.float64) / max(float(np.sum(phi)), 1e-300)
    return probs / total
