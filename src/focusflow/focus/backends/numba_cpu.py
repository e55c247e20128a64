"""The fast CPU backend: parallel numba kernels over the snapshot's CSR arrays.

What makes it fast (ARCHITECTURE.md 3.3, measured in bench/focus_cpu.py):

* pull-style SpMV over the in-link matrix in SELL-8 storage (``sell.py``):
  rows sorted by length and advanced eight at a time in SIMD lanes, work split
  among threads by stored entries, not rows, since hubs hold most of them;
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

from focusflow.focus.backends.base import inverse_out_weight
from focusflow.focus.backends.sell import SellMatrix, csr_pull_add, sell_pull
from focusflow.focus.backends.symmetric import symmetric_matrix
from focusflow.focus.reduce import ordered_sum
from focusflow.graph.csr import balanced_chunks
from focusflow.graph.snapshot import PatchInfo, Snapshot

# Fixed number of work chunks (not per thread), so sums are grouped the same way
# whatever the thread count.
_CHUNKS = 64


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
    return ordered_sum(l1), ordered_sum(mass)


@nb.njit(cache=True, parallel=True)
def _scale_into(x, s, out, nparts):
    n = x.shape[0]
    step = (n + nparts - 1) // nparts
    for t in nb.prange(nparts):
        for i in range(t * step, min(n, (t + 1) * step)):
            out[i] = x[i] * s[i]


@nb.njit(cache=True, parallel=True)
def _lap_finish(x, diag, sigma, acc, out, nparts):
    n = x.shape[0]
    step = (n + nparts - 1) // nparts
    for t in nb.prange(nparts):
        for i in range(t * step, min(n, (t + 1) * step)):
            out[i] = diag[i] * x[i] - sigma[i] * acc[i]


@nb.njit(cache=True, parallel=True)
def _dot(a, b, nparts):
    n = a.shape[0]
    step = (n + nparts - 1) // nparts
    partial = np.zeros(nparts)
    for t in nb.prange(nparts):
        s = 0.0
        for i in range(t * step, min(n, (t + 1) * step)):
            s += a[i] * b[i]
        partial[t] = s
    return ordered_sum(partial)


class NumbaOperator:
    """Graph products on all CPU cores; ``precision`` sets the stored value type."""

    name = "numba"

    def __init__(self, snapshot: Snapshot, precision: str = "float64") -> None:
        self.snapshot = snapshot
        self.dtype = np.float32 if precision == "float32" else np.float64
        self.parts = _CHUNKS
        self._sym = None
        self.refresh()

    def refresh(self, info: PatchInfo | None = None) -> None:
        """Re-read the snapshot after a patch.

        With the patch's record, only the rewritten base values are copied into
        the SELL storage; without it everything is rebuilt.
        """
        s = self.snapshot
        grown = s.n - getattr(self, "n", s.n)
        if info is None or info.base_entries is None or not hasattr(self, "sell"):
            self.sell = SellMatrix(s.in_indptr, s.in_indices, s.in_w, self.dtype)
            self.sell_bounds = balanced_chunks(self.sell.gptr, _CHUNKS)
            self.ylink = np.zeros(s.n)
        else:
            if len(info.base_entries):
                in_pos = s.out_to_in[info.base_entries]
                self.sell.update(in_pos, s.in_w)
            if grown > 0:
                # New particles have no base in-links: rebuild the row groups
                # (cheap next to the patch) so that every row is still written.
                self.sell = SellMatrix(s.in_indptr, s.in_indices, s.in_w, self.dtype)
                self.sell_bounds = balanced_chunks(self.sell.gptr, _CHUNKS)
                self.ylink = np.zeros(s.n)
        self.n = s.n
        self.ov_rows = np.flatnonzero(np.diff(s.ov_in_indptr) > 0).astype(np.int64)
        self.ov_in_w = s.ov_in_w.astype(self.dtype)
        self.inv_out, linked = inverse_out_weight(s.out_weight)
        self.dangling = ~linked
        self.z = np.zeros(self.n, dtype=self.dtype)
        self._z_of: np.ndarray | None = None
        self._sym = None

    def prepare(self, x: np.ndarray) -> None:
        """Compute the gathered vector ``z = x / out_weight`` for the next step."""
        np.multiply(x, self.inv_out, out=self.z, casting="unsafe")
        self._z_of = x

    def _pull_into(self, z: np.ndarray, out: np.ndarray, scale: float) -> float:
        s, m = self.snapshot, self.sell
        total = sell_pull(m.grows, m.gptr, m.glen, m.sidx, m.sval, z, out, self.sell_bounds, scale)
        if len(self.ov_rows):
            total += csr_pull_add(
                self.ov_rows,
                s.ov_in_indptr,
                s.ov_in_indices,
                self.ov_in_w,
                z,
                out,
                scale,
            )
        return total

    def pull(self, z: np.ndarray, out: np.ndarray, scale: float) -> float:
        """``out[q] = scale * sum_p W[p, q] z[p]`` (0 where no in-links); returns the sum."""
        return self._pull_into(z.astype(self.dtype, copy=False), out, scale)

    def diffusion(self, x, y, alpha, prior):
        if self._z_of is not x:
            self.prepare(x)
        linked_mass = self._pull_into(self.z, self.ylink, alpha)
        tele = 1.0 - linked_mass
        l1, _ = _finish_diffusion(self.ylink, y, x, prior, self.inv_out, self.z, tele, self.parts)
        self._z_of = y
        return l1

    # --- springs and heat --------------------------------------------------
    def setup_laplacian(self, kind: str) -> None:
        """``A = W + W^T`` in SELL-8 storage, kept until the snapshot changes."""
        if self._sym is not None and self._sym_kind == kind:
            return
        self._sym_kind = kind
        ptr, idx, w, self.lap_sigma, self.lap_diag, self.lam_max = symmetric_matrix(
            self.snapshot, kind
        )
        n = self.snapshot.n
        self._sym = SellMatrix(ptr, idx, w, self.dtype)
        self._sym_bounds = balanced_chunks(self._sym.gptr, _CHUNKS)
        self._t = np.empty(n, dtype=self.dtype)
        self._acc = np.zeros(n)

    def lap_matvec(self, x, out):
        m = self._sym
        _scale_into(x, self.lap_sigma, self._t, self.parts)
        sell_pull(
            m.grows, m.gptr, m.glen, m.sidx, m.sval, self._t, self._acc, self._sym_bounds, 1.0
        )
        _lap_finish(x, self.lap_diag, self.lap_sigma, self._acc, out, self.parts)

    def dot(self, a: np.ndarray, b: np.ndarray) -> float:
        """Inner product on numba's threads (numpy's would wake BLAS threads that
        fight numba's for the same cores)."""
        return _dot(a, b, self.parts)


class NumbaBackend:
    name = "numba"

    def available(self) -> tuple[bool, str]:
        return True, f"numba {nb.__version__}, {nb.config.NUMBA_NUM_THREADS} threads"

    def operator(self, snapshot: Snapshot, precision: str = "float64") -> NumbaOperator:
        return NumbaOperator(snapshot, precision)
