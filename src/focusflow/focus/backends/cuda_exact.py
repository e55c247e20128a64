"""The exact arithmetics on an NVIDIA GPU: the numba exact operator's bits, on the device.

A chain commits focus quantised to 10^-15, so every validator must compute the
same bits (docs/focus.md, *Arithmetic*). ``ExactCudaOperator`` is the exact
numba operator (``ExactNumbaOperator``) with its vectors in GPU memory and its
kernels replaced by CUDA twins (``kernels/exact.cu``) that round every
product, quotient and sum on its own, in the CPU kernels' order:

* the matrices are the CPU operator's own: the in-link SELL-8 groups and the
  overlay's compact rows built on the host by the same code and uploaded
  (after a patch, only the values it rewrote), the scaled symmetric matrix
  built on the device array for array as the host builds it
  (``cuda_symmetric``), so a row's entries are summed in the same order;
* a row is summed in its storage order, as a CPU lane sums it: by one
  thread, or for a hub row of more than ``LONG`` slots by a warp whose lanes
  form a tile's products while one lane adds them in order (one thread walking
  a hub row of 39,143 entries held every product about 28 ms);
* every global sum over the CPU's 64 fixed chunks: a warp a chunk, its lanes
  loading the terms and one lane adding them in order; the 64 partials added
  in order on the host (``reduce.strict_sum`` itself), a whole-vector
  ``total`` as one chunk;
* in ``exact-v3`` (backends/exact_tree.py) every sum in chunks of 1,024
  terms instead, a warp a chunk as above but all of them at once, and the
  partials' tree added level by level on the device by the warp that
  finishes the sum's last chunk (``tree_chunk_sums``, one launch), whose
  result alone comes back (two sums the solver takes together share the
  launch and the read-back); a hub row of more than 1,024 slots
  in chunks too (``long_chunks``, a warp a chunk) whose trees a thread a row
  adds (``long_trees``);
* element-wise passes as CPU code writes them, with the same parentheses.

The solver's control flow is the CPU operator's (this class inherits it and
swaps the kernels), so the two cannot drift apart: the same Python code
chooses steps, tolerances and restarts from the same bits.

What it costs: in ``exact-v1`` and ``exact-v2`` a chunk sum is a chain of
dependent additions (about n/64 of them), which no GPU shortens without
changing the bits; ``exact-v3``'s chains are 1,024 long. bench/cuda_exact.py
measures both against the numba exact operator and the fast cuda operator.
Only float64 values: float32 storage would round products in float32 first,
and the CPU's float32 path is not what a chain runs.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from focusflow.core.errors import InvalidParameterError
from focusflow.focus.backends.base import (
    AndersonKernels,
    DeviceArray,
    inverse_out_weight,
    kernel_source,
)
from focusflow.focus.backends.cuda import _cupy
from focusflow.focus.backends.cuda_symmetric import DeviceLinks, DeviceSymmetric, build
from focusflow.focus.backends.numba_cpu import (
    _CHUNKS,
    _LAPLACIAN_FIELDS,
    ExactNumbaOperator,
    Kernels,
)
from focusflow.focus.backends.numba_lap import ScaledSymmetric
from focusflow.focus.backends.sell import C
from focusflow.focus.params import EXACT_V3
from focusflow.focus.reduce import TREE_CHUNK, strict_row_sum, strict_sum

if TYPE_CHECKING:
    from focusflow.focus.params import ArithmeticName, LaplacianKind, Precision
    from focusflow.graph.snapshot import PatchInfo, Snapshot

BLOCK = 256
#: What ``_attach`` makes: no part of an operator's state.
_ATTACHED = ("xp", "_xp", "_bounds", "_lane", "_device", "_device_kernels")
#: The kernels of ``kernels/exact.cu``.
_NAMES = (
    "chunk_sums",
    "sell_pull",
    "csr_pull_add",
    "lap_apply",
    "cheb_step",
    "cg_product",
    "pair_step",
    "finish_diffusion",
    "cg_update",
    "cg_start",
    "springs_rhs",
    "residual_of",
    "cg_direction",
    "pair_start",
    "pair_pack",
    "blend",
    "divide",
    "aa_record",
    "aa_mix",
    "long_rows",
    "tree_chunk_sums",
    "long_chunks",
    "long_trees",
    "csr_pull_tree",
)
#: How many chunk bounds an operator keeps on the device.
_KEPT_BOUNDS = 12
#: Rows of more slots than this are summed by a warp each (``LONG`` in the source).
LONG = 128
#: Compiler options: no contraction anywhere (the kernels use the
#: round-to-nearest intrinsics as well), IEEE division and square root.
OPTIONS = ("--std=c++14", "--fmad=false", "-prec-div=true", "-prec-sqrt=true", "-ftz=false")
_MODULES: dict[tuple[int, str], Any] = {}
#: A null pointer as a kernel argument.
_NULL = np.uint64(0)
#: ``cudaMemcpyDeviceToHost``.
_DEVICE_TO_HOST = 2


def _module(cupy: ModuleType, source: str = "exact.cu") -> Any:
    """``kernels/<source>`` compiled once per process and device with
    ``OPTIONS`` (CuPy caches the binary on disk as well)."""
    key = (int(cupy.cuda.runtime.getDevice()), source)
    module = _MODULES.get(key)
    if module is None:
        module = _MODULES[key] = cupy.RawModule(code=kernel_source(source), options=OPTIONS)
    return module


def in_order(partials: np.ndarray) -> float:
    """The partials added in order from 0 (``reduce.strict_sum``, on the host)."""
    return float(strict_sum(np.ascontiguousarray(partials)))


#: The numba operator's vectors (alone or in lists), where present: moved as
#: they are between the host and the device (``adopt``, ``host_twin``).
_MOVED = (
    "inv_out",
    "dangling",
    "ylink",
    "z",
    "_diag_mu",
    "_minv",
    "_pair",
    "_t_next",
    "_buf",
    "_terms",
    "lap_sigma",
    "lap_diag",
)
#: Device copies of the host's matrices, and what they follow: remade from
#: the host's, never moved.
_DEVICE_COPIES = ("_pull_args", "_pull_bounds", "_ov", "_ov_vals", "_links", "_weights_version")


def _each_array(value: Any, move: Any) -> Any:
    """``value`` with ``move`` applied to it, or to each item of a list or
    tuple (None stays None)."""
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return type(value)(move(v) for v in value)
    return move(value)


def _sell_arrays(
    up: Any,
    grows: np.ndarray,
    gptr: np.ndarray,
    glen: np.ndarray,
    sidx: np.ndarray,
    sval: np.ndarray,
) -> tuple[DeviceArray, DeviceArray, DeviceArray, DeviceArray, DeviceArray]:
    """SELL-8 storage on the device, in the types the kernels read."""
    i64 = np.int64
    return (
        up(np.asarray(grows, dtype=i64)),
        up(np.asarray(gptr, dtype=i64)),
        up(np.asarray(glen, dtype=i64)),
        up(np.asarray(sidx, dtype=np.int32)),
        up(np.asarray(sval, dtype=np.float64)),
    )


class _DeviceKernels:
    """The exact numba kernels' twins on the GPU, with the numba kernels'
    signatures (device arrays for vectors), so that the CPU operator's code
    calls them unchanged (``Kernels``)."""

    def __init__(self, op: ExactCudaOperator) -> None:
        self.op = op
        cupy = op.xp
        self.cupy = cupy
        module = _module(cupy)
        self.f = {name: module.get_function(name) for name in _NAMES}
        self._partial = cupy.empty(2 * _CHUNKS * 16, dtype=cupy.float64)
        self._pre = cupy.empty(2, dtype=cupy.float64)
        self._long: dict[int, tuple[DeviceArray, int]] = {}
        #: ``exact-v3``: sums in chunks of ``TREE_CHUNK`` and a tree, on the device.
        self.tree = op.arithmetic == EXACT_V3
        self._tree_part = cupy.empty(1, dtype=cupy.float64)
        self._tree_scratch = cupy.empty(1, dtype=cupy.float64)
        self._tree_out = cupy.empty(16, dtype=cupy.float64)
        #: Each sum's count of finished chunks (``tree_chunk_sums`` resets it).
        self._tickets = cupy.zeros(16, dtype=cupy.uint32)
        #: Pinned host memory the sums' results are copied into (``_read``).
        self._landing = np.zeros(0)
        self._items: dict[int, tuple[DeviceArray, DeviceArray, int]] = {}
        self._item_part = cupy.empty(1, dtype=cupy.float64)

    # --- launching ------------------------------------------------------------
    @staticmethod
    def _grid(n: int) -> tuple[int]:
        return (max(1, (n + BLOCK - 1) // BLOCK),)

    def _each(self, name: str, n: int, *args: object) -> None:
        if n:
            self.f[name](self._grid(n), (BLOCK,), (*args, np.int64(n)))

    def _chunks(
        self,
        a: DeviceArray,
        b: DeviceArray | None,
        mode: int,
        bounds: DeviceArray,
        sums: int = 1,
        a_stride: int = 0,
        b_stride: int = 0,
    ) -> np.ndarray:
        """``(sums, parts)`` partial sums of ``a`` (mode 0), ``a * b`` (1) or
        ``|a - b|`` (2) over the chunks ``bounds``, read back to the host."""
        parts = len(bounds) - 1
        out = self._partial[: sums * parts]
        self.f["chunk_sums"](
            (parts, sums),
            (32,),
            (
                a,
                a if b is None else b,
                np.int32(mode),
                bounds,
                np.int32(parts),
                out,
                np.int64(a_stride),
                np.int64(b_stride),
            ),
        )
        return self._read(out, sums * parts).reshape(sums, parts)

    def _sum(self, a: DeviceArray, b: DeviceArray | None, mode: int, bounds: DeviceArray) -> float:
        """One sum over the chunks ``bounds``: their partials (``_chunks``)
        added in order on the host, as the CPU kernels add theirs."""
        return in_order(self._chunks(a, b, mode, bounds)[0])

    def _tree(
        self,
        a: DeviceArray,
        b: DeviceArray | None,
        mode: int,
        n: int,
        sums: int = 1,
        a_stride: int = 0,
        b_stride: int = 0,
        second: tuple[DeviceArray, DeviceArray | None, int] | None = None,
    ) -> np.ndarray:
        """``exact-v3``'s ``sums`` sums of ``n`` terms (``_chunks``' modes and
        strides; ``second``: sum 1 is ``(a, b, mode)`` of its own): a warp a
        chunk of ``TREE_CHUNK`` terms, and the warp that ends a sum's chunks
        adds their tree (``tree_chunk_sums``); only the results come back."""
        if n == 0:
            return np.zeros(sums)
        cupy = self.cupy
        bounds = self.op.tree_bounds(n)
        parts = len(bounds) - 1
        if len(self._tree_part) < sums * parts:
            self._tree_part = cupy.empty(sums * parts, dtype=cupy.float64)
            self._tree_scratch = cupy.empty(sums * parts, dtype=cupy.float64)
        if len(self._tree_out) < sums:
            self._tree_out = cupy.empty(sums, dtype=cupy.float64)
            self._tickets = cupy.zeros(sums, dtype=cupy.uint32)
        a1, b1, mode1 = (_NULL, _NULL, 0) if second is None else second
        self.f["tree_chunk_sums"](
            (parts, sums),
            (32,),
            (
                a, a if b is None else b, np.int32(mode),
                a1, a1 if b1 is None else b1, np.int32(mode1),
                bounds, np.int32(parts), self._tree_part, self._tree_scratch,
                np.int64(a_stride), np.int64(b_stride), self._tickets, self._tree_out,
            ),
        )  # fmt: skip
        return self._read(self._tree_out, sums)

    def _read(self, values: DeviceArray, count: int) -> np.ndarray:
        """The first ``count`` values of a device array, through pinned
        memory: a copy on the current stream and a wait for it, without
        the allocation a plain ``asnumpy`` makes each time."""
        if len(self._landing) < count:
            size = max(count, 2 * len(self._landing))
            memory = self.cupy.cuda.alloc_pinned_memory(8 * size)
            self._landing = np.frombuffer(memory, dtype=np.float64, count=size)
        stream = self.cupy.cuda.get_current_stream()
        self.cupy.cuda.runtime.memcpyAsync(
            self._landing.ctypes.data, values.data.ptr, 8 * count, _DEVICE_TO_HOST, stream.ptr
        )
        stream.synchronize()
        return self._landing[:count].copy()

    def _reduce(
        self, a: DeviceArray, b: DeviceArray | None, mode: int, bounds: DeviceArray, n: int
    ) -> float:
        """One sum of ``n`` terms in this operator's arithmetic: over the
        chunks ``bounds`` added in order (``exact-v1``, ``exact-v2``), or in
        chunks of ``TREE_CHUNK`` and a tree (``exact-v3``)."""
        if self.tree:
            return float(self._tree(a, b, mode, n)[0])
        return self._sum(a, b, mode, bounds)

    def _two(
        self,
        first: tuple[DeviceArray, DeviceArray | None, int],
        second: tuple[DeviceArray, DeviceArray | None, int],
        n: int,
    ) -> tuple[float, float]:
        """Two sums of ``n`` terms, each ``(a, b, mode)`` as ``_reduce`` takes
        them: in ``exact-v3`` both in one launch and one read-back."""
        if self.tree:
            both = self._tree(*first, n, 2, second=second)
            return float(both[0]), float(both[1])
        bounds = self._even(n)
        return self._sum(*first, bounds), self._sum(*second, bounds)

    def _even(self, n: int) -> DeviceArray:
        return self.op.even_bounds(n)

    def _sell_args(self, grows: DeviceArray) -> tuple[int, DeviceArray]:
        slots = len(grows)
        return slots, self.op.lane_buffer(slots)

    def _long_slots(self, glen: DeviceArray) -> int:
        """How many slots the long groups hold: the groups of more than
        ``LONG`` slots a row, which come first (rows sorted by length)."""
        held = self._long.get(id(glen))
        if held is None or held[0] is not glen:
            over = glen > LONG
            groups = len(glen) if bool(over.all()) else int(over.argmin())
            held = self._long[id(glen)] = (glen, groups * C)
            while len(self._long) > 4:  # the live matrices' (in-links, symmetric), and a spare
                del self._long[next(iter(self._long))]
        return held[1]

    def _long_rows(
        self,
        gptr: DeviceArray,
        glen: DeviceArray,
        sidx: DeviceArray,
        sval: DeviceArray,
        x: DeviceArray,
        pairs: bool = False,
    ) -> tuple[DeviceArray, np.int64]:
        """The long rows' sums of ``x`` (of both interleaved vectors with
        ``pairs``), a warp a row; what the row kernels then read for them."""
        slots = self._long_slots(glen)
        need = max(2, 2 * slots)
        if len(self._pre) < need:
            self._pre = self.cupy.empty(need, dtype=self.cupy.float64)
        if slots and self.tree:
            self._long_tree(gptr, glen, sidx, sval, x, pairs, slots)
        elif slots:
            self.f["long_rows"](
                (slots,),
                (32,),
                (gptr, glen, sidx, sval, x, np.int32(pairs), self._pre, np.int64(slots)),
            )
        return self._pre, np.int64(slots)

    def _chunk_items(self, glen: DeviceArray, slots: int) -> tuple[DeviceArray, int]:
        """``exact-v3``'s chunks of the long rows' slots: ``item_ptr[s]`` is
        where slot ``s``'s chunks begin (a row of ``glen`` slots has
        ``ceil(glen / TREE_CHUNK)``), kept per matrix as ``_long_slots`` is."""
        held = self._items.get(id(glen))
        if held is None or held[0] is not glen:
            lengths = self.cupy.asnumpy(glen[: slots // C])
            chunks = np.repeat((lengths + TREE_CHUNK - 1) // TREE_CHUNK, C)
            ptr = np.zeros(slots + 1, dtype=np.int64)
            np.cumsum(chunks, out=ptr[1:])
            held = self._items[id(glen)] = (glen, self.cupy.asarray(ptr), int(ptr[-1]))
            while len(self._items) > 4:
                del self._items[next(iter(self._items))]
        return held[1], held[2]

    def _long_tree(
        self,
        gptr: DeviceArray,
        glen: DeviceArray,
        sidx: DeviceArray,
        sval: DeviceArray,
        x: DeviceArray,
        pairs: bool,
        slots: int,
    ) -> None:
        """The long rows' sums in ``exact-v3``: a warp a chunk of a row, then
        a thread a row adds its chunks' tree, into ``_pre``."""
        item_ptr, items = self._chunk_items(glen, slots)
        if len(self._item_part) < 2 * items:
            self._item_part = self.cupy.empty(2 * items, dtype=self.cupy.float64)
        part = self._item_part
        self.f["long_chunks"](
            (items,),
            (32,),
            (
                gptr,
                glen,
                sidx,
                sval,
                x,
                np.int32(pairs),
                item_ptr,
                np.int64(slots),
                part,
                np.int64(items),
            ),
        )
        self.f["long_trees"](
            self._grid(slots),
            (BLOCK,),
            (item_ptr, np.int64(slots), part, np.int64(items), np.int32(pairs), self._pre),
        )

    # --- the Kernels fields ------------------------------------------------------
    def sell_pull(
        self,
        grows: DeviceArray,
        gptr: DeviceArray,
        glen: DeviceArray,
        sidx: DeviceArray,
        sval: DeviceArray,
        z: DeviceArray,
        out: DeviceArray,
        bounds: DeviceArray,
        scale: float,
    ) -> float:
        slots, lane = self._sell_args(grows)
        if slots:
            pre, long_slots = self._long_rows(gptr, glen, sidx, sval, z)
            self.f["sell_pull"](
                self._grid(slots),
                (BLOCK,),
                (
                    grows,
                    gptr,
                    glen,
                    sidx,
                    sval,
                    z,
                    out,
                    lane,
                    pre,
                    long_slots,
                    np.int64(slots),
                    np.float64(scale),
                ),
            )
        return self._reduce(lane, None, 0, bounds, slots)

    def lap_apply(
        self,
        grows: DeviceArray,
        gptr: DeviceArray,
        glen: DeviceArray,
        sidx: DeviceArray,
        sval: DeviceArray,
        bounds: DeviceArray,
        diag: DeviceArray,
        x: DeviceArray,
        out: DeviceArray,
    ) -> None:
        pre, long_slots = self._long_rows(gptr, glen, sidx, sval, x)
        self._each(
            "lap_apply", len(grows), grows, gptr, glen, sidx, sval, diag, x, out, pre, long_slots
        )

    def cheb_step(  # noqa: PLR0913 - numba_lap.cheb_step's signature
        self,
        grows: DeviceArray,
        gptr: DeviceArray,
        glen: DeviceArray,
        sidx: DeviceArray,
        sval: DeviceArray,
        bounds: DeviceArray,
        diag: DeviceArray,
        scale: float,
        t_cur: DeviceArray,
        t_prev: DeviceArray,
        acc_out: DeviceArray,
        a_k: float,
        a_0: float,
        first: bool,
    ) -> None:
        pre, long_slots = self._long_rows(gptr, glen, sidx, sval, t_cur)
        self._each(
            "cheb_step",
            len(grows),
            grows,
            gptr,
            glen,
            sidx,
            sval,
            diag,
            np.float64(scale),
            t_cur,
            t_prev,
            acc_out,
            np.float64(a_k),
            np.float64(a_0),
            np.int32(first),
            pre,
            long_slots,
        )

    def cg_product(
        self,
        grows: DeviceArray,
        gptr: DeviceArray,
        glen: DeviceArray,
        sidx: DeviceArray,
        sval: DeviceArray,
        bounds: DeviceArray,
        diag_mu: DeviceArray,
        p: DeviceArray,
        ap: DeviceArray,
    ) -> float:
        slots, lane = self._sell_args(grows)
        pre, long_slots = self._long_rows(gptr, glen, sidx, sval, p)
        self._each(
            "cg_product",
            slots,
            grows,
            gptr,
            glen,
            sidx,
            sval,
            diag_mu,
            p,
            ap,
            lane,
            pre,
            long_slots,
        )
        return self._reduce(lane, None, 0, bounds, slots)

    def pair_step(  # noqa: PLR0913 - numba_lap.pair_step's signature
        self,
        grows: DeviceArray,
        gptr: DeviceArray,
        glen: DeviceArray,
        sidx: DeviceArray,
        sval: DeviceArray,
        bounds: DeviceArray,
        x2: DeviceArray,
        diag_mu: DeviceArray,
        ap: DeviceArray,
        do_cg: bool,
        diag: DeviceArray,
        scale: float,
        t_prev: DeviceArray,
        t_next: DeviceArray,
        acc_out: DeviceArray,
        a_k: float,
        a_0: float,
        first: bool,
        do_heat: bool,
    ) -> float:
        slots, lane = self._sell_args(grows)
        pre, long_slots = self._long_rows(gptr, glen, sidx, sval, x2, pairs=True)
        self._each(
            "pair_step",
            slots,
            grows,
            gptr,
            glen,
            sidx,
            sval,
            x2,
            diag_mu,
            ap,
            np.int32(do_cg),
            diag,
            np.float64(scale),
            t_prev,
            t_next,
            acc_out,
            np.float64(a_k),
            np.float64(a_0),
            np.int32(first),
            np.int32(do_heat),
            lane,
            pre,
            long_slots,
        )
        if not do_cg:
            return 0.0
        return self._reduce(lane, None, 0, bounds, slots)

    def cg_update(
        self,
        y: DeviceArray,
        r: DeviceArray,
        p: DeviceArray,
        ap: DeviceArray,
        minv: DeviceArray,
        step: float,
        z: DeviceArray,
    ) -> tuple[float, float]:
        n = len(y)
        self._each("cg_update", n, y, r, p, ap, minv, np.float64(step), z)
        return self._two((r, z, 1), (r, r, 1), n)

    def cg_start(
        self, r: DeviceArray, minv: DeviceArray, z: DeviceArray, p: DeviceArray
    ) -> tuple[float, float]:
        n = len(r)
        self._each("cg_start", n, r, minv, z, p)
        return self._two((r, z, 1), (r, r, 1), n)

    def springs_rhs(
        self,
        phi: DeviceArray,
        sigma: DeviceArray,
        mu: float,
        rhs: DeviceArray,
        r: DeviceArray,
        fresh: bool,
    ) -> float:
        n = len(phi)
        self._each("springs_rhs", n, phi, sigma, np.float64(mu), rhs, r, np.int32(fresh))
        return self._reduce(rhs, rhs, 1, self._even(n), n)

    def finish_diffusion(
        self,
        ylink: DeviceArray,
        y: DeviceArray,
        x: DeviceArray,
        prior: DeviceArray,
        inv_out: DeviceArray,
        z: DeviceArray,
        tele: float,
        nparts: int,
    ) -> tuple[float, float]:
        """``(||y - x||_1, sum y)`` as numba's kernel returns them."""
        n = len(y)
        self._each("finish_diffusion", n, ylink, y, prior, inv_out, z, np.float64(tele))
        return self._two((y, x, 2), (y, None, 0), n)

    def dot(self, a: DeviceArray, b: DeviceArray, nparts: int) -> float:
        return self._reduce(a, b, 1, self._even(len(a)), len(a))

    def residual_of(self, rhs: DeviceArray, ap: DeviceArray, r: DeviceArray) -> None:
        self._each("residual_of", len(r), rhs, ap, r)

    def cg_direction(self, p: DeviceArray, z: DeviceArray, beta: float) -> None:
        self._each("cg_direction", len(p), p, z, np.float64(beta))

    def pair_start(self, x2: DeviceArray, p: DeviceArray, v: DeviceArray) -> None:
        self._each("pair_start", len(p), x2, p, v)

    def pair_pack(
        self,
        x2: DeviceArray,
        p: DeviceArray,
        z: DeviceArray,
        beta: float,
        do_cg: bool,
        t_next: DeviceArray,
        do_heat: bool,
    ) -> None:
        self._each(
            "pair_pack",
            len(p),
            x2,
            p,
            z,
            np.float64(beta),
            np.int32(do_cg),
            t_next,
            np.int32(do_heat),
        )

    def blend_sum(
        self,
        d: DeviceArray,
        s: DeviceArray,
        h: DeviceArray,
        ld: float,
        ls: float,
        lh: float,
        use_s: bool,
        use_h: bool,
        nparts: int,
    ) -> float:
        n = len(d)
        self._each(
            "blend",
            n,
            d,
            s,
            h,
            np.float64(ld),
            np.float64(ls),
            np.float64(lh),
            np.int32(use_s),
            np.int32(use_h),
        )
        return self._reduce(d, None, 0, self._even(n), n)

    def divide_l1(self, d: DeviceArray, phi: DeviceArray, total: float, nparts: int) -> float:
        n = len(d)
        self._each("divide", n, d, np.float64(total))
        return self._reduce(d, phi, 2, self._even(n), n)

    # --- Anderson (anderson._record and _mix, exact twins) ------------------------
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
        m = dx.shape[0]
        self._each("aa_record", n, x, gx, x_prev, g_prev, dx, dg, np.int64(slot), np.int32(live))
        cross = np.zeros(m)
        rhs = np.zeros(m)
        if live and k and n and self.tree:
            cross[:k] = self._tree(dg[slot], dg, 1, n, k, 0, n)
            rhs[:k] = self._tree(dg, g_prev, 1, n, k, n, 0)
        elif live and k and n:
            bounds = self._even(n)
            new = dg[slot]
            # (k, parts) partials; numba adds its (parts, m) array's rows in order.
            by_chunk = self._chunks(new, dg, 1, bounds, k, 0, n).T
            cross[:k] = strict_row_sum(np.ascontiguousarray(by_chunk))
            by_chunk = self._chunks(dg, g_prev, 1, bounds, k, n, 0).T
            rhs[:k] = strict_row_sum(np.ascontiguousarray(by_chunk))
        return cross, rhs

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
        coeff = self.cupy.asarray(np.ascontiguousarray(gamma, dtype=np.float64))
        self._each("aa_mix", n, gx, dx, dg, coeff, np.int32(k), out)
        return self._reduce(out, None, 0, self._even(n), n)

    def total(self, v: DeviceArray) -> float:
        """``strict_sum(v)``: the whole vector in order, by one thread
        (``exact-v3``: ``reduce.chunked_sum``'s chunks and tree)."""
        n = len(v)
        return self._reduce(v, None, 0, self.op.span_bounds(n), n)


