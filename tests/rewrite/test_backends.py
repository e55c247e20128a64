"""Every evaluator and thread count gives the same normal form and the same
interaction count: random terminating programs (``random_nets``, whose values
are computed independently in Python) and HVM2's published programs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from focusflow.rewrite import cuda, cuda_base, webgpu
from focusflow.rewrite.cpu import normalize
from focusflow.rewrite.cuda_base import GEOMETRIES, SCRATCH_LOCAL, Geometry, device_geometry
from focusflow.rewrite.errors import (
    HvmBackendUnavailableError,
    HvmOutOfMemoryError,
    HvmUnsafeCloneError,
)
from focusflow.rewrite.parse import load_book
from focusflow.rewrite.run import normalize_on
from focusflow.rewrite.show import normalize_names, readback
from tests.rewrite.random_nets import random_program

PROGRAMS = Path(__file__).parent / "programs"
HEAP = 1 << 16


def _run(
    text: str,
    backend: str = "numba",
    threads: int = 1,
    schedule: str = "spread",
    geometry: Geometry | None = None,
) -> tuple[str, int]:
    book = load_book(text)
    if backend == "cuda":
        net = cuda.normalize_cuda(book, nodes=1 << 22, vars_=1 << 22, schedule=schedule,
                                  geometry=geometry)  # fmt: skip
    elif backend == "wgpu":
        net = webgpu.normalize_webgpu(book, nodes=HEAP, vars_=HEAP, invocations=64)
    else:
        net = normalize(book, nodes=HEAP, vars_=HEAP, threads=threads)
    return normalize_names(readback(net.node, net.vars, net.root, book.names)), net.interactions


@pytest.mark.parametrize("seed", range(40))
def test_random_programs_on_cpu_threads(seed: int) -> None:
    prog = random_program(seed, steps=10 + seed)
    result, count = _run(prog.text)
    assert result == prog.result, prog.text
    for threads in (2, 3):
        assert _run(prog.text, threads=threads) == (result, count), (threads, prog.text)


@pytest.mark.parametrize("name", ["sum_rec.hvm", "sort_bitonic.hvm", "tuples.hvm"])
def test_published_programs_on_two_threads(name: str) -> None:
    text = (PROGRAMS / name).read_text()
    book = load_book(text)
    one = normalize(book, nodes=1 << 24, vars_=1 << 24)
    two = normalize(book, nodes=1 << 24, vars_=1 << 24, threads=2)
    assert two.interactions == one.interactions
    assert normalize_names(readback(two.node, two.vars, two.root, book.names)) == normalize_names(
        readback(one.node, one.vars, one.root, book.names)
    )


def test_the_thread_driver_reuses_the_one_thread_kernel(tmp_path: Path) -> None:
    """The many-thread driver calls the kernel with the one-thread call's
    argument types: each other type (prange's unsigned index, a constant
    typed as a literal) made numba compile the kernel again, about half a
    minute each on a small machine, on a user's first run of two threads.
    Compiled in a child with an empty cache: a driver loaded from the cache
    lists none of the kernels compiled into it."""
    from tests.helpers import run_with_numba_cache

    probe = (
        "from numba import types\n"
        "from focusflow.rewrite import cpu\n"
        "from focusflow.rewrite.parse import load_book\n"
        "book = load_book('@main = a & @f ~ (1 a)\\n@f = (x x)')\n"
        "for threads in (1, 2):\n"
        "    cpu.normalize(book, nodes=1 << 10, vars_=1 << 10, threads=threads)\n"
        "want = (types.int64, types.boolean, types.int64)\n"
        "print(len(cpu._work.overloads), all(tuple(s[-3:]) == want for s in cpu._work.overloads))\n"
    )
    assert run_with_numba_cache(probe, tmp_path).split() == ["1", "True"]


def test_a_small_heap_is_a_clean_error_on_many_threads() -> None:

    book = load_book((PROGRAMS / "sum_rec.hvm").read_text())
    with pytest.raises(HvmOutOfMemoryError, match="outgrew the heap"):
        normalize(book, nodes=64, vars_=64, threads=2)


class _NumpyAsCupy:
    """The CuPy calls the GPU heap's compaction makes, done by numpy, so that
    it can be checked on a CPU-made heap where there is no GPU."""

    flatnonzero = staticmethod(np.flatnonzero)
    searchsorted = staticmethod(np.searchsorted)
    minimum = staticmethod(np.minimum)
    where = staticmethod(np.where)
    asarray = staticmethod(np.asarray)
    asnumpy = staticmethod(np.asarray)
    uint32 = np.uint32
    uint64 = np.uint64


@pytest.mark.parametrize("name", ["tuples.hvm", "list.hvm", "numerics_f24.hvm"])
def test_the_heap_read_back_compacted_gives_the_same_result(name: str) -> None:
    book = load_book((PROGRAMS / name).read_text())
    net = normalize(book, nodes=1 << 20, vars_=1 << 20)
    node, subst, root = cuda._compact(_NumpyAsCupy, net.node, net.vars, net.root)
    assert len(node) < 1 << 12 and len(subst) < 1 << 12  # only the live slots
    want = normalize_names(readback(net.node, net.vars, net.root, book.names))
    assert normalize_names(readback(node, subst, root, book.names)) == want


@pytest.mark.skipif(not webgpu.available()[0], reason="no WebGPU adapter")
@pytest.mark.parametrize("seed", range(0, 40, 8))
def test_random_programs_on_webgpu(seed: int) -> None:
    prog = random_program(seed, steps=10 + seed)
    assert _run(prog.text, "wgpu") == _run(prog.text), prog.text


@pytest.mark.skipif(not cuda.available()[0], reason="no CUDA GPU (CuPy)")
@pytest.mark.parametrize("schedule", cuda.SCHEDULES)
@pytest.mark.parametrize("seed", range(40))
def test_random_programs_on_cuda(seed: int, schedule: str) -> None:
    prog = random_program(seed, steps=10 + seed)
    assert _run(prog.text, "cuda", schedule=schedule) == _run(prog.text), prog.text


@pytest.mark.skipif(not cuda.available()[0], reason="no CUDA GPU (CuPy)")
@pytest.mark.parametrize("schedule", cuda.SCHEDULES)
@pytest.mark.parametrize("name", ["sum_rec.hvm", "sort_bitonic.hvm", "tuples.hvm"])
def test_published_programs_on_cuda(name: str, schedule: str) -> None:
    """Millions of interactions: under the local schedule, nodes leave a
    block's shared memory by the thousand, each with the count unchanged."""
    text = (PROGRAMS / name).read_text()
    book = load_book(text)
    one = normalize(book, nodes=1 << 24, vars_=1 << 24)
    gpu = cuda.normalize_cuda(book, nodes=1 << 24, vars_=1 << 24, schedule=schedule)
    assert gpu.interactions == one.interactions
    assert normalize_names(readback(gpu.node, gpu.vars, gpu.root, book.names)) == normalize_names(
        readback(one.node, one.vars, one.root, book.names)
    )


