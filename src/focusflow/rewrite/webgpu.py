"""A WGSL evaluator of HVM2 books through wgpu: the CPU evaluator's rules, in parallel.

The net is reduced in bulk-synchronous rounds (``kernels/hvm.wgsl``). A round is
one dispatch of ``invocations`` invocations over a bag of redexes: each takes
every ``invocations``-th redex and runs it depth-first on a private stack of 32
for at most ``budget`` interactions, allocating new slots only in its own
region of the heap. WGSL orders no memory between workgroups inside a
dispatch, so a redex that holds a port read out of a variable (another
invocation may have written the node it points at) is never run in the
dispatch that found it: it goes to the output bag with whatever is left over,
and the next round, after the dispatch boundary has made every write visible,
runs it. Rounds are encoded several to a submission, with a one-invocation
``flip`` dispatch between them that empties the bag just read and adds the
round's interactions to a 64-bit count; the host reads four control words per
submission and stops when no redex is left or a status is set.

Every rule and count is the CPU evaluator's (``cpu.py``): the interaction count
of a program is the same whatever the order, and tests check it against
HVM2's published counts. Numbers are ``numbers.operate`` ported to WGSL
(``kernels/numbers.wgsl``); docs/hvm.md says which f24 results may differ.

Everything on the device is ``u32``; the host builds and reads it with numpy
views, so the node array comes back as the same ``uint64`` pairs as the CPU's.
"""

from __future__ import annotations

import os
import tempfile
import time
from importlib.resources import files
from typing import Any

import numpy as np

from focusflow.core.extras import install_line
from focusflow.rewrite.cpu import Normalized
from focusflow.rewrite.errors import HvmOutOfMemoryError, HvmUnsafeCloneError
from focusflow.rewrite.limits import UNLIMITED, Limits
from focusflow.rewrite.parse import Book
from focusflow.rewrite.ports import NONE, REF, VAR

#: Default heap: 2^22 node slots (32 MiB) and as many variable slots (16 MiB),
#: inside WebGPU's default limit of 128 MiB per storage binding.
DEFAULT_NODES = 1 << 22
DEFAULT_VARS = 1 << 22
#: Interactions one invocation may run in a round before it hands the rest on.
DEFAULT_BUDGET = 1 << 7
#: Rounds encoded into one submission at most (the host waits once per submission).
MAX_ROUNDS_PER_SUBMIT = 64
WORKGROUP = 64

# Status codes and control words, as in hvm.wgsl.
OK, OOM_NODES, OOM_VARS, OOM_REDEXES, UNSAFE_CLONE = range(5)
_C_ITRS_LO, _C_ITRS_HI, _C_STATUS, _C_INFO, _C_ROUNDS, _C_CURSORS = 3, 4, 5, 6, 7, 16
_PARAMS = 20  # u32 fields of the shader's Params
_STACK = 32  # the shader's private redex stack
#: Input redexes one invocation takes per round at most.
PER_INVOCATION = 256
#: Loop turns one invocation takes per round at most, as the shader counts them.
#: Mesa's llvmpipe (the CPU driver CI runs) silently ends every loop of an
#: invocation once it has taken 65535 turns in all, by its own count, which
#: was measured at up to 5.6 times the shader's; a round stops well before
#: that, and an allocation that would pass ``_LOOP_HARD`` reports the heap as
#: full instead of scanning on.
_LOOP_CAP = 4000
_LOOP_HARD = 5000

#: wgpu objects (the package ships no types and is imported only when used).
Device = Any
Buffer = Any


def available() -> tuple[bool, str]:
    """Whether wgpu imports and finds an adapter, and if not, why."""
    try:
        import wgpu
    except Exception as exc:  # noqa: BLE001 - ImportError, or whatever loading wgpu-native raises
        return (
            False,
            f"wgpu is not installed ({type(exc).__name__}: {exc}); {install_line('hvm')}",
        )
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())  # Mesa asks for it
    try:
        adapter = wgpu.gpu.request_adapter_sync(power_preference="high-performance")
    except Exception as exc:  # noqa: BLE001 - a probe: any driver error means no adapter
        return False, f"no WebGPU adapter ({type(exc).__name__}: {exc})"
    if adapter is None:
        return False, "no WebGPU adapter found"
    info = adapter.info
    return True, f"wgpu on {info.get('device', '?')} ({info.get('backend_type', '?')})"


