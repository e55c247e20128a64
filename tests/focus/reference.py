"""Independent float64 references for the focus tests (dense numpy/scipy, networkx)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import scipy.linalg as sl
import scipy.sparse as sp


def dense_weights(n, src, dst, w) -> np.ndarray:
    a = np.zeros((n, n))
    np.add.at(a, (src, dst), w)
    np.fill_diagonal(a, 0.0)
    return a


def networkx_pagerank(a: np.ndarray, alpha: float) -> np.ndarray:
    n = len(a)
    g = nx.DiGraph()
    g.add_nodes_from(range(n))
    rows, cols = np.nonzero(a)
    g.add_weighted_edges_from(
        zip(rows.tolist(), cols.tolist(), a[rows, cols].tolist(), strict=True)
    )
    pr = nx.pagerank(g, alpha=alpha, tol=1e-15, max_iter=100_000, weight="weight")
    return np.array([pr[i] for i in range(n)])


def dense_laplacian(a: np.ndarray, laplacian: str) -> np.ndarray:
    """The Laplacian of ``A = W + W^T`` acting on distributions (docs/focus.md)."""
    sym = a + a.T
    deg = sym.sum(axis=1)
    if laplacian == "normalized":
        inv = np.divide(1.0, deg, out=np.zeros_like(deg), where=deg > 0)
        return np.diag((deg > 0).astype(float)) - sym @ np.diag(inv)
    return np.diag(deg) - sym


def dense_tri(
    a: np.ndarray,
    alpha=0.85,
    mu=1.0,
    tau=1.0,
    lam=(0.5, 0.3, 0.2),
    laplacian="normalized",
    prior: np.ndarray | None = None,
) -> np.ndarray:
    """The equilibrium of the composite map, as the eigenvector for eigenvalue 1 of
    the dense matrix ``lam_d D + lam_s S + lam_h H`` (all column-stochastic)."""
    n = len(a)
    u = np.full(n, 1.0 / n) if prior is None else prior
    out = a.sum(axis=1)
    dangling = out <= 0
    p = np.divide(a, out[:, None], out=np.zeros_like(a), where=out[:, None] > 0)
    d_op = alpha * p.T + alpha * np.outer(u, dangling) + (1 - alpha) * np.outer(u, np.ones(n))
    lap = dense_laplacian(a, laplacian)
    s_op = mu * np.linalg.inv(lap + mu * np.eye(n))
    h_op = sl.expm(-tau * lap)
    m = lam[0] * d_op + lam[1] * s_op + lam[2] * h_op
    vals, vecs = np.linalg.eig(m)
    v = np.real(vecs[:, np.argmin(np.abs(vals - 1.0))])
    return v / v.sum()


def as_matrix(n, src, dst, w) -> sp.csr_matrix:
    return sp.csr_matrix((w, (src, dst)), shape=(n, n))


def graph_matrix(g) -> sp.csr_matrix:
    """The weights of a Cybergraph from its link columns (particle order),
    without its snapshot: what a patched or deferred snapshot must equal."""
    links = g.links()
    return as_matrix(
        g.n_particles, links.src, links.dst, g.link_weight(np.arange(g.n_links, dtype=np.int64))
    )