@pytest.mark.skipif(not cuda.available()[0], reason="no CUDA GPU (CuPy)")
@pytest.mark.parametrize("geo", GEOMETRIES, ids=lambda g: f"block{g.block}")
@pytest.mark.parametrize("schedule", ["fork", "local", "auto"])
@pytest.mark.parametrize("name", ["sum_rec.hvm", "sort_bitonic.hvm", "tuples.hvm"])
def test_every_geometry_the_gpu_holds_gives_the_cpus_result(
    name: str, schedule: str, geo: Geometry
) -> None:
    """The shared-memory kernels built for each geometry, not only the one
    the device would pick, give the CPU's result and count; random programs
    too, under fork."""
    if geo.shared_bytes > device_geometry().shared_bytes:
        pytest.skip(f"this GPU gives a block less than {geo.shared_bytes} bytes")
    book = load_book((PROGRAMS / name).read_text())
    one = normalize(book, nodes=1 << 24, vars_=1 << 24)
    gpu = cuda.normalize_cuda(book, nodes=1 << 24, vars_=1 << 24, schedule=schedule, geometry=geo)
    assert gpu.interactions == one.interactions
    assert normalize_names(readback(gpu.node, gpu.vars, gpu.root, book.names)) == normalize_names(
        readback(one.node, one.vars, one.root, book.names)
    )
    if name != "tuples.hvm" or schedule != "fork":
        return
    for seed in range(0, 40, 5):
        prog = random_program(seed, steps=10 + seed)
        assert _run(prog.text, "cuda", schedule="fork", geometry=geo) == _run(prog.text)


