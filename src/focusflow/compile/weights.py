"""The compiled weights: embeddings, per-semcon attention, the propagation matrix.

Notation (docs/compile.md): ``A`` is the weighted adjacency (rows = sources),
``P = diag(1/W) A`` its row-stochastic transition matrix (zero rows for
dangling particles), ``M = diag(sqrt(phi*)) A ~ U diag(s) V^T`` the truncated
SVD of rank d. Then

- ``E* = U`` (n x d) is the seed's embedding; its unit rows are the tokens the
  attention heads compare;
- ``P V = diag(1/(W sqrt(phi*))) U diag(s)`` (n x d): row i is particle i's
  one-step out-distribution ``P[i, :]`` in the basis ``V``, the Eckart-Young
  best rank-d approximation of the rows of ``P`` in the focus-weighted norm;
  the model keeps ``emb_in = P (P V)``, the two-step distribution, because
  the first step is exact (below);
- ``hop_idx``, ``hop_w`` (n x r): each particle's r heaviest out-links and
  their transition probabilities: the first diffusion step out of the context
  is a lookup, not a low-rank approximation (a low rank smears the sharp
  neighbourhood of one particle over the hubs that dominate the spectrum);
- ``T = V^T P^T V`` (d x d) is the diffusion operator ``P^T`` restricted to
  the span of ``V`` (a Galerkin projection); its powers are the depth-t path
  co-occurrence the MLP layers apply;
- per head s, ``B_s = U^T A_s U`` (d x d) is the semcon's adjacency in the
  embedding space, factored ``B_s = W_Q W_K^T`` by its SVD.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numba as nb
import numpy as np
import scipy.sparse as sp

from focusflow.compile.dims import Semcons
from focusflow.compile.svd import spmm

#: The largest attention logit ``q . k / sqrt(d)`` a head can produce between
#: unit tokens: softmax(4) against a key of logit 0 gives about 98 % of its row.
ATTENTION_SCALE = 4.0
#: Out-links per particle kept for the exact first hop.
HOP_WIDTH = 16


@dataclass
class CompiledWeights:
    """Everything the forward pass needs, float32, plus its few scalars."""

    phi: np.ndarray  # (n,) global focus, the full-support floor of the output
    emb_att: np.ndarray  # (n, d) unit rows of E* = U: attention tokens
    emb_in: np.ndarray  # (n, d) P P V: two diffusion steps of each particle, basis V
    hop_idx: np.ndarray  # (n, r) int32 heaviest out-neighbours (0 where fewer)
    hop_w: np.ndarray  # (n, r) their transition probabilities (0 where fewer)
    hop_mass: np.ndarray  # (n,) row sums of hop_w: the share the hop carries
    unemb: np.ndarray  # (d, n) V^T: from the basis V back to particles
    w_q: np.ndarray  # (h, d, d)
    w_k: np.ndarray  # (h, d, d)
    head_share: np.ndarray  # (h,) share of link weight of each head, sums to 1
    prop_t: np.ndarray  # (d, d) T^T (row vectors: z T^T = (T z)^T)
    basis_mass: np.ndarray  # (d,) 1^T V: total mass of each basis vector
    alpha: float
    layers: int
    floor: float
    attention_share: float
    meta: dict = field(default_factory=dict)

    @property
    def vocab(self) -> int:
        return int(self.phi.shape[0])

    @property
    def dim(self) -> int:
        return int(self.emb_in.shape[1])

    @property
    def heads(self) -> int:
        return int(self.w_q.shape[0])

    def parameter_count(self) -> int:
        arrays = (self.phi, self.emb_att, self.emb_in, self.unemb, self.w_q, self.w_k)
        small = (self.head_share, self.prop_t, self.basis_mass, self.hop_w, self.hop_idx)
        return int(sum(a.size for a in arrays) + sum(a.size for a in small))


def transition(a: sp.csr_matrix) -> tuple[sp.csr_matrix, np.ndarray]:
    """``(P, W)``: the row-stochastic matrix of ``a`` and its out-weights."""
    out_weight = np.asarray(a.sum(axis=1)).ravel()
    inv = np.zeros_like(out_weight)
    np.divide(1.0, out_weight, out=inv, where=out_weight > 0)
    return sp.diags(inv).dot(a).tocsr(), out_weight


@nb.njit(cache=True, parallel=True)
def _top_per_row(indptr, indices, data, r, idx_out, w_out):
    for i in nb.prange(indptr.shape[0] - 1):
        lo, hi = indptr[i], indptr[i + 1]
        order = np.argsort(-data[lo:hi], kind="mergesort")
        for t in range(min(r, hi - lo)):
            idx_out[i, t] = indices[lo + order[t]]
            w_out[i, t] = data[lo + order[t]]


def top_out_links(p: sp.csr_matrix, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``r`` largest entries (ties: column order) as padded tables."""
    n = p.shape[0]
    idx = np.zeros((n, r), dtype=np.int32)
    w = np.zeros((n, r), dtype=np.float64)
    p = p.tocsr()
    p.sort_indices()
    _top_per_row(p.indptr.astype(np.int64), p.indices.astype(np.int64), p.data, r, idx, w)
    return idx, w


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; zero rows stay zero."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def head_matrices(u: np.ndarray, heads: list[sp.csr_matrix]) -> tuple[np.ndarray, np.ndarray]:
    """``(W_Q, W_K)`` per head from the SVD of ``B_s = U^T A_s U``.

    Each pair is scaled so that ``W_Q W_K^T = sqrt(d) * ATTENTION_SCALE *
    B_s / ||B_s||_2``: the logits between unit tokens stay within
    ``ATTENTION_SCALE`` whatever the semcon's total weight, so a head's
    pattern, not its size, decides where attention goes (the heads' sizes
    enter as their mixing shares).
    """
    d = u.shape[1]
    w_q = np.zeros((len(heads), d, d))
    w_k = np.zeros((len(heads), d, d))
    for h, a_s in enumerate(heads):
        b = u.T @ spmm(a_s, np.ascontiguousarray(u))
        ub, sb, vbt = np.linalg.svd(b)
        if sb.size == 0 or sb[0] <= 0:
            continue
        root = np.sqrt(sb * (math.sqrt(d) * ATTENTION_SCALE / sb[0]))
        w_q[h] = ub * root
        w_k[h] = vbt.T * root
    return w_q, w_k


