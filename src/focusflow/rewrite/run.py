"""Run an IR program from text to its printed result, as ``hvm run`` does, on
any of the three evaluators."""

from __future__ import annotations

from dataclasses import dataclass

from focusflow.core.errors import InvalidParameterError
from focusflow.rewrite.cpu import Normalized, normalize
from focusflow.rewrite.errors import HvmBackendUnavailableError
from focusflow.rewrite.io_driver import IoDriver, run_io
from focusflow.rewrite.limits import UNLIMITED, Limits
from focusflow.rewrite.parse import Book, load_book
from focusflow.rewrite.schedules import DEFAULT_SCHEDULE, SCHEDULES
from focusflow.rewrite.show import readback

#: The evaluators by name: numba (CPU, any thread count), cuda (CuPy), wgpu (WebGPU).
BACKENDS = ("numba", "cuda", "wgpu")


@dataclass(frozen=True)
class RunResult:
    """What a run printed and what it cost."""

    result: str
    interactions: int
    seconds: float
    threads: int = 1

    @property
    def mips(self) -> float:
        """Millions of interactions per second (0 for an instantaneous run)."""
        return self.interactions / self.seconds / 1e6 if self.seconds > 0 else 0.0


def default_heap(backend: str) -> int:
    """The heap (node slots, and as many variable slots) a back end runs with
    unless told: what its memory comfortably holds."""
    if backend == "cuda":
        from focusflow.rewrite.cuda_base import DEFAULT_NODES as CUDA_NODES

        return CUDA_NODES
    if backend == "wgpu":
        from focusflow.rewrite.webgpu import DEFAULT_NODES as WGPU_NODES

        return WGPU_NODES
    from focusflow.rewrite.cpu import DEFAULT_NODES

    return DEFAULT_NODES


def check_schedule(backend: str, schedule: str) -> None:
    """Raise ``InvalidParameterError`` unless ``schedule`` is one of
    ``SCHEDULES`` and, if not the default, ``backend`` is cuda: before any
    evaluator loads (the CPU's may compile for seconds first)."""
    if schedule not in SCHEDULES:
        raise InvalidParameterError(
            f"--schedule {schedule!r} is not a schedule; there are: {', '.join(SCHEDULES)}"
        )
    if schedule != DEFAULT_SCHEDULE and backend != "cuda":
        raise InvalidParameterError(f"--schedule {schedule} applies to --backend cuda only")


def normalize_on(book: Book, backend: str = "numba", nodes: int | None = None,
                 vars_: int | None = None, threads: int = 1,
                 schedule: str = DEFAULT_SCHEDULE,
                 limits: Limits = UNLIMITED) -> Normalized:  # fmt: skip
    """Normalise ``book`` on ``backend``; ``threads`` is the CPU's thread count
    (the GPU back ends pick theirs from the heap), ``schedule`` the CUDA
    evaluator's (``SCHEDULES``), ``limits`` the run's bounds (``Limits``).
    Raises ``HvmBackendUnavailableError`` for an unknown back end or one this
    machine cannot run (no CuPy or GPU, no WebGPU adapter), with the reason."""
    if backend not in BACKENDS:
        raise HvmBackendUnavailableError(
            f"--backend {backend!r} is not an evaluator; there are: {', '.join(BACKENDS)}"
        )
    check_schedule(backend, schedule)
    nodes = default_heap(backend) if nodes is None else nodes
    vars_ = default_heap(backend) if vars_ is None else vars_
    if backend == "cuda":
        from focusflow.rewrite import cuda

        ok, why = cuda.available()
        if not ok:
            raise HvmBackendUnavailableError(f"--backend cuda cannot run here: {why}")
        return cuda.normalize_cuda(book, nodes=nodes, vars_=vars_, schedule=schedule,
                                   limits=limits)  # fmt: skip
    if backend == "wgpu":
        from focusflow.rewrite import webgpu

        ok, why = webgpu.available()
        if not ok:
            raise HvmBackendUnavailableError(f"--backend wgpu cannot run here: {why}")
        return webgpu.normalize_webgpu(book, nodes=nodes, vars_=vars_, limits=limits)
    return normalize(book, nodes=nodes, vars_=vars_, threads=threads, limits=limits)


def run_text(text: str, nodes: int | None = None, vars_: int | None = None,
             backend: str = "numba", threads: int = 1,
             io: IoDriver | None = None,
             schedule: str = DEFAULT_SCHEDULE,
             limits: Limits = UNLIMITED) -> RunResult:  # fmt: skip
    """Parse, build and normalise ``@main`` of the program ``text``; with
    ``io``, perform its IO calls through that driver as HVM2's C runtime does
    (the CPU evaluator only: ``HvmBackendUnavailableError`` on another).
    ``limits`` bounds the run's interactions and seconds (with ``io``, of all
    its normalisations together)."""
    return run_book(load_book(text), nodes, vars_, backend, threads, io, schedule, limits)


def run_book(book: Book, nodes: int | None = None, vars_: int | None = None,
             backend: str = "numba", threads: int = 1,
             io: IoDriver | None = None,
             schedule: str = DEFAULT_SCHEDULE,
             limits: Limits = UNLIMITED) -> RunResult:  # fmt: skip
    """``run_text`` of a program already parsed and built (``load_book``)."""
    if io is not None:
        if backend != "numba":
            raise HvmBackendUnavailableError(
                f"--io runs on the numba evaluator only, not on {backend}"
            )
        size = default_heap(backend)
        cpu_net, _ = run_io(book, nodes or size, vars_ or size, threads, io, limits)
        net = cpu_net.normalized()
    else:
        net = normalize_on(book, backend, nodes, vars_, threads, schedule, limits)
    return RunResult(readback(net.node, net.vars, net.root, book.names), net.interactions,
                     net.seconds, net.threads)  # fmt: skip
