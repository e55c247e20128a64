"""The CUDA backend: the focus products on an NVIDIA GPU through CuPy.

Layout and kernels (issue 7; measured in bench/focus_gpu.py):

* the in-link matrix in SELL-32 (``sell.py``): rows sorted by length, a warp
  holds 32 rows of about the same length and each thread sums one row, so
  loads of indices and values are coalesced and no warp waits on a long row;
* rows longer than ``LONG_ROW`` (the hubs of a power-law graph) are cut into
  chunks that whole warps sum, with one atomic add per chunk;
* one fused pass over the particles finishes a diffusion step: teleport and
  dangling mass as ``(1 - sum) * prior``, the L1 change, and the gathered
  vector ``x / out_weight`` for the next step;
* float32 values and gathered vector with ``precision="float32"``, every sum
  in float64; the snapshot's degree order is kept, so hubs share cache lines;
* after a block only the rewritten values and the overlay go to the device.

Atomic adds make the hub sums' rounding order vary between runs (by about
1e-16 relative); results agree with the float64 reference within 1e-6 in L1.
"""

from __future__ import annotations

import numpy as np

from focusflow.focus.backends.base import inverse_out_weight
from focusflow.focus.backends.sell import SellMatrix
from focusflow.focus.backends.symmetric import symmetric_matrix
from focusflow.graph.snapshot import PatchInfo, Snapshot

LANES = 32
# A thread sums a row of up to LONG_ROW entries; longer rows are cut into
# CHUNK-entry pieces that a whole warp sums. One thread walking a 2048-entry
# row took as long as the rest of the product (measured: 0.69 ms at 10^8 edges).
LONG_ROW = 128
CHUNK = 1024
BLOCK = 256

_SOURCE = r"""
extern "C" __global__
void sell_pull(const long long* __restrict__ gptr, const int* __restrict__ glen,
               const int* __restrict__ grows, const int* __restrict__ sidx,
               const VAL* __restrict__ sval, const VAL* __restrict__ z,
               double* __restrict__ out, const double scale, const long long ngroups)
{
    long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long g = tid >> 5;
    int lane = (int)(tid & 31);
    if (g >= ngroups) return;
    long long o = gptr[g] + lane;
    int len = glen[g];
    double acc0 = 0.0, acc1 = 0.0;
    int j = 0;
    for (; j + 1 < len; j += 2, o += 64) {
        int i0 = sidx[o], i1 = sidx[o + 32];
        VAL v0 = sval[o], v1 = sval[o + 32];
        acc0 += (double)v0 * (double)z[i0];
        acc1 += (double)v1 * (double)z[i1];
    }
    if (j < len) acc0 += (double)sval[o] * (double)z[sidx[o]];
    int r = grows[(g << 5) + lane];
    if (r >= 0) out[r] = (acc0 + acc1) * scale;
}

extern "C" __global__
void chunk_pull(const int* __restrict__ crow, const long long* __restrict__ cstart,
                const long long* __restrict__ cend, const int* __restrict__ idx,
                const VAL* __restrict__ val, const VAL* __restrict__ z,
                double* __restrict__ out, const double scale, const int nchunks)
{
    int warp = (int)(((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5);
    int lane = threadIdx.x & 31;
    if (warp >= nchunks) return;
    double acc = 0.0;
    for (long long e = cstart[warp] + lane; e < cend[warp]; e += 32) {
        acc += (double)val[e] * (double)z[idx[e]];
    }
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffff, acc, off);
    if (lane == 0) atomicAdd(&out[crow[warp]], acc * scale);
}

extern "C" __global__
void finish(const double* __restrict__ ylink, double* __restrict__ y,
            const double* __restrict__ x, const double* __restrict__ prior,
            const double* __restrict__ inv_out, VAL* __restrict__ z,
            const double tele, double* __restrict__ l1, const long long n)
{
    __shared__ double part[BLOCK];
    double acc = 0.0;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        double v = ylink[i] + tele * prior[i];
        y[i] = v;
        acc += fabs(v - x[i]);
        z[i] = (VAL)(v * inv_out[i]);
    }
    part[threadIdx.x] = acc;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) part[threadIdx.x] += part[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) atomicAdd(l1, part[0]);
}
"""


def _cupy():
    import cupy

    return cupy


def cuda_available() -> tuple[bool, str]:
    """Whether CuPy imports and sees a GPU; the reason in words if not."""
    try:
        cupy = _cupy()
    except Exception as exc:  # ImportError, or a broken CUDA install
        return (
            False,
            f"CuPy is not installed ({type(exc).__name__}: {exc}); pip install 'focusflow[gpu]'",
        )
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return False, f"no usable CUDA driver or GPU ({type(exc).__name__}: {exc})"
    if count < 1:
        return False, "no CUDA GPU found"
    name = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    return True, f"CuPy {cupy.__version__} on {name}"


