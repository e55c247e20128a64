"""Randomized truncated SVD of a sparse matrix (Halko, Martinsson and Tropp 2011).

The compiler needs the top singular vectors of ``diag(sqrt(phi)) A`` for graphs
of millions of particles. ``scipy.sparse.linalg.svds`` (ARPACK) needs hundreds
of sequential matrix-vector products (about ten minutes for k = 100 on 3.1M
particles, bench/RESULTS.md); the randomized range finder needs ``2 (q + 1)`` products of the
sparse matrix with a thin dense block (``k + p`` columns) and a QR of that
block after each, which is what sparse kernels and BLAS are fast at. Memory is
``O(nnz + n (k + p))``: no n x n dense matrix is ever formed.

The product kernel is numba's, parallel over rows (scipy's CSR x dense runs on
one core).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np
import scipy.sparse as sp

from focusflow.core.errors import InvalidParameterError

#: Extra test vectors beyond k (HMT 2011, section 4.2: 5-10 suffice for a
#: spectrum that decays).
OVERSAMPLE = 10
#: Power iterations: each sharpens the spectrum by its own power and costs
#: two sparse products; 2 is enough for singular values to 1e-3 on graphs.
POWER_ITERS = 2
#: Above this many entries in an n x (k + p) block the blocks are float32 (about
#: 360k particles at 138 columns): at 3M particles a float64 block is 3.3 GB.
FLOAT32_ABOVE = 50_000_000
#: Rows per band of an in-place orthonormalisation pass.
ORTH_BAND = 1 << 16


@dataclass
class TruncatedSVD:
    """``A ~ U diag(s) V^T``: ``U`` n_rows x k, ``s`` descending, ``V`` n_cols x k.

    ``U`` and ``V`` are in the dtype the blocks were computed in (float32 on
    large graphs: two n x k float64 copies were 2 GB at 10^6 particles).
    """

    u: np.ndarray
    s: np.ndarray
    v: np.ndarray


@nb.njit(cache=True, parallel=True)
def _csr_dense(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, x: np.ndarray, out: np.ndarray
) -> None:
    """``out = A @ x`` for CSR ``A`` and a C-ordered dense block ``x``."""
    n_rows = indptr.shape[0] - 1
    k = x.shape[1]
    for i in nb.prange(n_rows):
        for c in range(k):
            out[i, c] = 0.0
        for e in range(indptr[i], indptr[i + 1]):
            j = indices[e]
            w = data[e]
            for c in range(k):
                out[i, c] += w * x[j, c]


def spmm(a: sp.csr_matrix, x: np.ndarray) -> np.ndarray:
    """``a @ x`` (CSR times dense) on every core, in ``x``'s dtype."""
    x = np.ascontiguousarray(x)
    out = np.empty((a.shape[0], x.shape[1]), dtype=x.dtype)
    data = a.data if a.data.dtype == x.dtype else a.data.astype(x.dtype)
    _csr_dense(a.indptr, a.indices, data, x, out)
    return out


def _orth(y: np.ndarray, *, overwrite: bool = False) -> np.ndarray:
    """An orthonormal basis of ``y``'s columns (see ``_orth_r``)."""
    return _orth_r(y, overwrite=overwrite)[0]


