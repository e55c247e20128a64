"""The ``fork`` schedule's host side (``cuda_fork``): HVM2's choice of each
launch's mode, and the shape of a run's grid. Its GPU runs (the same result
and count as the CPU's, a full heap's error) are in test_backends.py with the
other schedules'; the one-thread and partial-block runs are here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from focusflow.rewrite import cuda, cuda_fork
from focusflow.rewrite.cpu import normalize
from focusflow.rewrite.cuda_base import (
    GEOMETRIES,
    LARGE,
    SMALL,
    Geometry,
    device_geometry,
    geometry_for,
)
from focusflow.rewrite.cuda_fork import GROW, SEED, WORK, Modes
from focusflow.rewrite.errors import HvmBackendUnavailableError
from focusflow.rewrite.parse import load_book
from focusflow.rewrite.show import normalize_names, readback

PROGRAMS = Path(__file__).parent / "programs"


def _walk(modes: Modes, worked: list[bool], ready: bool = False) -> list[tuple[int, bool, bool]]:
    """The mode, down and lower flags of each launch, the first included."""
    seen = [(modes.mode, modes.down, modes.lower)]
    for w in worked:
        modes.next(w, ready)
        seen.append((modes.mode, modes.down, modes.lower))
    return seen


def test_modes_go_up_to_work_and_stay_there_while_it_works() -> None:
    assert _walk(Modes(), [True] * 4) == [
        (SEED, False, False),
        (GROW, False, False),
        (WORK, False, False),
        (WORK, False, False),
        (WORK, False, False),
    ]


def test_an_idle_work_launch_lowers_the_marks_once_and_seeds_down() -> None:
    modes = Modes(mode=WORK)
    assert _walk(modes, [False, True, True, False, True, True]) == [
        (WORK, False, False),
        (SEED, True, True),  # every mark one lower, the pairs there spread
        (SEED, True, False),  # down: SEED again while it works, marks kept
        (SEED, True, False),
        (GROW, False, False),  # a SEED launch that did nothing goes up again
        (WORK, False, False),
        (WORK, False, False),
    ]


def test_idle_launches_peel_one_mark_each_cycle() -> None:
    """Every thread at its mark: SEED (lower), GROW, then SEED (lower) again,
    two launches a level, which bounds how long a run may idle."""
    seen = _walk(Modes(mode=WORK), [False] * 6)
    assert [s[0] for s in seen] == [WORK, SEED, GROW, SEED, GROW, SEED, GROW]
    assert sum(s[2] for s in seen) == 3
    assert cuda_fork.MOST_IDLE >= 2 * cuda.BAG


def test_an_idle_spreading_launch_with_work_ready_goes_to_work() -> None:
    """Where every thread has work, nobody has an idle partner to hand work
    to, and SEED and GROW launches do nothing: HVM2's rule (lower the marks,
    seed again) would never reach WORK. A down SEED still goes up to GROW."""
    assert _walk(Modes(), [False, True], ready=True) == [
        (SEED, False, False),
        (WORK, False, False),
        (WORK, False, False),
    ]
    assert _walk(Modes(mode=GROW), [False], ready=True)[-1] == (WORK, False, False)
    assert _walk(Modes(mode=SEED, down=True), [False], ready=True)[-1] == (GROW, False, False)
    assert _walk(Modes(mode=WORK), [False], ready=True)[-1] == (SEED, True, True)


def _head(short: int = 0, blocked: int = 0) -> np.ndarray:
    head = np.zeros(cuda_fork.CTL_WORDS, dtype=np.uint32)
    head[cuda_fork.SHORT], head[cuda_fork.BLOCKED] = short, blocked
    return head


def test_a_run_that_idles_too_long_is_stuck_and_one_that_works_starts_over() -> None:
    stalls = cuda_fork._Stalls()
    for _ in range(cuda_fork.MOST_IDLE):
        assert stalls.after(0, _head(), SEED) == 0
    assert stalls.after(5, _head(), WORK) == 0  # an interaction: the count starts over
    for _ in range(cuda_fork.MOST_IDLE):
        assert stalls.after(0, _head(), GROW) == 0
    assert stalls.after(0, _head(), GROW) == cuda_fork.ST_STUCK


def test_an_idle_work_launch_with_a_blocked_thread_is_stuck_at_once() -> None:
    assert cuda_fork._Stalls().after(0, _head(blocked=1), WORK) == cuda_fork.ST_STUCK
    assert cuda_fork._Stalls().after(0, _head(blocked=1), SEED) == 0  # marks may yet go down
    assert cuda_fork._Stalls().after(3, _head(blocked=1), WORK) == 0


def test_regions_found_full_in_a_row_stop_with_their_status() -> None:
    """A thread that found its region full sets the status (1: nodes, 2:
    variables); the host moves the regions and tries again, up to a bound."""
    stalls = cuda_fork._Stalls()
    for _ in range(cuda_fork.MOST_SHORT):
        assert stalls.after(0, _head(short=2), WORK) == 0
    assert stalls.after(0, _head(short=2), WORK) == 2


@pytest.mark.parametrize(
    ("geo", "count", "shape"),
    [
        (SMALL, 1, (1, 1)),
        (SMALL, 100, (1, 100)),
        (SMALL, 128, (1, 128)),
        (SMALL, 1000, (4, 512)),
        (SMALL, 1 << 20, (128, 1 << 14)),
        (LARGE, 200, (1, 200)),
        (LARGE, 256, (1, 256)),
        (LARGE, 1000, (2, 512)),
        (LARGE, 1 << 20, (128, 1 << 15)),
    ],
)
def test_the_grid_is_a_power_of_two_of_blocks_or_one_partial_block(
    geo: Geometry, count: int, shape: tuple[int, int]
) -> None:
    assert cuda_fork._shape(count, geo) == shape


@pytest.mark.parametrize(
    ("limit", "geo"),
    [
        (232_448, LARGE),  # H100, H200: 227 KiB
        (LARGE.shared_bytes, LARGE),
        (LARGE.shared_bytes - 1, SMALL),
        (166_912, SMALL),  # A100: 163 KiB
        (101_376, SMALL),  # RTX 4090, L4: 99 KiB
        (SMALL.shared_bytes, SMALL),
    ],
)
def test_a_device_gets_the_largest_geometry_its_shared_memory_holds(
    limit: int, geo: Geometry
) -> None:
    assert geometry_for(limit) == geo


def test_a_device_with_too_little_shared_memory_cannot_run_the_evaluator() -> None:
    with pytest.raises(HvmBackendUnavailableError, match="49152 bytes of shared memory"):
        geometry_for(49_152)  # Pascal


def test_each_geometry_gives_a_thread_64_slots_and_a_grid_the_transpose_mirrors() -> None:
    """Each geometry gives a thread 64 shared slots, and its fork grid's tree
    of blocks is no deeper than its block's tree of threads (the SEED
    launch's transpose)."""
    for geo in GEOMETRIES:
        assert geo.slots // geo.block == 64
        assert geo.fork_blocks <= geo.block
        assert geo.block & (geo.block - 1) == 0 and geo.fork_blocks & (geo.fork_blocks - 1) == 0