@pytest.mark.skipif(not cuda.available()[0], reason="no CUDA GPU (CuPy)")
@pytest.mark.parametrize("schedule", cuda.SCHEDULES)
def test_a_small_gpu_heap_is_a_clean_error(schedule: str) -> None:
    """A net that outgrows the GPU's heap stops with the error, under every
    schedule: threads that find their region full (and give back the slots
    they had taken for the pair) hand it on until none can, and the run after
    it on a large heap gives the CPU's result and count."""

    book = load_book((PROGRAMS / "sort_bitonic.hvm").read_text())
    with pytest.raises(HvmOutOfMemoryError, match="outgrew the heap"):
        cuda.normalize_cuda(book, nodes=1 << 14, vars_=1 << 14, schedule=schedule)
    one = normalize(book, nodes=1 << 24, vars_=1 << 24)
    gpu = cuda.normalize_cuda(book, nodes=1 << 24, vars_=1 << 24, schedule=schedule)
    assert gpu.interactions == one.interactions
    assert normalize_names(readback(gpu.node, gpu.vars, gpu.root, book.names)) == normalize_names(
        readback(one.node, one.vars, one.root, book.names)
    )


def _wide(pairs: int) -> str:
    """``@main``: ``pairs`` redexes ``@f ~ (i x_i)`` of an identity, and the
    tuple of the ``x_i``: one definition with that many pairs."""
    tup = "".join(f"(x{i} " for i in range(pairs - 1)) + f"x{pairs - 1}" + ")" * (pairs - 1)
    redexes = " ".join(f"& @f ~ ({i + 1} x{i})" for i in range(pairs))
    return f"@f = (a a)\n@main = {tup} {redexes}\n"


@pytest.mark.skipif(not cuda.available()[0], reason="no CUDA GPU (CuPy)")
@pytest.mark.parametrize("schedule", cuda.SCHEDULES)
def test_books_either_side_of_the_stack_scratch_bound(schedule: str) -> None:
    """An interaction keeps the slots it takes on the thread's stack when the
    book's widest definition fits there, and in the global scratch when it
    does not: a @main of 63 and of 65 nodes gives the CPU's result and count
    under every schedule."""
    widths = []
    for pairs in (31, 32, 33):
        text = _wide(pairs)
        book = load_book(text)
        widths.append(int(np.diff(book.node_start).max()))
        assert _run(text, "cuda", schedule=schedule) == _run(text), (pairs, schedule)
    assert min(widths) <= SCRATCH_LOCAL < max(widths), widths


@pytest.mark.skipif(not cuda.available()[0], reason="no CUDA GPU (CuPy)")
@pytest.mark.parametrize("schedule", cuda.SCHEDULES)
def test_a_definition_of_more_pairs_than_a_bag_holds(schedule: str) -> None:
    """A @main of 256 pairs leaves no room beside it in the local kernel's
    bags: the round's end expands it, and that call is counted (it was not:
    512 interactions against the CPU's 513). Past a bag (more than 256 pairs;
    under fork, 254 or more) the schedules that keep a thread's pairs in its
    bag stop with a clean error."""
    for pairs in (256, 300):
        text = _wide(pairs)
        if schedule == "fork" or (schedule == "local" and pairs > cuda.BAG):
            book = load_book(text)
            with pytest.raises(HvmOutOfMemoryError, match=f"a thread's {cuda.BAG} pending"):
                cuda.normalize_cuda(book, nodes=1 << 20, vars_=1 << 20, schedule=schedule)
        else:
            assert _run(text, "cuda", schedule=schedule) == _run(text), (pairs, schedule)
    assert _run(_wide(256))[1] == 2 * 256 + 1


