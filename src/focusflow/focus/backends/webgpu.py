"""The WebGPU backend: the graph products as WGSL compute shaders through ``wgpu``.

Portable where the CUDA backend is not: Vulkan, Metal, DX12 and browsers, and
CPUs through Mesa's llvmpipe (how CI tests it). The products run on the GPU,
the vector arithmetic stays on the host in float64:

* the in-link matrix (and ``W + W^T`` for springs and heat) in SELL-32
  (``sell.py``): one invocation sums one row of a 32-row group; rows over 128
  entries are cut into 1024-entry chunks that a 64-invocation workgroup sums
  into a partial, and a second pass adds each long row's partials in order, so
  the result does not depend on scheduling (WGSL has no float atomics);
* WGSL has no float64: values, the gathered vector and row sums are float32,
  which stays within 1e-6 in L1 of the float64 reference (tested); teleport,
  dangling mass, the L1 change and everything else run in float64 on the host;
* each product uploads the gathered vector and reads the row sums back (two
  transfers of 4 bytes per particle); the matrices stay on the device.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from focusflow.focus.backends.base import inverse_out_weight
from focusflow.focus.backends.sell import SellMatrix
from focusflow.focus.backends.symmetric import symmetric_matrix
from focusflow.graph.snapshot import PatchInfo, Snapshot

LANES = 32
LONG_ROW = 128
CHUNK = 1024
WG = 64

_SHADER = """
struct Params {
    ngroups: u32,
    nchunks: u32,
    nlong: u32,
    width: u32,
}

@group(0) @binding(0) var<storage, read> gptr: array<u32>;
@group(0) @binding(1) var<storage, read> glen: array<u32>;
@group(0) @binding(2) var<storage, read> grows: array<i32>;
@group(0) @binding(3) var<storage, read> sidx: array<u32>;
@group(0) @binding(4) var<storage, read> sval: array<f32>;
@group(0) @binding(5) var<storage, read> z: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<uniform> params: Params;
@group(0) @binding(8) var<storage, read> cstart: array<u32>;
@group(0) @binding(9) var<storage, read> cend: array<u32>;
@group(0) @binding(10) var<storage, read> lidx: array<u32>;
@group(0) @binding(11) var<storage, read> lval: array<f32>;
@group(0) @binding(12) var<storage, read_write> partial: array<f32>;
@group(0) @binding(13) var<storage, read> lrow: array<u32>;
@group(0) @binding(14) var<storage, read> lchunk: array<u32>;

var<workgroup> scratch: array<f32, 64>;

fn flat(gid: vec3<u32>) -> u32 {
    return gid.x + gid.y * params.width;
}

@compute @workgroup_size(64)
fn sell_pull(@builtin(global_invocation_id) gid: vec3<u32>) {
    let tid = flat(gid);
    let g = tid / 32u;
    let lane = tid % 32u;
    if (g >= params.ngroups) {
        return;
    }
    var o = gptr[g] + lane;
    let len = glen[g];
    var acc: f32 = 0.0;
    for (var j: u32 = 0u; j < len; j = j + 1u) {
        acc = acc + sval[o] * z[sidx[o]];
        o = o + 32u;
    }
    let r = grows[g * 32u + lane];
    if (r >= 0) {
        out[u32(r)] = acc;
    }
}

@compute @workgroup_size(64)
fn chunk_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let k = wid.x + wid.y * (params.width / 64u);
    if (k >= params.nchunks) {
        return;
    }
    var acc: f32 = 0.0;
    for (var e: u32 = cstart[k] + lid.x; e < cend[k]; e = e + 64u) {
        acc = acc + lval[e] * z[lidx[e]];
    }
    scratch[lid.x] = acc;
    workgroupBarrier();
    for (var s: u32 = 32u; s > 0u; s = s / 2u) {
        if (lid.x < s) {
            scratch[lid.x] = scratch[lid.x] + scratch[lid.x + s];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        partial[k] = scratch[0];
    }
}

