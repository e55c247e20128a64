"""The fast CPU backend: parallel numba kernels over the snapshot's CSR arrays.

What makes it fast (ARCHITECTURE.md 3.3, measured in bench/focus_cpu.py):

* pull-style SpMV over the in-link CSR, rows split among threads by nonzeros,
  not by rows, because degree order puts every hub in the first rows;
* one pass over the edges per diffusion step: the source's ``x / out_weight``
  is prepared in the previous step's pass over particles, so the edge pass
  reads one value per edge and nothing else;
* teleport and dangling mass added as ``(1 - sum(alpha P^T x)) * prior``, which
  keeps mass exactly 1 even with float32 matrix values (the plain formula
  leaks mass when the stored row sums are not exactly 1);
* optional float32 storage of edge weights and of the gathered vector, with
  every sum accumulated in float64.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from focusflow.focus.backends.base import laplacian_scaling
from focusflow.graph.csr import balanced_chunks, row_sums
from focusflow.graph.snapshot import Snapshot

# Fixed number of work chunks (not per thread), so sums are grouped the same way
# whatever the thread count.
_CHUNKS = 64


@nb.njit(cache=True, parallel=True, fastmath=True)
def _pull(rows, bptr, indices, vals, optr, ov_indices, ov_vals, z, ylink, bounds, scale):
    """``ylink[q] = scale * sum_p W[p, q] z[p]`` for the rows that have in-links.

    ``bptr``/``optr`` are the base and overlay row pointers compacted to ``rows``;
    rows without in-links are never touched, so ``ylink`` stays 0 there. Returns
    ``sum(ylink)``. fastmath lets LLVM vectorise the row sums; every row sum is
    still computed in float64.
    """
    nchunks = bounds.shape[0] - 1
    partial = np.zeros(nchunks)
    for c in nb.prange(nchunks):
        total = 0.0
        for k in range(bounds[c], bounds[c + 1]):
            acc = 0.0
            for e in range(bptr[k], bptr[k + 1]):
                acc += vals[e] * z[indices[e]]
            for e in range(optr[k], optr[k + 1]):
                acc += ov_vals[e] * z[ov_indices[e]]
            acc *= scale
            ylink[rows[k]] = acc
            total += acc
        partial[c] = total
    return partial.sum()


@nb.njit(cache=True, parallel=True)
def _finish_diffusion(ylink, y, x, prior, inv_out, z, tele, nparts):
    """``y = ylink + tele * prior``; returns ``(||y - x||_1, sum y)``, writes ``z = y / W``."""
    n = y.shape[0]
    step = (n + nparts - 1) // nparts
    l1 = np.zeros(nparts)
    mass = np.zeros(nparts)
    for t in nb.prange(nparts):
        a = 0.0
        m = 0.0
        for i in range(t * step, min(n, (t + 1) * step)):
            v = ylink[i] + tele * prior[i]
            y[i] = v
            a += abs(v - x[i])
            m += v
            z[i] = v * inv_out[i]
        l1[t] = a
        mass[t] = m
    return l1.sum(), mass.sum()


@nb.njit(cache=True, parallel=True)
def _scale_into(x, s, out, nparts):
    n = x.shape[0]
    step = (n + nparts - 1) // nparts
    for t in nb.prange(nparts):
        for i in range(t * step, min(n, (t + 1) * step)):
            out[i] = x[i] * s[i]


@nb.njit(cache=True, parallel=True)
def _lap(indptr, indices, vals, ov_indptr, ov_indices, ov_vals, sigma, diag, x, t, out, bounds):
    """``out = diag * x - sigma * (A (sigma * x))`` with ``t`` as scratch."""
    n = x.shape[0]
    for i in nb.prange(n):
        t[i] = sigma[i] * x[i]
    for c in nb.prange(bounds.shape[0] - 1):
        for i in range(bounds[c], bounds[c + 1]):
            acc = 0.0
            for e in range(indptr[i], indptr[i + 1]):
                acc += vals[e] * t[indices[e]]
            for e in range(ov_indptr[i], ov_indptr[i + 1]):
                acc += ov_vals[e] * t[ov_indices[e]]
            out[i] = diag[i] * x[i] - sigma[i] * acc


@nb.njit(cache=True)
def _merge_sym(n, a_ptr, a_idx, a_w, b_ptr, b_idx, b_w):
    """``A + B`` for two CSRs with sorted rows (used for ``W + W^T``)."""
    ptr = np.zeros(n + 1, dtype=np.int64)
    for r in range(n):
        i, ie = a_ptr[r], a_ptr[r + 1]
        j, je = b_ptr[r], b_ptr[r + 1]
        c = 0
        while i < ie or j < je:
            if j >= je or (i < ie and a_idx[i] < b_idx[j]):
                i += 1
            elif i >= ie or b_idx[j] < a_idx[i]:
                j += 1
            else:
                i += 1
                j += 1
            c += 1
        ptr[r + 1] = ptr[r] + c
    idx = np.empty(ptr[n], dtype=np.int32)
    w = np.empty(ptr[n], dtype=np.float64)
    for r in range(n):
        i, ie = a_ptr[r], a_ptr[r + 1]
        j, je = b_ptr[r], b_ptr[r + 1]
        k = ptr[r]
        while i < ie or j < je:
            if j >= je or (i < ie and a_idx[i] < b_idx[j]):
                idx[k] = a_idx[i]
                w[k] = a_w[i]
                i += 1
            elif i >= ie or b_idx[j] < a_idx[i]:
                idx[k] = b_idx[j]
                w[k] = b_w[j]
                j += 1
            else:
                idx[k] = a_idx[i]
                w[k] = a_w[i] + b_w[j]
                i += 1
                j += 1
            k += 1
    return ptr, idx, w


class NumbaOperator:
    """Graph products on all CPU cores; ``precision`` sets the stored value type."""

    name = "numba"

    def __init__(self, snapshot: Snapshot, precision: str = "float64") -> None:
        self.snapshot = snapshot
        self.n = snapshot.n
        self.dtype = np.float32 if precision == "float32" else np.float64
        self.parts = _CHUNKS
        self.refresh()
        self._sym = None

    def refresh(self) -> None:
        """Re-read the snapshot's arrays after a patch (weights, overlay, n)."""
        s = self.snapshot
        self.n = s.n
        self.in_w = s.in_w.astype(self.dtype, copy=False)
        self.ov_in_w = s.ov_in_w.astype(self.dtype, copy=False)
        has_in = (np.diff(s.in_indptr) > 0) | (np.diff(s.ov_in_indptr) > 0)
        self.rows = np.flatnonzero(has_in).astype(np.int32)
        ptr_type = np.int32 if max(len(s.in_indices), len(s.ov_in_indices)) < 2**31 else np.int64
        self.bptr = np.append(s.in_indptr[self.rows], s.in_indptr[-1]).astype(ptr_type)
        self.optr = np.append(s.ov_in_indptr[self.rows], s.ov_in_indptr[-1]).astype(ptr_type)
        self.bounds = balanced_chunks(self.bptr.astype(np.int64), _CHUNKS)
        out = s.out_weight
        linked = out > 0
        self.inv_out = np.where(linked, 1.0 / np.where(linked, out, 1.0), 0.0)
        self.dangling = ~linked
        self.z = np.zeros(self.n, dtype=self.dtype)
        self.ylink = np.zeros(self.n)
        self._z_of: np.ndarray | None = None
        self._sym = None

    def prepare(self, x: np.ndarray) -> None:
        """Compute the gathered vector ``z = x / out_weight`` for the next step."""
        np.multiply(x, self.inv_out, out=self.z, casting="unsafe")
        self._z_of = x

    def pull(self, z: np.ndarray, out: np.ndarray, scale: float) -> float:
        """``out[q] = scale * sum_p W[p, q] z[p]`` (0 where no in-links); returns the sum."""
        s = self.snapshot
        out[:] = 0.0
        return _pull(
            self.rows,
            self.bptr,
            s.in_indices,
            self.in_w,
            self.optr,
            s.ov_in_indices,
            self.ov_in_w,
            z.astype(self.dtype, copy=False),
            out,
            self.bounds,
            scale,
        )

    def diffusion(self, x, y, alpha, prior):
        if self._z_of is not x:
            self.prepare(x)
        s = self.snapshot
        linked_mass = _pull(
            self.rows,
            self.bptr,
            s.in_indices,
            self.in_w,
            self.optr,
            s.ov_in_indices,
            self.ov_in_w,
            self.z,
            self.ylink,
            self.bounds,
            alpha,
        )
        tele = 1.0 - linked_mass
        l1, _ = _finish_diffusion(self.ylink, y, x, prior, self.inv_out, self.z, tele, self.parts)
        self._z_of = y
        return l1

    # --- springs and heat --------------------------------------------------
    def setup_laplacian(self, kind: str) -> None:
        s = self.snapshot
        n = s.n
        ptr, idx, w = _merge_sym(
            n, s.out_indptr, s.out_indices, s.out_w, s.in_indptr, s.in_indices, s.in_w
        )
        if s.overlay_nnz:
            optr, oidx, ow = _merge_sym(
                n,
                s.ov_out_indptr,
                s.ov_out_indices,
                s.ov_out_w,
                s.ov_in_indptr,
                s.ov_in_indices,
                s.ov_in_w,
            )
        else:
            optr, oidx, ow = np.zeros(n + 1, dtype=np.int64), np.empty(0, np.int32), np.empty(0)
        if kind == "normalized":
            # The normalised Laplacian does not change when all weights scale;
            # scaling them to max 1 keeps sigma = d^-1/2 far from overflow.
            top = max(float(w.max()) if len(w) else 0.0, float(ow.max()) if len(ow) else 0.0)
            if top > 0:
                w, ow = w / top, ow / top
        degree = row_sums(ptr, w) + row_sums(optr, ow)
        self.lap_sigma, self.lap_diag, self.lam_max = laplacian_scaling(degree, kind)
        self._sym = (ptr, idx, w.astype(self.dtype), optr, oidx, ow.astype(self.dtype))
        self._sym_bounds = balanced_chunks(ptr, _CHUNKS)
        self._scratch = np.empty(n)

    def lap_matvec(self, x, out):
        ptr, idx, w, optr, oidx, ow = self._sym
        _lap(
            ptr,
            idx,
            w,
            optr,
            oidx,
            ow,
            self.lap_sigma,
            self.lap_diag,
            x,
            self._scratch,
            out,
            self._sym_bounds,
        )


class NumbaBackend:
    name = "numba"

    def available(self) -> tuple[bool, str]:
        return True, f"numba {nb.__version__}, {nb.config.NUMBA_NUM_THREADS} threads"

    def operator(self, snapshot: Snapshot, precision: str = "float64") -> NumbaOperator:
        return NumbaOperator(snapshot, precision)