@pytest.mark.skipif(not cuda.available()[0], reason="no CUDA GPU (CuPy)")
@pytest.mark.parametrize("threads", [1, 5, 300])
def test_one_thread_and_partial_blocks_give_the_cpus_result(threads: int) -> None:
    book = load_book((PROGRAMS / "sort_bitonic.hvm").read_text())
    one = normalize(book, nodes=1 << 24, vars_=1 << 24)
    gpu = cuda.normalize_cuda(book, nodes=1 << 24, vars_=1 << 24, threads=threads,
                              schedule="fork")  # fmt: skip
    assert gpu.threads == cuda_fork._shape(threads, device_geometry())[1]
    assert gpu.interactions == one.interactions
    assert normalize_names(readback(gpu.node, gpu.vars, gpu.root, book.names)) == normalize_names(
        readback(one.node, one.vars, one.root, book.names)
    )


@pytest.mark.skipif(not cuda.available()[0], reason="no CUDA GPU (CuPy)")
def test_the_trace_has_every_launch_and_every_interaction() -> None:
    book = load_book((PROGRAMS / "sort_bitonic.hvm").read_text())
    trace: list[tuple[int, bool, int, int, float]] = []
    net = cuda_fork.normalize_fork(book, 1 << 24, 1 << 24, trace=trace)
    assert len(trace) == net.rounds
    assert sum(did for _, _, did, _, _ in trace) == net.interactions == 9_480_165
    modes = [mode for mode, _, _, _, _ in trace]
    assert set(modes) == {SEED, GROW, WORK} and modes[0] == SEED
    assert [left for _, _, _, left, _ in trace][-1] == 0
    assert all(left > 0 for _, _, _, left, _ in trace[:-1])
    assert all(seconds >= 0 for *_, seconds in trace)