def shader_source() -> str:
    """The evaluator's WGSL: the numbers module, then the evaluator."""
    kernels = files(__package__).joinpath("kernels")
    return "".join(
        kernels.joinpath(name).read_text(encoding="utf-8") for name in ("numbers.wgsl", "hvm.wgsl")
    )


class _Gpu:
    """The device, the three pipelines and their shared bind group layout;
    made once per process (compiling the shader is most of a small run)."""

    def __init__(self) -> None:
        import wgpu

        os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())
        self.wgpu = wgpu
        adapter = wgpu.gpu.request_adapter_sync(power_preference="high-performance")
        if adapter is None:
            raise RuntimeError("no WebGPU adapter found")
        limits = adapter.limits
        wanted = {
            key: limits[key]
            for key in ("max-storage-buffer-binding-size", "max-buffer-size")
            if key in limits
        }
        self.limits = wanted
        self.device: Device = adapter.request_device_sync(required_limits=wanted)
        module = self.device.create_shader_module(code=shader_source())
        storage = wgpu.BufferBindingType.storage
        read_only = wgpu.BufferBindingType.read_only_storage
        kinds = [storage] * 5 + [read_only, storage, wgpu.BufferBindingType.uniform]
        self.layout = self.device.create_bind_group_layout(
            entries=[
                {"binding": i, "visibility": wgpu.ShaderStage.COMPUTE, "buffer": {"type": kind}}
                for i, kind in enumerate(kinds)
            ]
        )
        pipeline_layout = self.device.create_pipeline_layout(bind_group_layouts=[self.layout])
        self.pipelines = {
            name: self.device.create_compute_pipeline(
                layout=pipeline_layout, compute={"module": module, "entry_point": name}
            )
            for name in ("reduce", "flip", "numbers_test")
        }
        # llvmpipe compiles a pipeline at its first dispatch: do that now, so
        # that a run's time is the reduction's only.
        operate_words(np.zeros((1, 2), dtype=np.uint32), self)
        normalize_webgpu(_EMPTY_BOOK, nodes=64, vars_=64, invocations=1, gpu=self)

    def buffer(self, data: np.ndarray, readable: bool = False, uniform: bool = False) -> Buffer:
        """A device buffer holding ``data`` (at least 4 bytes)."""
        usage = self.wgpu.BufferUsage.COPY_DST
        usage |= self.wgpu.BufferUsage.UNIFORM if uniform else self.wgpu.BufferUsage.STORAGE
        if readable:
            usage |= self.wgpu.BufferUsage.COPY_SRC
        data = np.ascontiguousarray(data if data.size else np.zeros(1, dtype=np.uint32))
        return self.device.create_buffer_with_data(data=data, usage=usage)

    def empty(self, words: int) -> Buffer:
        """A zeroed storage buffer of ``words`` u32 that can be copied back."""
        usage = (
            self.wgpu.BufferUsage.STORAGE
            | self.wgpu.BufferUsage.COPY_SRC
            | self.wgpu.BufferUsage.COPY_DST
        )
        return self.device.create_buffer(size=4 * max(1, words), usage=usage)

    def bind(self, buffers: list[Buffer]) -> Any:
        """A bind group of the eight bindings, in order."""
        entries = [
            {"binding": i, "resource": {"buffer": b, "offset": 0, "size": b.size}}
            for i, b in enumerate(buffers)
        ]
        return self.device.create_bind_group(layout=self.layout, entries=entries)

    def read(self, buffer: Buffer, words: int) -> np.ndarray:
        """The first ``words`` u32 of ``buffer``."""
        return np.frombuffer(self.device.queue.read_buffer(buffer, 0, 4 * words), dtype=np.uint32)


