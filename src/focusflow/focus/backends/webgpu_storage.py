"""The wgpu backend's device, buffers and matrices (see ``webgpu.py`` for the whole).

Products (``sell.py``): the in-link matrix (and ``W + W^T`` for springs and
heat) in SELL-32: one invocation sums one row of a 32-row group; rows over 128
entries are cut into 1024-entry chunks that a 64-invocation workgroup sums into
a partial, and a second pass adds each long row's partials in order, so the
result does not depend on scheduling (WGSL has no float atomics).

:class:`WgpuDevice` holds the adapter's device, the compiled pipelines and the
helpers every part of the backend uses to make, fill, bind and read buffers;
the read-back conversion to float64 (:func:`normalised`) runs on all cores
straight from the mapped staging memory.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from enum import IntEnum
from typing import Any, TypeVar, cast

import numba as nb
import numpy as np

from focusflow.focus.backends.sell import SellMatrix
from focusflow.focus.backends.wgsl import (
    BINDINGS,
    MATRIX_KERNELS,
    VECTOR_KERNELS,
    MatrixBinding,
    MatrixParam,
    ScatterBinding,
    ScatterParam,
    shader,
)
from focusflow.focus.reduce import ordered_sum

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

#: A wgpu buffer, compute pipeline, bind group and command buffer (the
#: ``wgpu`` package, which ships no types, is imported only when a device is
#: made).
Buffer = Any
Pipeline = Any
BindGroup = Any
CommandBuffer = Any
#: The binding enum of one shader module (``wgsl.MatrixBinding``, ...).
_Binding = TypeVar("_Binding", bound=IntEnum)


def wgpu_available(require_gpu: bool = False) -> tuple[bool, str]:
    """Whether wgpu imports and finds an adapter (a real GPU if ``require_gpu``)."""
    try:
        import wgpu
    except Exception as exc:  # noqa: BLE001 - ImportError, or whatever loading wgpu-native raises
        return (
            False,
            f"wgpu is not installed ({type(exc).__name__}: {exc}); pip install 'focusflow[webgpu]'",
        )
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())  # Mesa asks for it
    try:
        adapter = wgpu.gpu.request_adapter_sync(power_preference="high-performance")
    except Exception as exc:  # noqa: BLE001 - a probe: any driver error means no adapter
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


def dispatch_size(invocations: int) -> tuple[int, int, int]:
    """Workgroups as (x, y, 1) with x <= 65535, for ``invocations`` in 64s."""
    groups = max(1, (invocations + WG - 1) // WG)
    x = min(groups, 65535)
    y = (groups + x - 1) // x
    return x, y, 1


def nparts(n: int) -> int:
    """First-level workgroups of the vector kernels: a fixed function of ``n``, so
    the reduction tree (and its rounding) is the same on every run and device."""
    return max(1, min(MAX_PARTS, -(-n // (4 * RED))))


def u32(array: np.ndarray, dtype: type = np.uint32) -> np.ndarray:
    """``array`` as a non-empty 32-bit buffer payload (wgpu refuses empty buffers)."""
    return array.astype(dtype) if len(array) else np.zeros(1, dtype=dtype)


class WgpuDevice:
    """The adapter's device, the pipelines of the matrix, vector and scatter
    modules, and the buffer helpers the rest of the backend uses."""

    def __init__(self) -> None:
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
            **self._compile(shader("matrix"), MATRIX_KERNELS),
            **self._compile(shader("vector"), VECTOR_KERNELS),
            **self._compile(shader("scatter"), ("scatter",)),
        }

    def _compile(self, code: str, names: tuple[str, ...]) -> dict[str, Pipeline]:
        """Compute pipelines for the entry points ``names`` of a WGSL module."""
        module = self.device.create_shader_module(code=code)
        return {
            name: self.device.create_compute_pipeline(
                layout="auto", compute={"module": module, "entry_point": name}
            )
            for name in names
        }

    def _buffer(self, array: np.ndarray) -> Buffer:
        usage = self.wgpu.BufferUsage.STORAGE | self.wgpu.BufferUsage.COPY_DST
        return self.device.create_buffer_with_data(data=np.ascontiguousarray(array), usage=usage)

    def _empty(self, nbytes: int) -> Buffer:
        usage = (
            self.wgpu.BufferUsage.STORAGE
            | self.wgpu.BufferUsage.COPY_SRC
            | self.wgpu.BufferUsage.COPY_DST
        )
        return self.device.create_buffer(size=max(4, nbytes), usage=usage)

    def _uniform(self, nbytes: int) -> Buffer:
        usage = self.wgpu.BufferUsage.UNIFORM | self.wgpu.BufferUsage.COPY_DST
        return self.device.create_buffer(size=nbytes, usage=usage)

    def _bind_group(self, name: str, buffers: Mapping[_Binding, Buffer]) -> BindGroup:
        # BINDINGS[name] are members of the binding enum of name's module,
        # the enum that keys ``buffers``.
        by_binding = cast("Mapping[IntEnum, Buffer]", buffers)
        layout = self._pipelines[name].get_bind_group_layout(0)
        entries = [
            {
                "binding": b,
                "resource": {"buffer": by_binding[b], "offset": 0, "size": by_binding[b].size},
            }
            for b in BINDINGS[name]
        ]
        return self.device.create_bind_group(layout=layout, entries=entries)

    def _read(self, buffer: Buffer, nbytes: int, stage: Buffer) -> np.ndarray:
        """The first ``nbytes`` of ``buffer`` through the persistent staging ``stage``."""
        encoder = self.device.create_command_encoder()
        encoder.copy_buffer_to_buffer(buffer, 0, stage, 0, nbytes)
        self.device.queue.submit([encoder.finish()])
        return self._map(stage, nbytes)

    def _map(
        self,
        stage: Buffer,
        nbytes: int,
        convert: Callable[[np.ndarray], np.ndarray] = np.copy,
        parts: dict[str, float] | None = None,
    ) -> np.ndarray:
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

    def _staging(self, nbytes: int) -> Buffer:
        usage = self.wgpu.BufferUsage.MAP_READ | self.wgpu.BufferUsage.COPY_DST
        return self.device.create_buffer(size=max(4, nbytes), usage=usage)

    def scatter(self, target: Buffer, positions: np.ndarray, values: np.ndarray) -> None:
        """``target[positions] = values`` (float32) by a kernel on the device."""
        count = len(positions)
        if not count:
            return
        usage = self.wgpu.BufferUsage.UNIFORM | self.wgpu.BufferUsage.COPY_DST
        fields = np.zeros(len(ScatterParam), dtype=np.uint32)
        fields[ScatterParam.N] = count
        fields[ScatterParam.WIDTH] = 65535 * WG
        uniform = self.device.create_buffer_with_data(data=fields, usage=usage)
        buffers = {
            ScatterBinding.POS: self._buffer(u32(positions)),
            ScatterBinding.VAL: self._buffer(u32(values, np.float32)),
            ScatterBinding.DST: target,
            ScatterBinding.COUNT: uniform,
        }
        encoder = self.device.create_command_encoder()
        cpass = encoder.begin_compute_pass()
        cpass.set_pipeline(self._pipelines["scatter"])
        cpass.set_bind_group(0, self._bind_group("scatter", buffers))
        cpass.dispatch_workgroups(*dispatch_size(count))
        cpass.end()
        self.device.queue.submit([encoder.finish()])


class DeviceSell:
    """A SELL-32 matrix and its long-row chunks in wgpu buffers, with its uniform
    (``scale`` included) and the bind groups of the vectors it was used with."""

    def __init__(
        self, dev: WgpuDevice, indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray
    ) -> None:
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
        buf = dev._buffer
        B = MatrixBinding
        grows = m.grows.astype(np.int32) if len(m.grows) else np.full(1, -1, np.int32)
        self.buffers = {
            B.GPTR: buf(u32(m.gptr[:-1])),
            B.GLEN: buf(u32(m.glen)),
            B.GROWS: buf(grows),
            B.SIDX: buf(u32(m.sidx)),
            B.SVAL: buf(u32(m.sval, np.float32)),
            B.CSTART: buf(u32(cstart)),
            B.CEND: buf(u32(cend)),
            B.LIDX: buf(u32(indices[entries])),
            B.LVAL: buf(u32(weights[entries], np.float32)),
            B.PARTIAL: dev._empty(max(self.nchunks, 1) * 4),
            B.LROW: buf(u32(m.long_rows)),
            B.LCHUNK: buf(first_chunk.astype(np.uint32)),
        }
        self.uniform = dev._uniform(4 * len(MatrixParam))
        self.buffers[B.PARAMS] = self.uniform
        self._written: tuple[float, int] | None = None
        self._groups: dict[tuple[str, Buffer, Buffer], BindGroup] = {}
        #: Rows the matrix has, and rows past them that the product zeroes
        #: (particles added after the build; their sums come from the overlay).
        self.rows = len(indptr) - 1
        self.tail = 0

    def set_rows(self, n: int) -> None:
        """Products write ``n`` rows from now on (``n`` >= the matrix's rows)."""
        self.tail = n - self.rows
        self._groups = {}  # the vectors were allocated again for the new size

    def set_scale(self, dev: WgpuDevice, scale: float) -> None:
        """Write the uniform (sizes, dispatch width, ``scale``, the zeroed tail)
        if any of it changed."""
        if self._written == (scale, self.tail):
            return
        P = MatrixParam
        params = np.zeros(len(P), dtype=np.uint32)
        params[[P.NGROUPS, P.NCHUNKS, P.NLONG, P.WIDTH]] = (
            self.ngroups,
            self.nchunks,
            self.nlong,
            65535 * WG,
        )
        params[P.SCALE] = np.float32(scale).view(np.uint32)
        params[P.P0] = self.rows
        params[P.P1] = self.tail
        dev.device.queue.write_buffer(self.uniform, 0, params)
        self._written = (scale, self.tail)

    def steps(self) -> tuple[tuple[str, tuple[int, int, int], int], ...]:
        """``(kernel, workgroups, count)`` of the product's passes."""
        return (
            (
                "sell_pull",
                dispatch_size(self.ngroups * LANES + self.tail),
                self.ngroups + self.tail,
            ),
            ("chunk_sum", dispatch_size(self.nchunks * WG), self.nchunks),
            ("long_finish", dispatch_size(self.nlong), self.nchunks),
        )

    def encode(
        self,
        dev: WgpuDevice,
        cpass: Any,
        z: Buffer,
        out: Buffer,
        indirect: tuple[Buffer, int] | None = None,
    ) -> None:
        """Record ``out = scale * (matrix rows . z)`` into a compute pass; with
        ``indirect = (buffer, offset)`` the workgroup counts of the passes are
        read from ``buffer`` (three u32 triples from ``offset``)."""
        for j, (name, size, count) in enumerate(self.steps()):
            if not count:
                continue
            key = (name, z, out)
            group = self._groups.get(key)
            if group is None:
                buffers = {**self.buffers, MatrixBinding.Z: z, MatrixBinding.OUT: out}
                group = dev._bind_group(name, buffers)
                self._groups[key] = group
            cpass.set_pipeline(dev._pipelines[name])
            cpass.set_bind_group(0, group)
            if indirect is None:
                cpass.dispatch_workgroups(*size)
            else:
                cpass.dispatch_workgroups_indirect(indirect[0], indirect[1] + 12 * j)

    def update(self, dev: WgpuDevice, entries: np.ndarray, weights: np.ndarray) -> None:
        """Write new values of CSR entries ``entries`` into the device buffers:
        only those values and their positions travel (``dev.scatter``)."""
        if not len(entries):
            return
        at = self.host.pos[entries]
        short = at >= 0
        if short.any():
            self.host.update(entries, weights)
            dev.scatter(self.buffers[MatrixBinding.SVAL], at[short], self.host.sval[at[short]])
        if (~short).any():
            # long-row entries sit grouped by row in length order: find each
            # entry's row, the row's place among the long rows, then the offset
            long_entries = entries[~short]
            rows = np.searchsorted(self._indptr, long_entries, side="right") - 1
            k = self._long_order[np.searchsorted(self._long_sorted, rows)]
            where = self.long_offsets[k] + (long_entries - self._indptr[rows])
            dev.scatter(self.buffers[MatrixBinding.LVAL], where, weights[long_entries])


def as_float64(x32: np.ndarray) -> np.ndarray:
    return x32.astype(np.float64)


#: Fixed chunks of the read-back conversion (not per thread: the same sum on every machine).
_READBACK_PARTS = 256


@nb.njit(cache=True, parallel=True)
def _normalise_into(x32: np.ndarray, out: np.ndarray, nparts: int) -> float:
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
PARALLEL_READBACK = 1 << 16


def normalised(x32: np.ndarray) -> np.ndarray:
    """``x32 / sum(x32)`` in float64: one pass to sum, one to write (in parallel
    on large vectors, where one core converting 8 M entries and faulting in
    the fresh float64 pages took most of a 45 ms solve's 31 ms read-back)."""
    if len(x32) < PARALLEL_READBACK:
        total = float(x32.sum(dtype=np.float64))
        if not math.isfinite(total) or total <= 0:
            raise FloatingPointError("focus iteration lost its mass (non-finite values)")
        scaled: np.ndarray = np.divide(x32, total, dtype=np.float64)
        return scaled
    out = np.empty(len(x32))
    total = _normalise_into(x32, out, _READBACK_PARTS)
    if not math.isfinite(total) or total <= 0:
        raise FloatingPointError("focus iteration lost its mass (non-finite values)")
    return out
