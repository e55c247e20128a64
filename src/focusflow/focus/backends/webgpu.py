"""The WebGPU backend: the focus iteration as WGSL compute shaders through ``wgpu``.

Portable where the CUDA backend is not: Vulkan, Metal, DX12 and browsers, and
CPUs through Mesa's llvmpipe (how CI tests it).

The backend is four modules: ``webgpu_storage`` (the device, buffers and
SELL-32 matrices), ``webgpu_diffusion`` (the snapshot upload and the
device-resident diffusion with Anderson mixing), ``webgpu_tri`` (springs and
heat on the device) and this one, which puts them together as
:class:`WgpuOperator` and reports what a solve did (:class:`WgpuDiagnostics`).
The shaders are package data (``kernels/*.wgsl``), their bindings and slots
named in ``wgsl.py``.

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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from focusflow.focus.backends import gpu_device_node
from focusflow.focus.backends.webgpu_storage import (
    MAX_BATCH,
    TIMING_KEYS,
    Buffer,
    wgpu_available,
)
from focusflow.focus.backends.webgpu_tri import WgpuTri
from focusflow.focus.backends.wgsl import TriBinding
from focusflow.graph.snapshot import Snapshot


@dataclass(frozen=True)
class WgpuDiagnostics:
    """What the operator holds and what its last solve did, for tests and tuning.

    ``matrix_long_rows`` and ``symmetric_long_rows``: rows that take the
    chunked long-row path in the in-link and the symmetric matrix (None
    before springs or heat set the latter up); ``overlay_rows``: rows with
    overlay entries; ``appended_rows``: rows past the in-link matrix's own
    (particles added by patches, zeroed by its product); ``matrix_builds``,
    ``symmetric_builds`` and ``symmetric_patches``: matrices built, and
    patches that wrote new values into the symmetric one; ``uniform_prior``:
    the last prior was a flag, not a buffer. The last tri solve's
    ``cg_batches`` (a wait each), ``cg_iterations``, ``heat_terms`` and
    ``spread_waits`` (bounded exact steps' extra waits), and the last solve's
    ``anderson_restarts``. ``symmetric_dispatch_counts``: the workgroup
    counts of the symmetric product's three passes (18 words: three
    triples of the full product, then the three that CG's indirect
    products read, zero once CG has stopped), read from the device; None
    before springs or heat were set up.
    """

    matrix_long_rows: int
    symmetric_long_rows: int | None
    overlay_rows: int
    appended_rows: int
    matrix_builds: int
    symmetric_builds: int
    symmetric_patches: int
    uniform_prior: bool
    cg_batches: int
    cg_iterations: int
    heat_terms: int
    spread_waits: int
    anderson_restarts: int
    symmetric_dispatch_counts: tuple[int, ...] | None


class WgpuOperator(WgpuTri):
    """Graph products and the device-resident diffusion and tri solves through WebGPU.

    The host-side protocol (``pull``, ``diffusion``, ``lap_matvec``) takes and
    returns numpy arrays; :meth:`solve_diffusion` and :meth:`solve_tri` keep
    every vector on the device (``base.DeviceSolver``) and are what the solver
    runs.
    """

    name = "wgpu"

    def __init__(self, snapshot: Snapshot, precision: str = "float32") -> None:
        super().__init__(snapshot)
        self.refresh()

    def diagnostics(self) -> WgpuDiagnostics:
        """The operator's :class:`WgpuDiagnostics` (one small read from the device
        for ``symmetric_dispatch_counts``)."""
        counts = None
        if self._tri_n == self.n and self._sym is not None:
            dims = self._read(self._tb[TriBinding.DIMS], 4 * 18, self._stage_vec).view(np.uint32)
            counts = tuple(int(c) for c in dims)
        tri = self.tri_counts
        return WgpuDiagnostics(
            matrix_long_rows=self.sell.nlong,
            symmetric_long_rows=None if self._sym is None else self._sym.nlong,
            overlay_rows=len(self._ov_rows),
            appended_rows=self.sell.tail,
            matrix_builds=self.matrix_builds,
            symmetric_builds=self.sym_builds,
            symmetric_patches=self.sym_patches,
            uniform_prior=self._uniform_prior,
            cg_batches=tri["cg_batches"],
            cg_iterations=tri["cg_iterations"],
            heat_terms=tri["heat_terms"],
            spread_waits=tri["spread_waits"],
            anderson_restarts=self.anderson_restarts,
            symmetric_dispatch_counts=counts,
        )

    def scratch_buffers(self) -> dict[str, Buffer]:
        """The device buffers that solves and products write before they read
        them, by name: the iterate pair, the gathered vectors, the host
        products' output, the reduction parts and scalars, the Anderson
        history (once a window was used), the tri module's vectors and
        scalars (once springs or heat were set up), ``prior`` (read only for a
        prior that is not uniform) and ``dims`` (the indirect product counts;
        CG writes those from byte 36 on, the ones before are input). A test
        fills them with NaN to show that no stale value is read."""
        out = {
            "x0": self._vec[0],
            "x1": self._vec[1],
            "z": self._zv,
            "pull_in": self._z,
            "pull_out": self._out,
            "part": self._part,
            "stats": self._stats,
            "prior": self._prior,
        }
        out.update({f"anderson_{b.name.lower()}": buf for b, buf in self._aa_buffers.items()})
        if self._tri_n == self.n:
            kept = ("LAP", "TP")  # input: the Laplacian's scaling, the uniform
            out.update(
                {f"tri_{b.name.lower()}": buf for b, buf in self._tb.items() if b.name not in kept}
            )
        return out


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


__all__ = [
    "MAX_BATCH",
    "TIMING_KEYS",
    "WgpuBackend",
    "WgpuDiagnostics",
    "WgpuOperator",
    "wgpu_available",
]
