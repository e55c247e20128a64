"""The three architecture numbers a graph determines: d*, h* and L*.

- ``d* = exp(H(p))``, ``p_i = sigma_i / sum(sigma)`` over the singular values of
  ``diag(sqrt(phi*)) A``: the effective rank (Roy and Vetterli 2007) of the
  focus covariance ``Sigma = (diag(sqrt(phi*)) A)^T (diag(sqrt(phi*)) A)``.
- ``h* = |Semcon(G)|``: the distinct relation types of the links.
- ``L* = diam(G) * ceil(log(1/eps) / log(1/kappa))``: hops to cross the graph
  times the solver's steps per hop to reach precision eps at contraction kappa.

Formulas and their limits are in docs/compile.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np
import scipy.sparse as sp

from focusflow.core.errors import InvalidParameterError

#: The published bostrom compilation capped L* to 12 layers.
DEFAULT_MAX_LAYERS = 12
#: Default target precision of the layer count.
DEFAULT_EPS = 1e-3


def effective_rank(singular_values: np.ndarray) -> float:
    """``exp`` of the Shannon entropy of the normalised singular values (>= 1).

    Over a top-k spectrum the tail is missing, so the value is a lower bound of
    the full spectrum's effective rank (never above k).
    """
    s = np.asarray(singular_values, dtype=np.float64)
    s = s[s > 0]
    if s.size == 0:
        return 1.0
    p = s / s.sum()
    return float(math.exp(-(p * np.log(p)).sum()))


def _binary_entropy(q: float) -> float:
    if q <= 0.0 or q >= 1.0:
        return 0.0
    return -q * math.log(q) - (1.0 - q) * math.log1p(-q)


def effective_rank_bounds(
    top: np.ndarray, frobenius_sq: float, max_rank: int
) -> tuple[float, float]:
    """The interval the full spectrum's effective rank lies in, given its top k
    values, ``sum(sigma^2) = ||M||_F^2`` and a bound on the rank.

    The tail is at most ``m = max_rank - k`` values, each at most ``sigma_k``,
    whose squares sum to ``T = ||M||_F^2 - sum(top^2)``; its L1 mass ``S`` is
    then between ``T / sigma_k`` and ``sqrt(m T)`` (Cauchy-Schwarz). With ``q``
    the tail's share of the whole L1 mass, the entropy splits as
    ``H = h(q) + (1 - q) H_top + q H_tail``, ``h`` the binary entropy:

    - upper: ``H_tail <= log m``; the rest is concave in q, maximal at
      ``q = m / (m + e^H_top)`` clipped to the feasible range;
    - lower: ``H_tail >= log(S^2 / T)`` (Shannon entropy is at least the
      collision entropy), increasing in S, so its least value is at the
      smallest S; the concave rest is least at an end of the range. The top
      k's own effective rank is a lower bound too (each tail value is at most
      the mean of those before it, and adding such a value to a distribution
      of ``j`` values raises its entropy: ``h(q)/q > log(j + 1) > H`` for
      ``q <= 1/(j + 1)``), so the larger of the two is returned.

    Exact top values give a rigorous interval; a randomized SVD's are a little
    low, which only widens it. Where the tail is empty the interval is one point.
    """
    s = np.asarray(top, dtype=np.float64)
    s = np.sort(s[s > 0])[::-1]
    if s.size == 0:
        return 1.0, 1.0
    h_top = math.log(effective_rank(s))
    tail_sq = frobenius_sq - math.fsum((s * s).tolist())
    m = max_rank - s.size
    if m <= 0 or tail_sq <= 0.0:
        point = math.exp(h_top)
        return point, point
    s_top = math.fsum(s.tolist())
    sk = float(s[-1])
    lo_mass = tail_sq / sk
    hi_mass = max(math.sqrt(m * tail_sq), lo_mass)
    q_lo = lo_mass / (s_top + lo_mass)
    q_hi = hi_mass / (s_top + hi_mass)

    def rest(q: float) -> float:
        return _binary_entropy(q) + (1.0 - q) * h_top

    q_star = min(max(m / (m + math.exp(h_top)), q_lo), q_hi)
    upper = rest(q_star) + q_star * math.log(m)
    lower = min(rest(q_lo), rest(q_hi)) + q_lo * max(0.0, math.log(lo_mass * lo_mass / tail_sq))
    return math.exp(max(lower, h_top)), math.exp(upper)


def dimension_of(singular_values: np.ndarray) -> int:
    """``d*`` as an integer: the effective rank rounded, at least 1."""
    return max(1, round(effective_rank(singular_values)))


@dataclass
class Semcons:
    """The relation type of each link and the heads built for them.

    ``names[t]`` is type t; ``of_link[e]`` the type of link e; ``shares[t]`` the
    type's share of links. ``heads`` lists the types that get their own head;
    links of the other types go to one pooled head when there are any
    (``pooled``).
    """

    names: list[str]
    of_link: np.ndarray
    shares: np.ndarray
    heads: list[int]
    pooled: bool

    @property
    def h_star(self) -> int:
        return len(self.names)

    @property
    def n_heads(self) -> int:
        return len(self.heads) + int(self.pooled)

    def head_of_link(self) -> np.ndarray:
        """The head (0 .. n_heads - 1) each link feeds."""
        head_of_type = np.full(len(self.names), len(self.heads), dtype=np.int64)
        head_of_type[self.heads] = np.arange(len(self.heads))
        heads: np.ndarray = head_of_type[self.of_link]
        return heads

    def head_names(self) -> list[str]:
        named = [self.names[t] for t in self.heads]
        return [*named, "(other)"] if self.pooled else named


def semcons_of(
    neuron: np.ndarray,
    neuron_names: list[str],
    *,
    min_share: float = 0.01,
    max_heads: int = 16,
) -> Semcons:
    """Semcons from each link's neuron (``-1``: an anonymous edge-list link).

    A graph file carries no semcon field; its neuron is the relation (WordNet
    graph files make each relation its own neuron ``wordnet:<relation>``).
    Types with at least ``min_share`` of the links get a head, the largest
    first, at most ``max_heads``; the rest share one pooled head.
    """
    if max_heads < 1:
        raise InvalidParameterError(f"max_heads must be >= 1, got {max_heads}")
    neuron = np.asarray(neuron, dtype=np.int64)
    codes, of_link = np.unique(neuron, return_inverse=True)
    names = [neuron_names[c] if c >= 0 else "(anonymous)" for c in codes.tolist()]
    counts = np.bincount(of_link, minlength=len(codes)).astype(np.float64)
    shares = counts / max(counts.sum(), 1.0)
    order = np.lexsort((np.arange(len(codes)), -shares))
    heads = [int(t) for t in order if shares[t] >= min_share][:max_heads]
    if not heads and len(codes):
        heads = [int(order[0])]
    pooled = len(heads) < len(codes)
    return Semcons(names, of_link.astype(np.int64), shares, heads, pooled)


@nb.njit(cache=True)
def _bfs(indptr: np.ndarray, indices: np.ndarray, start: int, dist: np.ndarray) -> int:
    """Hop distances from ``start`` into ``dist`` (-1 unreached); returns the farthest."""
    dist[:] = -1
    queue = np.empty(indptr.shape[0] - 1, dtype=np.int64)
    queue[0] = start
    dist[start] = 0
    head, tail, far = 0, 1, start
    while head < tail:
        u = queue[head]
        head += 1
        for e in range(indptr[u], indptr[u + 1]):
            v = indices[e]
            if dist[v] < 0:
                dist[v] = dist[u] + 1
                queue[tail] = v
                tail += 1
                far = v
    return far


def diameter_double_sweep(adjacency: sp.spmatrix | sp.sparray) -> int:
    """Diameter estimate of the undirected graph by double-sweep BFS.

    BFS from the highest-degree particle, then from the farthest particle it
    reached; the second eccentricity is a lower bound of the diameter of that
    component (exact on trees; Magnien, Latapy and Habib 2009 found it tight on
    most real graphs). On a disconnected graph it measures the component of
    the highest-degree particle, the one most of the links are in.
    """
    a = sp.csr_matrix(adjacency)
    n = a.shape[0]
    if n == 0 or a.nnz == 0:
        return 0
    sym = (a + a.T).tocsr()
    indptr = sym.indptr.astype(np.int64)
    indices = sym.indices.astype(np.int64)
    degree = np.diff(indptr)
    dist = np.empty(n, dtype=np.int64)
    far = _bfs(indptr, indices, int(np.argmax(degree)), dist)
    far = _bfs(indptr, indices, far, dist)
    return int(dist[far])


@dataclass
class Layers:
    """``L*`` raw and capped, with what it was computed from."""

    diameter: int
    kappa: float
    eps: float
    steps_per_hop: int
    raw: int
    cap: int

    @property
    def capped(self) -> int:
        return max(1, min(self.raw, self.cap))


def layers_of(
    diameter: int, kappa: float, eps: float = DEFAULT_EPS, cap: int = DEFAULT_MAX_LAYERS
) -> Layers:
    """``L* = diam * ceil(log(1/eps) / log(1/kappa))`` and its cap."""
    if not 0.0 < eps < 1.0:
        raise InvalidParameterError(f"eps must be in (0, 1), got {eps}")
    if not 0.0 < kappa < 1.0:
        raise InvalidParameterError(f"contraction rate kappa must be in (0, 1), got {kappa}")
    if cap < 1:
        raise InvalidParameterError(f"the layer cap must be >= 1, got {cap}")
    steps = math.ceil(math.log(1.0 / eps) / math.log(1.0 / kappa))
    return Layers(diameter, kappa, eps, steps, max(diameter, 1) * steps, cap)
