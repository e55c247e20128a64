"""The ``auto`` schedule's start under ``fork`` and its handoff to the rounds
of ``spread`` (``cuda_fork.RateWatch``, ``cuda_fork.Handoff``,
``cuda._rounds``): when a slow fork run hands its net over, and that the net
handed over after any launch reduces to the CPU's result and count."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from focusflow.rewrite import cuda, cuda_fork
from focusflow.rewrite.cpu import normalize
from focusflow.rewrite.cuda_fork import Handoff, RateWatch
from focusflow.rewrite.limits import UNLIMITED
from focusflow.rewrite.parse import Book, load_book
from focusflow.rewrite.show import normalize_names, readback

PROGRAMS = Path(__file__).parent / "programs"
HEAP = 1 << 24
GPU = pytest.mark.skipif(not cuda.available()[0], reason="no CUDA GPU (CuPy)")


def _first_slow(watch: RateWatch, launches: list[tuple[float, int]]) -> float | None:
    """The time of the first launch end (seconds, interactions done in it)
    after which ``watch`` hands over; None if it never does."""
    seconds, done = 0.0, 0
    for took, did in launches:
        seconds += took
        done += did
        if watch.slow(seconds, done):
            return round(seconds, 6)
    return None


def test_a_fast_run_keeps_its_schedule() -> None:
    watch = RateWatch(((0.005, 100.0), (0.010, 1000.0)))
    assert _first_slow(watch, [(0.0005, 2_000_000)] * 400) is None  # 4,000 M a second


def test_a_run_that_hardly_moves_hands_over_once_the_short_window_has_passed() -> None:
    watch = RateWatch(((0.005, 100.0), (0.010, 1000.0)))
    assert _first_slow(watch, [(0.001, 10_000)] * 100) == 0.005  # 10 M a second


def test_a_middling_run_hands_over_after_the_long_window() -> None:
    watch = RateWatch(((0.005, 100.0), (0.010, 1000.0)))
    assert _first_slow(watch, [(0.001, 500_000)] * 100) == 0.01  # 500 M a second


def test_an_idle_stretch_shorter_than_a_window_keeps_a_fast_run() -> None:
    """A join's lowering of the marks: idle launches between fast ones."""
    watch = RateWatch(((0.005, 100.0), (0.010, 1000.0)))
    busy, idle = [(0.001, 5_000_000)] * 20, [(0.0001, 0)] * 40  # 4 ms idle
    assert _first_slow(watch, busy + idle + busy) is None
    watch = RateWatch(((0.005, 100.0), (0.010, 1000.0)))
    # 12 ms idle: handed over 5 ms in, give or take a launch (sums of 0.1 ms)
    assert _first_slow(watch, busy + idle * 3 + busy) == pytest.approx(0.025, abs=1.5e-4)


def test_the_rates_scale_with_the_gpus_multiprocessors() -> None:
    h200 = RateWatch.for_device(132).windows
    assert h200 == tuple((w, mips * 132) for w, mips in cuda_fork.HANDOFF_WINDOWS)
    assert [round(mips) for _, mips in h200] == [99, 990]
    assert [mips for _, mips in RateWatch.for_device(66).windows] == [mips / 2 for _, mips in h200]


@dataclass
class _After:
    """A watch that hands over after ``launches`` launches."""

    launches: int
    seen: int = 0

    def slow(self, seconds: float, interactions: int) -> bool:
        self.seen += 1
        return self.seen >= self.launches


def _same_as_cpu(book: Book, net: Any) -> None:
    one = normalize(book, nodes=HEAP, vars_=HEAP)
    assert net.interactions == one.interactions
    assert normalize_names(readback(net.node, net.vars, net.root, book.names)) == normalize_names(
        readback(one.node, one.vars, one.root, book.names)
    )


@GPU
@pytest.mark.parametrize("name", ["sort_bitonic.hvm", "sum_rec.hvm", "tuples.hvm", "list.hvm"])
@pytest.mark.parametrize("launches", [1, 2, 3, 7, 20, 60])
def test_a_net_handed_over_after_any_launch_gives_the_cpus_result(name: str, launches: int) -> None:
    """The heap after a fork launch holds global ports only and the pairs sit
    in the threads' bags, marked or not: the rounds take them as they are."""
    book = load_book((PROGRAMS / name).read_text())
    run = cuda_fork.fork_until(book, HEAP, HEAP, watch=_After(launches))
    if isinstance(run, Handoff):
        assert run.rounds == launches and int(run.counts.sum()) > 0
        policy, layout = cuda._policy("auto", run.geometry)
        net = cuda._rounds(book, HEAP, HEAP, None, policy, layout, UNLIMITED, handoff=run)
        assert net.rounds > launches
    else:
        net = run  # the run ended first
    _same_as_cpu(book, net)


def _spy_rounds(monkeypatch: pytest.MonkeyPatch) -> list[Handoff | None]:
    handoffs: list[Handoff | None] = []
    rounds = cuda._rounds

    def spy(*args: Any, **kwargs: Any) -> Any:
        handoffs.append(kwargs.get("handoff"))  # normalize_cuda names it
        return rounds(*args, **kwargs)

    monkeypatch.setattr(cuda, "_rounds", spy)
    return handoffs


@GPU
def test_auto_hands_over_a_program_that_forks_narrower_than_the_gpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bitonic sort of 2^12 numbers: 2.8 s under fork on an H200, where its
    rate stays near 16 M interactions a second; auto hands it over."""
    handoffs = _spy_rounds(monkeypatch)
    book = load_book((PROGRAMS / "sort_bitonic.hvm").read_text())
    net = cuda.normalize_cuda(book, nodes=HEAP, vars_=HEAP)
    assert len(handoffs) == 1 and handoffs[0] is not None
    assert 0 < handoffs[0].interactions < net.interactions
    _same_as_cpu(book, net)


@GPU
def test_auto_starts_again_in_rounds_where_fork_cannot_run_the_net(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A definition of 300 pairs overfills a fork thread's bag: the rounds
    run the program from its start."""
    handoffs = _spy_rounds(monkeypatch)
    pairs = 300
    tup = "".join(f"(x{i} " for i in range(pairs - 1)) + f"x{pairs - 1}" + ")" * (pairs - 1)
    redexes = " ".join(f"& @f ~ ({i + 1} x{i})" for i in range(pairs))
    book = load_book(f"@f = (a a)\n@main = {tup} {redexes}\n")
    net = cuda.normalize_cuda(book, nodes=1 << 20, vars_=1 << 20)
    assert handoffs == [None]
    _same_as_cpu(book, net)