_GPU: list[_Gpu] = []
#: ``@main = *``: run once to compile the pipelines.
_EMPTY_BOOK = Book(
    names=["main"],
    roots=np.array([2], dtype=np.uint32),
    node_start=np.zeros(2, dtype=np.int64),
    nodes=np.zeros(0, dtype=np.uint64),
    rbag_start=np.zeros(2, dtype=np.int64),
    rbag=np.zeros(0, dtype=np.uint64),
    vars=np.zeros(1, dtype=np.uint32),
    safe=np.ones(1, dtype=np.uint8),
)


def _gpu() -> _Gpu:
    if not _GPU:
        _GPU.append(_Gpu())
    return _GPU[0]


def _book_words(book: Book) -> tuple[np.ndarray, dict[str, int]]:
    """The book as one u32 array, and where each part starts."""
    parts = {
        "roots": book.roots.astype(np.uint32),
        "nstart": book.node_start.astype(np.uint32),
        "nodes": book.nodes.astype(np.uint64).view(np.uint32),
        "rstart": book.rbag_start.astype(np.uint32),
        "rbag": book.rbag.astype(np.uint64).view(np.uint32),
        "vars": book.vars.astype(np.uint32),
        "safe": book.safe.astype(np.uint32),
    }
    offsets, at = {}, 0
    for name, words in parts.items():
        offsets[name] = at
        at += len(words)
    return np.concatenate(list(parts.values())).astype(np.uint32), offsets


