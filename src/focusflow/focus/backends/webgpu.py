"""The WebGPU backend: the focus iteration as WGSL compute shaders through ``wgpu``.

Portable where the CUDA backend is not: Vulkan, Metal, DX12 and browsers, and
CPUs through Mesa's llvmpipe (how CI tests it).

Products (``sell.py``): the in-link matrix (and ``W + W^T`` for springs and
heat) in SELL-32: one invocation sums one row of a 32-row group; rows over 128
entries are cut into 1024-entry chunks that a 64-invocation workgroup sums into
a partial, and a second pass adds each long row's partials in order, so the
result does not depend on scheduling (WGSL has no float atomics).

Diffusion is device-resident (:meth:`WgpuOperator.solve_diffusion`): the
iterate, the next iterate, the gathered vector ``z = x / W_p``, the prior and
the inverse out-weights live in float32 device buffers, and one command encoder
per iteration holds every pass (SELL product, hub chunks, overlay rows, the
mass reduction, the finish pass, the L1 reduction). Pipelines, bind groups and
uniform buffers are built once per snapshot; uniforms change by
``queue.write_buffer``. Only 8 bytes per iteration come back (the L1 change),
and several iterations are encoded into one submission when the observed
contraction says the solve cannot stop sooner, so the host waits once per batch.
Per-solve host work is kept off the n-vectors: a uniform start is a fill pass,
a uniform prior a flag (nothing uploaded, nothing read per step), and the answer
is copied back once and converted to float64 straight from the mapped staging
buffer. The solve returns its time split into setup, encoding, waiting and
read-back (:data:`TIMING_KEYS`), so a device run shows where the time goes.

Anderson mixing (window ``m``, the host rules of
:class:`~focusflow.focus.anderson.Anderson`) runs on the device too: the finish
pass keeps a history (``x_prev``, ``g_prev`` and ``m`` slots of ``dx + dg`` and
``dg``) and reduces the ``2 m`` Gram products in the same deterministic pairs as
the L1 change; each step is one submission whose scalars the host waits for,
solves the small least-squares problem on, and answers with the mix pass at the
head of the next submission (recorded while the device runs the current one).
The mixed iterate is not renormalised: the next step's teleport term gives its
image mass 1 whatever its own mass. Those kernels are compiled per window (a
module constant), so their slot loops unroll and their sums stay in registers.

The finish pass fuses teleport and dangling mass as ``(1 - sum(alpha P^T x)) *
prior / sum(prior)`` (mass cannot leak in float32), the L1 change and the next
gathered vector. Reductions are deterministic and float-atomic free: a fixed
grid of ``nparts`` workgroups (fixed for a given n) accumulates with TwoSum
into double-float pairs ``(hi, lo)``, reduces them by a fixed tree in
workgroup memory and writes one pair per workgroup; a second single-workgroup
pass reduces the pairs the same way. Such a pair carries about 44 bits (a
relative error near 1e-13 on sums of non-negative terms, against ~1e-7 * log2 n
for plain float32), so the L1 change and the mass are accurate far beyond what
the stop rule needs; the iterate itself is float32 (7 significant digits per
entry), which stalls the L1 change near 1e-8 and keeps the answer within 1e-6
in L1 of the float64 reference (tested) when asked for ``tol >= 1e-7``. This
relies on the shader compiler not reassociating float adds (SPIR-V without
fast-math flags); if a driver did, the pairs would degrade to plain pairwise
float32 sums, still far inside what the stop rule needs.

Tri mode is device-resident too (:meth:`WgpuOperator.solve_tri`, kernels in
``wgsl.TRI_SOURCE``): ``A = W + W^T`` (``symmetric.py``, built on the host once
per snapshot version) is a second SELL-32 matrix in device buffers next to
``(sigma, diag)`` of the Laplacian; springs is Jacobi-preconditioned CG and
heat the Chebyshev recurrence, both on float32 device vectors with their dot
products in the double-float reductions above. CG's scalars (``r.z``, the step,
``beta``, the stop test against ``tol * ||rhs||`` and ``cg_max_iter``) are
computed on the device, so a batch of CG iterations is encoded at once and
iterations past convergence change nothing (their products are indirect
dispatches whose workgroup counts the stop test zeroes); the host reads back
64 bytes per batch (the flag and the count) and sizes the next batch from
the last count. Heat's coefficients come from the host (``spectral.heat_coefficients``,
written into the scalar buffer), after the device has reduced the two norms
that the incremental error budget needs. Per outer iteration that is two or
three waits for a few scalars, the same stop rule and inner-solve schedule as
``solver._iterate`` (loose inner solves proportional to the last change, then
exact ones and incremental heat), and Anderson mixing through the same kernels
as diffusion. CG's warm start stays on the device between solves on the same
:class:`~focusflow.focus.spectral.SpringsState` (an engine's blocks). After a
patch the device matrix gets new values where the sparsity of ``A`` is
unchanged, and is rebuilt where it is not. The host-side ``pull`` and
``lap_matvec`` remain for the protocol (one upload and one read-back each).
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable

import numba as nb
import numpy as np

from focusflow.focus.backends import gpu_device_node
from focusflow.focus.backends.base import inverse_out_weight, uniform_value
from focusflow.focus.backends.sell import SellMatrix
from focusflow.focus.backends.symmetric import symmetric_matrix
from focusflow.focus.backends.wgsl import (
    AA_KERNELS,
    BINDINGS,
    MATRIX_KERNELS,
    MAX_ANDERSON,
    SCATTER_SHADER,
    SHADER,
    TRI_BINDINGS,
    TRI_KERNELS,
    TRI_SOURCE,
    VECTOR_KERNELS,
    VECTOR_SHADER,
    vector_shader,
)
from focusflow.focus.reduce import ordered_sum
from focusflow.focus.spectral import heat_coefficients
from focusflow.graph.snapshot import PatchInfo, Snapshot

LANES = 32
LONG_ROW = 128
CHUNK = 1024
WG = 64
#: Invocations per workgroup of the vector kernels and width of the reduction tree.
RED = 256
#: Most first-level partial sums of a reduction (workgroups of the vector kernels).
MAX_PARTS = 1024
#: Most iterations encoded into one submission (slots for their L1 changes).
MAX_BATCH = 32
#: Parts of a device solve's wall time (seconds), as ``solve_diffusion`` reports
#: them: uniform/prior checks, uniforms and uploads; Python encoding and
#: submitting the steps (the device runs meanwhile); waiting for each batch's
#: L1 changes; copying the iterate back and converting it to float64.
TIMING_KEYS = ("device_setup", "device_encode", "device_wait", "device_readback")


_BINDINGS = {**BINDINGS, **TRI_BINDINGS}
#: Scalars of the tri module read back after each CG batch (see ``wgsl.TRI_SOURCE``).
TRI_SCALARS = 16


def wgpu_available(require_gpu: bool = False) -> tuple[bool, str]:
    """Whether wgpu imports and finds an adapter (a real GPU if ``require_gpu``)."""
    try:
        import wgpu
    except Exception as exc:
        return (
            False,
            f"wgpu is not installed ({type(exc).__name__}: {exc}); pip install 'focusflow[webgpu]'",
        )
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())  # Mesa asks for it
    try:
        adapter = wgpu.gpu.request_adapter_sync(power_preference="high-performance")
    except Exception as exc:
        return (
            False,
            f"no WebGPU adapter ({type(exc).__name__}: {exc}); install Mesa's Vulkan or GL drivers",
        )
    if adapter is None:
        return False, "no WebGPU adapter found; install Mesa's Vulkan or GL drivers"
    info = adapter.info
    kind = info.get("adapter_type", "")
    name = f"{info.get('device', '?')} ({info.get('backend_type', '?')})"
    if require_gpu and kind == "CPU":
        return False, f"only a CPU adapter: {name}"
    return True, f"wgpu on {name}"


def _dispatch_size(invocations: int) -> tuple[int, int, int]:
    """Workgroups as (x, y, 1) with x <= 65535, for ``invocations`` in 64s."""
    groups = max(1, (invocations + WG - 1) // WG)
    x = min(groups, 65535)
    y = (groups + x - 1) // x
    return x, y, 1


def _nparts(n: int) -> int:
    """First-level workgroups of the vector kernels: a fixed function of ``n``, so
    the reduction tree (and its rounding) is the same on every run and device."""
    return max(1, min(MAX_PARTS, -(-n // (4 * RED))))


def _u32(array: np.ndarray, dtype=np.uint32) -> np.ndarray:
    """``array`` as a non-empty 32-bit buffer payload (wgpu refuses empty buffers)."""
    return array.astype(dtype) if len(array) else np.zeros(1, dtype=dtype)


class _DeviceSell:
    """A SELL-32 matrix and its long-row chunks in wgpu buffers, with its uniform
    (``scale`` included) and the bind groups of the vectors it was used with."""

    def __init__(self, op, indptr, indices, weights) -> None:
        m = SellMatrix(indptr, indices, weights, np.float32, c=LANES, long_row=LONG_ROW)
        self.host = m
        self.ngroups = len(m.glen)
        lengths = (indptr[m.long_rows + 1] - indptr[m.long_rows]).astype(np.int64)
        pieces = (lengths + CHUNK - 1) // CHUNK
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        entries = (
            np.concatenate([np.arange(indptr[r], indptr[r + 1]) for r in m.long_rows.tolist()])
            if len(m.long_rows)
            else np.zeros(0, dtype=np.int64)
        )
        row_of_chunk = np.repeat(np.arange(len(m.long_rows)), pieces)
        first_chunk = np.concatenate([[0], np.cumsum(pieces)])
        k = np.arange(len(row_of_chunk)) - first_chunk[row_of_chunk]
        cstart = offsets[row_of_chunk] + k * CHUNK
        cend = np.minimum(cstart + CHUNK, offsets[row_of_chunk + 1])
        self.nchunks = len(cstart)
        self.nlong = len(m.long_rows)
        if entries.max(initial=0) >= 2**32 or m.gptr[-1] >= 2**32:
            raise ValueError("the wgpu backend indexes entries with 32 bits")
        self.long_entries = entries
        self.long_offsets = offsets
        # long row -> its index in long_rows, by binary search over the sorted rows
        self._long_order = np.argsort(m.long_rows, kind="stable")
        self._long_sorted = m.long_rows[self._long_order]
        self._indptr = indptr
        buf = op._buffer
        self.buffers = {
            0: buf(_u32(m.gptr[:-1])),
            1: buf(_u32(m.glen)),
            2: buf(m.grows.astype(np.int32) if len(m.grows) else np.full(1, -1, np.int32)),
            3: buf(_u32(m.sidx)),
            4: buf(_u32(m.sval, np.float32)),
            8: buf(_u32(cstart)),
            9: buf(_u32(cend)),
            10: buf(_u32(indices[entries])),
            11: buf(_u32(weights[entries], np.float32)),
            12: op._empty(max(self.nchunks, 1) * 4),
            13: buf(_u32(m.long_rows)),
            14: buf(first_chunk.astype(np.uint32)),
        }
        usage = op.wgpu.BufferUsage.UNIFORM | op.wgpu.BufferUsage.COPY_DST
        self.uniform = op.device.create_buffer(size=32, usage=usage)
        self.buffers[7] = self.uniform
        self._written: tuple | None = None
        self._groups: dict = {}
        #: Rows the matrix has, and rows past them that the product zeroes
        #: (particles added after the build; their sums come from the overlay).
        self.rows = len(indptr) - 1
        self.tail = 0

    def set_rows(self, n: int) -> None:
        """Products write ``n`` rows from now on (``n`` >= the matrix's rows)."""
        self.tail = n - self.rows
        self._groups = {}  # the vectors were allocated again for the new size

    def set_scale(self, op, scale: float) -> None:
        """Write the uniform (sizes, dispatch width, ``scale``, the zeroed tail)
        if any of it changed."""
        if self._written == (scale, self.tail):
            return
        params = np.array(
            [self.ngroups, self.nchunks, self.nlong, 65535 * WG, 0, self.rows, self.tail, 0],
            dtype=np.uint32,
        )
        params[4] = np.float32(scale).view(np.uint32)
        op.device.queue.write_buffer(self.uniform, 0, params)
        self._written = (scale, self.tail)

    def steps(self) -> tuple:
        """``(kernel, workgroups, count)`` of the product's passes."""
        return (
            (
                "sell_pull",
                _dispatch_size(self.ngroups * LANES + self.tail),
                self.ngroups + self.tail,
            ),
            ("chunk_sum", _dispatch_size(self.nchunks * WG), self.nchunks),
            ("long_finish", _dispatch_size(self.nlong), self.nchunks),
        )

    def encode(self, op, cpass, z, out, indirect=None) -> None:
        """Record ``out = scale * (matrix rows . z)`` into a compute pass; with
        ``indirect = (buffer, offset)`` the workgroup counts of the passes are
        read from ``buffer`` (three u32 triples from ``offset``)."""
        for j, (name, size, count) in enumerate(self.steps()):
            if not count:
                continue
            key = (name, z, out)
            group = self._groups.get(key)
            if group is None:
                group = op._bind_group(name, {**self.buffers, 5: z, 6: out})
                self._groups[key] = group
            cpass.set_pipeline(op._pipelines[name])
            cpass.set_bind_group(0, group)
            if indirect is None:
                cpass.dispatch_workgroups(*size)
            else:
                cpass.dispatch_workgroups_indirect(indirect[0], indirect[1] + 12 * j)

    def update(self, op, entries: np.ndarray, weights: np.ndarray) -> None:
        """Write new values of CSR entries ``entries`` into the device buffers:
        only those values and their positions travel (``op.scatter``)."""
        if not len(entries):
            return
        at = self.host.pos[entries]
        short = at >= 0
        if short.any():
            self.host.sval[at[short]] = weights[entries[short]]
            op.scatter(self.buffers[4], at[short], self.host.sval[at[short]])
        if (~short).any():
            # long-row entries sit grouped by row in length order: find each
            # entry's row, the row's place among the long rows, then the offset
            long_entries = entries[~short]
            rows = np.searchsorted(self._indptr, long_entries, side="right") - 1
            k = self._long_order[np.searchsorted(self._long_sorted, rows)]
            where = self.long_offsets[k] + (long_entries - self._indptr[rows])
            op.scatter(self.buffers[11], where, weights[long_entries])


class WgpuOperator:
    """Graph products and the device-resident diffusion solve through WebGPU.

    The host-side protocol (``pull``, ``diffusion``, ``lap_matvec``) takes and
    returns numpy arrays; :meth:`solve_diffusion` keeps every vector on the
    device and is what the solver runs for diffusion.
    """

    name = "wgpu"
    #: Steps per queue submission inside a batch. 1: the device runs step k while
    #: Python encodes step k + 1 (encoding a step costs ~0.1-0.2 ms of Python);
    #: larger values save submissions where those cost more (bench/focus_gpu.py
    #: measures both).
    submit_every = 1
    #: CG iterations recorded in the first batch of a tri solve (later batches:
    #: the last solve's count + 2; iterations past the stop are empty).
    cg_first_batch = 4

    def __init__(self, snapshot: Snapshot, precision: str = "float32") -> None:
        import wgpu

        os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())
        self.wgpu = wgpu
        adapter = wgpu.gpu.request_adapter_sync(power_preference="high-performance")
        limits = adapter.limits
        wanted = {
            key: limits[key]
            for key in (
                "max-storage-buffer-binding-size",
                "max-buffer-size",
                "max-storage-buffers-per-shader-stage",
            )
            if key in limits
        }
        self.device = adapter.request_device_sync(required_limits=wanted)
        self.adapter_info = adapter.info
        self._pipelines = {
            **self._compile(SHADER, MATRIX_KERNELS),
            **self._compile(VECTOR_SHADER, VECTOR_KERNELS),
            **self._compile(SCATTER_SHADER, ("scatter",)),
        }
        self._aa_pipelines: dict[int, dict] = {}
        self._aa_m: int | None = None
        self.snapshot = snapshot
        self._sym = None
        self._sym_stale = True
        self._tri: dict | None = None
        self._springs_of = None
        self.n = -1
        self.timings = dict.fromkeys(TIMING_KEYS, 0.0)
        self._need_fill = False
        self.refresh()

    def _compile(self, code: str, names: tuple[str, ...]) -> dict:
        """Compute pipelines for the entry points ``names`` of a WGSL module."""
        module = self.device.create_shader_module(code=code)
        return {
            name: self.device.create_compute_pipeline(
                layout="auto", compute={"module": module, "entry_point": name}
            )
            for name in names
        }

    # --- buffers ---------------------------------------------------------------
    def _buffer(self, array: np.ndarray):
        usage = self.wgpu.BufferUsage.STORAGE | self.wgpu.BufferUsage.COPY_DST
        return self.device.create_buffer_with_data(data=np.ascontiguousarray(array), usage=usage)

    def _empty(self, nbytes: int):
        usage = (
            self.wgpu.BufferUsage.STORAGE
            | self.wgpu.BufferUsage.COPY_SRC
            | self.wgpu.BufferUsage.COPY_DST
        )
        return self.device.create_buffer(size=max(4, nbytes), usage=usage)

    def _bind_group(self, name: str, buffers: dict):
        layout = self._pipelines[name].get_bind_group_layout(0)
        entries = [
            {"binding": b, "resource": {"buffer": buffers[b], "offset": 0, "size": buffers[b].size}}
            for b in _BINDINGS[name]
        ]
        return self.device.create_bind_group(layout=layout, entries=entries)

    def _read(self, buffer, nbytes: int, stage) -> np.ndarray:
        """The first ``nbytes`` of ``buffer`` through the persistent staging ``stage``."""
        encoder = self.device.create_command_encoder()
        encoder.copy_buffer_to_buffer(buffer, 0, stage, 0, nbytes)
        self.device.queue.submit([encoder.finish()])
        return self._map(stage, nbytes)

    def _map(
        self,
        stage,
        nbytes: int,
        convert: Callable[[np.ndarray], np.ndarray] = np.copy,
        parts: dict | None = None,
    ):
        """``convert`` of the first ``nbytes`` of the staging buffer ``stage`` as float32.

        ``convert`` reads the mapped memory itself (no intermediate copy), so a
        conversion to float64 is the only pass over a read-back vector; it must
        return an array that does not alias the mapping.
        """
        t = time.perf_counter()
        stage.map_sync(self.wgpu.MapMode.READ, 0, nbytes)
        t_mapped = time.perf_counter()
        try:
            view = stage.read_mapped(0, nbytes, copy=False)
            data = convert(np.frombuffer(view, dtype=np.float32))
        finally:
            stage.unmap()
        if parts is not None:
            parts["map"] += t_mapped - t
            parts["convert"] += time.perf_counter() - t_mapped
        return data

    def _staging(self, nbytes: int):
        usage = self.wgpu.BufferUsage.MAP_READ | self.wgpu.BufferUsage.COPY_DST
        return self.device.create_buffer(size=max(4, nbytes), usage=usage)

    def scatter(self, target, positions: np.ndarray, values: np.ndarray) -> None:
        """``target[positions] = values`` (float32) by a kernel on the device."""
        count = len(positions)
        if not count:
            return
        usage = self.wgpu.BufferUsage.UNIFORM | self.wgpu.BufferUsage.COPY_DST
        uniform = self.device.create_buffer_with_data(
            data=np.array([count, 65535 * WG, 0, 0], dtype=np.uint32), usage=usage
        )
        buffers = {
            0: self._buffer(_u32(positions)),
            1: self._buffer(_u32(values, np.float32)),
            2: target,
            3: uniform,
        }
        encoder = self.device.create_command_encoder()
        cpass = encoder.begin_compute_pass()
        cpass.set_pipeline(self._pipelines["scatter"])
        cpass.set_bind_group(0, self._bind_group("scatter", buffers))
        cpass.dispatch_workgroups(*_dispatch_size(count))
        cpass.end()
        self.device.queue.submit([encoder.finish()])

    # --- snapshot --------------------------------------------------------------
    def refresh(self, info: PatchInfo | None = None) -> None:
        """Upload the snapshot, or after a patch the rewritten values, the
        out-weights and the overlay (the base matrix stays on the device)."""
        s = self.snapshot
        full = info is None or info.base_entries is None or not hasattr(self, "sell")
        if full:
            self.sell = _DeviceSell(self, s.in_indptr, s.in_indices, s.in_w)
        elif len(info.base_entries):
            self.sell.update(self, s.out_to_in[info.base_entries], s.in_w)
        if full or s.n != self.n:
            # Vectors for the (new) size; after a patch that brought particles
            # the matrix stays and zeroes the rows past its own in every product.
            self.sell.set_rows(s.n)
            self.n = s.n
            n4 = 4 * max(self.n, 1)
            self._z = self._empty(n4)
            self._out = self._empty(n4)
            self._stage_vec = self._staging(n4)
            # device-resident diffusion: iterate pair, gathered vector, prior, 1/W_p
            self._vec = (self._empty(n4), self._empty(n4))
            self._zv = self._empty(n4)
            self._prior = self._empty(n4)
            self._inv = self._empty(n4)
            # One (hi, lo) pair per part for each value a reduction carries: the
            # L1 change alone, or with the 2 m Gram products of an Anderson step.
            self._part = self._empty(8 * MAX_PARTS * (1 + 2 * MAX_ANDERSON))
            self._stats = self._empty(4 * (2 + 2 * MAX_BATCH))
            self._counter = self._empty(16)
            self._stage_stats = self._staging(4 * (2 + 2 * MAX_BATCH))
            usage = self.wgpu.BufferUsage.UNIFORM | self.wgpu.BufferUsage.COPY_DST
            self._vparams = self.device.create_buffer(size=48, usage=usage)
            self._params = np.zeros(12, dtype=np.uint32)
            self._aa_buffers: dict = {}
            self._prior_of = None
            self._uniform_prior = False
        self.inv_out, linked = inverse_out_weight(s.out_weight)
        self.dangling = ~linked
        if self.n > 0:
            self.device.queue.write_buffer(self._inv, 0, self.inv_out.astype(np.float32))
        rows, ptr, indices, weights = s.overlay_in_rows()
        self._ov = rows, ptr, indices, weights
        self._ov_rows = rows
        self._ov_buffers = {
            9: self._buffer(_u32(rows)),
            10: self._buffer(_u32(ptr[:-1])),
            11: self._buffer(_u32(ptr[1:])),
            12: self._buffer(_u32(indices)),
            13: self._buffer(_u32(weights, np.float32)),
        }
        self._vgroups: dict = {}
        self._tgroups: dict = {}
        self._sym_stale = True

    # --- host-side products (tri mode) ----------------------------------------
    def _pull(self, m: _DeviceSell, z: np.ndarray) -> np.ndarray:
        """``sum_j W[j, r] z[j]`` for every row, on the device, read back as float64."""
        queue = self.device.queue
        queue.write_buffer(self._z, 0, np.ascontiguousarray(z, dtype=np.float32))
        m.set_scale(self, 1.0)
        encoder = self.device.create_command_encoder()
        cpass = encoder.begin_compute_pass()
        m.encode(self, cpass, self._z, self._out)
        cpass.end()
        encoder.copy_buffer_to_buffer(self._out, 0, self._stage_vec, 0, 4 * self.n)
        queue.submit([encoder.finish()])
        return self._map(self._stage_vec, 4 * self.n, _as_float64)

    def pull(self, z: np.ndarray, out: np.ndarray, scale: float) -> float:
        sums = self._pull(self.sell, z)
        rows, ptr, indices, weights = self._ov
        for k, r in enumerate(rows.tolist()):
            a, b = ptr[k], ptr[k + 1]
            sums[r] += float(weights[a:b] @ z[indices[a:b]])
        out[:] = scale * sums
        return float(out.sum())

    def diffusion(self, x, y, alpha, prior):
        """One step on host vectors (the protocol's form; the solver uses
        :meth:`solve_diffusion` instead)."""
        linked_mass = self.pull(x * self.inv_out, y, alpha)
        y += (1.0 - linked_mass) * prior
        return float(np.abs(y - x).sum())

    def setup_laplacian(self, kind: str) -> None:
        """``A = W + W^T`` in SELL-32 on the device and ``(sigma, diag)`` per particle.

        Built on the host (``symmetric_matrix``) once per snapshot version; after
        a patch that keeps the sparsity of ``A`` (rewritten weights) only the
        values are written into the device matrix, otherwise it is rebuilt.
        """
        if self._sym is not None and self._sym_kind == kind and not self._sym_stale:
            return
        ptr, idx, w, sigma, diag, lam_max = symmetric_matrix(self.snapshot, kind)
        old = self._sym
        same = (
            old is not None
            and self._sym_kind == kind
            and len(old.ptr) == len(ptr)
            and len(old.idx) == len(idx)
            and np.array_equal(old.ptr, ptr)
            and np.array_equal(old.idx, idx)
        )
        if same:
            old.update(self, np.flatnonzero(w != old.w), w)
            old.w = w
            self.sym_patches = getattr(self, "sym_patches", 0) + 1
        else:
            self._sym = _DeviceSell(self, ptr, idx, w)
            self._sym.ptr, self._sym.idx, self._sym.w = ptr, idx, w
            self._sym.set_scale(self, 1.0)
            self._tgroups = {}
            self.sym_builds = getattr(self, "sym_builds", 0) + 1
        self._sym_kind = kind
        self._sym_stale = False
        self.lap_sigma, self.lap_diag, self.lam_max = sigma, diag, lam_max
        lap = np.empty((max(self.n, 1), 2), dtype=np.float32)
        lap[: self.n, 0] = sigma
        lap[: self.n, 1] = diag
        if self._tri is None or self._tri["n"] != self.n:
            self._tri_buffers()
        self.device.queue.write_buffer(self._tri["buffers"][2], 0, lap)
        dims = np.zeros(18, dtype=np.uint32)
        for j, (_, size, _count) in enumerate(self._sym.steps()):
            dims[3 * j : 3 * j + 3] = size
        self.device.queue.write_buffer(self._tri["buffers"][18], 0, dims)

    def lap_matvec(self, x, out) -> None:
        acc = self._pull(self._sym, self.lap_sigma * x)
        out[:] = self.lap_diag * x - self.lap_sigma * acc

    # --- device-resident tri mode ----------------------------------------------
    def _tri_buffers(self) -> None:
        """The tri module's pipelines (once) and its n-vectors (per size)."""
        if "cg_init_a" not in self._pipelines:
            self._pipelines.update(self._compile(TRI_SOURCE, TRI_KERNELS))
        n4 = 4 * max(self.n, 1)
        usage = self.wgpu.BufferUsage.UNIFORM | self.wgpu.BufferUsage.COPY_DST
        buffers = {b: self._empty(n4) for b in (4, 5, 6, 7, 8, 9, 13, 14, 15, 16, 17, 19)}
        buffers[2] = self._empty(2 * n4)
        buffers[11] = self._empty(4 * (TRI_SCALARS + 128))
        buffers[12] = self.device.create_buffer(size=64, usage=usage)
        buffers[18] = self.device.create_buffer(
            size=4 * 18,
            usage=self.wgpu.BufferUsage.STORAGE
            | self.wgpu.BufferUsage.INDIRECT
            | self.wgpu.BufferUsage.COPY_SRC
            | self.wgpu.BufferUsage.COPY_DST,
        )
        self._tri = {
            "n": self.n,
            "buffers": buffers,
            "stage": self._staging(4 * TRI_SCALARS),
            "params": np.zeros(16, dtype=np.uint32),
        }
        self._tgroups = {}
        self._springs_of = None

    def _tri_coefficients(self, coeffs: np.ndarray) -> None:
        """Write the Chebyshev coefficients after the scalars (growing the buffer)."""
        tri = self._tri
        need = 4 * (TRI_SCALARS + len(coeffs))
        if tri["buffers"][11].size < need:
            tri["buffers"][11] = self._empty(need + 4 * 128)
            self._tgroups = {}
        self.device.queue.write_buffer(
            tri["buffers"][11], 4 * TRI_SCALARS, coeffs.astype(np.float32)
        )

    def _tdispatch(self, cpass, name: str, parity: int, size, rot: int = 0) -> None:
        """A tri kernel with ``x = _vec[parity]``, ``y`` the other one and the
        Chebyshev buffers rotated ``rot`` places (T_{k-1}, T_k, T_{k+1})."""
        key = (name, parity, rot)
        group = self._tgroups.get(key)
        if group is None:
            b = self._tri["buffers"]
            heat = (b[15], b[16], b[17])
            buffers = {
                **b,
                0: self._vec[parity],
                1: self._vec[1 - parity],
                10: self._part,
                15: heat[rot % 3],
                16: heat[(rot + 1) % 3],
                17: heat[(rot + 2) % 3],
            }
            group = self._bind_group(name, buffers)
            self._tgroups[key] = group
        cpass.set_pipeline(self._pipelines[name])
        cpass.set_bind_group(0, group)
        cpass.dispatch_workgroups(*size)

    def _sym_product(self, cpass, indirect: bool = False) -> None:
        """``acc = A t`` (the symmetric matrix, scale 1); ``indirect``: only
        while CG runs (the counts of ``dims[9..18]``)."""
        b = self._tri["buffers"]
        self._sym.encode(self, cpass, b[8], b[9], (b[18], 36) if indirect else None)

    def _encode_cg(self, cpass, parity: int, count: int) -> None:
        wide = (_nparts(self.n), 1, 1)
        one = (1, 1, 1)
        for _ in range(count):
            self._sym_product(cpass, indirect=True)
            self._tdispatch(cpass, "cg_ap", parity, wide)
            self._tdispatch(cpass, "cg_step", parity, one)
            self._tdispatch(cpass, "cg_update", parity, wide)
            self._tdispatch(cpass, "cg_final", parity, one)
            self._tdispatch(cpass, "cg_dir", parity, wide)

    def _encode_heat(self, cpass, parity: int, terms: int) -> None:
        wide = (_nparts(self.n), 1, 1)
        self._tdispatch(cpass, "heat_init", parity, wide)
        if terms > 1:
            self._sym_product(cpass)
            self._tdispatch(cpass, "heat_first", parity, wide)
        for k in range(2, terms):
            self._sym_product(cpass)
            self._tdispatch(cpass, "heat_term", parity, wide, rot=(k - 2) % 3)
            self._tdispatch(cpass, "heat_tick", parity, (1, 1, 1))

    def _submit_scalars(self, encoder) -> None:
        """Copy the tri scalars to staging at the end of ``encoder`` and submit it."""
        tri = self._tri
        encoder.copy_buffer_to_buffer(tri["buffers"][11], 0, tri["stage"], 0, 4 * TRI_SCALARS)
        self.device.queue.submit([encoder.finish()])

    def _wait_scalars(self) -> np.ndarray:
        """Wait for the scalars of the last :meth:`_submit_scalars`."""
        t = time.perf_counter()
        out = self._map(self._tri["stage"], 4 * TRI_SCALARS, _as_float64)
        self.timings["device_wait"] += time.perf_counter() - t
        return out

    def _encode_tri_head(self, cur: int, m: int, springs: bool, batch: int, norms: bool):
        """(A) of an outer step: the head (start fill, gather or Anderson mix), the
        diffusion step into ``y``, the CG start and ``batch`` iterations, and the
        norms of the incremental heat's budget. Returns the open encoder."""
        wide = (_nparts(self.n), 1, 1)
        one = (1, 1, 1)
        encoder = self.device.create_command_encoder()
        cpass = encoder.begin_compute_pass()
        if self._need_fill:
            self._dispatch(cpass, "fill", 1 - cur, wide)
            self._need_fill = False
        if self._need_prep:
            self._dispatch(cpass, "prep", cur, wide)
            self._need_prep = False
        elif m:
            self._dispatch(cpass, "aa_mix", 1 - cur, wide)
        self.sell.encode(self, cpass, self._zv, self._vec[1 - cur])
        nov = len(self._ov_rows)
        if nov:
            self._dispatch(cpass, "ov_add", cur, _dispatch_size(nov))
        for name, size in (("sum_partial", wide), ("mass_final", one), ("finish", wide)):
            self._dispatch(cpass, name, cur, size)
        if springs:
            self._tdispatch(cpass, "cg_init_a", cur, wide)
            self._sym_product(cpass)
            self._tdispatch(cpass, "cg_init_b", cur, wide)
            self._tdispatch(cpass, "cg_init_final", cur, one)
            self._encode_cg(cpass, cur, batch)
        if norms:
            self._tdispatch(cpass, "heat_norms", cur, wide)
            self._tdispatch(cpass, "heat_norms_final", cur, one)
        cpass.end()
        return encoder

    def _encode_tri_blend(self, cur: int, m: int, coeffs: np.ndarray | None):
        """(B) of an outer step: heat with ``coeffs`` (None: no heat), the blend,
        its sum, the normalised iterate and its L1 change (with the Anderson
        bookkeeping when ``m``), and the copy of the scalars to staging.
        Returns the command buffer and the bytes of scalars it leaves."""
        wide = (_nparts(self.n), 1, 1)
        one = (1, 1, 1)
        encoder = self.device.create_command_encoder()
        cpass = encoder.begin_compute_pass()
        if coeffs is not None:
            self._encode_heat(cpass, cur, len(coeffs))
        self._tdispatch(cpass, "tri_blend", cur, wide)
        self._dispatch(cpass, "sum_partial", cur, wide)
        self._dispatch(cpass, "blend_final", cur, one)
        if m:
            self._dispatch(cpass, "finish_aa", cur, wide)
            self._dispatch(cpass, "aa_final", cur, one)
            nbytes = 4 * (2 + 2 * (1 + 2 * m))
        else:
            self._dispatch(cpass, "finish", cur, wide)
            self._dispatch(cpass, "l1_final", cur, one)
            nbytes = 16
        cpass.end()
        encoder.copy_buffer_to_buffer(self._stats, 0, self._stage_stats, 0, nbytes)
        return encoder.finish(), nbytes

    def solve_tri(
        self,
        prior: np.ndarray,
        x0: np.ndarray | None,
        params,
        springs_state,
        heat_state,
        progress: Callable[[int, float], None] | None = None,
        forcing: float = 0.05,
    ) -> tuple[np.ndarray, list[float], bool, dict[str, float]]:
        """The coupled tri iteration (``solver._iterate``'s rules) with every vector
        on the device; returns ``(phi, residual history, converged, timings)``.

        Per outer iteration two submissions: (A) the head (start fill, gather or
        Anderson mix), the diffusion step into ``y``, the springs CG from its
        warm start for a predicted number of iterations (more batches if the
        device says it has not converged) and, for incremental heat, the norms
        its error budget needs; (B) heat by Chebyshev, the blend, its sum, the
        normalised iterate with its L1 change (and the Anderson products),
        recorded while (A) runs unless heat's coefficients wait for the norms.
        Besides those scalars nothing comes back until the final iterate.
        """
        if params.anderson > MAX_ANDERSON:
            raise ValueError(f"the wgpu backend mixes at most {MAX_ANDERSON} steps")
        self.setup_laplacian(params.laplacian)
        self.start_diffusion(prior, x0, params.alpha)
        t0 = time.perf_counter()
        m = params.anderson
        if m:
            self._ensure_history(m)
        lam_d, lam_s, lam_h = params.weights
        tri = self._tri
        tp = tri["params"]
        tp[:] = 0
        tp[:3] = (self.n, _nparts(self.n), params.cg_max_iter)
        floats = tp.view(np.float32)
        floats[4] = params.mu
        floats[6:9] = (lam_d, lam_s, lam_h)
        floats[9] = 2.0 / self.lam_max if self.lam_max > 0 else 0.0
        c = params.tau * self.lam_max / 2.0
        fresh = self._springs_of is not springs_state or springs_state is None
        self._springs_of = None
        self.anderson_restarts = 0
        self.tri_counts = {"cg_batches": 0, "cg_iterations": 0, "heat_terms": 0}
        self.timings["device_setup"] += time.perf_counter() - t0
        history: list[float] = []
        queue = self.device.queue
        gram = np.zeros((max(m, 1), max(m, 1)))
        k = slot = 0
        have_prev = False
        last = math.inf
        mix: np.ndarray | None = None
        exact = False
        heat_valid = False
        res = 1.0
        batch = self.cg_first_batch
        converged = False
        while len(history) < params.max_iter:
            t = time.perf_counter()
            cg_tol = params.cg_tol if exact else min(1e-2, max(params.cg_tol, forcing * res))
            heat_tol = params.heat_tol if exact else min(1e-2, max(params.heat_tol, forcing * res))
            incremental = exact and heat_valid and self.lam_max > 0
            tp[3] = int(fresh)
            floats[5] = cg_tol
            tp[10] = int(incremental)
            queue.write_buffer(tri["buffers"][12], 0, tp)
            if m:
                self._params[9:11] = (slot, 0 if mix is None else len(mix))
                queue.write_buffer(self._vparams, 0, self._params)
                if mix is not None:
                    queue.write_buffer(self._aa_buffers[15], 0, mix.astype(np.float32))
            cur = self._cur
            # Heat's coefficients are known now unless the incremental budget
            # needs the device's norms: then (B) is recorded while (A) runs.
            coeffs = None
            if lam_h > 0 and not incremental:
                coeffs = np.ones(1) if self.lam_max <= 0 else heat_coefficients(c, heat_tol)
                self._tri_coefficients(coeffs)
            command_a = self._encode_tri_head(cur, m, lam_s > 0, batch, incremental)
            self.timings["device_encode"] += time.perf_counter() - t
            self._submit_scalars(command_a)
            t = time.perf_counter()
            command_b = None
            if lam_h == 0 or coeffs is not None:
                command_b, nbytes = self._encode_tri_blend(cur, m, coeffs)
            self.timings["device_encode"] += time.perf_counter() - t
            scalars = self._wait_scalars()
            self.tri_counts["cg_batches"] += 1
            while lam_s > 0 and scalars[0] > 0.5:
                t = time.perf_counter()
                more = 4
                encoder = self.device.create_command_encoder()
                cpass = encoder.begin_compute_pass()
                self._encode_cg(cpass, cur, more)
                cpass.end()
                self.timings["device_encode"] += time.perf_counter() - t
                self._submit_scalars(encoder)
                scalars = self._wait_scalars()
                self.tri_counts["cg_batches"] += 1
                batch += more
            t = time.perf_counter()
            if lam_s > 0:
                done = int(scalars[1])
                springs_state.iterations += done
                self.tri_counts["cg_iterations"] += done
                # The warm-started solve takes about as many iterations as the
                # last one; those recorded past the stop cost a few empty
                # dispatches (no product), a wait for more costs a round trip.
                batch = done + 2
                fresh = False
            if command_b is None:
                size = math.sqrt(max(scalars[9] + scalars[10], 0.0))
                base = math.sqrt(max(scalars[11] + scalars[12], 0.0))
                rel = min(0.5, heat_tol * base / size) if size > 0 else 0.5
                coeffs = heat_coefficients(c, rel)
                self._tri_coefficients(coeffs)
                command_b, nbytes = self._encode_tri_blend(cur, m, coeffs)
            if coeffs is not None:
                heat_state.terms += len(coeffs)
                self.tri_counts["heat_terms"] += len(coeffs)
                heat_valid = True
            if not m:
                queue.write_buffer(self._counter, 0, np.zeros(4, dtype=np.uint32))
            queue.submit([command_b])
            self._cur = 1 - cur
            t_wait = time.perf_counter()
            self.timings["device_encode"] += t_wait - t
            stats = self._map(self._stage_stats, nbytes, _as_float64)
            self.timings["device_wait"] += time.perf_counter() - t_wait
            pairs = stats[2::2] + stats[3::2]
            res = float(pairs[0])
            history.append(res)
            if not math.isfinite(res):
                raise FloatingPointError("focus iteration lost its mass (non-finite values)")
            if progress is not None:
                progress(len(history), res)
            if res < params.tol and exact:
                converged = True
                break
            if res < params.tol:
                exact = True
                k = slot = 0
                have_prev = False
                last = math.inf
            elif not exact and params.finish == "bounded" and len(history) > 1:
                # The early switch of solver._iterate (the next change predicted
                # below tol, the Anderson history kept); the exact steps keep
                # cg_tol and heat_tol: the bound on the inner solves' share
                # needs ||sigma phi||, one more wait for the device here.
                exact = res * min(1.0, res / history[-2]) < params.tol
            mix = None
            if not m:
                continue
            if res > 2.0 * last:
                k = slot = 0
                have_prev = False
                self.anderson_restarts += 1
            last = res
            if not have_prev:
                have_prev = True
                continue
            live = min(k + 1, m)
            cross = pairs[1 : 1 + live]
            gram[slot, :live] = cross
            gram[:live, slot] = cross
            k = live
            slot = (slot + 1) % m
            try:
                gamma = np.linalg.lstsq(gram[:k, :k], pairs[1 + m : 1 + m + k], rcond=1e-12)[0]
            except np.linalg.LinAlgError:
                gamma = None
            if gamma is None or not np.all(np.isfinite(gamma)):
                k = slot = 0
                have_prev = False
                self.anderson_restarts += 1
                continue
            mix = gamma
        self._springs_of = springs_state
        phi = self.current()
        return phi, history, converged, dict(self.timings)

    # --- device-resident diffusion ----------------------------------------------
    def _vgroup(self, name: str, parity: int):
        """The cached bind group of vector kernel ``name`` with ``x = _vec[parity]``."""
        key = (name, parity)
        group = self._vgroups.get(key)
        if group is None:
            buffers = {
                0: self._vec[parity],
                1: self._vec[1 - parity],
                2: self._zv,
                3: self._prior,
                4: self._inv,
                5: self._part,
                6: self._stats,
                7: self._vparams,
                8: self._counter,
                **self._ov_buffers,
                **self._aa_buffers,
            }
            group = self._bind_group(name, buffers)
            self._vgroups[key] = group
        return group

    def _dispatch(self, cpass, name: str, parity: int, size) -> None:
        cpass.set_pipeline(self._pipelines[name])
        cpass.set_bind_group(0, self._vgroup(name, parity))
        cpass.dispatch_workgroups(*size)

    def _set_prior(self, prior: np.ndarray) -> None:
        """Make ``prior`` the device prior: nothing if it is the last one, a flag
        if it is uniform (no upload, and the finish pass reads no prior), else
        an upload of its float32 values."""
        if self._prior_of is prior:
            return
        value = uniform_value(prior)
        self._uniform_prior = value is not None and value > 0
        if self._uniform_prior:
            self._inv_prior_sum = 1.0 / self.n
        else:
            p32 = np.ascontiguousarray(prior, dtype=np.float32)
            self.device.queue.write_buffer(self._prior, 0, p32)
            total = float(p32.sum(dtype=np.float64))
            self._inv_prior_sum = 1.0 / total if total > 0 else 0.0
        self._prior_of = prior

    def start_diffusion(self, prior: np.ndarray, x0: np.ndarray | None, alpha: float) -> None:
        """Set the prior (see :meth:`_set_prior`), the start vector and ``alpha``.

        ``x0 = None`` is the uniform start ``1 / n``: a fill pass on the device
        at the head of the first batch instead of an n-vector upload.
        """
        t = time.perf_counter()
        queue = self.device.queue
        self._set_prior(prior)
        nparts = _nparts(self.n)
        params = self._params
        params[:] = 0
        params[:4] = (self.n, nparts, len(self._ov_rows), 65535 * WG)
        params[4] = np.float32(self._inv_prior_sum).view(np.uint32)
        params[5] = np.float32(alpha).view(np.uint32)
        params[6] = int(self._uniform_prior)
        params[7] = np.float32(1.0 / max(self.n, 1)).view(np.uint32)
        queue.write_buffer(self._vparams, 0, params)
        self.sell.set_scale(self, alpha)
        self._need_fill = x0 is None
        if x0 is not None:
            queue.write_buffer(self._vec[0], 0, np.ascontiguousarray(x0, dtype=np.float32))
        self._cur = 0
        self._need_prep = True
        self.timings = dict.fromkeys(TIMING_KEYS, 0.0)
        self.timings["device_setup"] = time.perf_counter() - t

    def _ensure_history(self, m: int) -> None:
        """Pipelines and device buffers for an Anderson window of ``m``.

        The Anderson kernels are compiled per window (a module constant lets
        the compiler unroll the slot loops and keep the sums in registers) and
        kept per operator; the history is ``(2 + 2 m) n`` floats. Bind groups
        made for other pipelines or buffers are dropped.
        """
        hist = self._aa_buffers.get(14)
        stale = self._aa_m != m
        if hist is None or hist.size < 4 * (2 + 2 * m) * self.n:
            self._aa_buffers = {
                14: self._empty(4 * (2 + 2 * m) * self.n),
                15: self._empty(4 * MAX_ANDERSON),
            }
            stale = True
        if self._aa_m != m:
            pipelines = self._aa_pipelines.get(m)
            if pipelines is None:
                pipelines = self._compile(vector_shader(m), AA_KERNELS)
                self._aa_pipelines[m] = pipelines
            self._pipelines.update(pipelines)
            self._aa_m = m
        if stale:
            self._vgroups = {k: g for k, g in self._vgroups.items() if k[0] not in AA_KERNELS}

    def _encode_anderson(self, m: int):
        """Record one Anderson submission and return its command buffer.

        The first one fills or gathers the start vector; every later one begins
        with the mix of the last step's ``G(x)`` (``y`` of the other parity), a
        plain gather when the uniform says ``aa_k = 0``. Then one step whose
        differences go to slot ``aa_slot``, and the copy of its scalars to the
        staging buffer. Nothing recorded depends on the mixing decision (only
        the uniform and the coefficients do, written before submitting), so the
        next submission is recorded while the device runs the current one.

        The history is never cleared: a slot is read only after a step of this
        solve wrote it (the first step's differences, against stale or garbage
        ``x_prev``, go to a slot that the second step overwrites).
        """
        wide = (_nparts(self.n), 1, 1)
        one = (1, 1, 1)
        encoder = self.device.create_command_encoder()
        cpass = encoder.begin_compute_pass()
        cur = self._cur
        if self._need_fill:
            self._dispatch(cpass, "fill", 1 - cur, wide)
            self._need_fill = False
        if self._need_prep:
            self._dispatch(cpass, "prep", cur, wide)
            self._need_prep = False
        else:
            self._dispatch(cpass, "aa_mix", 1 - cur, wide)
        self.sell.encode(self, cpass, self._zv, self._vec[1 - cur])
        nov = len(self._ov_rows)
        if nov:
            self._dispatch(cpass, "ov_add", cur, _dispatch_size(nov))
        for name, size in (
            ("sum_partial", wide),
            ("mass_final", one),
            ("finish_aa", wide),
            ("aa_final", one),
        ):
            self._dispatch(cpass, name, cur, size)
        self._cur = 1 - cur
        cpass.end()
        nbytes = 4 * (2 + 2 * (1 + 2 * m))
        encoder.copy_buffer_to_buffer(self._stats, 0, self._stage_stats, 0, nbytes)
        return encoder.finish()

    def _anderson_step(self, m: int, slot: int, mix: np.ndarray | None, command):
        """Submit ``command`` with slot ``slot`` and coefficients ``mix`` (None:
        no mix), record the next submission while it runs, wait, and return
        the float64 scalars (the L1 change and the Gram products) and the next
        command buffer."""
        queue = self.device.queue
        t = time.perf_counter()
        k = 0 if mix is None else len(mix)
        self._params[9:11] = (slot, k)
        queue.write_buffer(self._vparams, 0, self._params)
        if k:
            queue.write_buffer(self._aa_buffers[15], 0, mix.astype(np.float32))
        queue.submit([command])
        following = self._encode_anderson(m)
        t_wait = time.perf_counter()
        stats = self._map(self._stage_stats, 4 * (2 + 2 * (1 + 2 * m)), _as_float64)
        self.timings["device_encode"] += t_wait - t
        self.timings["device_wait"] += time.perf_counter() - t_wait
        return stats, following

    def _solve_anderson(
        self,
        m: int,
        tol: float,
        max_iter: int,
        history: list[float],
        progress: Callable[[int, float], None] | None,
    ) -> bool:
        """Anderson-mixed iteration (the host :class:`~focusflow.focus.anderson.Anderson`
        rules) with the vectors on the device: one submission and one wait per
        step, which brings back the L1 change and the ``2 m`` Gram products; the
        host solves the ``k x k`` least-squares problem and the mix runs at the
        head of the next submission. Stops when one plain step's change is below
        ``tol`` and keeps that step, as the host path does."""
        self._ensure_history(m)
        self.anderson_restarts = 0
        command = self._encode_anderson(m)
        try:
            return self._anderson_loop(m, tol, max_iter, history, progress, command)
        finally:
            # the last recorded submission never ran: its parity flip is undone
            self._cur = 1 - self._cur

    def _anderson_loop(
        self,
        m: int,
        tol: float,
        max_iter: int,
        history: list[float],
        progress: Callable[[int, float], None] | None,
        command,
    ) -> bool:
        """The loop of :meth:`_solve_anderson` (submit, decide, mix next)."""
        gram = np.zeros((m, m))
        k = slot = 0
        have_prev = False
        last = math.inf
        mix: np.ndarray | None = None
        while len(history) < max_iter:
            stats, command = self._anderson_step(m, slot, mix, command)
            mix = None
            pairs = stats[2 : 2 * (2 + 2 * m) : 2] + stats[3 : 2 * (2 + 2 * m) + 1 : 2]
            res = float(pairs[0])
            history.append(res)
            if not math.isfinite(res):
                raise FloatingPointError("focus iteration lost its mass (non-finite values)")
            if progress is not None:
                progress(len(history), res)
            if res < tol:
                return True
            if res > 2.0 * last:
                # the last mix overshot (or was degenerate): restart the history
                k = slot = 0
                have_prev = False
                self.anderson_restarts += 1
            last = res
            if not have_prev:
                have_prev = True
                continue
            live = min(k + 1, m)
            cross = pairs[1 : 1 + live]
            gram[slot, :live] = cross
            gram[:live, slot] = cross
            k = live
            slot = (slot + 1) % m
            try:
                gamma = np.linalg.lstsq(gram[:k, :k], pairs[1 + m : 1 + m + k], rcond=1e-12)[0]
            except np.linalg.LinAlgError:
                gamma = None
            if gamma is None or not np.all(np.isfinite(gamma)):
                k = slot = 0
                have_prev = False
                self.anderson_restarts += 1
                continue
            mix = gamma
        return False

    def steps(self, count: int) -> list[float]:
        """Run ``count`` diffusion steps and wait once; their L1 changes.

        Each step is one compute pass (every kernel of the step) that reads
        ``x = _vec[cur]`` and writes the next iterate into the other buffer;
        steps go to the queue ``submit_every`` at a time, and the host waits
        once, for ``8 * count`` bytes.
        """
        if not 1 <= count <= MAX_BATCH:
            raise ValueError(f"count must be in 1..{MAX_BATCH}")
        queue = self.device.queue
        queue.write_buffer(self._counter, 0, np.zeros(4, dtype=np.uint32))
        nparts = _nparts(self.n)
        wide = (nparts, 1, 1)
        one = (1, 1, 1)
        nov = len(self._ov_rows)
        nbytes = 4 * (2 + 2 * count)
        t = time.perf_counter()
        encoder = self.device.create_command_encoder()
        for k in range(count):
            cpass = encoder.begin_compute_pass()
            if self._need_fill:
                # y of the other parity is _vec[cur]: the start vector
                self._dispatch(cpass, "fill", 1 - self._cur, wide)
                self._need_fill = False
            if self._need_prep:
                self._dispatch(cpass, "prep", self._cur, wide)
                self._need_prep = False
            cur = self._cur
            self.sell.encode(self, cpass, self._zv, self._vec[1 - cur])
            if nov:
                self._dispatch(cpass, "ov_add", cur, _dispatch_size(nov))
            self._dispatch(cpass, "sum_partial", cur, wide)
            self._dispatch(cpass, "mass_final", cur, one)
            self._dispatch(cpass, "finish", cur, wide)
            self._dispatch(cpass, "l1_final", cur, one)
            self._cur = 1 - cur
            cpass.end()
            if k == count - 1:
                encoder.copy_buffer_to_buffer(self._stats, 0, self._stage_stats, 0, nbytes)
                queue.submit([encoder.finish()])
            elif (k + 1) % self.submit_every == 0:
                queue.submit([encoder.finish()])
                encoder = self.device.create_command_encoder()
        t_wait = time.perf_counter()
        stats = self._map(self._stage_stats, nbytes, _as_float64)
        done = time.perf_counter()
        self.timings["device_encode"] += t_wait - t
        self.timings["device_wait"] += done - t_wait
        return (stats[2::2] + stats[3::2]).tolist()

    def current(self) -> np.ndarray:
        """The device iterate, read back as float64 and renormalised to mass 1.

        One copy to the persistent staging buffer (float32, 4 bytes a particle),
        then, straight from the mapped memory, one parallel pass that sums it
        in float64 and one that writes ``x / total`` as float64
        (:func:`_normalise_into`). ``readback_parts`` splits the time into the
        copy and map (``map``) and the conversion (``convert``).
        """
        t = time.perf_counter()
        self.readback_parts = {"map": 0.0, "convert": 0.0}
        nbytes = 4 * self.n
        encoder = self.device.create_command_encoder()
        encoder.copy_buffer_to_buffer(self._vec[self._cur], 0, self._stage_vec, 0, nbytes)
        self.device.queue.submit([encoder.finish()])
        t_map = time.perf_counter()
        x = self._map(self._stage_vec, nbytes, _normalised, self.readback_parts)
        self.timings["device_readback"] = time.perf_counter() - t
        self.readback_parts["map"] += t_map - t
        return x

    def solve_diffusion(
        self,
        prior: np.ndarray,
        x0: np.ndarray | None,
        alpha: float,
        tol: float,
        max_iter: int,
        progress: Callable[[int, float], None] | None = None,
        anderson: int = 0,
    ) -> tuple[np.ndarray, list[float], bool, dict[str, float]]:
        """Power iteration on the device until the L1 change is below ``tol``.

        Returns ``(phi, residual history, converged, timings)`` with ``phi`` on
        the host in internal order and ``timings`` the seconds spent in each
        part of the solve (:data:`TIMING_KEYS`). ``x0 = None`` starts from the
        uniform vector, filled on the device. A batch of steps is submitted at once when the
        observed contraction rate says the stop rule cannot fire sooner (at
        most a few steps past the first one below ``tol``, each of which only
        brings the iterate closer to the fixed point); the answer is the last
        step of the batch, and converged means that step's change is below tol.
        """
        self.start_diffusion(prior, x0, alpha)
        history: list[float] = []
        self.anderson_restarts = 0
        if anderson > 0:
            if anderson > MAX_ANDERSON:
                raise ValueError(f"the wgpu backend mixes at most {MAX_ANDERSON} steps")
            converged = self._solve_anderson(anderson, tol, max_iter, history, progress)
            return self.current(), history, converged, dict(self.timings)
        converged = False
        while len(history) < max_iter:
            batch = _batch(history, tol, max_iter - len(history))
            for res in self.steps(batch):
                history.append(res)
                if not math.isfinite(res):
                    raise FloatingPointError("focus iteration lost its mass (non-finite values)")
                if progress is not None:
                    progress(len(history), res)
            if history[-1] < tol:
                converged = True
                break
        phi = self.current()
        return phi, history, converged, dict(self.timings)


