"""The float64 reference backend: scipy.sparse products, written for clarity.

Every other backend is tested against this one. It follows the definitions of
docs/focus.md literally (dangling mass and teleport added as the formula says,
no mass-conservation shortcut), so that it stays the independent check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from focusflow.focus.backends.base import laplacian_scaling
from focusflow.graph.snapshot import PatchInfo, Snapshot

if TYPE_CHECKING:
    from focusflow.focus.params import LaplacianKind, Precision


def _matrix(snap: Snapshot) -> sp.csr_matrix:
    """W in internal order, base plus overlay."""
    n = snap.n
    w = sp.csr_matrix((snap.out_w, snap.out_indices, snap.out_indptr), shape=(n, n))
    if snap.overlay_nnz:
        w = w + sp.csr_matrix(
            (snap.ov_out_w, snap.ov_out_indices, snap.ov_out_indptr), shape=(n, n)
        )
    return w.tocsr()


class NumpyOperator:
    name = "numpy"

    def __init__(self, snapshot: Snapshot, precision: Precision = "float64") -> None:
        self.snapshot = snapshot
        self.refresh()

    def refresh(self, info: PatchInfo | None = None) -> None:
        """Re-read the whole snapshot (the reference keeps no incremental state)."""
        self._set_matrix(_matrix(self.snapshot))

    def append_links(self, src: np.ndarray, dst: np.ndarray, weights: np.ndarray, n: int) -> None:
        """Add links (internal ids; particles ``>= self.n`` are new) to the matrix,
        without the snapshot: the reference side of the GPU engine's deferred patch."""
        w = self._w.tocoo()
        w.resize((n, n))
        fresh = sp.csr_matrix((weights, (src, dst)), shape=(n, n))
        self._set_matrix((w.tocsr() + fresh).tocsr())

    def _set_matrix(self, w: sp.csr_matrix) -> None:
        self.n = w.shape[0]
        out = np.asarray(w.sum(axis=1)).ravel()
        self.dangling = out <= 0
        inv = np.where(self.dangling, 0.0, 1.0 / np.where(self.dangling, 1.0, out))
        self.pt = (sp.diags(inv) @ w).T.tocsr()
        self._w = w
        self._a: sp.csr_matrix | None = None

    def diffusion(self, x: np.ndarray, y: np.ndarray, alpha: float, prior: np.ndarray) -> float:
        dm = float(x[self.dangling].sum())
        y[:] = alpha * (self.pt @ x) + (alpha * dm + (1.0 - alpha) * float(x.sum())) * prior
        y /= y.sum()
        return float(np.abs(y - x).sum())

    def setup_laplacian(self, kind: LaplacianKind) -> None:
        a = (self._w + self._w.T).tocsr()
        if kind == "normalized" and a.nnz and a.data.max() > 0:
            a = a / a.data.max()  # scale-free operator; keeps d^-1/2 finite
        degree = np.asarray(a.sum(axis=1)).ravel()
        self.lap_sigma, self.lap_diag, self.lam_max = laplacian_scaling(degree, kind)
        self._a = a
        self._ls = (
            sp.diags(self.lap_diag) - sp.diags(self.lap_sigma) @ a @ sp.diags(self.lap_sigma)
        ).tocsr()

    def lap_matvec(self, x: np.ndarray, out: np.ndarray) -> None:
        out[:] = self._ls @ x

    def pull(self, z: np.ndarray, out: np.ndarray, scale: float) -> float:
        out[:] = scale * (self._w.T @ z)
        return float(out.sum())


class NumpyBackend:
    name = "numpy"

    def available(self) -> tuple[bool, str]:
        return True, "numpy/scipy float64 reference"

    def operator(self, snapshot: Snapshot, precision: Precision = "float64") -> NumpyOperator:
        return NumpyOperator(snapshot, precision)