def split_heads(
    n: int, src: np.ndarray, dst: np.ndarray, weight: np.ndarray, semcons: Semcons
) -> tuple[list[sp.csr_matrix], np.ndarray]:
    """Each head's adjacency ``A_s`` and its share of the total link weight."""
    head = semcons.head_of_link()
    mats, totals = [], []
    for h in range(semcons.n_heads):
        sel = head == h
        mats.append(sp.csr_matrix((weight[sel], (src[sel], dst[sel])), shape=(n, n)))
        totals.append(float(weight[sel].sum()))
    total = np.asarray(totals)
    share = total / total.sum() if total.sum() > 0 else np.full(len(mats), 1.0 / len(mats))
    return mats, share


def build_weights(
    a: sp.csr_matrix,
    phi: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    heads: list[sp.csr_matrix],
    head_share: np.ndarray,
    *,
    alpha: float,
    layers: int,
    floor: float,
    attention_share: float,
    hop_width: int = HOP_WIDTH,
) -> CompiledWeights:
    """The weights from the truncated SVD ``(u, v)`` of ``diag(sqrt(phi)) a``."""
    p, _ = transition(a)
    v = np.ascontiguousarray(v, dtype=np.float64)
    pv = spmm(p, v)
    prop = pv.T @ v  # T = V^T P^T V = (P V)^T V
    emb_in = spmm(p, pv)
    hop_idx, hop_w = top_out_links(p, hop_width)
    w_q, w_k = head_matrices(u, heads)
    f32 = np.float32
    return CompiledWeights(
        phi=(phi / phi.sum()).astype(f32),
        emb_att=unit_rows(u).astype(f32),
        emb_in=emb_in.astype(f32),
        hop_idx=hop_idx,
        hop_w=hop_w.astype(f32),
        hop_mass=hop_w.sum(axis=1).astype(f32),
        unemb=np.ascontiguousarray(v.T).astype(f32),
        w_q=w_q.astype(f32),
        w_k=w_k.astype(f32),
        head_share=np.asarray(head_share, dtype=f32),
        prop_t=np.ascontiguousarray(prop.T).astype(f32),
        basis_mass=v.sum(axis=0).astype(f32),
        alpha=float(alpha),
        layers=int(layers),
        floor=float(floor),
        attention_share=float(attention_share),
    )