class ExactCudaOperator(ExactNumbaOperator):
    """The exact numba operator with its vectors and kernels on one GPU.

    The host keeps the in-link matrices as the numba operator builds and
    patches them (they decide the bits) and the device copies of them,
    refreshed after every patch; the device builds the symmetric matrix itself
    with the host's bits, and holds every vector the solver touches.
    """

    name = "cuda"

    def __init__(
        self, snapshot: Snapshot, precision: Precision, arithmetic: ArithmeticName
    ) -> None:
        if precision != "float64":
            raise InvalidParameterError(
                f"arithmetic {arithmetic!r} on the cuda backend runs in float64 only, "
                f"not {precision!r}"
            )
        self.arithmetic = arithmetic
        self._attach()
        super().__init__(snapshot, precision, arithmetic)

    def _attach(self) -> None:
        """The device side that is no part of the state: CuPy, the compiled
        kernels and scratch (made anew for a copy, ``__setstate__``)."""
        self.xp = self._xp = _cupy()
        self._bounds: dict[tuple[str, int], DeviceArray] = {}
        self._lane: DeviceArray | None = None
        device = _DeviceKernels(self)
        self._device = device
        # The CPU operator's code calls its kernels by these names.
        self._device_kernels = Kernels._make(getattr(device, name) for name in Kernels._fields)

    @property
    def kernels(self) -> Kernels:  # type: ignore[override]  # the device's, not by arithmetic
        return self._device_kernels

    @property
    def anderson_kernels(self) -> AndersonKernels:
        return self._device

    def __getstate__(self) -> dict[str, Any]:
        """The numba operator's state with its vectors on the device (a deep
        copy copies them there); the kernels and scratch are remade."""
        state = super().__getstate__()
        for name in _ATTACHED:
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._attach()

    # --- host <-> device -------------------------------------------------------
    def from_host(self, array: np.ndarray) -> DeviceArray:
        return self.xp.asarray(array)

    def to_host(self, array: DeviceArray) -> np.ndarray:
        host: np.ndarray = self.xp.asnumpy(array)
        return host

    def even_bounds(self, n: int) -> DeviceArray:
        """The CPU kernels' 64 equal chunks of ``n`` entries, as bounds on the device."""
        step = (n + _CHUNKS - 1) // _CHUNKS
        return self._bounds_of(("even", n), np.minimum(np.arange(_CHUNKS + 1) * step, n))

    def tree_bounds(self, n: int) -> DeviceArray:
        """``exact-v3``'s chunks of ``n`` terms: every ``TREE_CHUNK``, on the device."""
        chunks = (n + TREE_CHUNK - 1) // TREE_CHUNK
        return self._bounds_of(("tree", n), np.minimum(np.arange(chunks + 1) * TREE_CHUNK, n))

    def span_bounds(self, n: int) -> DeviceArray:
        """``[0, n]`` on the device: a sum of ``n`` values in order as one chunk."""
        return self._bounds_of(("span", n), np.array([0, n]))

    def _bounds_of(self, key: tuple[str, int], host: np.ndarray) -> DeviceArray:
        """Chunk bounds uploaded once and kept while they are in use: a few
        lengths at a time (the particle count and the overlay's rows change
        with blocks), so the oldest go."""
        bounds = self._bounds.get(key)
        if bounds is None:
            bounds = self._bounds[key] = self.xp.asarray(host.astype(np.int64))
            while len(self._bounds) > _KEPT_BOUNDS:
                del self._bounds[next(iter(self._bounds))]
        return bounds

    def lane_buffer(self, slots: int) -> DeviceArray:
        """Scratch for one value per SELL slot lane (the rows' terms of a sum)."""
        if self._lane is None or len(self._lane) < slots:
            self._lane = self.xp.empty(max(slots, 1), dtype=np.float64)
        return self._lane

    def total(self, v: DeviceArray) -> float:
        """``sum(v)`` in order: on the host for a host vector (a prior being
        normalised), else by one GPU thread."""
        if isinstance(v, np.ndarray):
            return super().total(v)
        return self._device.total(v)

    # --- the matrices: the host's, uploaded -------------------------------------
    def refresh(self, info: PatchInfo | None = None) -> None:
        """The numba operator's refresh on the host, then its matrices and
        vectors on the device: after a patch that kept the in-link storage's
        layout only the values it rewrote are copied, else all of it; the
        link copies the symmetric matrix is built from follow the patch."""
        sell = self.__dict__.get("sell")
        super().refresh(info)
        patched = info is not None and info.base_entries is not None
        if patched and self.sell is sell and self.__dict__.get("_pull_args") is not None:
            assert info is not None and info.base_entries is not None
            self._update_links(info.base_entries)
        else:
            self._upload_links()
        links = self.__dict__.get("_links")
        if links is not None:
            links.sync(self.snapshot, info)

    def _row_weights(self, info: PatchInfo | None) -> None:
        """``1 / W_p`` and the dangling flags on the device: after a patch
        that follows the last one seen, only the rows whose out-weight it
        changed (``PatchInfo.sources``) are computed on the host, by the
        host's function, and written; new particles start dangling. Else
        every row, uploaded."""
        s = self.snapshot
        xp = self.xp
        inv = self.__dict__.get("inv_out")
        follows = (
            info is not None
            and isinstance(inv, xp.ndarray)
            and self.__dict__.get("_weights_version") == info.version_before
            and len(inv) == info.n_before
        )
        if not follows:
            inv_h, linked = inverse_out_weight(s.out_weight)
            self.inv_out, self.dangling = xp.asarray(inv_h), xp.asarray(~linked)
        else:
            assert info is not None and inv is not None
            extra = s.n - len(inv)
            if extra > 0:
                self.inv_out = xp.concatenate([inv, xp.zeros(extra)])
                self.dangling = xp.concatenate([self.dangling, xp.ones(extra, dtype=bool)])
            if len(info.sources):
                inv_h, linked = inverse_out_weight(s.out_weight[info.sources])
                at = xp.asarray(info.sources)
                self.inv_out[at] = xp.asarray(inv_h)
                self.dangling[at] = xp.asarray(~linked)
        self._weights_version = s.version

    def _update_links(self, base_entries: np.ndarray) -> None:
        """The in-link storage's rewritten values copied to the device (the
        slots the host's ``SellMatrix.update`` wrote), and the overlay's rows."""
        if len(base_entries):
            at = self.sell.pos[self.snapshot.out_to_in[base_entries]]
            at = at[at >= 0]
            if len(at):
                self._pull_args[4][self.xp.asarray(at)] = self.xp.asarray(self.sell.sval[at])
        self._upload_overlay()

    def _upload_links(self) -> None:
        """The in-link SELL storage and the overlay's rows, copied to the device."""
        up = self.xp.asarray
        m = self.sell
        self._pull_args = _sell_arrays(up, m.grows, m.gptr, m.glen, m.sidx, m.sval)
        self._pull_bounds = up(np.asarray(self.sell_bounds, dtype=np.int64) * C)
        self._upload_overlay()

    def _upload_overlay(self) -> None:
        """The overlay's in-link rows, copied to the device."""
        up = self.xp.asarray
        self._ov = (
            up(np.asarray(self.ov_rows, dtype=np.int64)),
            up(np.asarray(self.ov_ptr, dtype=np.int64)),
            up(np.asarray(self.ov_indices, dtype=np.int32)),
            up(np.asarray(self.ov_in_w, dtype=np.float64)),
        )
        self._ov_vals = self.xp.empty(max(1, len(self.ov_rows)), dtype=np.float64)

    def _bind_symmetric(self) -> None:
        """The symmetric matrix and its scaling on the device: taken as they
        are where the device built them, else copied there."""
        up = self.xp.asarray
        m = self._sym
        assert m is not None
        bounds = up(np.asarray(m.bounds, dtype=np.int64) * C)
        if isinstance(m, DeviceSymmetric):
            d = m.device
            self.lap_sigma, self.lap_diag = d["sigma"], d["diag"]
            self._args = (d["grows"], d["gptr"], d["glen"], d["sidx"], d["sval"], bounds)
            return
        self.lap_sigma, self.lap_diag = up(m.sigma), up(m.diag)
        self._args = (*_sell_arrays(up, m.grows, m.gptr, m.glen, m.sidx, m.sval), bounds)

    def _symmetric(self, kind: LaplacianKind) -> ScaledSymmetric:
        """The numba operator's matrix, built on the device from its copies of
        the snapshot's links (made on first use, then kept in step by
        ``refresh``): the host's bits without the host's rebuild and upload."""
        links = self.__dict__.get("_links")
        if links is None:
            links = self._links = DeviceLinks()
            links.sync(self.snapshot)
        return build(links, self.snapshot.n, kind, _module(self.xp, "symmetric.cu"))

    # --- moving between the host and the device ---------------------------------
    @classmethod
    def adopt(cls, host: ExactNumbaOperator) -> ExactCudaOperator:
        """``host``'s state on the GPU: its matrices (taken over, not copied)
        and vectors uploaded as they are, so the next solves compute the bits
        ``host`` would have (a node that loads a checkpoint runs on)."""
        if host.dtype is not np.float64:
            raise InvalidParameterError("only a float64 exact operator moves to the cuda backend")
        op = cls.__new__(cls)
        op.__dict__.update(host.__getstate__())
        op._attach()
        up = op.xp.asarray
        for name in _MOVED:
            if name in op.__dict__:
                op.__dict__[name] = _each_array(op.__dict__[name], up)
        op._upload_links()
        if op._sym is not None:
            op._bind_symmetric()
        op._z_of = None
        return op

    def host_twin(self) -> ExactNumbaOperator:
        """This operator's state as the numba exact operator it mirrors (what
        a checkpoint or a peer's snapshot holds: every node can load it)."""
        state = self.__getstate__()
        for name in _DEVICE_COPIES:
            state.pop(name, None)
        down = self.xp.asnumpy
        for name in _MOVED:
            if name in state:
                state[name] = _each_array(state[name], down)
        sym = self._sym
        if sym is None:
            for name in _LAPLACIAN_FIELDS:
                state.pop(name, None)
        else:
            state["lap_sigma"], state["lap_diag"] = sym.sigma, sym.diag
            state["_args"] = (sym.grows, sym.gptr, sym.glen, sym.sidx, sym.sval, sym.bounds)
        state["_z_of"] = None
        host = ExactNumbaOperator.__new__(ExactNumbaOperator)
        host.__dict__.update(state)
        return host

    def prepare(self, x: DeviceArray) -> None:
        self.xp.multiply(x, self.inv_out, out=self.z)
        self._z_of = x

    def _pull_into(self, z: DeviceArray, out: DeviceArray, scale: float) -> float:
        grows, gptr, glen, sidx, sval = self._pull_args
        total = self._device.sell_pull(
            grows, gptr, glen, sidx, sval, z, out, self._pull_bounds, scale
        )
        out[self.sell_rows : self.n] = 0.0
        count = len(self.ov_rows)
        if count:
            rows, ptr, idx, w = self._ov
            tree = self.arithmetic == EXACT_V3
            f = self._device.f["csr_pull_tree" if tree else "csr_pull_add"]
            f(
                self._device._grid(count),
                (BLOCK,),
                (rows, ptr, idx, w, z, out, self._ov_vals, np.int64(count), np.float64(scale)),
            )
            total += self._device._reduce(self._ov_vals, None, 0, self.span_bounds(count), count)
        return total
