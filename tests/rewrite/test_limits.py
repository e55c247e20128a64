"""A run's interaction and time limits, on every evaluator: a run that has
not reached normal form by then stops with a precise error, and one that
reaches it within them gives the same result and count as without them."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from focusflow.core.errors import InvalidParameterError
from focusflow.rewrite import cuda, webgpu
from focusflow.rewrite.cpu import normalize
from focusflow.rewrite.errors import HvmInteractionLimitError, HvmTimeoutError
from focusflow.rewrite.io_driver import IoDriver
from focusflow.rewrite.limits import Limits
from focusflow.rewrite.parse import load_book
from focusflow.rewrite.run import run_text
from tests.cli.helpers import assert_user_error, run_cli
from tests.rewrite.test_cli import LOOP
from tests.rewrite.test_io import call, string

PROGRAMS = Path(__file__).parent / "programs"
HEAP = 1 << 16
#: tuples.hvm's interactions (HVM2's count), all in one slice of the kernel.
TUPLES = 48_144

needs_cuda = pytest.mark.skipif(not cuda.available()[0], reason="no CUDA GPU (CuPy)")
needs_wgpu = pytest.mark.skipif(not webgpu.available()[0], reason="no WebGPU adapter")


@pytest.mark.parametrize("interactions", [0, -5])
def test_a_limit_below_one_interaction_is_refused(interactions: int) -> None:
    with pytest.raises(InvalidParameterError, match="at least 1"):
        Limits(interactions=interactions)


@pytest.mark.parametrize("seconds", [0.0, -1.0, float("nan")])
def test_a_time_limit_not_above_zero_is_refused(seconds: float) -> None:
    with pytest.raises(InvalidParameterError, match="above 0"):
        Limits(seconds=seconds)


def test_one_thread_stops_at_the_limit_exactly() -> None:
    """One thread hands the kernel what is left of the limit as its budget,
    so the count it stops at is the limit, also past a slice's size."""
    for most in (1, 1000, (1 << 22) + 7):
        with pytest.raises(HvmInteractionLimitError, match=rf"within {most} .*after {most}\)"):
            normalize(load_book(LOOP), HEAP, HEAP, limits=Limits(interactions=most))


def test_a_run_that_ends_at_its_limit_is_not_stopped() -> None:
    book = load_book((PROGRAMS / "tuples.hvm").read_text())
    free = normalize(book, HEAP, HEAP)
    assert free.interactions == TUPLES
    exact = normalize(book, HEAP, HEAP, limits=Limits(interactions=TUPLES, seconds=60.0))
    assert exact.interactions == TUPLES
    assert (exact.node == free.node).all() and (exact.vars == free.vars).all()
    with pytest.raises(HvmInteractionLimitError, match=rf"after {TUPLES - 1}\)"):
        normalize(book, HEAP, HEAP, limits=Limits(interactions=TUPLES - 1))


def test_threads_stop_within_a_slice_past_the_limit() -> None:
    """With threads the limit is checked between slices of rounds: the run
    stops, past the limit by less than a slice (4 M interactions a thread)."""
    most = 1_000_000
    with pytest.raises(HvmInteractionLimitError) as caught:
        normalize(load_book(LOOP), HEAP, HEAP, threads=2, limits=Limits(interactions=most))
    stopped = int(str(caught.value).split("after ")[1].rstrip(")"))
    assert most <= stopped < most + 2 * (1 << 22)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_run_that_never_ends_stops_at_its_time_limit(threads: int) -> None:
    normalize(load_book("@main = 1"), HEAP, HEAP, threads=threads)  # the kernel loaded
    began = time.perf_counter()
    with pytest.raises(HvmTimeoutError, match=r"within 0\.3 s \(stopped after"):
        normalize(load_book(LOOP), HEAP, HEAP, threads=threads, limits=Limits(seconds=0.3))
    assert time.perf_counter() - began < 20  # a bound on a hang, not a timing


def test_io_runs_share_one_limit() -> None:
    """Under the IO driver the net runs once per call; the limit is over all
    of them, so a limit one short of the whole stops it though each run
    alone stays under it."""
    program = call("WRITE", f"(1 {string('hi')})")

    def run(limits: Limits) -> int:
        out = IoDriver(stdin=io.BytesIO(), stdout=io.BytesIO(), stderr=io.BytesIO())
        return run_text(program, HEAP, HEAP, io=out, limits=limits).interactions

    whole = run(Limits())
    assert run(Limits(interactions=whole)) == whole
    with pytest.raises(HvmInteractionLimitError, match=rf"after {whole - 1}\)"):
        run(Limits(interactions=whole - 1))


def test_cli_limits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    program = tmp_path / "loop.hvm"
    program.write_text(LOOP)
    out = run_cli(capsys, "hvm", "run", program, "--max-interactions", "5000")
    assert_user_error(out, "hvm_interaction_limit")
    assert "within 5000 interactions (stopped after 5000)" in out.err
    out = run_cli(capsys, "hvm", "run", program, "--timeout", "0.2")
    assert_user_error(out, "hvm_timeout")
    for flag, value in (("--max-interactions", "-1"), ("--timeout", "-1"), ("--timeout", "nan")):
        assert_user_error(run_cli(capsys, "hvm", "run", program, flag, value), "invalid_parameter")
    tuples = PROGRAMS / "tuples.hvm"
    out = run_cli(capsys, "hvm", "run", tuples, "--json", "--max-interactions", str(TUPLES))
    assert out.code == 0 and out.json()["interactions"] == TUPLES, out


@needs_wgpu
def test_webgpu_stops_at_its_limits() -> None:
    book = load_book(LOOP)
    with pytest.raises(HvmInteractionLimitError):
        webgpu.normalize_webgpu(book, HEAP, HEAP, invocations=64, limits=Limits(interactions=500))
    with pytest.raises(HvmTimeoutError):
        webgpu.normalize_webgpu(book, HEAP, HEAP, invocations=64, limits=Limits(seconds=0.3))
    tuples = load_book((PROGRAMS / "tuples.hvm").read_text())
    limits = Limits(interactions=TUPLES)
    net = webgpu.normalize_webgpu(tuples, HEAP, HEAP, invocations=1, limits=limits)
    assert net.interactions == TUPLES


@needs_cuda
@pytest.mark.parametrize("schedule", cuda.SCHEDULES)
def test_cuda_stops_at_its_limits(schedule: str) -> None:
    book = load_book(LOOP)
    heap = 1 << 20
    with pytest.raises(HvmInteractionLimitError):
        cuda.normalize_cuda(book, heap, heap, schedule=schedule, limits=Limits(interactions=500))
    with pytest.raises(HvmTimeoutError):
        cuda.normalize_cuda(book, heap, heap, schedule=schedule, limits=Limits(seconds=0.3))
    tuples = load_book((PROGRAMS / "tuples.hvm").read_text())
    net = cuda.normalize_cuda(tuples, heap, heap, schedule=schedule, limits=Limits(TUPLES))
    assert net.interactions == TUPLES