def _as_float64(x32: np.ndarray) -> np.ndarray:
    return x32.astype(np.float64)


#: Fixed chunks of the read-back conversion (not per thread: the same sum on every machine).
_READBACK_PARTS = 256


@nb.njit(cache=True, parallel=True)
def _normalise_into(x32, out, nparts):
    """``out = x32 / sum(x32)`` in float64; returns the sum (not finite or <= 0: nothing written).

    Both passes run on all cores straight from the mapped staging memory; the
    sum adds a fixed number of chunk partials in order, each chunk with four
    interleaved accumulators, so it is the same on every machine and thread count.
    """
    n = x32.shape[0]
    step = (n + nparts - 1) // nparts
    partial = np.zeros(nparts)
    for t in nb.prange(nparts):
        a0 = a1 = a2 = a3 = 0.0
        i = t * step
        end = min(n, (t + 1) * step)
        while i + 3 < end:
            a0 += x32[i]
            a1 += x32[i + 1]
            a2 += x32[i + 2]
            a3 += x32[i + 3]
            i += 4
        while i < end:
            a0 += x32[i]
            i += 1
        partial[t] = (a0 + a1) + (a2 + a3)
    total = ordered_sum(partial)
    if not (total > 0.0 and total < np.inf):
        return total
    for t in nb.prange(nparts):
        for i in range(t * step, min(n, (t + 1) * step)):
            out[i] = x32[i] / total
    return total