@compute @workgroup_size(64)
fn long_finish(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat(gid);
    if (i >= params.nlong) {
        return;
    }
    var acc: f32 = 0.0;
    for (var k: u32 = lchunk[i]; k < lchunk[i + 1u]; k = k + 1u) {
        acc = acc + partial[k];
    }
    out[lrow[i]] = acc;
}
"""


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


class _DeviceSell:
    """A SELL-32 matrix and its long-row chunks in wgpu buffers."""

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
        buf = op._buffer
        self.buffers = {
            0: buf(m.gptr[:-1].astype(np.uint32) if self.ngroups else np.zeros(1, np.uint32)),
            1: buf(m.glen.astype(np.uint32) if self.ngroups else np.zeros(1, np.uint32)),
            2: buf(m.grows.astype(np.int32) if len(m.grows) else np.full(1, -1, np.int32)),
            3: buf(m.sidx.astype(np.uint32) if len(m.sidx) else np.zeros(1, np.uint32)),
            4: buf(m.sval.astype(np.float32) if len(m.sval) else np.zeros(1, np.float32)),
            8: buf(cstart.astype(np.uint32) if self.nchunks else np.zeros(1, np.uint32)),
            9: buf(cend.astype(np.uint32) if self.nchunks else np.zeros(1, np.uint32)),
            10: buf(indices[entries].astype(np.uint32) if len(entries) else np.zeros(1, np.uint32)),
            11: buf(
                weights[entries].astype(np.float32) if len(entries) else np.zeros(1, np.float32)
            ),
            12: op._empty(max(self.nchunks, 1) * 4),
            13: buf(m.long_rows.astype(np.uint32) if self.nlong else np.zeros(1, np.uint32)),
            14: buf(first_chunk.astype(np.uint32)),
        }
        self._entry_index = None
        self._indptr = indptr

    def update(self, op, entries: np.ndarray, weights: np.ndarray) -> None:
        """Write new values of CSR entries ``entries`` into the device buffers."""
        if not len(entries):
            return
        at = self.host.pos[entries]
        short = at >= 0
        self.host.sval[at[short]] = weights[entries[short]]
        if short.any():
            op.device.queue.write_buffer(self.buffers[4], 0, self.host.sval.astype(np.float32))
        if (~short).any():
            where = np.searchsorted(self.long_entries, entries[~short])
            values = weights[self.long_entries].astype(np.float32)
            values[where] = weights[entries[~short]]
            op.device.queue.write_buffer(self.buffers[11], 0, values)


class WgpuOperator:
    """Graph products through WebGPU; vectors stay numpy arrays on the host."""

    name = "wgpu"

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
        module = self.device.create_shader_module(code=_SHADER)
        self._pipelines = {
            name: self.device.create_compute_pipeline(
                layout="auto", compute={"module": module, "entry_point": name}
            )
            for name in ("sell_pull", "chunk_sum", "long_finish")
        }
        self.snapshot = snapshot
        self._sym = None
        self.refresh()

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

    def refresh(self, info: PatchInfo | None = None) -> None:
        s = self.snapshot
        if info is None or info.base_entries is None or not hasattr(self, "sell") or s.n != self.n:
            self.sell = _DeviceSell(self, s.in_indptr, s.in_indices, s.in_w)
            self.n = s.n
            self._z = self._empty(4 * self.n)
            self._out = self._empty(4 * self.n)
        elif len(info.base_entries):
            self.sell.update(self, s.out_to_in[info.base_entries], s.in_w)
        self.inv_out, linked = inverse_out_weight(s.out_weight)
        self.dangling = ~linked
        self._ov = s.ov_in_indptr, s.ov_in_indices, s.ov_in_w
        self._ov_rows = np.flatnonzero(np.diff(s.ov_in_indptr) > 0)
        self._sym = None

    # --- products --------------------------------------------------------------
    def _pull(self, m: _DeviceSell, z: np.ndarray) -> np.ndarray:
        """``sum_j W[j, r] z[j]`` for every row, on the device, read back as float64."""
        wgpu = self.wgpu
        queue = self.device.queue
        queue.write_buffer(self._z, 0, np.ascontiguousarray(z, dtype=np.float32))
        width = 65535 * WG
        params = np.array([m.ngroups, m.nchunks, m.nlong, width], dtype=np.uint32)
        uniform = self.device.create_buffer_with_data(data=params, usage=wgpu.BufferUsage.UNIFORM)
        buffers = {**m.buffers, 5: self._z, 6: self._out, 7: uniform}
        encoder = self.device.create_command_encoder()
        steps = [
            ("sell_pull", _dispatch_size(m.ngroups * LANES)),
            ("chunk_sum", _dispatch_size(m.nchunks * WG)),
            ("long_finish", _dispatch_size(m.nlong)),
        ]
        for name, size in steps:
            if (name == "sell_pull" and not m.ngroups) or (name != "sell_pull" and not m.nchunks):
                continue
            pipeline = self._pipelines[name]
            layout = pipeline.get_bind_group_layout(0)
            used = _BINDINGS[name]
            group = self.device.create_bind_group(
                layout=layout,
                entries=[
                    {
                        "binding": b,
                        "resource": {"buffer": buffers[b], "offset": 0, "size": buffers[b].size},
                    }
                    for b in used
                ],
            )
            pass_ = encoder.begin_compute_pass()
            pass_.set_pipeline(pipeline)
            pass_.set_bind_group(0, group)
            pass_.dispatch_workgroups(*size)
            pass_.end()
        queue.submit([encoder.finish()])
        data = queue.read_buffer(self._out, 0, 4 * self.n)
        return np.frombuffer(data, dtype=np.float32).astype(np.float64)

    def pull(self, z: np.ndarray, out: np.ndarray, scale: float) -> float:
        sums = self._pull(self.sell, z)
        indptr, indices, weights = self._ov
        for r in self._ov_rows.tolist():
            a, b = indptr[r], indptr[r + 1]
            sums[r] += float(weights[a:b] @ z[indices[a:b]])
        out[:] = scale * sums
        return float(out.sum())

    def diffusion(self, x, y, alpha, prior):
        linked_mass = self.pull(x * self.inv_out, y, alpha)
        y += (1.0 - linked_mass) * prior
        return float(np.abs(y - x).sum())

    def setup_laplacian(self, kind: str) -> None:
        if self._sym is not None and self._sym_kind == kind:
            return
        self._sym_kind = kind
        ptr, idx, w, self.lap_sigma, self.lap_diag, self.lam_max = symmetric_matrix(
            self.snapshot, kind
        )
        self._sym = _DeviceSell(self, ptr, idx, w)

    def lap_matvec(self, x, out) -> None:
        acc = self._pull(self._sym, self.lap_sigma * x)
        out[:] = self.lap_diag * x - self.lap_sigma * acc


_BINDINGS = {
    "sell_pull": (0, 1, 2, 3, 4, 5, 6, 7),
    "chunk_sum": (5, 7, 8, 9, 10, 11, 12),
    "long_finish": (6, 7, 12, 13, 14),
}


def _gpu_device_node() -> bool:
    """A cheap hint that a real GPU is present (DRM render node or NVIDIA device)."""
    import glob

    return bool(glob.glob("/dev/dri/renderD*") or glob.glob("/dev/nvidia[0-9]*"))


class WgpuBackend:
    name = "wgpu"

    def available(self) -> tuple[bool, str]:
        return wgpu_available()

    def auto_available(self) -> tuple[bool, str]:
        """For ``--backend auto``: only a real GPU counts (llvmpipe is slower than numba),
        and without a GPU device node the adapter is not even probed."""
        if not _gpu_device_node():
            return False, "no GPU device node"
        return wgpu_available(require_gpu=True)

    def operator(self, snapshot: Snapshot, precision: str = "float32") -> WgpuOperator:
        return WgpuOperator(snapshot, precision)