@pytest.mark.skipif(not cuda.available()[0], reason="no CUDA GPU (CuPy)")
@pytest.mark.parametrize("schedule", cuda.SCHEDULES)
def test_an_unsafe_clone_is_refused_on_cuda(schedule: str) -> None:
    book = load_book((PROGRAMS / "safety-check.hvm").read_text())
    with pytest.raises(HvmUnsafeCloneError, match="non-affine global reference: @main__C0"):
        cuda.normalize_cuda(book, nodes=1 << 20, vars_=1 << 20, schedule=schedule)


def test_an_unknown_cuda_schedule_is_refused_before_the_gpu_is_touched() -> None:
    book = load_book((PROGRAMS / "tuples.hvm").read_text())
    with pytest.raises(
        ValueError, match="unknown schedule 'eager'; there are: spread, chains, local"
    ):
        cuda.normalize_cuda(book, schedule="eager")


def test_a_gpu_with_too_little_shared_memory_is_refused_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CuPy's runtime as a GPU of 48 KiB of shared memory a block shows it."""
    props = {"name": b"Tesla P100", "sharedMemPerBlockOptin": 49_152}
    runtime = SimpleNamespace(
        getDeviceCount=lambda: 1, getDevice=lambda: 0, getDeviceProperties=lambda _: props
    )
    fake = SimpleNamespace(cuda=SimpleNamespace(runtime=runtime))
    monkeypatch.setattr(cuda_base, "_cupy", lambda: fake)
    monkeypatch.setattr(cuda, "_cupy", lambda: fake)
    monkeypatch.setattr(cuda_base, "_GEOMETRY", {})
    ok, why = cuda.available()
    assert not ok
    assert (
        why == "the GPU gives a block 49152 bytes of shared memory; the CUDA evaluator needs 98304"
    )
    book = load_book((PROGRAMS / "tuples.hvm").read_text())
    with pytest.raises(HvmBackendUnavailableError, match="--backend cuda cannot run here: the GPU"):
        normalize_on(book, backend="cuda")


@pytest.mark.skipif(not cuda.available()[0], reason="no CUDA GPU (CuPy)")
def test_cuda_numbers_match_the_reference() -> None:
    """u24, i24, casts, partials and f24 arithmetic bit for bit; a NaN may be
    another NaN (its payload is the float unit's), and where an operand or the
    result is subnormal the GPU may flush it to zero (seen on an H200 even
    compiled with ``--ftz=false``)."""
    from focusflow.rewrite import numbers

    rng = np.random.default_rng(7)
    a = ((rng.integers(0, 1 << 24, 20_000) << 5) | rng.integers(0, 0x17, 20_000)).astype(np.uint32)
    b = ((rng.integers(0, 1 << 24, 20_000) << 5) | rng.integers(0, 4, 20_000)).astype(np.uint32)
    got = cuda.operate(a, b)
    for x, y, g in zip(a.tolist(), b.tolist(), got.tolist(), strict=True):
        want = int(numbers.operate(x, y))
        # atan2, log, pow, sin and tan come from the platform's math library
        library = (numbers.OP_AND, numbers.OP_OR, numbers.OP_XOR, numbers.OP_SHL, numbers.OP_SHR)
        exact = (x & 31) not in library or (y & 31) != numbers.TY_F24
        if g != want and exact:
            gf, wf = numbers.get_f24(g), numbers.get_f24(want)
            assert (g & 31) == (want & 31) == numbers.TY_F24, (hex(x), hex(y))
            tiny = min(abs(float(numbers.get_f24(x))), abs(float(numbers.get_f24(y))))
            subnormal = abs(float(wf)) < 1.2e-38 or 0 < tiny < 1.2e-38
            assert (gf != gf and wf != wf) or subnormal, (hex(x), hex(y))