#: Below this many particles the read-back converts in numpy (no thread start-up).
_PARALLEL_READBACK = 1 << 16


def _normalised(x32: np.ndarray) -> np.ndarray:
    """``x32 / sum(x32)`` in float64: one pass to sum, one to write (in parallel
    on large vectors, where one core converting 8 M entries and faulting in
    the fresh float64 pages took most of a 45 ms solve's 31 ms read-back)."""
    if len(x32) < _PARALLEL_READBACK:
        total = float(x32.sum(dtype=np.float64))
        if not math.isfinite(total) or total <= 0:
            raise FloatingPointError("focus iteration lost its mass (non-finite values)")
        return np.divide(x32, total, dtype=np.float64)
    out = np.empty(len(x32))
    total = _normalise_into(x32, out, _READBACK_PARTS)
    if not math.isfinite(total) or total <= 0:
        raise FloatingPointError("focus iteration lost its mass (non-finite values)")
    return out


def _batch(history: list[float], tol: float, left: int) -> int:
    """Steps to submit at once: those the observed contraction says are needed.

    One step at a time until two changes give a rate; then the predicted number
    of steps to reach ``tol`` (never more than ``MAX_BATCH`` or ``left``), so
    the host waits about once per solve instead of once per step.
    """
    if len(history) < 2 or history[-1] < tol:
        return 1
    rate = history[-1] / history[-2] if history[-2] > 0 else 1.0
    if not 0 < rate < 1:
        return 1
    need = math.log(tol / history[-1]) / math.log(rate)
    return max(1, min(MAX_BATCH, left, int(need)))


class WgpuBackend:
    name = "wgpu"

    def available(self) -> tuple[bool, str]:
        return wgpu_available()

    def auto_available(self) -> tuple[bool, str]:
        """For ``--backend auto``: only a real GPU counts (llvmpipe is slower than numba),
        and without a GPU device node the adapter is not even probed."""
        if not gpu_device_node():
            return False, "no GPU device node"
        return wgpu_available(require_gpu=True)

    def operator(self, snapshot: Snapshot, precision: str = "float32") -> WgpuOperator:
        return WgpuOperator(snapshot, precision)
