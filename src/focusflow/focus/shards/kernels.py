"""A shard's products: parallel CSR products over its rows, in numba.

A shard's rows read the extended vector ``[own | halo]``; the product of one
row is a plain gather-and-sum. The rows are split into chunks holding equal
numbers of entries (hubs hold most of them), and each sum runs in a fixed
order, so a shard's result does not depend on its thread count.
"""

from __future__ import annotations

from typing import Any, Protocol

import numba as nb
import numpy as np

from focusflow.graph.csr import balanced_chunks

#: Work chunks per product, fixed so that the split does not follow the thread count.
CHUNKS = 64


@nb.njit(cache=True, parallel=True)
def _csr_matvec(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    x: np.ndarray,
    out: np.ndarray,
    bounds: np.ndarray,
) -> None:  # pragma: no cover - numba
    for c in nb.prange(bounds.shape[0] - 1):
        for r in range(bounds[c], bounds[c + 1]):
            acc = 0.0
            for e in range(indptr[r], indptr[r + 1]):
                acc += data[e] * x[indices[e]]
            out[r] = acc


class Product(Protocol):
    """``M x`` for a shard's rows, on the host or a GPU."""

    def __call__(self, x: Any) -> Any: ...

    @property
    def nbytes(self) -> int: ...


class RowProduct:
    """``out = M x`` for one CSR matrix ``M`` (rows own, columns extended)."""

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray) -> None:
        self.indptr = np.ascontiguousarray(indptr, dtype=np.int64)
        small = data.shape[0] < 2**31 and (indices.max(initial=0) < 2**31)
        self.indices = np.ascontiguousarray(indices, dtype=np.int32 if small else np.int64)
        self.data = np.ascontiguousarray(data, dtype=np.float64)
        self.bounds = balanced_chunks(self.indptr, CHUNKS)
        self.n = self.indptr.shape[0] - 1

    def __call__(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        if out is None:
            out = np.empty(self.n)
        _csr_matvec(self.indptr, self.indices, self.data, x, out, self.bounds)
        return out

    @property
    def nbytes(self) -> int:
        return int(self.indptr.nbytes + self.indices.nbytes + self.data.nbytes)


class DeviceProduct:
    """``out = M x`` on a GPU: the same CSR rows as CuPy's sparse matrix."""

    def __init__(
        self, xp: Any, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, cols: int
    ) -> None:
        import importlib

        sparse = importlib.import_module("cupyx.scipy.sparse")
        self.indptr, self.indices, self.data = indptr, indices, data
        rows = indptr.shape[0] - 1
        self.m = sparse.csr_matrix(
            (
                xp.asarray(data),
                xp.asarray(indices.astype(np.int32)),
                xp.asarray(indptr.astype(np.int32)),
            ),
            shape=(rows, cols),
        )

    def __call__(self, x: Any) -> Any:
        return self.m @ x

    @property
    def nbytes(self) -> int:
        return int(self.indptr.nbytes + self.indices.nbytes + self.data.nbytes)
