"""The symmetrised graph behind springs and heat, shared by every backend.

``A = W + W^T`` (base and overlay merged), its degrees and the scaling of the
chosen Laplacian (``laplacian_scaling``), built on the host in O(entries) by
merging the sorted rows of the out-link and in-link CSRs, in parallel over
chunks of rows. ``merge_rows`` serves every backend (numba's SELL build too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numba as nb
import numpy as np

from focusflow.focus.backends.base import laplacian_scaling
from focusflow.graph.csr import balanced_chunks
from focusflow.graph.snapshot import Snapshot

if TYPE_CHECKING:
    from focusflow.focus.params import LaplacianKind

#: Chunks of rows (balanced by entries) that the merges run in parallel.
_PARTS = 64


@nb.njit(cache=True, parallel=True)
def _merge_count(
    bounds: np.ndarray,
    a_ptr: np.ndarray,
    a_idx: np.ndarray,
    a_w: np.ndarray,
    b_ptr: np.ndarray,
    b_idx: np.ndarray,
    b_w: np.ndarray,
    counts: np.ndarray,
    rowsum: np.ndarray,
    top: np.ndarray,
) -> None:
    """Row ``r`` of ``A + B``: ``counts[r]`` distinct columns, ``rowsum[r]`` its sum
    (in column order); ``top[t]`` the largest entry of chunk ``t``."""
    for t in nb.prange(bounds.shape[0] - 1):
        best = 0.0
        for r in range(bounds[t], bounds[t + 1]):
            i, ie = a_ptr[r], a_ptr[r + 1]
            j, je = b_ptr[r], b_ptr[r + 1]
            c = 0
            s = 0.0
            while i < ie or j < je:
                if j >= je or (i < ie and a_idx[i] < b_idx[j]):
                    v = a_w[i]
                    i += 1
                elif i >= ie or b_idx[j] < a_idx[i]:
                    v = b_w[j]
                    j += 1
                else:
                    v = a_w[i] + b_w[j]
                    i += 1
                    j += 1
                s += v
                if v > best:
                    best = v
                c += 1
            counts[r] = c
            rowsum[r] = s
        top[t] = best


@nb.njit(cache=True, parallel=True)
def _merge_fill(
    bounds: np.ndarray,
    a_ptr: np.ndarray,
    a_idx: np.ndarray,
    a_w: np.ndarray,
    b_ptr: np.ndarray,
    b_idx: np.ndarray,
    b_w: np.ndarray,
    ptr: np.ndarray,
    idx: np.ndarray,
    w: np.ndarray,
) -> None:
    """Fill ``A + B`` (sorted rows) into ``ptr, idx, w``."""
    for t in nb.prange(bounds.shape[0] - 1):
        for r in range(bounds[t], bounds[t + 1]):
            i, ie = a_ptr[r], a_ptr[r + 1]
            j, je = b_ptr[r], b_ptr[r + 1]
            k = ptr[r]
            while i < ie or j < je:
                if j >= je or (i < ie and a_idx[i] < b_idx[j]):
                    v = a_w[i]
                    idx[k] = a_idx[i]
                    i += 1
                elif i >= ie or b_idx[j] < a_idx[i]:
                    v = b_w[j]
                    idx[k] = b_idx[j]
                    j += 1
                else:
                    v = a_w[i] + b_w[j]
                    idx[k] = a_idx[i]
                    i += 1
                    j += 1
                w[k] = v
                k += 1


def merge_counts(
    n: int,
    a_ptr: np.ndarray,
    a_idx: np.ndarray,
    a_w: np.ndarray,
    b_ptr: np.ndarray,
    b_idx: np.ndarray,
    b_w: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Per-row counts and sums of ``A + B``, the largest entry, and the chunks
    (balanced by entries) that ``merge_rows`` fills in parallel."""
    bounds = balanced_chunks(np.asarray(a_ptr) + np.asarray(b_ptr), _PARTS)
    counts = np.empty(n, dtype=np.int64)
    rowsum = np.empty(n, dtype=np.float64)
    top = np.zeros(len(bounds) - 1)
    _merge_count(bounds, a_ptr, a_idx, a_w, b_ptr, b_idx, b_w, counts, rowsum, top)
    return bounds, counts, rowsum, float(top.max()) if len(top) else 0.0


def merge_rows(
    n: int,
    a_ptr: np.ndarray,
    a_idx: np.ndarray,
    a_w: np.ndarray,
    b_ptr: np.ndarray,
    b_idx: np.ndarray,
    b_w: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """``A + B`` for two CSRs with sorted rows: ``(ptr, idx, w, rowsum, max entry)``."""
    bounds, counts, rowsum, top = merge_counts(n, a_ptr, a_idx, a_w, b_ptr, b_idx, b_w)
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    idx = np.empty(ptr[n], dtype=np.int32)
    w = np.empty(ptr[n], dtype=np.float64)
    _merge_fill(bounds, a_ptr, a_idx, a_w, b_ptr, b_idx, b_w, ptr, idx, w)
    return ptr, idx, w, rowsum, top


def symmetric_matrix(
    snap: Snapshot, kind: LaplacianKind
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """``(indptr, indices, weights, sigma, diag, lam_max)`` of ``A`` and its Laplacian.

    For the normalized Laplacian the weights are scaled to a maximum of 1
    (``weight_scale``): the operator does not change, and ``sigma = d^-1/2``
    stays far from overflow.
    """
    ptr, idx, w, degree, top = symmetric_weights(snap)
    scale = weight_scale(top, kind)
    if scale != 1.0:
        w = w * scale
    sigma, diag, lam_max = laplacian_scaling(degree * scale, kind)
    return ptr, idx, w, sigma, diag, lam_max


def weight_scale(top: float, kind: LaplacianKind) -> float:
    """The factor ``symmetric_matrix`` applies to ``A``'s weights, given the
    largest of them (``top``, as ``symmetric_weights`` returns it)."""
    return 1.0 / top if kind == "normalized" and top > 0 else 1.0


def symmetric_weights(
    snap: Snapshot,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """``A = W + W^T`` as CSR (sorted rows, internal order), unscaled:
    ``(indptr, indices, weights, row sums, largest weight)``; the merge
    computes the last two on its way, so callers need no extra pass."""
    n = snap.n
    ptr, idx, w, rowsum, top = merge_rows(
        n, snap.out_indptr, snap.out_indices, snap.out_w, snap.in_indptr, snap.in_indices, snap.in_w
    )
    if snap.overlay_nnz:
        optr, oidx, ow, _, _ = merge_rows(
            n,
            snap.ov_out_indptr,
            snap.ov_out_indices,
            snap.ov_out_w,
            snap.ov_in_indptr,
            snap.ov_in_indices,
            snap.ov_in_w,
        )
        ptr, idx, w, rowsum, top = merge_rows(n, ptr, idx, w, optr, oidx, ow)
    return ptr, idx, w, rowsum, top
