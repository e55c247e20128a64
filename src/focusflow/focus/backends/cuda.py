"""The CUDA backend: the focus products on an NVIDIA GPU through CuPy.

Layout and kernels (measured against torch cuSPARSE in bench/focus_gpu.py; the
CUDA C is ``kernels/focus.cu``):

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
* after a block only the rewritten values, the new out-weights and the
  overlay's new pairs go to the device: the overlay is kept there as COO in
  entry order (one atomic add per entry), so a block appends to it instead of
  regrouping every pair added since the last rebuild.

Atomic adds make the hub sums' rounding order vary between runs (by about
1e-16 relative); results agree with the float64 reference within 1e-6 in L1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Protocol, cast

import numpy as np

from focusflow.core.errors import InvalidParameterError
from focusflow.focus.backends.base import (
    AndersonKernels,
    DeviceArray,
    ScreenedCG,
    inverse_out_weight,
    kernel_source,
    laplacian_scaling,
    uniform_value,
)
from focusflow.focus.backends.sell import SellMatrix
from focusflow.focus.backends.symmetric import symmetric_weights, weight_scale
from focusflow.graph.snapshot import PatchInfo, Snapshot

if TYPE_CHECKING:
    from focusflow.focus.backends.numba_cpu import ExactNumbaOperator
    from focusflow.focus.params import ArithmeticName, LaplacianKind, Precision
    from focusflow.focus.spectral import SpringsState

LANES = 32
# A thread sums a row of up to LONG_ROW entries; longer rows are cut into
# CHUNK-entry pieces that a whole warp sums. One thread walking a 2048-entry
# row took as long as the rest of the product (measured: 0.69 ms at 10^8 edges).
# The pieces run in the order of their first column, so warps that run at the
# same time gather from nearby parts of the vector: at 10^8 edges (70 % of the
# entries in long rows) a product is a tenth faster than with 1024-entry
# pieces in row order (bench/RESULTS.md).
LONG_ROW = 128
CHUNK = 128
BLOCK = 256

#: A compiled CUDA kernel as CuPy launches it: ``kernel(grid, block, args)``.
Kernel = Callable[[tuple[int, ...], tuple[int, ...], tuple[object, ...]], None]


class _Module(Protocol):
    """``kernels/focus.cu`` compiled (a ``cupy.RawModule``): its kernels by name."""

    def get_function(self, name: str) -> Kernel: ...


def _cupy() -> ModuleType:
    """CuPy, imported when first needed (it ships no types: its names are Any here)."""
    import cupy

    return cast("ModuleType", cupy)


def cuda_available() -> tuple[bool, str]:
    """Whether CuPy imports and sees a GPU; the reason in words if not."""
    try:
        cupy = _cupy()
    except Exception as exc:  # noqa: BLE001 - ImportError, or whatever a broken CUDA install raises
        return (
            False,
            f"CuPy is not installed ({type(exc).__name__}: {exc}); pip install 'focusflow[gpu]'",
        )
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - a probe: any driver error means no usable GPU
        return False, f"no usable CUDA driver or GPU ({type(exc).__name__}: {exc})"
    if count < 1:
        return False, "no CUDA GPU found"
    name = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    return True, f"CuPy {cupy.__version__} on {name}"


class _DeviceSell:
    """A SellMatrix and its long rows (as warp chunks), uploaded to the GPU."""

    def __init__(
        self,
        cupy: ModuleType,
        indptr: np.ndarray,
        indices: np.ndarray,
        weights: np.ndarray,
        dtype: type[np.floating],
    ) -> None:
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
        lidx = indices[entries]
        crow, cstart, cend = _chunks(long_rows, self.long_src[:-1], lengths)
        by_column = np.argsort(lidx[cstart], kind="stable")
        self.long_rows = cupy.asarray(long_rows.astype(np.int64))
        self.crow = cupy.asarray(crow[by_column])
        self.cstart = cupy.asarray(cstart[by_column])
        self.cend = cupy.asarray(cend[by_column])
        self.lidx = cupy.asarray(lidx)
        self.lval = cupy.asarray(weights[entries].astype(dtype))
        self.nchunks = len(crow)
        # long row -> its index k in long_rows, by binary search over the sorted rows
        self._long_order = np.argsort(long_rows, kind="stable")
        self._long_sorted = long_rows[self._long_order]
        self._indptr = indptr
        #: Rows the product writes; rows past them (particles added after the
        #: upload) get their sums from the overlay alone.
        self.rows = len(indptr) - 1

    def update(self, cupy: ModuleType, entries: np.ndarray, weights: np.ndarray) -> None:
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
            k = self._long_order[np.searchsorted(self._long_sorted, rows)]
            where = self.long_src[k] + (long_entries - self._indptr[rows])
            self.lval[cupy.asarray(where)] = cupy.asarray(
                weights[long_entries].astype(self.host.sval.dtype)
            )


class CudaOperator(ScreenedCG):
    """Graph products on one GPU; vectors are CuPy arrays (``xp`` = cupy)."""

    name = "cuda"
    # Set up by ``setup_laplacian``.
    _sym_kind: LaplacianKind

    def __init__(self, snapshot: Snapshot, precision: Precision = "float64") -> None:
        cupy = _cupy()
        self.cupy = self.xp = cupy
        self.snapshot = snapshot
        self.dtype: type[np.floating] = np.float32 if precision == "float32" else np.float64
        ctype = "float" if self.dtype == np.float32 else "double"
        source = (
            kernel_source("focus.cu")
            .replace("VAL2", ctype + "2")
            .replace("VAL", ctype)
            .replace("BLOCK", str(BLOCK))
        )
        module: _Module = cupy.RawModule(code=source, options=("--std=c++14",))
        self._sell_pull = module.get_function("sell_pull")
        self._chunk_pull = module.get_function("chunk_pull")
        self._coo_pull = module.get_function("coo_pull")
        self._coo_pull2 = module.get_function("coo_pull2")
        self._finish = module.get_function("finish")
        self._sell_pull2 = module.get_function("sell_pull2")
        self._chunk_pull2 = module.get_function("chunk_pull2")
        self._pair_after = module.get_function("pair_after")
        self._cg_step = module.get_function("cg_step")
        self._cg_dir = module.get_function("cg_direction")
        self._cg_rotate = module.get_function("cg_rotate")
        self._blend_sum = module.get_function("blend_sum")
        self._blend_norm = module.get_function("blend_norm")
        self._l1 = cupy.zeros(1, dtype=cupy.float64)
        self._linked = cupy.zeros(1, dtype=cupy.float64)
        self._prior_of: DeviceArray | None = None
        self._prior_kind = (False, 0.0)
        self._blend_sums = cupy.zeros(2, dtype=cupy.float64)
        self.anderson_kernels: AndersonKernels = _AndersonKernels(cupy, module)
        self._sym: _DeviceSell | None = None
        self.refresh()

    # --- host <-> device -------------------------------------------------------
    def from_host(self, array: np.ndarray) -> DeviceArray:
        return self.cupy.asarray(array)

    def to_host(self, array: DeviceArray) -> np.ndarray:
        host: np.ndarray = self.cupy.asnumpy(array)
        return host

    def dot(self, a: DeviceArray, b: DeviceArray) -> float:
        return float(self.cupy.dot(a, b))

    # --- snapshot --------------------------------------------------------------
    def refresh(self, info: PatchInfo | None = None) -> None:
        """Upload the snapshot, or after a patch only what the patch changed.

        A patch sends the rewritten base values, the new out-weights of the
        touched sources and the overlay (small by construction); the base
        matrix stays on the device. Links appended since the last refresh are
        dropped: the patch (which covers every link the snapshot had not yet
        taken in) now holds them.
        """
        cupy = self.cupy
        s = self.snapshot
        full = (
            info is None
            or info.base_entries is None
            or not hasattr(self, "sell")
            or s.n < getattr(self, "n", -1)
        )
        out = s.out_weight
        overlay_entries: np.ndarray | None = None
        changes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        if full:
            self.sell = _DeviceSell(cupy, s.in_indptr, s.in_indices, s.in_w, self.dtype)
            self.out_weight = cupy.asarray(out)
            inv, linked = inverse_out_weight(out)
            self.inv_out = cupy.asarray(inv)
            self.dangling = cupy.asarray(~linked)
            self.n = s.n
            self.ylink = cupy.empty(self.n, dtype=cupy.float64)
            self.z = cupy.empty(self.n, dtype=self.dtype)
            self.ov = _DeviceOverlay(cupy, self.dtype)
        else:
            # Not full: a patch's record with its rewritten base entries.
            assert info is not None and info.base_entries is not None
            if s.n > self.n:
                # New particles: rows past the uploaded matrix (overlay only).
                self._grow(s.n)
            if len(info.base_entries):
                self.sell.update(cupy, s.out_to_in[info.base_entries], s.in_w)
            if len(info.sources):
                inv, linked = inverse_out_weight(out[info.sources])
                at = cupy.asarray(info.sources)
                self.out_weight[at] = cupy.asarray(out[info.sources])
                self.inv_out[at] = cupy.asarray(inv)
                self.dangling[at] = cupy.asarray(~linked)
            overlay_entries, changes = info.overlay_entries, info.changes
        self.ov.sync(s, overlay_entries)
        self._z_of: DeviceArray | None = None
        if changes is None:
            self._sym = None
        else:
            src, dst, delta = (cupy.asarray(a) for a in changes)
            self._sym_update(src, dst, delta, fresh=False)

    def append_links(self, src: DeviceArray, dst: DeviceArray, weights: np.ndarray, n: int) -> None:
        """Add links (internal ids, on the host or already on the device; ``n``
        particles now, the new ones numbered after the old) without a host patch.

        The products are linear in the entries, so a link joins the overlay as
        one more COO entry even where its pair is stored already, and its
        source's out-weight grows by its weight on the device. Valid while no
        appended link's weight changes before the next ``refresh``, which the
        engine checks; weights are >= 0, so nothing cancels in the sums.
        """
        cupy = self.cupy
        if n > self.n:
            self._grow(n)
        if not len(src):
            return
        s = cupy.asarray(src).astype(cupy.int32, copy=False)
        d = cupy.asarray(dst).astype(cupy.int32, copy=False)
        w = cupy.asarray(np.asarray(weights, dtype=np.float64))
        self.ov.append(s, d, w.astype(self.dtype))
        self._sym_update(s, d, w, fresh=True)
        cupy.add.at(self.out_weight, s, w)
        # numpy's where dispatches to CuPy's on device arrays (as in _rescale)
        inv, linked = inverse_out_weight(self.out_weight[s])
        self.inv_out[s] = inv
        self.dangling[s] = ~linked
        self._z_of = None

    def _grow(self, n: int) -> None:
        """Room for particles ``self.n .. n``: no out-weight yet (dangling)."""
        cupy = self.cupy
        extra = n - self.n
        self.out_weight = cupy.concatenate([self.out_weight, cupy.zeros(extra)])
        self.inv_out = cupy.concatenate([self.inv_out, cupy.zeros(extra)])
        self.dangling = cupy.concatenate([self.dangling, cupy.ones(extra, dtype=cupy.bool_)])
        self.ylink = cupy.empty(n, dtype=cupy.float64)
        self.z = cupy.empty(n, dtype=self.dtype)
        self.n = n

    def _product(
        self,
        m: _DeviceSell,
        kernels: tuple[Kernel, Kernel],
        z: DeviceArray,
        out: DeviceArray,
        scale: float,
        tail: tuple[object, ...] = (),
    ) -> None:
        """One pass over ``m``: its row groups, then its hub rows' chunks (whose
        rows are zeroed first and summed with atomics). ``kernels`` is the
        (groups, chunks) pair of the single-vector or the pair product; ``tail``
        the single-vector kernels' (total, sum) arguments."""
        sell_kernel, chunk_kernel = kernels
        if len(out) > m.rows:
            out[m.rows :] = 0.0  # particles added since the upload: overlay rows only
        threads = m.ngroups * LANES
        if threads:
            sell_kernel(
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
                    *tail,
                ),
            )
        if m.nchunks:
            out[m.long_rows] = 0.0
            warps = m.nchunks * 32
            chunk_kernel(
                ((warps + BLOCK - 1) // BLOCK,),
                (BLOCK,),
                (
                    m.crow,
                    m.cstart,
                    m.cend,
                    m.lidx,
                    m.lval,
                    z,
                    out,
                    np.float64(scale),
                    np.int32(m.nchunks),
                    *tail,
                ),
            )

    def _pull_into(
        self,
        m: _DeviceSell,
        z: DeviceArray,
        out: DeviceArray,
        scale: float,
        ov: _DeviceOverlay | None = None,
        total: DeviceArray | None = None,
    ) -> None:
        """``out = scale * m^T z`` (plus the overlay); with ``total`` (a zeroed
        one-element array) the kernels also add up ``sum(out)`` there."""
        tail = (self._l1, np.int32(0)) if total is None else (total, np.int32(1))
        self._product(m, (self._sell_pull, self._chunk_pull), z, out, scale, tail)
        if ov is not None and ov.size:
            self._coo_pull(
                (min(4096, (ov.size + BLOCK - 1) // BLOCK),),
                (BLOCK,),
                (ov.src, ov.dst, ov.w, z, out, np.float64(scale), np.int64(ov.size), *tail),
            )

    def pull(self, z: DeviceArray, out: DeviceArray, scale: float) -> float:
        """``out[q] = scale * sum_p W[p, q] z[p]``; returns ``sum(out)``, which the
        product's kernels add up as they write it."""
        self._linked.fill(0.0)
        self._pull_into(
            self.sell, z.astype(self.dtype, copy=False), out, scale, self.ov, total=self._linked
        )
        return float(self._linked[0])

    def prepare(self, x: DeviceArray) -> None:
        self.cupy.multiply(x, self.inv_out, out=self.z, casting="unsafe")
        self._z_of = x

    def diffusion(self, x: DeviceArray, y: DeviceArray, alpha: float, prior: DeviceArray) -> float:
        if self._z_of is not x:
            self.prepare(x)
        # The linked mass is summed by the product's kernels and stays on the
        # device: the finish kernel reads it, so a step waits for the GPU once
        # (its L1 change), not twice.
        self._linked.fill(0.0)
        self._pull_into(self.sell, self.z, self.ylink, alpha, self.ov, total=self._linked)
        uniform, value = self._uniform(prior)
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
                self._linked,
                self._l1,
                np.int64(self.n),
                np.int32(uniform),
                np.float64(value),
            ),
        )
        self._z_of = y
        return float(self._l1[0])

    def _uniform(self, prior: DeviceArray) -> tuple[bool, float]:
        """Whether ``prior`` is constant, and its value: checked once per prior
        array (a solve passes the same one to every step)."""
        if prior is not self._prior_of:
            value = uniform_value(prior)
            self._prior_of, self._prior_kind = prior, (value is not None, value or 0.0)
        return self._prior_kind

    # --- springs and heat --------------------------------------------------
    def setup_laplacian(self, kind: LaplacianKind) -> None:
        """``A = W + W^T`` in SELL-32 on the device and its degrees, built on the
        host once per snapshot layout; ``Ls x = diag x - sigma A (sigma x)``.

        ``A`` is kept unscaled (``sigma`` is applied to the vectors), so that a
        block changes ``A`` by its weight changes alone: they join ``A`` as COO
        entries (``p, q`` and ``q, p``) and the degrees grow by them on the
        device, where rescaling every entry of a row whose degree moved would
        touch all of a hub's entries, and rebuilding ``A`` costs O(links).
        """
        if self._sym is not None and self._sym_kind == kind:
            return
        self._sym_kind = kind
        cupy = self.cupy
        ptr, idx, w, degree, top = symmetric_weights(self.snapshot)
        self._a_scale = weight_scale(top, kind)
        w = w * self._a_scale
        self._sym = _DeviceSell(cupy, ptr, idx, w, self.dtype)
        self._sym_ov = _DeviceOverlay(cupy, self.dtype)
        self._degree = cupy.asarray(degree * self._a_scale)
        if self.n > len(self._degree):
            self._degree = cupy.concatenate([self._degree, cupy.zeros(self.n - len(self._degree))])
        self._synced_degree = self._degree.copy()
        self._scal = cupy.zeros(8, dtype=cupy.float64)
        self._lap_buffers()
        self._rescale()

    def _lap_buffers(self) -> None:
        cupy, n = self.cupy, self.n
        self._t = cupy.empty(n, dtype=self.dtype)
        self._acc = cupy.empty(n, dtype=cupy.float64)
        self._x2 = cupy.empty((n, 2), dtype=self.dtype)
        self._acc2 = cupy.empty((n, 2), dtype=cupy.float64)
        self._ap = cupy.empty(n, dtype=cupy.float64)
        self._tbuf = [cupy.empty(n, dtype=cupy.float64) for _ in range(3)]

    def _rescale(self) -> None:
        """``sigma``, ``diag`` and ``lam_max`` from the degrees (on the device);
        a new token, so no springs state carries a residual across the change."""
        self.lap_sigma, self.lap_diag, self.lam_max = laplacian_scaling(
            self._degree, self._sym_kind
        )
        self._mu = None
        self._sym_token = object()

    def _sym_update(
        self, src: DeviceArray, dst: DeviceArray, delta: DeviceArray, fresh: bool
    ) -> None:
        """``A`` gains ``delta`` at ``(src, dst)`` and ``(dst, src)`` (device arrays,
        internal ids, float64; the weight changes of ``W``).

        ``fresh``: raw links appended without a host patch. A patch
        (``fresh=False``) covers them too, so it first drops them and returns
        the degrees to their state at the last patch.
        """
        if self._sym is None:
            return
        cupy = self.cupy
        if not fresh:
            self._sym_ov.fresh = 0
            self._degree = self._synced_degree.copy()
        if self.n > len(self._degree):
            extra = self.n - len(self._degree)
            self._degree = cupy.concatenate([self._degree, cupy.zeros(extra)])
            self._lap_buffers()
        if len(src):
            d = delta * self._a_scale
            self._sym_ov.append(
                cupy.concatenate([src, dst]).astype(cupy.int32),
                cupy.concatenate([dst, src]).astype(cupy.int32),
                cupy.concatenate([d, d]).astype(self.dtype),
                fresh=fresh,
            )
            cupy.add.at(self._degree, src, d)
            cupy.add.at(self._degree, dst, d)
        if not fresh:
            self._synced_degree = self._degree.copy()
        self._rescale()

    def matrix_version(self) -> object:
        return self._sym_token

    def lap_matvec(self, x: DeviceArray, out: DeviceArray) -> None:
        assert self._sym is not None  # set up by setup_laplacian
        self.cupy.multiply(x, self.lap_sigma, out=self._t, casting="unsafe")
        self._pull_into(self._sym, self._t, self._acc, 1.0, self._sym_ov)
        out[...] = self.lap_diag * x - self.lap_sigma * self._acc

    def _pair_pull(self) -> None:
        """``acc2[:, k] = A x2[:, k]`` for both columns in one pass over the entries."""
        kernels = (self._sell_pull2, self._chunk_pull2)
        assert self._sym is not None  # set up by setup_laplacian
        self._product(self._sym, kernels, self._x2, self._acc2, 1.0)
        ov = self._sym_ov
        if ov.size:
            self._coo_pull2(
                (min(4096, (ov.size + BLOCK - 1) // BLOCK),),
                (BLOCK,),
                (ov.src, ov.dst, ov.w, self._x2, self._acc2, np.float64(1.0), np.int64(ov.size)),
            )

    def _cg_begin(
        self, phi: DeviceArray, mu: float, state: SpringsState, tol: float, exact: bool
    ) -> tuple[DeviceArray, DeviceArray, DeviceArray, float]:
        """Right-hand side, residual and first direction of the springs solve.

        As the numba backend's: an inexact solve carries the previous residual
        over (the right-hand side moves by ``mu sigma (phi - phi_prev)``); exact
        solves, first solves and solves on another matrix recompute it.
        Returns ``(p, z, rz, goal)`` with ``rz`` on the device.
        """
        cupy = self.cupy
        sigma = self.lap_sigma
        carry = self._cg_prepare(phi, mu, state, exact)
        rhs = mu * sigma * phi
        if carry:
            # A carried residual comes with its right-hand side.
            assert state.r is not None and state.rhs is not None
            state.r += rhs - state.rhs
        else:
            assert state.y is not None  # _cg_prepare starts it
            self.lap_matvec(state.y, self._acc)
            state.r = rhs - (self._acc + mu * state.y)
        state.rhs = rhs
        state.owner = self.matrix_version()
        z = self._minv * state.r
        p = z.copy()
        rz = cupy.dot(state.r, z)
        return p, z, rz, tol * float(cupy.sqrt(cupy.dot(rhs, rhs)))

    def springs_heat(
        self,
        phi: DeviceArray,
        mu: float,
        state: SpringsState,
        cg_tol: float,
        max_iter: int,
        exact: bool,
        v: DeviceArray,
        coeffs: np.ndarray,
    ) -> tuple[DeviceArray, DeviceArray]:
        """Springs by Jacobi-PCG and ``sum_k a_k T_k(Z) v`` side by side, as the numba
        backend's ``springs_heat``: each pass over the matrix serves one CG step and
        one Chebyshev term (the direction and ``T_k`` are the two columns of one
        gathered pair). The vector work around a pass is three fused kernels
        (``pair_after``, ``cg_step``, ``cg_direction``) with the CG scalars and
        its stop test on the device: the host queues the passes without waiting
        (the CG kernels do nothing once the stop flag is down) and reads the
        flag only when the heat terms are done. Returns ``(y / sigma, heat sum)``.
        """
        cupy = self.cupy
        p, _, rz, goal = self._cg_begin(phi, mu, state, cg_tol, exact)
        y, r = state.y, state.r
        n = self.n
        terms = len(coeffs)
        acc = coeffs[0] * v if terms == 1 else cupy.empty_like(v)
        scale = np.float64(2.0 / self.lam_max)
        x2, scal = self._x2, self._scal
        cupy.copyto(x2[:, 0], self.lap_sigma * p, casting="unsafe")
        cupy.copyto(x2[:, 1], self.lap_sigma * v, casting="unsafe")
        scal.fill(0.0)
        scal[0] = rz
        grid = (max(1, min(4096, (n + BLOCK - 1) // BLOCK)),)
        size = np.int64(n)
        t_cur, t_prev = v, None
        k = 1
        live = bool(max_iter > 0 and float(cupy.dot(r, r)) > goal * goal)
        scal[5] = 1.0 if live else 0.0
        scal[7] = goal * goal
        while live or k < terms:
            self._pair_pull()
            heat = 0 if k >= terms else (1 if t_prev is None else 2)
            t_next = next(b for b in self._tbuf if b is not t_cur and b is not t_prev)
            self._pair_after(
                grid,
                (BLOCK,),
                (
                    self._diag_mu,
                    p,
                    self.lap_sigma,
                    self._acc2,
                    self._ap,
                    self.lap_diag,
                    t_cur,
                    t_cur if t_prev is None else t_prev,
                    t_next,
                    acc,
                    x2,
                    scale,
                    np.float64(coeffs[0]),
                    np.float64(coeffs[k] if heat else 0.0),
                    np.int32(heat),
                    np.int32(k + 1 < terms),
                    scal,
                    size,
                ),
            )
            if live:
                self._cg_step(grid, (BLOCK,), (p, self._ap, self._minv, y, r, scal, size))
                self._cg_dir(grid, (BLOCK,), (r, self._minv, self.lap_sigma, p, x2, scal, size))
                self._cg_rotate((1,), (1,), (scal, np.float64(max_iter)))
            if heat:
                t_prev, t_cur = t_cur, t_next
                k += 1
            if k >= terms and live:
                # Heat is done: only now does the host wait for the stop flag.
                live = bool(float(scal[5]))
        state.iterations += int(scal[6])
        return y / self.lap_sigma, acc

    def blend(
        self,
        phi: DeviceArray,
        d: DeviceArray,
        s: DeviceArray | None,
        h: DeviceArray | None,
        weights: tuple[float, float, float],
    ) -> float:
        """``d <- (ld d + ls s + lh h) / sum`` in two passes; returns the L1 change
        from ``phi``. One read-back, where the array expression took about ten
        passes over the vectors and two."""
        ld, ls, lh = weights
        n = self.n
        self._z_of = None  # d is rewritten: its scaled copy is stale
        grid = (max(1, min(4096, (n + BLOCK - 1) // BLOCK)),)
        sums = self._blend_sums
        sums.fill(0.0)
        s = d if s is None else s
        h = d if h is None else h
        args = (np.float64(ld), np.float64(ls), np.float64(lh))
        self._blend_sum(grid, (BLOCK,), (d, s, h, *args, d, sums, np.int64(n)))
        self._blend_norm(grid, (BLOCK,), (d, phi, sums, np.int64(n)))
        total, l1 = (float(v) for v in sums.get())
        if not math.isfinite(total) or total <= 0:
            raise FloatingPointError("focus iteration lost its mass (non-finite values)")
        return l1


class _AndersonKernels:
    """Anderson mixing's two passes as single kernels (``anderson.py`` calls them).

    In CuPy the record step was seven array operations and two host reads,
    the mix five operations: about 0.9 ms per iteration at 8M particles, most
    of a warm block's solve besides its products.
    """

    MAX = 10  # AA_MAX in the kernel source: the largest window FocusParams allows

    def __init__(self, cupy: ModuleType, module: _Module) -> None:
        self.cupy = cupy
        self._record = module.get_function("aa_record")
        self._mix = module.get_function("aa_mix")
        self._sums = cupy.zeros(2 * self.MAX, dtype=cupy.float64)

    def _grid(self, n: int) -> tuple[int]:
        return (max(1, min(4096, (n + BLOCK - 1) // BLOCK)),)

    def record(
        self,
        x: DeviceArray,
        gx: DeviceArray,
        x_prev: DeviceArray,
        g_prev: DeviceArray,
        dx: DeviceArray,
        dg: DeviceArray,
        slot: int,
        live: bool,
        k: int,
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        n = len(x)
        self._sums.fill(0.0)
        self._record(
            self._grid(n),
            (BLOCK,),
            (
                x,
                gx,
                x_prev,
                g_prev,
                dx,
                dg,
                np.int32(slot),
                np.int32(live),
                np.int32(k),
                self._sums,
                np.int64(n),
            ),
        )
        if not live:
            return None, None
        sums: np.ndarray = self.cupy.asnumpy(self._sums)
        return sums[:k], sums[self.MAX : self.MAX + k]

    def mix(
        self,
        gx: DeviceArray,
        dx: DeviceArray,
        dg: DeviceArray,
        gamma: np.ndarray,
        k: int,
        out: DeviceArray,
    ) -> float:
        n = len(gx)
        self._sums[:1].fill(0.0)
        self._mix(
            self._grid(n),
            (BLOCK,),
            (
                gx,
                dx,
                dg,
                self.cupy.asarray(gamma, dtype=self.cupy.float64),
                np.int32(k),
                out,
                self._sums,
                np.int64(n),
            ),
        )
        return float(self._sums[0])


class _DeviceOverlay:
    """The snapshot's overlay entries on the device, in entry order (COO).

    Entries keep their index for the snapshot's lifetime, so a block uploads
    the pairs it created and the weights it rewrote; the arrays grow by
    doubling, like the host columns.
    """

    def __init__(self, cupy: ModuleType, dtype: type[np.floating]) -> None:
        self.cupy = cupy
        self.dtype = dtype
        self.m = 0
        #: Links appended after the snapshot's entries (``m .. m + fresh``),
        #: until the next sync replaces them by the patched entries.
        self.fresh = 0
        self.src = cupy.empty(0, dtype=cupy.int32)
        self.dst = cupy.empty(0, dtype=cupy.int32)
        self.w = cupy.empty(0, dtype=dtype)

    @property
    def size(self) -> int:
        return self.m + self.fresh

    def _reserve(self, size: int) -> None:
        cupy = self.cupy
        if size <= len(self.src):
            return
        cap = max(size, 2 * len(self.src))
        keep = self.size
        for name, dtype in (("src", cupy.int32), ("dst", cupy.int32), ("w", self.dtype)):
            grown = cupy.empty(cap, dtype=dtype)
            grown[:keep] = getattr(self, name)[:keep]
            setattr(self, name, grown)

    def append(
        self, src: DeviceArray, dst: DeviceArray, w: DeviceArray, fresh: bool = True
    ) -> None:
        """Entries (device arrays, internal ids) at the end: raw links (``fresh``,
        dropped by the next sync) or, with nothing fresh held, lasting ones."""
        if not fresh and self.fresh:
            raise ValueError("lasting entries go before fresh ones: drop those first")
        at, k = self.size, len(src)
        self._reserve(at + k)
        self.src[at : at + k] = src
        self.dst[at : at + k] = dst
        self.w[at : at + k] = w
        if fresh:
            self.fresh += k
        else:
            self.m += k

    def sync(self, snap: Snapshot, rewritten: np.ndarray | None) -> None:
        cupy = self.cupy
        self.fresh = 0
        m = len(snap.ov_src)
        self._reserve(m)
        if m > self.m:
            self.src[self.m : m] = cupy.asarray(snap.ov_src[self.m :])
            self.dst[self.m : m] = cupy.asarray(snap.ov_dst[self.m :])
            self.w[self.m : m] = cupy.asarray(snap.ov_w[self.m :].astype(self.dtype))
        old = rewritten[rewritten < self.m] if rewritten is not None else None
        if old is not None and len(old):
            self.w[cupy.asarray(old)] = cupy.asarray(snap.ov_w[old].astype(self.dtype))
        self.m = m


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + l)`` for every pair, vectorised."""
    total = int(lengths.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    entries: np.ndarray = np.arange(total, dtype=np.int64) + offsets
    return entries


def _chunks(
    rows: np.ndarray, starts: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut rows (entries ``starts[k] .. starts[k] + lengths[k]``) into CHUNK pieces."""
    pieces = (lengths + CHUNK - 1) // CHUNK
    crow = np.repeat(rows, pieces).astype(np.int32)
    first = np.repeat(starts, pieces)
    k = _ranges(np.zeros(len(pieces), dtype=np.int64), pieces)
    cstart = first + k * CHUNK
    cend = np.minimum(cstart + CHUNK, np.repeat(starts + lengths, pieces))
    return crow, cstart.astype(np.int64), cend.astype(np.int64)


class CudaBackend:
    name = "cuda"

    def available(self) -> tuple[bool, str]:
        return cuda_available()

    @staticmethod
    def adopt(op: object) -> ExactNumbaOperator:
        """The numba exact operator's state on the GPU (``cuda_exact``): what a
        node that runs its chain here makes of a loaded checkpoint."""
        from focusflow.focus.backends.cuda_exact import ExactCudaOperator
        from focusflow.focus.backends.numba_cpu import ExactNumbaOperator

        if not isinstance(op, ExactNumbaOperator):
            raise InvalidParameterError(
                f"only an exact numba operator moves to cuda, not {type(op).__name__}"
            )
        return ExactCudaOperator.adopt(op)

    def operator(
        self,
        snapshot: Snapshot,
        precision: Precision = "float64",
        arithmetic: ArithmeticName = "fast",
    ) -> CudaOperator | ExactNumbaOperator:
        """The fast operator, or in an exact arithmetic the numba exact
        operator's twin on the GPU (``cuda_exact``: the same bits)."""
        if arithmetic == "fast":
            return CudaOperator(snapshot, precision)
        from focusflow.focus.backends.cuda_exact import ExactCudaOperator

        return ExactCudaOperator(snapshot, precision, arithmetic)