def operate_words(pairs: np.ndarray, gpu: _Gpu | None = None) -> np.ndarray:
    """``operate`` of the shader on each row of ``pairs`` (n x 2 number words):
    the WGSL numbers, for tests against ``numbers.operate``."""
    gpu = gpu or _gpu()
    pairs = np.ascontiguousarray(pairs, dtype=np.uint32).reshape(-1, 2)
    n = len(pairs)
    params = np.zeros(_PARAMS, dtype=np.uint32)
    params[16] = n
    out = gpu.empty(n)
    buffers = [gpu.empty(2), gpu.empty(1), gpu.buffer(pairs.reshape(-1)), out, gpu.empty(8),
               gpu.empty(1), gpu.empty(1), gpu.buffer(params, uniform=True)]  # fmt: skip
    encoder = gpu.device.create_command_encoder()
    cpass = encoder.begin_compute_pass()
    cpass.set_pipeline(gpu.pipelines["numbers_test"])
    cpass.set_bind_group(0, gpu.bind(buffers))
    cpass.dispatch_workgroups(-(-n // WORKGROUP), 1, 1)
    cpass.end()
    gpu.device.queue.submit([encoder.finish()])
    return gpu.read(out, n).copy()


def normalize_webgpu(  # noqa: PLR0915 - one run: set-up, rounds, errors, readback
    book: Book,
    nodes: int = DEFAULT_NODES,
    vars_: int = DEFAULT_VARS,
    invocations: int = 256,
    budget: int = DEFAULT_BUDGET,
    gpu: _Gpu | None = None,
    limits: Limits = UNLIMITED,
) -> Normalized:
    """Run ``@main`` of ``book`` to normal form on the WebGPU device, with a heap
    of ``nodes`` node slots and ``vars_`` variable slots shared out among
    ``invocations`` parallel invocations (each allocates only in its share);
    raise ``HvmOutOfMemoryError`` when an invocation's share, or the bag of
    pending redexes (as many as node slots), runs out. ``budget`` bounds the
    interactions of an invocation per round; ``limits`` is checked after each
    submission (of up to ``MAX_ROUNDS_PER_SUBMIT`` rounds)."""
    gpu = gpu or _gpu()
    invocations = max(1, int(invocations))
    nodes = max(int(nodes), invocations + 1)
    vars_ = min(max(int(vars_), invocations + 2), 1 << 29)
    budget = max(1, int(budget))
    region_nodes = (nodes - 1) // invocations
    region_vars = (vars_ - 2) // invocations
    bag_cap = max(nodes, 1024)
    max_def_nodes = max(4, int(np.diff(book.node_start).max(initial=0)))
    max_def_vars = max(4, int(book.vars.max(initial=0)))
    max_def_rbag = int(np.diff(book.rbag_start).max(initial=0))
    # loop turns of the worst interaction (a CALL of the largest definition in
    # an uncrowded region, or an OPER's fmod) and of flushing a round's rest
    reserve = 2 * max_def_nodes + max_def_vars + 4 * max_def_rbag + 512 + _STACK + PER_INVOCATION
    if reserve > _LOOP_CAP // 2:
        raise ValueError(
            f"a definition is too large for the WebGPU evaluator ({reserve} loop turns)"
        )
    scratch = max_def_nodes + max_def_vars
    words, offsets = _book_words(book)
    root_slot = vars_ - 1
    root = (root_slot << 3) | VAR

    fields = [PER_INVOCATION, invocations, budget, root, region_nodes, region_vars, bag_cap]
    fields += [scratch, max_def_nodes, *offsets.values(), 0, _LOOP_CAP, _LOOP_HARD, reserve]
    params = np.array(fields, dtype=np.uint32)

    subst = np.zeros(vars_, dtype=np.uint32)
    subst[root_slot] = NONE
    boot = np.array([REF, root], dtype=np.uint32)  # @main (id 0) ~ ROOT
    bag0 = np.zeros(2 * bag_cap, dtype=np.uint32)
    bag0[:2] = boot
    ctrl = np.zeros(_C_CURSORS + 2 * invocations, dtype=np.uint32)
    ctrl[0] = 1
    node_buf = gpu.empty(2 * nodes)
    var_buf = gpu.buffer(subst, readable=True)
    bags = [gpu.buffer(bag0), gpu.empty(2 * bag_cap)]
    ctrl_buf = gpu.buffer(ctrl, readable=True)
    book_buf = gpu.buffer(words)
    scratch_buf = gpu.empty(invocations * scratch)
    group = gpu.bind([node_buf, var_buf, bags[0], bags[1], ctrl_buf, book_buf, scratch_buf,
                      gpu.buffer(params, uniform=True)])  # fmt: skip
    reduce, flip = gpu.pipelines["reduce"], gpu.pipelines["flip"]
    workgroups = -(-invocations // WORKGROUP)

    start = time.perf_counter()
    per_submit = 1
    while True:
        encoder = gpu.device.create_command_encoder()
        cpass = encoder.begin_compute_pass()
        cpass.set_bind_group(0, group)
        for _ in range(per_submit):
            cpass.set_pipeline(reduce)
            cpass.dispatch_workgroups(workgroups, 1, 1)
            cpass.set_pipeline(flip)
            cpass.dispatch_workgroups(1, 1, 1)
        cpass.end()
        gpu.device.queue.submit([encoder.finish()])
        head = gpu.read(ctrl_buf, _C_ROUNDS + 1)
        itrs = int(head[_C_ITRS_LO]) | (int(head[_C_ITRS_HI]) << 32)
        if head[_C_STATUS] != OK or head[0] + head[1] == 0:
            break
        limits.check(itrs, time.perf_counter() - start)
        per_submit = min(2 * per_submit, MAX_ROUNDS_PER_SUBMIT)
    seconds = time.perf_counter() - start

    status = int(head[_C_STATUS])
    if status in (OOM_NODES, OOM_VARS, OOM_REDEXES):
        what = {
            OOM_NODES: f"{nodes} node slots, {region_nodes} per invocation",
            OOM_VARS: f"{vars_} variable slots, {region_vars} per invocation",
            OOM_REDEXES: f"{bag_cap} pending redexes",
        }[status]
        raise HvmOutOfMemoryError(f"the net outgrew the heap ({what}) after {itrs} interactions")
    if status == UNSAFE_CLONE:
        raise HvmUnsafeCloneError(
            f"attempt to clone a non-affine global reference: @{book.names[int(head[_C_INFO])]} "
            "met a duplicator, and it contains or refers to duplicators"
        )
    node_words = gpu.read(node_buf, 2 * nodes).copy()
    pairs = node_words.view(np.uint64)
    # A freed slot keeps its second word (only the first is cleared): zero it,
    # so that free slots are 0 as on the CPU.
    pairs[node_words[0::2] == 0] = 0
    return Normalized(pairs, gpu.read(var_buf, vars_).copy(), root, itrs, seconds)
