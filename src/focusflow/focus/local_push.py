"""Personalized focus by local push: work in proportion to where the answer lies.

With mass-preserving operators the personalized equilibrium
``phi = lam_d D(phi) + lam_s S(phi) + lam_h H(phi)`` is the normalised solution
of the linear system ``x = M x + u`` with ``M = lam_d alpha P^T + G``, in which
dangling particles' columns of ``P^T`` are zero (their mass, like the
teleport's, returns to ``u`` and only scales ``x``; Langville and Meyer,
"Deeper inside PageRank", 2004). ``G`` is springs and heat together, and with
the normalized Laplacian ``L = I - W_s`` (``W_s = A D^-1``, the random walk on
the symmetrised graph) both are series with non-negative coefficients in
``W_s``::

    mu (L + mu)^-1 = (1 - b) sum_k b^k W_s^k,          b = 1 / (1 + mu)
    exp(-tau L)    = sum_k e^-tau tau^k / k! W_s^k

So ``M`` is a sub-stochastic walk: from a particle the mass takes a link of
``P`` (share ``lam_d alpha``), is absorbed (``lam_d (1 - alpha)``, all of
``lam_d`` at a dangling particle), or starts a springs walk (a geometric
number of ``W_s`` steps) or a heat walk (a Poisson number), at whose end it is
back in the main state. ``x`` counts visits to the main state. Forward push
(Andersen, Chung and Lang, FOCS 2006) on this chain keeps ``x = xhat +
(I - M)^-1 r`` with everything non-negative: it moves residual ``r`` of a
state into ``xhat`` and along the state's transitions, touching only the
states whose residual is above ``eps`` times their cost, and lowers ``eps``
until the error bound meets its target. A heat walk is carried in stages (its
step count so far) up to ``HEAT_STAGES``; what would take more steps ends
there and is counted in the bound.

The bound: each visit to the main state absorbs at least ``kill = lam_d (1 -
alpha)`` of its mass and the walks conserve it, so the residual adds at most
``||r||_1 / kill`` to ``x``, and ``x >= xhat``. With ``e = x - xhat``,
``||x / |x| - xhat / |xhat| ||_1 <= 2 ||e||_1 / |xhat|``: that is the
reported ``error_bound`` on the L1 distance between the answer and the
equilibrium (tested against dense float64 solves).

Everything a query writes is reset through its touched lists, so the scratch
vectors (:class:`PushScratch`) are allocated once per graph and reused: no
whole-graph vector is allocated or cleared per query.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numba as nb
import numpy as np

from focusflow.core.errors import InvalidParameterError
from focusflow.graph.snapshot import Snapshot

#: Heat walks are carried to at most this many steps (stages); the mass that
#: would take more (``P(N >= HEAT_STAGES)``, 8e-10 of a walk at tau = 1) ends
#: at the last stage and is added to the error bound. Each stage is a state
#: per particle in the push's buffers, so more would cost memory for nothing a
#: ranking sees.
HEAT_STAGES = 12
#: States per particle: the main state, the springs walk, the heat walk's stages.
STATES = 2 + HEAT_STAGES
#: Each round of push divides the threshold by this.
EPS_STEP = 4.0


@dataclass(frozen=True)
class LocalGraph:
    """The two walks a push takes, read from a snapshot's CSRs (internal order).

    ``P``'s links are the snapshot's out-rows (``w(p, q) / W_p``); ``W_s``'s
    column ``p`` is ``p``'s out-row and in-row (``a_pq / d_p`` with ``A = W +
    W^T``). ``linked``: whether springs and heat see the particle (the
    normalized Laplacian's degree floor, ``laplacian_scaling``). Nothing is
    copied but two vectors of ``n``: a snapshot's local graph costs one pass
    over its in-weights.
    """

    snap: Snapshot
    degree: np.ndarray
    linked: np.ndarray
    #: Per particle, what pushing its main state and its walks' states reads
    #: (its out-row, or both rows, plus one): the push threshold's scale.
    cost: np.ndarray

    @classmethod
    def of(cls, snap: Snapshot) -> LocalGraph:
        from focusflow.focus.backends.base import DEGREE_FLOOR

        if snap.overlay_nnz:
            raise InvalidParameterError("local push reads a snapshot without patches")
        n = snap.n
        degree = snap.out_weight + np.bincount(snap.out_indices, weights=snap.out_w, minlength=n)
        linked = degree > 0
        if n:
            linked &= degree > DEGREE_FLOOR * degree.max()
        out = np.diff(snap.out_indptr).astype(np.float64)
        both = out + np.diff(snap.in_indptr)
        return cls(snap, degree, linked, np.stack([out + 2.0, both + 1.0], axis=1).reshape(-1))

    @property
    def entries(self) -> int:
        """Entries a whole-graph pass of both walks reads (``P`` once, ``A`` twice)."""
        return 3 * len(self.snap.out_indices)


@dataclass(frozen=True)
class Walks:
    """The chain's shares: main state to diffusion, springs and heat; the
    springs walk's continuation ``b``; per heat stage the share that stops."""

    diffuse: float
    springs: float
    heat: float
    b: float
    stop: np.ndarray
    kill: float
    heat_tail: float

    @classmethod
    def of(cls, alpha: float, mu: float, tau: float, weights: tuple[float, float, float]) -> Walks:
        lam_d, lam_s, lam_h = weights
        if lam_d <= 0:
            raise InvalidParameterError("local push needs a diffusion weight > 0")
        # P(N = k) of a Poisson(tau) step count, and its tails P(N >= k) summed
        # from the far end (1 - a prefix sum would cancel to noise).
        far = HEAT_STAGES + 64 + int(4 * tau)
        pk = np.array([math.exp(-tau + k * math.log(tau) - math.lgamma(k + 1)) for k in range(far)])
        ge = np.cumsum(pk[::-1])[::-1]
        stop = pk[:HEAT_STAGES] / np.maximum(ge[:HEAT_STAGES], 1e-300)
        stop[-1] = 1.0
        tail = float(ge[HEAT_STAGES])
        return cls(
            diffuse=lam_d * alpha,
            springs=lam_s,
            heat=lam_h,
            b=1.0 / (1.0 + mu),
            stop=np.minimum(stop, 1.0),
            kill=lam_d * (1.0 - alpha),
            heat_tail=tail,
        )


@dataclass
class PushScratch:
    """Per-graph buffers a push reuses: all-zero between queries."""

    n: int
    r: np.ndarray = field(init=False)
    x: np.ndarray = field(init=False)
    flags: np.ndarray = field(init=False)
    touched: np.ndarray = field(init=False)
    queue: np.ndarray = field(init=False)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        states = STATES * self.n
        self.r = np.zeros(states)
        self.x = np.zeros(self.n)
        self.flags = np.zeros(states, dtype=np.uint8)
        index = np.int32 if states < 2**31 else np.int64
        self.touched = np.empty(states, dtype=index)
        # A state is queued at most once at a time: a ring of the next power of
        # two holds them all and wraps with a mask.
        self.queue = np.empty(1 << max(int(states - 1).bit_length(), 1), dtype=index)


@dataclass(frozen=True)
class LocalAnswer:
    """A local push's result: ``values`` (the focus, summing to 1) on ``support``
    (particle ids); ``touched`` particles given mass, ``work`` entries read."""

    support: np.ndarray
    values: np.ndarray
    error_bound: float
    converged: bool
    touched: int
    work: int
    pushes: int


def local_focus(
    graph: LocalGraph,
    scratch: PushScratch,
    walks: Walks,
    context: np.ndarray,
    weights: np.ndarray,
    target: float,
    max_touched: int,
    max_work: int,
) -> LocalAnswer:
    """``phi*_c`` on the particles the push reached, with its L1 error bound.

    Stops when the bound is at most ``target`` (``converged``), or when more
    than ``max_touched`` particles carry mass or the work (entries read) passes
    ``max_work`` (not converged: the caller solves on the whole graph).
    """
    with scratch.lock:
        snap = graph.snap
        out = _run(
            snap.out_indptr,
            snap.out_indices,
            snap.out_w,
            snap.out_weight,
            snap.in_indptr,
            snap.in_indices,
            snap.in_w,
            graph.degree,
            graph.linked,
            graph.cost,
            walks.diffuse,
            walks.springs,
            walks.heat,
            walks.b,
            walks.stop,
            walks.kill,
            walks.heat_tail,
            snap.perm[np.asarray(context, dtype=np.int64)],
            np.asarray(weights, dtype=np.float64),
            target,
            max_touched,
            max_work,
            scratch.r,
            scratch.x,
            scratch.flags,
            scratch.touched,
            scratch.queue,
        )
    support, values, bound, converged, touched, work, pushes = out
    return LocalAnswer(snap.iperm[support], values, bound, bool(converged), touched, work, pushes)


#: Bits of a state's flags: touched in this query, and in the queue now.
SEEN = 1
QUEUED = 2


@nb.njit(cache=True, inline="always")
def _cost(s: int, p: int, cost: np.ndarray) -> float:
    """What pushing state ``s`` of ``p`` reads (``LocalGraph.cost``)."""
    c: float = cost[2 * p + (1 if s > 0 else 0)]
    return c


@nb.njit(cache=True)
def _add(
    t: int,
    v: float,
    eps: float,
    r: np.ndarray,
    flags: np.ndarray,
    touched: np.ndarray,
    nt: int,
    queue: np.ndarray,
    tail: int,
    cost: np.ndarray,
) -> tuple[int, int]:
    """``r[t] += v``; lists ``t`` as touched and queues it once above threshold."""
    r[t] += v
    f = flags[t]
    if not f & SEEN:
        f |= SEEN
        touched[nt] = t
        nt += 1
    if not f & QUEUED:
        p = t // STATES
        if r[t] > eps * _cost(t - p * STATES, p, cost):
            f |= QUEUED
            queue[tail & (queue.shape[0] - 1)] = t
            tail += 1
    flags[t] = f
    return nt, tail


@nb.njit(cache=True)
def _run(  # noqa: C901, PLR0912, PLR0913, PLR0915 - a numba kernel: flat arrays in, one work-queue loop
    out_ptr: np.ndarray,
    out_idx: np.ndarray,
    out_w: np.ndarray,
    out_weight: np.ndarray,
    in_ptr: np.ndarray,
    in_idx: np.ndarray,
    in_w: np.ndarray,
    degree: np.ndarray,
    linked: np.ndarray,
    cost: np.ndarray,
    diffuse: float,
    springs: float,
    heat: float,
    b: float,
    stop: np.ndarray,
    kill: float,
    heat_tail: float,
    context: np.ndarray,
    weights: np.ndarray,
    target: float,
    max_touched: int,
    max_work: int,
    r: np.ndarray,
    x: np.ndarray,
    flags: np.ndarray,
    touched: np.ndarray,
    queue: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, float, bool, int, int, int]:
    mask = queue.shape[0] - 1
    nt = 0
    total = 0.0
    for j in range(context.shape[0]):
        total += weights[j]
    eps = 0.0
    for j in range(context.shape[0]):
        t = context[j] * STATES
        r[t] += weights[j] / total
        if not flags[t] & SEEN:
            flags[t] |= SEEN
            touched[nt] = t
            nt += 1
    for j in range(nt):
        t = touched[j]
        v = r[t] / _cost(0, t // STATES, cost)
        if v > eps:
            eps = v
    eps *= 0.5
    work = 0
    pushes = 0
    particles = 0
    converged = False
    bound = 2.0
    while True:
        head = 0
        tail = 0
        for j in range(nt):
            t = touched[j]
            p = t // STATES
            s = t - p * STATES
            if not flags[t] & QUEUED and r[t] > eps * _cost(s, p, cost):
                flags[t] |= QUEUED
                queue[tail & mask] = t
                tail += 1
        while head < tail:
            t = queue[head & mask]
            head += 1
            flags[t] &= ~QUEUED
            p = t // STATES
            s = t - p * STATES
            v = r[t]
            if v <= eps * _cost(s, p, cost):
                continue
            r[t] = 0.0
            pushes += 1
            if s == 0:
                if x[p] == 0.0:
                    particles += 1
                x[p] += v
                lo, hi = out_ptr[p], out_ptr[p + 1]
                work += hi - lo + 2
                if hi > lo and out_weight[p] > 0.0:
                    c = diffuse * v / out_weight[p]
                    for e in range(lo, hi):
                        nt, tail = _add(
                            out_idx[e] * STATES, c * out_w[e], eps, r, flags, touched, nt, queue,
                            tail, cost,
                        )  # fmt: skip
                if springs > 0.0:
                    nt, tail = _add(
                        t + 1, springs * v, eps, r, flags, touched, nt, queue, tail, cost,
                    )  # fmt: skip
                if heat > 0.0:
                    nt, tail = _add(
                        t + 2, heat * v, eps, r, flags, touched, nt, queue, tail, cost,
                    )  # fmt: skip
            else:
                # A springs walk (s == 1) stops with 1 - b; a heat walk at stage
                # k = s - 2 with stop[k]. Springs and heat do not see an
                # unlinked particle: its walk ends where it is.
                if not linked[p]:
                    ends = 1.0
                elif s == 1:
                    ends = 1.0 - b
                else:
                    ends = stop[s - 2]
                if ends > 0.0:
                    nt, tail = _add(
                        t - s, ends * v, eps, r, flags, touched, nt, queue, tail, cost,
                    )  # fmt: skip
                if ends < 1.0:
                    nxt = 1 if s == 1 else s + 1
                    c = (1.0 - ends) * v / degree[p]
                    lo, hi = out_ptr[p], out_ptr[p + 1]
                    work += hi - lo + 1
                    for e in range(lo, hi):
                        nt, tail = _add(
                            out_idx[e] * STATES + nxt, c * out_w[e], eps, r, flags, touched,
                            nt, queue, tail, cost,
                        )  # fmt: skip
                    lo, hi = in_ptr[p], in_ptr[p + 1]
                    work += hi - lo
                    for e in range(lo, hi):
                        nt, tail = _add(
                            in_idx[e] * STATES + nxt, c * in_w[e], eps, r, flags, touched,
                            nt, queue, tail, cost,
                        )  # fmt: skip
            if particles > max_touched or work > max_work:
                break
        rsum = 0.0
        xsum = 0.0
        for j in range(nt):
            t = touched[j]
            rsum += r[t]
            if t % STATES == 0:
                xsum += x[t // STATES]
        # The residual adds at most rsum / kill to x; heat walks cut at the last
        # stage move at most heat_tail of each heat walk's mass, over every
        # visit the full solve would make (at most xsum + rsum / kill).
        err = rsum / kill + 2.0 * heat * heat_tail * (xsum + rsum / kill) / kill
        bound = min(2.0 * err / xsum, 2.0) if xsum > 0 else 2.0
        if bound <= target:
            converged = True
            break
        if particles > max_touched or work > max_work or tail > head:
            break
        eps /= EPS_STEP
        if eps < 1e-300:
            break
    for j in range(head, tail):
        flags[queue[j & mask]] &= ~QUEUED
    count = 0
    for j in range(nt):
        t = touched[j]
        if t % STATES == 0 and x[t // STATES] > 0.0:
            count += 1
    support = np.empty(count, dtype=np.int64)
    values = np.empty(count)
    k = 0
    for j in range(nt):
        t = touched[j]
        if t % STATES == 0 and x[t // STATES] > 0.0:
            support[k] = t // STATES
            values[k] = x[t // STATES] / xsum
            k += 1
    for j in range(nt):
        t = touched[j]
        r[t] = 0.0
        flags[t] = 0
        if t % STATES == 0:
            x[t // STATES] = 0.0
    return support, values, bound, converged, particles, work, pushes