def _orth_r(y: np.ndarray, *, overwrite: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(Q, R)`` with ``y = Q R``, ``Q`` orthonormal columns, ``R`` w x w float64.

    CholeskyQR2 (Fukaya et al. 2014): two passes of ``Y R^-1`` with ``R`` the
    Cholesky factor of the w x w Gram matrix, 30-40x faster than Householder QR
    on a tall block (4.1 s -> 0.1 s at 265k x 138) because it is two BLAS-3
    products. When ``y`` is too ill-conditioned for it (a Gram matrix that is
    not positive definite, or a result that is not orthonormal to 1e-6),
    Householder QR does it. With ``overwrite`` the passes run in place, a band
    of rows at a time, so no second n x w block is held (at 3·10^6 particles a
    float32 block is 1.7 GB); ``y`` is then consumed.
    """
    q = y
    acc = np.eye(y.shape[1])  # y = q @ acc so far
    try:
        for _ in range(2):
            gram = (q.T @ q).astype(np.float64)
            r = np.linalg.cholesky(gram).T
            rinv = np.linalg.inv(r).astype(q.dtype)
            if overwrite:
                for lo in range(0, q.shape[0], ORTH_BAND):
                    q[lo : lo + ORTH_BAND] = q[lo : lo + ORTH_BAND] @ rinv
            else:
                q = q @ rinv
            acc = r @ acc
        ortho = (q.T @ q).astype(np.float64)
        if np.abs(ortho - np.eye(ortho.shape[0])).max() < 1e-6 or q.dtype == np.float32:
            return np.ascontiguousarray(q), acc
    except np.linalg.LinAlgError:
        pass
    if not overwrite:
        q, acc = y, np.eye(y.shape[1])
    # In place, q = y acc^-1 spans y's columns still.
    q, r = np.linalg.qr(q, mode="reduced")
    return np.ascontiguousarray(q), r.astype(np.float64) @ acc


def randomized_svd(
    a: sp.spmatrix | sp.sparray,
    k: int,
    *,
    oversample: int = OVERSAMPLE,
    power_iters: int = POWER_ITERS,
    seed: int = 0,
    dtype: type | None = None,
) -> TruncatedSVD:
    """Top ``k`` singular triplets of sparse ``a`` by a seeded Gaussian range finder.

    Each power iteration re-orthonormalises (QR) between the products with
    ``a`` and ``a^T``, so the block does not collapse onto the top singular
    vector in floating point (HMT 2011, algorithm 4.4). ``dtype`` of the dense
    blocks defaults to float64, float32 past ``FLOAT32_ABOVE`` entries.
    """
    n_rows, n_cols = a.shape
    if k < 1:
        raise InvalidParameterError(f"rank k must be >= 1, got {k}")
    k = min(k, n_rows, n_cols)
    width = min(k + max(oversample, 0), n_rows, n_cols)
    if dtype is None:
        dtype = np.float32 if max(n_rows, n_cols) * width > FLOAT32_ABOVE else np.float64
    csr = sp.csr_matrix(a, dtype=np.float64)
    csr.sum_duplicates()
    csr_t = csr.T.tocsr()
    rng = np.random.default_rng(seed)
    omega: np.ndarray = rng.standard_normal((n_cols, width)).astype(dtype)
    # Every block is orthonormalised in place and dropped as soon as the next
    # exists: at most three n x width blocks live at once.
    q = _orth(spmm(csr, omega), overwrite=True)
    del omega
    for _ in range(max(power_iters, 0)):
        z = _orth(spmm(csr_t, q), overwrite=True)
        del q
        q = _orth(spmm(csr, z), overwrite=True)
        del z
    # B = Q^T A (width x n_cols) is held as B^T = A^T Q = Q2 R, so B = R^T Q2^T
    # and the SVD of the small R^T gives B's: B = Ur S (Q2 Vr)^T.
    q2, r = _orth_r(spmm(csr_t, q), overwrite=True)
    ur, s, vrt = np.linalg.svd(r.T)
    u = q @ ur[:, :k].astype(dtype)
    del q
    v = q2 @ vrt[:k].T.astype(dtype)
    return TruncatedSVD(u=u, s=s[:k], v=np.ascontiguousarray(v))


def svds_reference(a: sp.spmatrix | sp.sparray, k: int, seed: int = 0) -> TruncatedSVD:
    """scipy's ARPACK ``svds``, sorted descending: the reference for benchmarks and tests."""
    from scipy.sparse.linalg import svds

    rng = np.random.default_rng(seed)
    v0 = rng.standard_normal(min(a.shape))
    u, s, vt = svds(sp.csr_matrix(a, dtype=np.float64), k=k, v0=v0)
    order = np.argsort(-s)
    return TruncatedSVD(u=u[:, order], s=s[order], v=vt[order].T)
