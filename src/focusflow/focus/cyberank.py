"""go-cyber's rank, reproduced: the ``cyberank`` compatibility mode.

This follows ``x/rank/keeper/calculate_cpu.go`` of cybercongress/go-cyber as
published (facts, not code, taken from it):

* every particle starts at ``(1 - d) / N``;
* "dangling" there means *no in-links*; such particles keep their start value;
* per-link stake is ``stake / neudeg`` in **integer** division (uint64), summed
  per ``(from, to)`` pair; a source's out-stake is the sum over its pairs;
* a particle with in-links gets ``d * sum_j prev[j] * linkStake(j, i) /
  outStake(j) + (1 - d)/N + d * ((1 - d)/N) * danglingCount / N``, summing over
  sources ``j`` in ascending id order, multiply then add (no fused multiply-add);
* iteration stops when the largest absolute change (L-infinity) is at most the
  tolerance (go-cyber's default 1e-3); values are committed as
  ``uint64(rank * 1e15)`` (truncation).

There is no redistribution of the mass of sink particles, so ranks do not sum
to 1; this mode returns them as go-cyber does. Links from plain edge lists
(no neuron) use their float weight as link stake.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numba as nb
import numpy as np
import scipy.sparse as sp

from focusflow.core.errors import InvalidParameterError
from focusflow.focus.params import FocusParams
from focusflow.focus.result import Diagnostics, FocusResult
from focusflow.graph.csr import build_csr, transpose_csr
from focusflow.graph.cybergraph import Cybergraph
from focusflow.graph.snapshot import Snapshot

if TYPE_CHECKING:
    from focusflow.focus.solver import GraphLike

SCALE = 1e15


@nb.njit(cache=True)
def _exact_entry_sums(link_entry: np.ndarray, link_stake: np.ndarray, nnz: int) -> np.ndarray:
    out = np.zeros(nnz, dtype=np.uint64)
    for i in range(link_entry.shape[0]):
        out[link_entry[i]] += link_stake[i]
    return out


@nb.njit(cache=True)
def _exact_row_sums(indptr: np.ndarray, values: np.ndarray) -> np.ndarray:
    n = indptr.shape[0] - 1
    out = np.zeros(n, dtype=np.uint64)
    for r in range(n):
        for e in range(indptr[r], indptr[r + 1]):
            out[r] += values[e]
    return out


@nb.njit(cache=True)
def _float_row_sums(indptr: np.ndarray, values: np.ndarray) -> np.ndarray:
    n = indptr.shape[0] - 1
    out = np.zeros(n, dtype=np.float64)
    for r in range(n):
        for e in range(indptr[r], indptr[r + 1]):
            out[r] += values[e]
    return out


@nb.njit(cache=True, parallel=True)
def _step(
    in_ptr: np.ndarray,
    in_src: np.ndarray,
    weight: np.ndarray,
    prev: np.ndarray,
    nxt: np.ndarray,
    damping: float,
    base: float,
) -> None:
    n = prev.shape[0]
    for i in nb.prange(n):
        a = in_ptr[i]
        b = in_ptr[i + 1]
        if a == b:
            nxt[i] = prev[i]
            continue
        ksum = 0.0
        for e in range(a, b):
            ksum = prev[in_src[e]] * weight[e] + ksum
        nxt[i] = ksum * damping + base


def _link_stakes(graph: Cybergraph) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """``(src, dst, per-link stake)``; integer (uint64) when every link has a neuron."""
    links = graph.links()
    named = links.neuron >= 0
    if named.all():
        stakes = graph.stakes
        if np.any(stakes != np.floor(stakes)) or np.any(stakes >= 2.0**64):
            raise InvalidParameterError(
                "cyberank mode needs integer stakes (go-cyber counts stake in base units)"
            )
        deg = np.maximum(graph.neudeg, 1).astype(np.uint64)
        per_neuron = stakes.astype(np.uint64) // deg
        return links.src, links.dst, per_neuron[links.neuron], True
    return links.src, links.dst, graph.link_weight(np.arange(graph.n_links)), False


def cyberank(graph: GraphLike, params: FocusParams) -> FocusResult:
    """Run go-cyber's rank loop with ``params.alpha`` as damping and ``params.tol`` (L-inf)."""
    t0 = time.perf_counter()
    keys = None
    if isinstance(graph, Cybergraph):
        n = graph.n_particles
        src, dst, stake, exact = _link_stakes(graph)
        keys = graph.particles.keys()
    elif isinstance(graph, Snapshot):
        m = sp.coo_matrix(graph.to_scipy())
        n, src, dst, stake, exact = graph.n, m.row, m.col, m.data, False
    elif sp.issparse(graph):
        m = sp.coo_matrix(graph)
        n, src, dst, stake, exact = m.shape[0], m.row, m.col, m.data, False
    else:
        raise InvalidParameterError(f"cannot compute cyberank of a {type(graph).__name__}")
    keep = src != dst
    src, dst, stake = src[keep], dst[keep], stake[keep]
    indptr, indices, weights, link_entry, _, _ = build_csr(
        n, src, dst, np.asarray(stake, dtype=np.float64)
    )
    if exact:
        link_sum = _exact_entry_sums(link_entry, stake.astype(np.uint64), len(indices))
        out_sum = _exact_row_sums(indptr, link_sum)
    else:
        link_sum, out_sum = weights, _float_row_sums(indptr, weights)
    rows = np.repeat(np.arange(n), np.diff(indptr))
    link_f = link_sum.astype(np.float64)
    out_f = out_sum.astype(np.float64)[rows]
    usable = (link_f > 0) & (out_f > 0)
    ratio = np.zeros(len(link_f))
    ratio[usable] = link_f[usable] / out_f[usable]
    t_ptr, t_idx, t_w, _ = transpose_csr(n, indptr, indices, ratio)
    d = params.alpha
    diag = Diagnostics()
    if n == 0:
        rank = np.zeros(0)
    else:
        default = (1.0 - d) / n
        dangling = int(np.sum(np.diff(t_ptr) == 0))
        inner = default * (float(dangling) / float(n))
        base = float(d * inner) + default
        prev = np.full(n, default)
        rank = np.empty(n)
        for _ in range(params.max_iter):
            diag.iterations += 1
            _step(t_ptr, t_idx, t_w, prev, rank, d, base)
            change = float(np.max(np.abs(rank - prev))) if n else 0.0
            diag.residual_history.append(change)
            prev, rank = rank, prev
            if change <= params.tol:
                diag.converged = True
                break
        rank = prev
        diag.residual = diag.residual_history[-1]
    diag.timings = {"total": time.perf_counter() - t0}
    return FocusResult(
        focus=rank,
        params=params,
        backend="cyberank",
        diagnostics=diag,
        keys=keys,
        cyberank=(rank * SCALE).astype(np.uint64),
    )
