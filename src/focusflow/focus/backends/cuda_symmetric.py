"""The scaled symmetric matrix of springs and heat, built on the GPU with the host's bits.

The exact operator on a GPU (``cuda_exact``) needs ``N = sigma (W + W^T) sigma``
in the numba operator's SELL-8 layout (``numba_lap.ScaledSymmetric``) value
for value: the products and sums over its rows decide the committed focus.
Built on the host after every block and uploaded, it took 0.21 s of a 0.35 s
exact block at R-MAT 20 (16.8 million links).

Here the device keeps copies of the snapshot's link CSRs (``DeviceLinks``: the
base's rewritten values copied entry by entry after a patch, the small overlay
whole), and builds the matrix with kernels (``kernels/symmetric.cu``) that
work entry by entry where order does not matter (placing merged entries,
writing slots) and add a row's values in the host's order where it does (a
warp a row). The merge of the base's out- and in-links keeps its structure
from one compaction to the next (a patch rewrites values, not places), so it
is placed once and kept with where each value comes from (``SourcedMerge``);
a block's build gathers the values and merges the small overlay into it in
one pass. The Laplacian's scaling is the host's own ``laplacian_scaling``
run on the device's degrees: square roots and quotients, correctly rounded
there as on the host.
The rows' order (by length, longest first, then by index) is a sort of unique
keys, so any correct sort gives it.

The matrix (``DeviceSymmetric``) is a ``ScaledSymmetric`` whose large arrays
stay on the device until the host reads them (a checkpoint, ``host_twin``); a
pickle of it is the plain host matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from focusflow.focus.backends.base import DeviceArray, laplacian_scaling
from focusflow.focus.backends.cuda import _cupy
from focusflow.focus.backends.numba_lap import _PARTS, ScaledSymmetric
from focusflow.focus.backends.sell import C
from focusflow.graph.csr import balanced_chunks
from focusflow.graph.snapshot import KEY_MASK, KEY_SHIFT

if TYPE_CHECKING:
    from types import ModuleType

    from focusflow.focus.params import LaplacianKind
    from focusflow.graph.snapshot import PatchInfo, Snapshot

BLOCK = 256
_NAMES = (
    "merge_fresh",
    "merge_sources",
    "merged_values",
    "merge_overlay",
    "row_sums",
    "sym_scatter",
)

#: One CSR on the device: row pointers (int64), columns (int32), values (float64).
Csr = tuple[DeviceArray, DeviceArray, DeviceArray]
#: A CSR and each of its entries' rows (int64).
RowedCsr = tuple[DeviceArray, DeviceArray, DeviceArray, DeviceArray]


@dataclass
class SourcedMerge:
    """``A + B``'s structure, without values: row pointers (``rows + 1``
    long), columns, each entry's row, and where each value comes from: an
    entry of A (``src_a``), of B (``src_b``), both (A's first), -1 for none."""

    ptr: DeviceArray
    col: DeviceArray
    row: DeviceArray
    src_a: DeviceArray
    src_b: DeviceArray

    @property
    def nnz(self) -> int:
        return len(self.col)

    def grown(self, n: int) -> DeviceArray:
        """The row pointer for ``n`` rows: rows added since the merge hold
        no entries, so each repeats the last pointer."""
        return _grown(self.ptr, n)


def _kernels(module: Any) -> dict[str, Any]:
    """The kernels of ``kernels/symmetric.cu`` in ``module`` (compiled by the
    caller with the exact kernels' options: no contraction, IEEE rounding)."""
    return {name: module.get_function(name) for name in _NAMES}


def _grid(n: int) -> tuple[int]:
    return (max(1, (n + BLOCK - 1) // BLOCK),)


class DeviceLinks:
    """The snapshot's out-link and in-link CSRs (base and overlay) on the device.

    It holds arrays and the snapshot only (no module), so a deep copy of an
    operator copies it on the device with the rest of its state.

    ``sync`` follows the snapshot: after a patch it copies only the base
    values the patch rewrote (``PatchInfo.base_entries``) and the overlay,
    whose size is bounded by compaction; anything it cannot follow (no patch
    record, a missed patch, another snapshot) uploads everything again and
    drops the base's merge (``base``), which ``build`` then places anew.
    """

    def __init__(self) -> None:
        self.snapshot: Snapshot | None = None
        self.version = -1
        self.out: Csr | None = None
        self.inn: Csr | None = None
        self.ov_out: Csr | None = None
        self.ov_in: Csr | None = None
        #: Each overlay entry's row, out-links' and in-links'.
        self.ov_rows: tuple[DeviceArray, DeviceArray] | None = None
        #: The base's out- and in-link merge, placed once a base layout.
        self.base: SourcedMerge | None = None

    def sync(self, snap: Snapshot, info: PatchInfo | None = None) -> None:
        """Bring the copies to ``snap`` as it is now (``info``: the patch just made)."""
        up = _cupy().asarray
        follows = (
            info is not None
            and info.base_entries is not None
            and self.snapshot is snap
            and self.version == info.version_before
            and self.out is not None
            and self.inn is not None
        )
        if not follows:
            self.out = (
                up(snap.out_indptr.astype(np.int64, copy=False)),
                up(snap.out_indices.astype(np.int32, copy=False)),
                up(snap.out_w.astype(np.float64, copy=False)),
            )
            self.inn = (
                up(snap.in_indptr.astype(np.int64, copy=False)),
                up(snap.in_indices.astype(np.int32, copy=False)),
                up(snap.in_w.astype(np.float64, copy=False)),
            )
            self.base = None
        else:
            assert info is not None and info.base_entries is not None
            assert self.out is not None and self.inn is not None
            self.out = (_grown(self.out[0], snap.n), *self.out[1:])
            self.inn = (_grown(self.inn[0], snap.n), *self.inn[1:])
            entries = info.base_entries
            if len(entries):
                at_in = snap.out_to_in[entries]
                self.out[2][up(entries)] = up(snap.out_w[entries])
                self.inn[2][up(at_in)] = up(snap.in_w[at_in])
        self.ov_out = self.ov_in = self.ov_rows = None
        if snap.overlay_nnz:
            self.ov_out, out_rows = self._keyed(snap.n, *snap.overlay_keys("out"))
            self.ov_in, in_rows = self._keyed(snap.n, *snap.overlay_keys("in"))
            self.ov_rows = (out_rows, in_rows)
        self.snapshot = snap
        self.version = snap.version

    @staticmethod
    def _keyed(n: int, keys: np.ndarray, weights: np.ndarray) -> tuple[Csr, DeviceArray]:
        """The CSR (``n + 1`` row pointer) of sorted ``pair_keys`` and their
        weights, made on the device from the O(overlay) arrays: what the
        snapshot's ``ov_*_indptr``, ``ov_*_indices`` and ``ov_*_w`` hold;
        and each entry's row, which the keys carry."""
        cupy = _cupy()
        keys_d = cupy.asarray(np.asarray(keys, dtype=np.int64))
        rows = keys_d >> KEY_SHIFT
        ptr = cupy.searchsorted(rows, cupy.arange(n + 1, dtype=cupy.int64), side="left")
        cols = (keys_d & KEY_MASK).astype(cupy.int32)
        csr = (ptr.astype(cupy.int64, copy=False), cols, cupy.asarray(weights, dtype=cupy.float64))
        return csr, rows


#: The matrix's arrays a ``DeviceSymmetric`` keeps on the device until read.
_LAZY = ("grows", "glen", "sidx", "sval", "sigma", "diag")


class DeviceSymmetric(ScaledSymmetric):
    """``ScaledSymmetric`` made by ``build``: ``lam_max``, ``gptr``,
    ``bounds`` and ``nnz`` on the host as the host build has them; ``grows``,
    ``glen``, ``sidx``, ``sval``, ``sigma`` and ``diag`` on the device
    (``device``), downloaded the first time the host reads them."""

    def __init__(self, fields: dict[str, Any], device: dict[str, DeviceArray]) -> None:
        self.__dict__.update(fields)
        self.device = device
        self._host: dict[str, np.ndarray] = {}

    def _download(self, name: str) -> np.ndarray:
        host = self._host.get(name)
        if host is None:
            host = self._host[name] = self.device[name].get()
        return host

    grows = property(lambda self: self._download("grows"))
    glen = property(lambda self: self._download("glen"))
    sidx = property(lambda self: self._download("sidx"))
    sval = property(lambda self: self._download("sval"))
    sigma = property(lambda self: self._download("sigma"))
    diag = property(lambda self: self._download("diag"))

    def host_fields(self) -> dict[str, Any]:
        """Every field of the host's matrix, on the host."""
        fields = {k: v for k, v in self.__dict__.items() if k not in ("device", "_host")}
        for name in _LAZY:
            fields[name] = self._download(name)
        return fields

    def __reduce__(self) -> tuple[Any, tuple[dict[str, Any]]]:
        """Pickled as the plain host matrix: a checkpoint loads without a GPU."""
        return (_host_matrix, (self.host_fields(),))


def _host_matrix(fields: dict[str, Any]) -> ScaledSymmetric:
    matrix = ScaledSymmetric.__new__(ScaledSymmetric)
    matrix.__dict__.update(fields)
    return matrix


def _grown(ptr: DeviceArray, n: int) -> DeviceArray:
    """A row pointer extended to ``n`` rows: rows added since hold no
    entries, so each repeats the last pointer."""
    extra = n + 1 - len(ptr)
    if extra <= 0:
        return ptr
    cupy = _cupy()
    tail = cupy.full(extra, int(ptr[-1].get()), dtype=cupy.int64)
    return cupy.concatenate([ptr, tail])


def _rows(cupy: ModuleType, ptr: DeviceArray, nnz: int) -> DeviceArray:
    """Each entry's row, from the row pointers (empty rows skipped)."""
    entries = cupy.arange(nnz, dtype=cupy.int64)
    rows: DeviceArray = cupy.searchsorted(ptr, entries, side="right") - 1
    return rows


def _kept(
    f: dict[str, Any],
    cupy: ModuleType,
    a_ptr: DeviceArray,
    a_idx: DeviceArray,
    b_idx: DeviceArray,
    b_rows: DeviceArray,
    nnz_b: int,
) -> DeviceArray:
    """The kept entries of B before each of its entries (``nnz_b + 1``
    long): B's entries whose column A's row lacks (``merge_fresh``), summed."""
    fresh = cupy.zeros(nnz_b + 1, dtype=cupy.int64)
    if nnz_b:
        f["merge_fresh"](
            _grid(nnz_b), (BLOCK,), (a_ptr, a_idx, b_idx, b_rows, np.int64(nnz_b), fresh[1:])
        )
    kept: DeviceArray = cupy.cumsum(fresh)
    return kept


def _sourced(
    f: dict[str, Any],
    cupy: ModuleType,
    a: Csr,
    b: Csr,
    n: int,
    rows: tuple[DeviceArray, DeviceArray] | None = None,
) -> SourcedMerge:
    """``A + B``'s structure (``symmetric.merge_rows``'): every entry placed
    in parallel (``merge_sources``), with its row and where its value comes
    from. ``rows``: A's and B's entries' rows where known, else found."""
    a_ptr, b_ptr = a[0][: n + 1], b[0][: n + 1]
    if rows is None:
        na, nb = int(a_ptr[n].get()), int(b_ptr[n].get())
        rows = (_rows(cupy, a_ptr, na), _rows(cupy, b_ptr, nb))
    a_rows, b_rows = rows
    na, nb = len(a_rows), len(b_rows)
    kept = _kept(f, cupy, a_ptr, a[1], b[1], b_rows, nb)
    total = na + int(kept[nb].get())
    col = cupy.empty(total, dtype=cupy.int32)
    row = cupy.empty(total, dtype=cupy.int64)
    src_a = cupy.empty(total, dtype=cupy.int64)
    src_b = cupy.empty(total, dtype=cupy.int64)
    if na + nb:
        f["merge_sources"](
            _grid(na + nb),
            (BLOCK,),
            (
                a_ptr, a[1], a_rows, b_ptr, b[1], b_rows, kept,
                np.int64(na), np.int64(nb), col, row, src_a, src_b,
            ),
        )  # fmt: skip
    return SourcedMerge(a_ptr + kept[b_ptr], col, row, src_a, src_b)


def _values(
    f: dict[str, Any], cupy: ModuleType, m: SourcedMerge, a_w: DeviceArray, b_w: DeviceArray
) -> DeviceArray:
    """The merge's values from A's and B's as they are now (``merged_values``)."""
    val = cupy.empty(m.nnz, dtype=cupy.float64)
    if m.nnz:
        f["merged_values"](
            _grid(m.nnz), (BLOCK,), (m.src_a, m.src_b, a_w, b_w, val, np.int64(m.nnz))
        )
    return val


def _with_overlay(
    f: dict[str, Any],
    cupy: ModuleType,
    base: SourcedMerge,
    out_w: DeviceArray,
    in_w: DeviceArray,
    overlay: SourcedMerge,
    overlay_w: DeviceArray,
    n: int,
) -> RowedCsr:
    """The base's merge (its values gathered from ``out_w`` and ``in_w``) and
    the overlay's (its values ``overlay_w``), merged (``merge_overlay``): the
    base's entries first on a shared column, as ``merge_rows`` adds them."""
    a_ptr, b_ptr, b_rows = base.grown(n), overlay.ptr, overlay.row
    na, nb = base.nnz, overlay.nnz
    kept = _kept(f, cupy, a_ptr, base.col, overlay.col, b_rows, nb)
    total = na + int(kept[nb].get())
    col = cupy.empty(total, dtype=cupy.int32)
    row = cupy.empty(total, dtype=cupy.int64)
    val = cupy.empty(total, dtype=cupy.float64)
    if na + nb:
        f["merge_overlay"](
            _grid(na + nb),
            (BLOCK,),
            (
                a_ptr, base.col, base.row, base.src_a, base.src_b, out_w, in_w,
                b_ptr, overlay.col, b_rows, overlay_w, kept,
                np.int64(na), np.int64(nb), col, row, val,
            ),
        )  # fmt: skip
    return a_ptr + kept[b_ptr], col, val, row


def _merged(f: dict[str, Any], cupy: ModuleType, links: DeviceLinks, n: int) -> RowedCsr:
    """``W + W^T`` for the snapshot's links, with each entry's row: the
    base's merge (placed when its layout is new, else kept), its values as
    they are now, and the overlay's links merged in."""
    assert links.out is not None and links.inn is not None
    if links.base is None:
        links.base = _sourced(f, cupy, links.out, links.inn, n)
    base = links.base
    out_w, in_w = links.out[2], links.inn[2]
    if links.ov_out is None or links.ov_in is None:
        return base.grown(n), base.col, _values(f, cupy, base, out_w, in_w), base.row
    small = _sourced(f, cupy, links.ov_out, links.ov_in, n, links.ov_rows)
    small_w = _values(f, cupy, small, links.ov_out[2], links.ov_in[2])
    return _with_overlay(f, cupy, base, out_w, in_w, small, small_w, n)


def build(links: DeviceLinks, n: int, kind: LaplacianKind, module: Any) -> DeviceSymmetric:
    """The snapshot's ``ScaledSymmetric(snap, kind, float64)``, built on the
    device by ``module`` (``kernels/symmetric.cu``, compiled)."""
    cupy = _cupy()
    f = _kernels(module)
    ptr, idx, w, rows = _merged(f, cupy, links, n)
    nnz = len(idx)
    length = cupy.diff(ptr)
    rowsum_d = cupy.empty(n, dtype=cupy.float64)
    rowmax = cupy.empty(n, dtype=cupy.float64)
    if n:
        f["row_sums"](_grid(32 * n), (BLOCK,), (ptr, w, rowsum_d, rowmax, np.int64(n)))
    rowsum = rowsum_d
    top = float(rowmax.max().get()) if n else 0.0
    scale = 1.0
    if kind == "normalized" and top > 0:
        scale = 1.0 / top
        rowsum = rowsum * scale
    sigma, diag, lam_max = laplacian_scaling(rowsum, kind, cupy)
    groups = (n + C - 1) // C
    grows = cupy.full(groups * C, -1, dtype=cupy.int64)
    slot_of = cupy.empty(n, dtype=cupy.int64)
    if n:
        # Longest rows first, ties by index: unique keys, so the order is the
        # host's stable argsort of -length whatever sort runs it.
        longest = int(length.max().get())
        keys = (longest - length) * n + cupy.arange(n, dtype=cupy.int64)
        order = cupy.argsort(keys)
        grows[:n] = order
        slot_of[order] = cupy.arange(n, dtype=cupy.int64)
    glen = length[grows[::C]] if groups else cupy.zeros(0, dtype=cupy.int64)
    gptr = cupy.zeros(groups + 1, dtype=cupy.int64)
    cupy.cumsum(glen * C, out=gptr[1:])
    gptr_host = gptr.get()
    size = int(gptr_host[-1])
    sidx = cupy.zeros(size, dtype=cupy.int32)
    sval = cupy.zeros(size, dtype=cupy.float64)
    if nnz:
        f["sym_scatter"](
            _grid(nnz),
            (BLOCK,),
            (
                rows, ptr, idx, w, slot_of, gptr, sigma,
                np.float64(scale), sidx, sval, np.int64(nnz),
            ),
        )  # fmt: skip
    fields = {
        "nnz": nnz,
        "lam_max": float(lam_max),
        "gptr": gptr_host,
        "bounds": balanced_chunks(gptr_host, _PARTS),
    }
    device = {"grows": grows, "glen": glen, "gptr": gptr, "sidx": sidx, "sval": sval}
    device["sigma"], device["diag"] = sigma, diag
    return DeviceSymmetric(fields, device)


__all__ = ["DeviceLinks", "DeviceSymmetric", "SourcedMerge", "build"]
