"""What the CUDA evaluator's drivers (``cuda.py``'s rounds, ``cuda_fork.py``)
share: the compiled kernels, the cutting of a heap into one region a thread,
the read-back of the result from the GPU heap, and the errors of a run."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from types import ModuleType
from typing import Any, cast

import numpy as np

from focusflow.rewrite.errors import (
    HvmBackendUnavailableError,
    HvmOutOfMemoryError,
    HvmUnsafeCloneError,
)
from focusflow.rewrite.parse import Book
from focusflow.rewrite.ports import CON, NONE, RULES, VAR

#: Default heap on a GPU: 2^29 node slots (4 GiB) and as many variable slots (2 GiB).
DEFAULT_NODES = 1 << 29
DEFAULT_VARS = 1 << 29
#: Bins of a bag of pending pairs, one per rule (the kernel's NBINS and BIN_OF).
BINS = 8
#: The fewest node (and variable) slots of a thread's region: a thread whose
#: region is full stops the run, however empty the others are, so regions
#: must leave room for an uneven share of the live net.
MIN_REGION = 4096
#: Pending pairs a thread of the kernels that keep a block's nodes in its
#: shared memory holds of each priority (the kernel's RLEN).
BAG = 256
#: Bytes of shared memory a shared slot takes: a node (8) and a variable (4).
SLOT_BYTES = 12


@dataclass(frozen=True)
class Geometry:
    """The shape of the kernels that keep a block's nodes in its shared memory
    (the ``local`` and ``fork`` schedules'): threads per block, shared node
    (and variable) slots per block (the kernel's LT and LLEN, passed to it as
    defines), and the most blocks of a fork run.

    A thread's share of slots stays 64 in both geometries: 256 threads with
    half as many slots each ran bitonic sort of 2^19 numbers 1.2x slower than
    128 with 64. A fork run takes 128 blocks in both: 64 blocks of 256
    threads left half an H200's multiprocessors idle (1.47x slower), and the
    SEED launch's transpose (consecutive threads of a block hold the bags of
    the first threads of consecutive blocks) needs no more blocks than a
    block has threads (bench/RESULTS.md)."""

    block: int
    slots: int
    fork_blocks: int

    @property
    def shared_bytes(self) -> int:
        return self.slots * SLOT_BYTES

    @property
    def fork_threads(self) -> int:
        return self.fork_blocks * self.block


#: 96 KiB of shared memory a block, which every CUDA GPU since Volta gives.
SMALL = Geometry(block=128, slots=8192, fork_blocks=128)
#: 192 KiB a block (an H100's or H200's 227 KiB hold it): eight warps on each
#: multiprocessor where SMALL has four, so each of its four schedulers has a
#: second warp to issue while one waits on memory. On an H200 it ran bitonic
#: sort of 2^19 numbers under ``fork`` in 0.33 s against SMALL's 0.47 s.
LARGE = Geometry(block=256, slots=16384, fork_blocks=128)
#: Largest first: a device gets the first one its shared memory holds.
GEOMETRIES = (LARGE, SMALL)
#: The widest book (nodes or variables of one definition) whose interactions
#: keep the slots they take on a thread's stack rather than in the global
#: scratch (the kernel's SCRATCH_LOCAL).
SCRATCH_LOCAL = 64

_MODULE: dict[str, Any] = {}
_GEOMETRY: dict[int, Geometry] = {}


def _cupy() -> ModuleType:
    """CuPy, imported when first needed (it ships no types: its names are Any here)."""
    import cupy

    return cast("ModuleType", cupy)


def device_geometry() -> Geometry:
    """The largest of ``GEOMETRIES`` whose shared memory the current device
    lets one block have (its opt-in limit, which a kernel reaches by setting
    its ``max_dynamic_shared_size_bytes``)."""
    cupy = _cupy()
    device = int(cupy.cuda.runtime.getDevice())
    if device not in _GEOMETRY:
        limit = int(cupy.cuda.runtime.getDeviceProperties(device)["sharedMemPerBlockOptin"])
        _GEOMETRY[device] = geometry_for(limit)
    return _GEOMETRY[device]


def geometry_for(shared_limit: int) -> Geometry:
    """The largest of ``GEOMETRIES`` that fits ``shared_limit`` bytes of
    shared memory a block; ``HvmBackendUnavailableError`` if none does."""
    for geo in GEOMETRIES:
        if geo.shared_bytes <= shared_limit:
            return geo
    raise HvmBackendUnavailableError(
        f"the GPU gives a block {shared_limit} bytes of shared memory; "
        f"the CUDA evaluator needs {SMALL.shared_bytes}"
    )


def _module(local_foreign: bool = False, geometry: Geometry | None = None) -> Any:
    """``kernels/hvm.cu`` compiled once per process and geometry (the current
    device's unless given), with the rule table filled in."""
    geo = geometry or device_geometry()
    key = f"module{int(local_foreign)}-{geo.block}-{geo.slots}"
    if key not in _MODULE:
        cupy = _cupy()
        table = "{" + ",".join(str(int(r)) for r in RULES.reshape(-1)) + "}"
        source = (
            resources.files("focusflow.rewrite")
            .joinpath("kernels/hvm.cu")
            .read_text()
            .replace("RULE_TABLE", table)
        )
        # IEEE float32 as on the CPU: subnormals kept, division and square root
        # correctly rounded, no fused multiply-add
        options = ("--std=c++14", "--ftz=false", "--prec-div=true", "--fmad=false",
                   f"-DLOCAL_FOREIGN={int(local_foreign)}", f"-DLT={geo.block}",
                   f"-DLLEN={geo.slots}", f"-DRLEN={BAG}", f"-DNBINS={BINS}",
                   f"-DSCRATCH_LOCAL={SCRATCH_LOCAL}")  # fmt: skip
        _MODULE[key] = cupy.RawModule(code=source, options=options)
    return _MODULE[key]


def _heap(cupy: Any, nodes: int, vars_: int) -> tuple[Any, Any, int]:
    """A zeroed GPU heap of ``nodes`` node and ``vars_`` variable slots, and
    the root: a variable in the last slot, waiting for the result."""
    node = cupy.zeros(nodes, dtype=cupy.uint64)
    subst = cupy.zeros(vars_, dtype=cupy.uint32)
    subst[vars_ - 1] = NONE
    return node, subst, ((vars_ - 1) << 3) | VAR


def _book_arrays(cupy: Any, book: Book) -> tuple[Any, ...]:
    """The book on the GPU, in the order of the kernels' arguments (roots,
    node_start, def_nodes, rbag_start, def_rbag, def_vars, safe)."""
    return (
        cupy.asarray(book.roots.astype(np.uint32)),
        cupy.asarray(book.node_start.astype(np.uint32)),
        cupy.asarray(book.nodes.astype(np.uint64)),
        cupy.asarray(book.rbag_start.astype(np.uint32)),
        cupy.asarray(book.rbag.astype(np.uint64)),
        cupy.asarray(book.vars.astype(np.uint32)),
        cupy.asarray(book.safe.astype(np.uint8)),
    )


def _renumber(cupy: Any, ports: Any, nlive: Any, vlive: Any) -> Any:
    """``ports`` (uint32) with each node and variable address replaced by its
    rank among the live slots, plus one; an address of a free slot (garbage
    no tree reaches) becomes 0. Numbers, erasers, references and ``NONE``
    are kept."""
    tag = ports & 7
    val = ports >> 3
    out = ports.copy()
    for live, which in ((nlive, (tag >= CON) & (ports != NONE)), (vlive, tag == VAR)):
        if int(live.size) == 0:
            out[which] = tag[which]
            continue
        pos = cupy.searchsorted(live, val)
        found = live[cupy.minimum(pos, live.size - 1)] == val
        new = cupy.where(found, pos + 1, 0).astype(cupy.uint32)
        out = cupy.where(which, (new << 3) | tag, out)
    return out


def _compact(cupy: Any, node: Any, subst: Any, root: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The live part of the GPU heap on the host, slots renumbered 1, 2, ... in
    order: the readback needs the net, not a copy of the whole heap (6 GiB
    by default)."""
    nlive = cupy.flatnonzero(node).astype(cupy.uint32)
    vlive = cupy.flatnonzero(subst).astype(cupy.uint32)
    pairs = node[nlive]
    lo = _renumber(cupy, (pairs & 0xFFFFFFFF).astype(cupy.uint32), nlive, vlive)
    hi = _renumber(cupy, (pairs >> 32).astype(cupy.uint32), nlive, vlive)
    new_node = np.zeros(int(nlive.size) + 1, dtype=np.uint64)
    new_node[1:] = cupy.asnumpy(lo.astype(cupy.uint64) | (hi.astype(cupy.uint64) << 32))
    new_subst = np.zeros(int(vlive.size) + 1, dtype=np.uint32)
    new_subst[1:] = cupy.asnumpy(_renumber(cupy, subst[vlive], nlive, vlive))
    new_root = int(cupy.asnumpy(_renumber(cupy, cupy.asarray([root], dtype=cupy.uint32),
                                          nlive, vlive))[0])  # fmt: skip
    return new_node, new_subst, new_root


def _raise(status: int, detail: int, book: Book, interactions: int, heap: _Regions,
           what: dict[int, str]) -> None:  # fmt: skip
    """The error of a kernel's status (``ST_*`` in the kernel): a full node
    (1) or variable (2) region of ``heap``, an unsafe clone (4), or one of
    the driver's own limits (``what``)."""
    what = {
        1: f"{heap.nodes} node slots ({heap.count} regions of {heap.region_n})",
        2: f"{heap.vars_} variable slots ({heap.count} regions of {heap.region_v})",
        **what,
    }
    if status == 4:
        raise HvmUnsafeCloneError(
            f"attempt to clone a non-affine global reference: @{book.names[detail]} "
            "met a duplicator, and it contains or refers to duplicators"
        )
    raise HvmOutOfMemoryError(
        f"the net outgrew the heap ({what[status]}) after {interactions} interactions"
    )


@dataclass(frozen=True)
class _Regions:
    """How a heap of ``nodes`` and ``vars_`` slots is cut among ``count``
    threads: ``region_n`` node and ``region_v`` variable slots each, above
    the kernel's ``low``; ``width``: the most nodes or variables of one
    definition (a thread's scratch)."""

    nodes: int
    vars_: int
    count: int
    region_n: int
    region_v: int
    width: int


def _regions(book: Book, nodes: int, vars_: int, threads: int | None, low: int,
             most_threads: int) -> _Regions:  # fmt: skip
    """The heap's regions above ``low``: as many as ``threads`` asks or the
    kernel allows (``most_threads``), each holding at least four of the
    largest definition and ``MIN_REGION`` slots."""
    nodes = max(int(nodes), 64 + low)
    vars_ = min(max(int(vars_), 64 + low), 1 << 29)
    width = max(4, int(np.diff(book.node_start).max(initial=0)), int(book.vars.max(initial=0)))
    region = max(4 * width, MIN_REGION)
    most = max(1, min((nodes - low) // region, (vars_ - 1 - low) // region))
    count = min(most_threads if threads is None else max(1, int(threads)), most)
    return _Regions(nodes, vars_, count, (nodes - low) // count, (vars_ - 1 - low) // count, width)
