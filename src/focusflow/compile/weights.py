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
- ``hop_idx``, ``hop_p``, ``hop_sem`` (n x r): each particle's r heaviest
  out-links per semcon, their transition probabilities and semcon, and
  ``hop_rest`` (n,) the probability of the links left out: the first
  ``EXACT_HOPS`` diffusion steps out of the context are lookups in these
  tables, not a low-rank approximation (a low rank smears the sharp
  neighbourhood of one particle over the hubs that dominate the spectrum),
  and because each entry keeps its semcon a query can weigh relation types
  the way focus-flow inference does;
- ``emb_in = P^(EXACT_HOPS + 1) V``: where the mass that leaves the exact
  hops lands, in the basis ``V``;
- ``T = V^T P^T V`` (d x d) is the diffusion operator ``P^T`` restricted to
  the span of ``V`` (a Galerkin projection); its powers are the depth-t path
  co-occurrence the MLP layers apply;
- per head s, ``B_s = U^T A_s U`` (d x d) is the semcon's adjacency in the
  embedding space, factored ``B_s = W_Q W_K^T`` by its SVD.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from focusflow.compile.dims import Semcons
from focusflow.compile.svd import spmm

#: The largest attention logit ``q . k / sqrt(d)`` a head can produce between
#: unit tokens: softmax(4) against a key of logit 0 gives about 98 % of its row.
ATTENTION_SCALE = 4.0
#: Out-links per particle kept in the hop tables.
HOP_WIDTH = 16
#: Links per piece while the hop tables are filled.
HOP_CHUNK = 1 << 22
#: Diffusion steps out of the context taken exactly through the hop tables: on
#: WordNet's held-out links three exact steps rank the answer in the top 10
#: 1.4x as often as two (bench/infer.py), and a fourth adds r times the work.
EXACT_HOPS = 3
#: The most exact hops a model may take: the fourth would gather r^4 = 65,536
#: table entries per context particle.
MAX_HOPS = 3
#: Focus-weighted share of a step's mass the tables must hold for more than one
#: exact hop: mass a table leaves out returns to the context, and over three
#: steps out of hubs that is most of it. Measured (tri KL, 16 contexts, three
#: hops against one): WordNet holds 0.92 (1.70 against 3.52 nats), the bostrom
#: sample 0.72 (1.36 against 1.49), R-MAT 17 0.40 (0.47 against 0.15).
HOP_COVERAGE = 0.6


def table_coverage(phi: np.ndarray, hop_p: np.ndarray, hop_rest: np.ndarray) -> float:
    """The focus-weighted share of out-link probability the hop tables hold,
    over particles that have out-links."""
    held = hop_p.sum(axis=1, dtype=np.float64)
    linked = (held + hop_rest) > 0
    weight = np.where(linked, np.asarray(phi, dtype=np.float64), 0.0)
    total = weight.sum()
    return float((weight * held).sum() / total) if total > 0 else 1.0


@dataclass
class CompiledWeights:
    """Everything the forward pass needs, float32, plus its few scalars."""

    phi: np.ndarray  # (n,) global focus, the full-support floor of the output
    emb_att: np.ndarray  # (n, d) unit rows of E* = U: attention tokens
    emb_in: np.ndarray  # (n, d) P^(hops + 1) V: past the exact hops, basis V
    hop_idx: np.ndarray  # (n, r) int32 heaviest out-neighbours (0 where fewer)
    hop_p: np.ndarray  # (n, r) their transition probabilities (0 where fewer)
    hop_sem: np.ndarray  # (n, r) int32 the semcon of each entry
    hop_rest: np.ndarray  # (n,) probability of the out-links left out of the table
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
    hops: int = EXACT_HOPS
    semcon_names: tuple[str, ...] = ()
    coverage: float = 1.0  # focus-weighted share of out-link mass the tables hold
    #: The architecture's numbers (``d``, ``heads``, ``layers``, ...), written
    #: into the ONNX model's metadata.
    meta: dict[str, int | float] = field(default_factory=dict)

    @property
    def vocab(self) -> int:
        return int(self.phi.shape[0])

    @property
    def dim(self) -> int:
        return int(self.emb_in.shape[1])

    @property
    def heads(self) -> int:
        return int(self.w_q.shape[0])

    @property
    def n_semcons(self) -> int:
        return len(self.semcon_names)

    def parameter_count(self) -> int:
        arrays = (self.phi, self.emb_att, self.emb_in, self.unemb, self.w_q, self.w_k)
        small = (self.head_share, self.prop_t, self.basis_mass, self.hop_p, self.hop_rest)
        return int(sum(a.size for a in arrays) + sum(a.size for a in small))