class _DeviceSell:
    """A SellMatrix and its long rows (as warp chunks), uploaded to the GPU."""

    def __init__(self, cupy, indptr, indices, weights, dtype) -> None:
        m = SellMatrix(indptr, indices, weights, dtype, c=LANES, long_row=LONG_ROW)
        self.host = m
        self.gptr = cupy.asarray(m.gptr)
        self.glen = cupy.asarray(m.glen.astype(np.int32))
        self.grows = cupy.asarray(m.grows.astype(np.int32))
        self.sidx = cupy.asarray(m.sidx)
        self.sval = cupy.asarray(m.sval)
        self.ngroups = len(m.glen)
        long_rows = m.long_rows
        lengths = (indptr[long_rows + 1] - indptr[long_rows]).astype(np.int64)
        self.long_src = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        entries = _ranges(indptr[long_rows].astype(np.int64), lengths)
        crow, cstart, cend = _chunks(long_rows, self.long_src[:-1], lengths)
        self.long_rows = cupy.asarray(long_rows.astype(np.int64))
        self.crow = cupy.asarray(crow)
        self.cstart = cupy.asarray(cstart)
        self.cend = cupy.asarray(cend)
        self.lidx = cupy.asarray(indices[entries])
        self.lval = cupy.asarray(weights[entries].astype(dtype))
        self.nchunks = len(crow)
        self._long_index = {r: k for k, r in enumerate(long_rows.tolist())}
        # CSR entry -> position in the long-row arrays (for value updates)
        self._long_pos = None
        self._indptr = indptr

    def update(self, cupy, entries: np.ndarray, weights: np.ndarray) -> None:
        """Upload new values of CSR entries ``entries`` (only those)."""
        if not len(entries):
            return
        at = self.host.pos[entries]
        short = at >= 0
        if short.any():
            pos = cupy.asarray(at[short].astype(np.int64))
            self.sval[pos] = cupy.asarray(weights[entries[short]].astype(self.host.sval.dtype))
        if (~short).any():
            long_entries = entries[~short]
            rows = np.searchsorted(self._indptr, long_entries, side="right") - 1
            k = np.array([self._long_index[r] for r in rows.tolist()], dtype=np.int64)
            where = self.long_src[k] + (long_entries - self._indptr[rows])
            self.lval[cupy.asarray(where)] = cupy.asarray(
                weights[long_entries].astype(self.host.sval.dtype)
            )


