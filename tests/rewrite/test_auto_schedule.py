"""The ``auto`` schedule's choice of kernel a round (``cuda._Auto``), on the
host: which rounds get the local kernel, with what budget, and when a run
keeps to ``spread``. The GPU runs of every schedule are in test_backends.py."""

from __future__ import annotations

from focusflow.rewrite import cuda
from focusflow.rewrite.cuda import (
    AUTO_LOCAL_PAIRS,
    AUTO_STEADY_ROUNDS,
    AUTO_TRIAL_BUDGET,
    AUTO_TRIALS,
    LOCAL_BUDGET,
)
from focusflow.rewrite.cuda_base import SMALL

LOCAL = cuda._Kernel(None, SMALL.block, SMALL.slots, cuda.LOCAL_MAX_THREADS, 1, 1024)
SPREAD = cuda._Kernel(None, cuda.BLOCK, SMALL.slots, cuda.MAX_THREADS, 0, 0)


def _run(widths: list[int], local_rate: float, spread_rate: float = 1e8) -> list[str]:
    """Each round's kernel and budget ("S" or "L" and the budget) for rounds
    starting with ``widths`` pairs, each kernel doing its rate of interactions
    a second."""
    auto = cuda._Auto(LOCAL, SPREAD)
    picked = []
    for w in widths:
        kernel, budget = auto.pick(w, w)
        picked.append(("L" if kernel is LOCAL else "S") + str(budget))
        rate = local_rate if kernel is LOCAL else spread_rate
        auto.record(w, int(rate * 1e-4), 1e-4)
    return picked


def test_chains_that_keep_the_width_move_to_the_local_kernel() -> None:
    """k chains waiting a launch a step start every round with k pairs: after
    AUTO_STEADY_ROUNDS such rounds one short trial, and the local kernel
    while the width stays within a factor of 2 of k."""
    grow = [1 << i for i in range(11)]  # 1 .. 1024
    widths = grow + [2048] * (AUTO_STEADY_ROUNDS + 5) + [1024, 300, 300]
    picked = _run(widths, local_rate=1e9)
    trial = len(grow) + AUTO_STEADY_ROUNDS
    assert all(p.startswith("S") for p in picked[:trial])
    assert picked[trial] == f"L{AUTO_TRIAL_BUDGET}"
    assert picked[trial + 1 : trial + 6] == [f"L{LOCAL_BUDGET}"] * 5
    assert picked[-3] == f"L{LOCAL_BUDGET}"  # 1024: still within a factor of 2
    assert picked[-2].startswith("S") and picked[-1].startswith("S")  # 300: back


def test_a_moving_width_is_never_tried() -> None:
    """A bitonic sort's narrow phases alternate between two widths."""
    widths = [8192, 8192, 16384] * 40 + [4097, 8192, 8193, 8193] * 30
    assert all(p.startswith("S") for p in _run(widths, local_rate=1e12))


def test_a_lost_trial_keeps_the_run_on_spread() -> None:
    widths = [2048] * (AUTO_STEADY_ROUNDS + 3) + [512] * (3 * AUTO_STEADY_ROUNDS)
    picked = _run(widths, local_rate=1e6)
    trials = [p for p in picked if p.startswith("L")]
    assert trials == [f"L{AUTO_TRIAL_BUDGET}"] * AUTO_TRIALS
    assert picked[AUTO_STEADY_ROUNDS] == f"L{AUTO_TRIAL_BUDGET}"


def test_wider_than_the_local_kernel_takes_is_never_tried() -> None:
    widths = [AUTO_LOCAL_PAIRS + 1] * (4 * AUTO_STEADY_ROUNDS)
    assert all(p.startswith("S") for p in _run(widths, local_rate=1e12))


def test_a_local_run_goes_back_to_spread_when_the_net_widens() -> None:
    widths = [64] * (AUTO_STEADY_ROUNDS + 3) + [AUTO_LOCAL_PAIRS * 2]
    picked = _run(widths, local_rate=1e12)
    assert picked[-2] == f"L{LOCAL_BUDGET}" and picked[-1].startswith("S")


def test_the_other_schedules_keep_their_kernel_and_budget() -> None:
    fixed = cuda._Fixed(SPREAD)
    assert fixed.kernels() == (SPREAD,)
    assert cuda._Auto(LOCAL, SPREAD).kernels() == (LOCAL, SPREAD)  # each loaded before the clock
    assert fixed.pick(10, 10) == (SPREAD, SPREAD.budget_for(10))
    assert fixed.pick(1 << 20, cuda.MAX_THREADS) == (SPREAD, SPREAD.budget_for(cuda.MAX_THREADS))