def transition(a: sp.csr_matrix) -> tuple[sp.csr_matrix, np.ndarray]:
    """``(P, W)``: the row-stochastic matrix of ``a`` and its out-weights."""
    out_weight = np.asarray(a.sum(axis=1)).ravel()
    inv = np.zeros_like(out_weight)
    np.divide(1.0, out_weight, out=inv, where=out_weight > 0)
    return sp.diags(inv).dot(a).tocsr(), out_weight


def hop_tables(
    n: int,
    src: np.ndarray,
    dst: np.ndarray,
    weight: np.ndarray,
    semcon: np.ndarray,
    r: int,
    chunk: int = HOP_CHUNK,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(idx, p, sem, rest)``: each source's ``r`` heaviest (target, semcon)
    pairs (links of one pair summed; ties: lower target, then lower semcon),
    their transition probabilities, their semcons, and the probability of the
    pairs left out. Rows of dangling particles are all zero.

    The links are grouped by source once and the rows filled a piece of about
    ``chunk`` links at a time, so the sorts hold copies of a piece, not of
    every link (at 5·10^7 links each full int64 copy is 0.4 GB, and the sorts
    held several).
    """
    w_all = np.asarray(weight, dtype=np.float64)
    src = np.asarray(src)
    kept = np.flatnonzero(w_all > 0)
    by_src = kept[np.argsort(src[kept], kind="stable")]
    del kept
    src_sorted = src[by_src].astype(np.int64)
    out_weight = np.bincount(src_sorted, weights=w_all[by_src], minlength=n)
    idx = np.zeros((n, r), dtype=np.int32)
    p = np.zeros((n, r), dtype=np.float64)
    s_out = np.zeros((n, r), dtype=np.int32)
    m = len(by_src)
    cuts = np.searchsorted(src_sorted, src_sorted[np.arange(0, m, max(chunk, 1))], side="left")
    bounds = [*np.unique(cuts).tolist(), m] if m else [0]
    for lo, hi in itertools.pairwise(bounds):
        ids = by_src[lo:hi]
        _fill_rows(
            src_sorted[lo:hi],
            np.asarray(dst[ids], dtype=np.int64),
            np.asarray(semcon[ids], dtype=np.int64),
            w_all[ids],
            out_weight,
            r,
            idx,
            p,
            s_out,
        )
    rest = np.where(out_weight > 0, 1.0 - p.sum(axis=1), 0.0)
    return idx, p, s_out, np.maximum(rest, 0.0)


def _fill_rows(
    src: np.ndarray,
    dst: np.ndarray,
    sem: np.ndarray,
    w: np.ndarray,
    out_weight: np.ndarray,
    r: int,
    idx: np.ndarray,
    p: np.ndarray,
    s_out: np.ndarray,
) -> None:
    """The table rows of the sources in one piece of links (sorted by source)."""
    order = np.lexsort((sem, dst, src))
    src, dst, sem, w = src[order], dst[order], sem[order], w[order]
    new = np.ones(len(src), dtype=bool)
    new[1:] = (src[1:] != src[:-1]) | (dst[1:] != dst[:-1]) | (sem[1:] != sem[:-1])
    start = np.flatnonzero(new)
    w = np.add.reduceat(w, start) if len(start) else w[:0]
    src, dst, sem = src[start], dst[start], sem[start]
    order = np.lexsort((-w, src))  # stable: equal weights keep (dst, sem) order
    src, dst, sem, w = src[order], dst[order], sem[order], w[order]
    rank = np.arange(len(src)) - np.searchsorted(src, src, side="left")
    sel = rank < r
    rows, cols = src[sel], rank[sel]
    idx[rows, cols] = dst[sel]
    p[rows, cols] = w[sel] / out_weight[rows]
    s_out[rows, cols] = sem[sel]


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; zero rows stay zero."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    unit: np.ndarray = np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
    return unit


def head_matrices(u: np.ndarray, heads: list[sp.csr_matrix]) -> tuple[np.ndarray, np.ndarray]:
    """``(W_Q, W_K)`` per head from the SVD of ``B_s = U^T A_s U``.

    Each pair is scaled so that ``W_Q W_K^T = sqrt(d) * ATTENTION_SCALE *
    B_s / ||B_s||_2``: the logits between unit tokens stay within
    ``ATTENTION_SCALE`` whatever the semcon's total weight, so a head's
    pattern, not its size, decides where attention goes (the heads' sizes
    enter as their mixing shares).
    """
    d = u.shape[1]
    u = np.ascontiguousarray(u)
    w_q = np.zeros((len(heads), d, d))
    w_k = np.zeros((len(heads), d, d))
    for h, a_s in enumerate(heads):
        b = gram(u, spmm(a_s, u))
        ub, sb, vbt = np.linalg.svd(b)
        if sb.size == 0 or sb[0] <= 0:
            continue
        root = np.sqrt(sb * (math.sqrt(d) * ATTENTION_SCALE / sb[0]))
        w_q[h] = ub * root
        w_k[h] = vbt.T * root
    return w_q, w_k


def gram(x: np.ndarray, y: np.ndarray, band: int = 1 << 16) -> np.ndarray:
    """``x^T y`` in float64, a band of rows at a time: the n x d blocks may be
    float32, and a d x d sum over millions of rows wants float64 without a
    float64 copy of either block."""
    out = np.zeros((x.shape[1], y.shape[1]))
    for lo in range(0, x.shape[0], band):
        out += x[lo : lo + band].T.astype(np.float64) @ y[lo : lo + band].astype(np.float64)
    return out


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


@dataclass
class LinkTable:
    """The links a compilation reads, one row per link: ``semcon`` is the
    index of its type in ``names``."""

    src: np.ndarray
    dst: np.ndarray
    weight: np.ndarray
    semcon: np.ndarray
    names: tuple[str, ...]


def build_weights(  # noqa: PLR0913 - the model's inputs and keyword-only knobs
    a: sp.csr_matrix,
    phi: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    heads: list[sp.csr_matrix],
    head_share: np.ndarray,
    links: LinkTable,
    *,
    alpha: float,
    layers: int,
    floor: float,
    attention_share: float,
    hop_width: int = HOP_WIDTH,
    hops: int | None = None,
) -> CompiledWeights:
    """The weights from the truncated SVD ``(u, v)`` of ``diag(sqrt(phi)) a``;
    ``hops`` None picks ``EXACT_HOPS`` when the tables hold ``HOP_COVERAGE`` of
    the focus-weighted out-link mass, else 1."""
    n = a.shape[0]
    hop_idx, hop_p, hop_sem, hop_rest = hop_tables(
        n, links.src, links.dst, links.weight, links.semcon, hop_width
    )
    coverage = table_coverage(phi, hop_p, hop_rest)
    if hops is None:
        hops = EXACT_HOPS if coverage >= HOP_COVERAGE else 1
    # The n x d blocks stay in the SVD's dtype (float32 on large graphs): at
    # 3·10^6 particles each float64 copy was 2 GB. Only the d x d reductions
    # over all particles are summed in float64.
    p, _ = transition(a)
    u = np.ascontiguousarray(u)
    v = np.ascontiguousarray(v)
    emb_in = spmm(p, v)
    prop = gram(emb_in, v)  # T = V^T P^T V = (P V)^T V
    for _ in range(hops):
        emb_in = spmm(p, emb_in)
    w_q, w_k = head_matrices(u, heads)
    f32 = np.float32
    return CompiledWeights(
        phi=(phi / phi.sum()).astype(f32),
        emb_att=unit_rows(u).astype(f32, copy=False),
        emb_in=emb_in.astype(f32, copy=False),
        hop_idx=hop_idx,
        hop_p=hop_p.astype(f32),
        hop_sem=hop_sem,
        hop_rest=hop_rest.astype(f32),
        unemb=v.T.astype(f32, copy=False),
        w_q=w_q.astype(f32),
        w_k=w_k.astype(f32),
        head_share=np.asarray(head_share, dtype=f32),
        prop_t=np.ascontiguousarray(prop.T).astype(f32),
        basis_mass=v.sum(axis=0).astype(f32),
        alpha=float(alpha),
        layers=int(layers),
        floor=float(floor),
        attention_share=float(attention_share),
        hops=int(hops),
        semcon_names=tuple(links.names),
        coverage=coverage,
    )
