"""The symmetrised graph behind springs and heat, shared by every backend.

``A = W + W^T`` (base and overlay merged), its degrees and the scaling of the
chosen Laplacian (``laplacian_scaling``), built on the host in O(entries) by
merging the sorted rows of the out-link and in-link CSRs.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from focusflow.focus.backends.base import laplacian_scaling
from focusflow.graph.csr import row_sums
from focusflow.graph.snapshot import Snapshot


@nb.njit(cache=True)
def merge_sorted_rows(n, a_ptr, a_idx, a_w, b_ptr, b_idx, b_w):
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


def symmetric_matrix(snap: Snapshot, kind: str):
    """``(indptr, indices, weights, sigma, diag, lam_max)`` of ``A`` and its Laplacian.

    For the normalized Laplacian the weights are scaled to a maximum of 1
    (``weight_scale``): the operator does not change, and ``sigma = d^-1/2``
    stays far from overflow.
    """
    ptr, idx, w = symmetric_weights(snap)
    w = w * weight_scale(w, kind)
    sigma, diag, lam_max = laplacian_scaling(row_sums(ptr, w), kind)
    return ptr, idx, w, sigma, diag, lam_max


def weight_scale(w: np.ndarray, kind: str) -> float:
    """The factor ``symmetric_matrix`` applies to ``A``'s weights."""
    if kind == "normalized" and len(w):
        top = float(w.max())
        if top > 0:
            return 1.0 / top
    return 1.0


def symmetric_weights(snap: Snapshot) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``A = W + W^T`` as CSR (sorted rows, internal order), unscaled."""
    n = snap.n
    ptr, idx, w = merge_sorted_rows(
        n, snap.out_indptr, snap.out_indices, snap.out_w, snap.in_indptr, snap.in_indices, snap.in_w
    )
    if snap.overlay_nnz:
        optr, oidx, ow = merge_sorted_rows(
            n,
            snap.ov_out_indptr,
            snap.ov_out_indices,
            snap.ov_out_w,
            snap.ov_in_indptr,
            snap.ov_in_indices,
            snap.ov_in_w,
        )
        ptr, idx, w = merge_sorted_rows(n, ptr, idx, w, optr, oidx, ow)
    return ptr, idx, w