class CudaOperator:
    """Graph products on one GPU; vectors are CuPy arrays (``xp`` = cupy)."""

    name = "cuda"

    def __init__(self, snapshot: Snapshot, precision: str = "float64") -> None:
        cupy = _cupy()
        self.cupy = self.xp = cupy
        self.snapshot = snapshot
        self.dtype = np.float32 if precision == "float32" else np.float64
        ctype = "float" if self.dtype == np.float32 else "double"
        source = _SOURCE.replace("VAL", ctype).replace("BLOCK", str(BLOCK))
        module = cupy.RawModule(code=source, options=("--std=c++14",))
        self._sell_pull = module.get_function("sell_pull")
        self._chunk_pull = module.get_function("chunk_pull")
        self._finish = module.get_function("finish")
        self._l1 = cupy.zeros(1, dtype=cupy.float64)
        self._sym = None
        self.refresh()

    # --- host <-> device -------------------------------------------------------
    def from_host(self, array: np.ndarray):
        return self.cupy.asarray(array)

    def to_host(self, array) -> np.ndarray:
        return self.cupy.asnumpy(array)

    def dot(self, a, b) -> float:
        return float(self.cupy.dot(a, b))

    # --- snapshot --------------------------------------------------------------
    def refresh(self, info: PatchInfo | None = None) -> None:
        """Upload the snapshot, or after a patch only what the patch changed.

        A patch sends the rewritten base values, the new out-weights of the
        touched sources and the overlay (small by construction); the base
        matrix stays on the device.
        """
        cupy = self.cupy
        s = self.snapshot
        full = (
            info is None
            or info.base_entries is None
            or not hasattr(self, "sell")
            or s.n != getattr(self, "n", -1)
        )
        out = s.out_weight
        if full:
            self.sell = _DeviceSell(cupy, s.in_indptr, s.in_indices, s.in_w, self.dtype)
            inv, linked = inverse_out_weight(out)
            self.inv_out = cupy.asarray(inv)
            self.dangling = cupy.asarray(~linked)
            self.n = s.n
            self.ylink = cupy.empty(self.n, dtype=cupy.float64)
            self.z = cupy.empty(self.n, dtype=self.dtype)
        else:
            if len(info.base_entries):
                self.sell.update(cupy, s.out_to_in[info.base_entries], s.in_w)
            if len(info.sources):
                inv, linked = inverse_out_weight(out[info.sources])
                at = cupy.asarray(info.sources)
                self.inv_out[at] = cupy.asarray(inv)
                self.dangling[at] = cupy.asarray(~linked)
        ov_rows = np.flatnonzero(np.diff(s.ov_in_indptr) > 0)
        self.ov = (
            _overlay_chunks(cupy, s.ov_in_indptr, s.ov_in_indices, s.ov_in_w, ov_rows, self.dtype)
            if len(ov_rows)
            else None
        )
        self._z_of = None
        self._sym = None

    def _pull_into(self, m: _DeviceSell, z, out, scale: float, ov=None) -> None:
        threads = m.ngroups * LANES
        if threads:
            self._sell_pull(
                ((threads + BLOCK - 1) // BLOCK,),
                (BLOCK,),
                (
                    m.gptr,
                    m.glen,
                    m.grows,
                    m.sidx,
                    m.sval,
                    z,
                    out,
                    np.float64(scale),
                    np.int64(m.ngroups),
                ),
            )
        for chunks in (m, ov):
            if chunks is None or not chunks.nchunks:
                continue
            if chunks is m:
                out[m.long_rows] = 0.0
            warps = chunks.nchunks * 32
            self._chunk_pull(
                ((warps + BLOCK - 1) // BLOCK,),
                (BLOCK,),
                (
                    chunks.crow,
                    chunks.cstart,
                    chunks.cend,
                    chunks.lidx,
                    chunks.lval,
                    z,
                    out,
                    np.float64(scale),
                    np.int32(chunks.nchunks),
                ),
            )

    def pull(self, z, out, scale: float) -> float:
        """``out[q] = scale * sum_p W[p, q] z[p]``; returns ``sum(out)``."""
        self._pull_into(self.sell, z.astype(self.dtype, copy=False), out, scale, self.ov)
        return float(out.sum())

    def prepare(self, x) -> None:
        self.cupy.multiply(x, self.inv_out, out=self.z, casting="unsafe")
        self._z_of = x

    def diffusion(self, x, y, alpha, prior):
        if self._z_of is not x:
            self.prepare(x)
        self._pull_into(self.sell, self.z, self.ylink, alpha, self.ov)
        tele = 1.0 - float(self.ylink.sum())
        self._l1.fill(0.0)
        blocks = min(4096, (self.n + BLOCK - 1) // BLOCK)
        self._finish(
            (max(blocks, 1),),
            (BLOCK,),
            (
                self.ylink,
                y,
                x,
                prior,
                self.inv_out,
                self.z,
                np.float64(tele),
                self._l1,
                np.int64(self.n),
            ),
        )
        self._z_of = y
        return float(self._l1[0])

    # --- springs and heat --------------------------------------------------
    def setup_laplacian(self, kind: str) -> None:
        """``A = W + W^T`` in SELL-32 on the device, built on the host once per snapshot."""
        if self._sym is not None and self._sym_kind == kind:
            return
        self._sym_kind = kind
        ptr, idx, w, sigma, diag, self.lam_max = symmetric_matrix(self.snapshot, kind)
        n = self.snapshot.n
        self.lap_sigma = self.cupy.asarray(sigma)
        self.lap_diag = self.cupy.asarray(diag)
        self._sym = _DeviceSell(self.cupy, ptr, idx, w, self.dtype)
        self._t = self.cupy.empty(n, dtype=self.dtype)
        self._acc = self.cupy.empty(n, dtype=self.cupy.float64)

    def lap_matvec(self, x, out) -> None:
        cupy = self.cupy
        cupy.multiply(x, self.lap_sigma, out=self._t, casting="unsafe")
        self._pull_into(self._sym, self._t, self._acc, 1.0)
        out[...] = self.lap_diag * x - self.lap_sigma * self._acc


class _Chunks:
    """Rows of a small CSR cut into warp chunks (the overlay)."""

    def __init__(self, cupy, crow, cstart, cend, lidx, lval) -> None:
        self.crow, self.cstart, self.cend = crow, cstart, cend
        self.lidx, self.lval = lidx, lval
        self.nchunks = len(crow)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + l)`` for every pair, vectorised."""
    total = int(lengths.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return np.arange(total, dtype=np.int64) + offsets


def _chunks(rows: np.ndarray, starts: np.ndarray, lengths: np.ndarray):
    """Cut rows (entries ``starts[k] .. starts[k] + lengths[k]``) into CHUNK pieces."""
    pieces = (lengths + CHUNK - 1) // CHUNK
    crow = np.repeat(rows, pieces).astype(np.int32)
    first = np.repeat(starts, pieces)
    k = _ranges(np.zeros(len(pieces), dtype=np.int64), pieces)
    cstart = first + k * CHUNK
    cend = np.minimum(cstart + CHUNK, np.repeat(starts + lengths, pieces))
    return crow, cstart.astype(np.int64), cend.astype(np.int64)


def _overlay_chunks(cupy, indptr, indices, weights, rows, dtype) -> _Chunks:
    starts = indptr[rows].astype(np.int64)
    lengths = (indptr[rows + 1] - indptr[rows]).astype(np.int64)
    crow, cstart, cend = _chunks(rows, starts, lengths)
    return _Chunks(
        cupy,
        cupy.asarray(crow),
        cupy.asarray(cstart),
        cupy.asarray(cend),
        cupy.asarray(indices),
        cupy.asarray(weights.astype(dtype)),
    )


class CudaBackend:
    name = "cuda"

    def available(self) -> tuple[bool, str]:
        return cuda_available()

    def operator(self, snapshot: Snapshot, precision: str = "float64") -> CudaOperator:
        return CudaOperator(snapshot, precision)
