"""The CUDA evaluator's ``auto`` schedule beside the schedules it chooses from.

``auto`` starts a run under ``fork`` (HVM2's own schedule) and hands the net
over to rounds of ``spread`` and ``local`` once ``fork`` runs it slowly
(``cuda_fork.RateWatch``). This script runs each program under ``auto``,
under ``fork`` alone, and under the rounds alone (``auto`` without its start
under ``fork``: how ``auto`` ran before), side by side in one process, and
prints the medians and the ratios: what the start under ``fork`` wins on
programs that fork wider than the GPU, and what it costs on those that do
not. Every run's result and interaction count is checked against
bench/hvm.py's expected ones. Each cell is warmed up once, then run
``--repeat`` times in passes over all cells; a cell whose run took longer
than ``--slow`` seconds is not run again.

Run from the repository root, on a machine with CuPy and a GPU::

    python bench/hvm_schedules.py
    python bench/hvm_schedules.py --programs sort_bitonic:19,sort_radix:16 --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hvm
from focusflow.rewrite import cuda
from focusflow.rewrite.cpu import Normalized
from focusflow.rewrite.limits import UNLIMITED
from focusflow.rewrite.parse import Book, load_book
from focusflow.rewrite.show import readback

HEAP = cuda.DEFAULT_NODES
DEFAULT_PROGRAMS = (
    "stress:8,stress:12,sum_rec:20,sum_tree:20,sort_bitonic:10,sort_bitonic:12,"
    "sort_bitonic:14,sort_bitonic:16,sort_bitonic:18,sort_bitonic:19,sort_radix:12,"
    "sort_radix:14,sort_radix:16,sort_radix:19"
)
RUNS = ("auto", "fork", "rounds")


def run(book: Book, how: str) -> Normalized:
    """One run: ``auto`` and ``fork`` as ``hvm run --schedule`` runs them;
    ``rounds``: ``auto``'s rounds from the boot redex (the driver's own
    function, as ``normalize_cuda`` calls it after a failed fork run)."""
    if how != "rounds":
        return cuda.normalize_cuda(book, HEAP, HEAP, schedule=how)
    policy, layout = cuda._policy("auto")
    return cuda._rounds(book, HEAP, HEAP, None, policy, layout, UNLIMITED)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--programs", default=DEFAULT_PROGRAMS, help="name:size,... (bench/hvm.py's)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per cell (median)")
    p.add_argument("--slow", type=float, default=2.0, help="seconds past which a cell runs once")
    args = p.parse_args(argv)
    ok, device = cuda.available()
    if not ok:
        print(f"no GPU: {device}")
        return 1
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"# bench/hvm_schedules.py on {device}, {when}, --repeat {args.repeat}")
    cells: dict[tuple[str, str], list[float]] = {}
    books: dict[str, tuple[Book, str, int]] = {}
    for spec in args.programs.split(","):
        name, size = spec.split(":")
        program = next(pr for pr in hvm.PROGRAMS if pr.name == name)
        result, interactions = program.expect(int(size))
        books[spec] = (load_book(program.text(int(size))), result, interactions)
    failed = 0
    for attempt in range(args.repeat + 1):  # the first pass is the warm-up
        for spec, (book, result, interactions) in books.items():
            for how in RUNS:
                times = cells.setdefault((spec, how), [])
                if times and times[-1] > args.slow:
                    continue
                net = run(book, how)
                got = readback(net.node, net.vars, net.root, book.names)
                if (got, net.interactions) != (result, interactions):
                    print(f"WRONG {spec} {how}: {got} / {net.interactions:,}, "
                          f"want {result} / {interactions:,}")  # fmt: skip
                    failed += 1
                if attempt > 0 or net.seconds > args.slow:
                    times.append(net.seconds)
    print("\n| program | interactions | auto s | fork s | rounds s | rounds / auto | "
          "fork / auto | auto MIPS |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for spec, (_book, _result, interactions) in books.items():
        med = {how: statistics.median(cells[spec, how]) for how in RUNS}
        auto = med["auto"]
        print(f"| {spec} | {interactions:,} | {auto:.4f} | {med['fork']:.4f} | "
              f"{med['rounds']:.4f} | {med['rounds'] / auto:.2f} | {med['fork'] / auto:.2f} | "
              f"{interactions / auto / 1e6:,.0f} |")  # fmt: skip
    runs = {how: [len(cells[spec, how]) for spec in books] for how in RUNS}
    print(f"\ntimed runs per cell: {runs}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
