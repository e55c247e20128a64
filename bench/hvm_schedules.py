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

``--geometry each`` runs every cell under each shape of the shared-memory
kernels the device holds (``cuda_base.GEOMETRIES``: blocks of 128 threads
with 96 KiB, or of 256 with 192 KiB), in the same passes, and prints a
table for each and their ratios; the default runs the one the device gets.

Run from the repository root, on a machine with CuPy and a GPU::

    python bench/hvm_schedules.py
    python bench/hvm_schedules.py --programs sort_bitonic:19,sort_radix:16 --repeat 5
    python bench/hvm_schedules.py --geometry each
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hvm
from focusflow.rewrite import cuda
from focusflow.rewrite.cpu import Normalized
from focusflow.rewrite.cuda_base import GEOMETRIES, LARGE, SMALL, Geometry, device_geometry
from focusflow.rewrite.errors import HvmOutOfMemoryError
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


NAMED = {"small": SMALL, "large": LARGE}


def run(book: Book, how: str, geo: Geometry) -> Normalized:
    """One run: ``auto`` and ``fork`` as ``hvm run --schedule`` runs them;
    ``rounds``: ``auto``'s rounds from the boot redex (the driver's own
    function, as ``normalize_cuda`` calls it after a failed fork run)."""
    if how != "rounds":
        return cuda.normalize_cuda(book, HEAP, HEAP, schedule=how, geometry=geo)
    policy, layout = cuda._policy("auto", geo)
    return cuda._rounds(book, HEAP, HEAP, None, policy, layout, UNLIMITED)


def geometries(choice: str) -> list[Geometry]:
    """The geometries ``--geometry`` names: the device's, one by name, or
    each that the device holds (largest first)."""
    picked = device_geometry()
    if choice == "device":
        return [picked]
    if choice == "each":
        return [g for g in GEOMETRIES if g.shared_bytes <= picked.shared_bytes]
    return [NAMED[choice]]


def label(geo: Geometry) -> str:
    return f"{geo.block} threads, {geo.slots} slots ({geo.shared_bytes // 1024} KiB)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--programs", default=DEFAULT_PROGRAMS, help="name:size,... (bench/hvm.py's)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per cell (median)")
    p.add_argument("--slow", type=float, default=2.0, help="seconds past which a cell runs once")
    p.add_argument("--geometry", choices=["device", "each", *NAMED], default="device",
                   help="the shared-memory kernels' shape (default: the device's)")  # fmt: skip
    args = p.parse_args(argv)
    ok, device = cuda.available()
    if not ok:
        print(f"no GPU: {device}")
        return 1
    shapes = geometries(args.geometry)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"# bench/hvm_schedules.py on {device}, {when}, --repeat {args.repeat}, "
          f"--geometry {args.geometry}")  # fmt: skip
    cells: dict[tuple[str, Geometry, str], list[float]] = {}
    books: dict[str, tuple[Book, str, int]] = {}
    for spec in args.programs.split(","):
        name, size = spec.split(":")
        program = next(pr for pr in hvm.PROGRAMS if pr.name == name)
        result, interactions = program.expect(int(size))
        books[spec] = (load_book(program.text(int(size))), result, interactions)
    failed = 0
    for attempt in range(args.repeat + 1):  # the first pass is the warm-up
        for spec, (book, result, interactions) in books.items():
            for geo in shapes:
                for how in RUNS:
                    times = cells.setdefault((spec, geo, how), [])
                    if times and times[-1] > args.slow:
                        continue
                    try:
                        net = run(book, how, geo)
                    except HvmOutOfMemoryError as exc:
                        print(f"OUT OF MEMORY {spec} {how} {label(geo)}: {exc}")
                        failed += 1
                        times.append(math.inf)
                        continue
                    got = readback(net.node, net.vars, net.root, book.names)
                    if (got, net.interactions) != (result, interactions):
                        print(f"WRONG {spec} {how} {label(geo)}: {got} / {net.interactions:,}, "
                              f"want {result} / {interactions:,}")  # fmt: skip
                        failed += 1
                    if attempt > 0 or net.seconds > args.slow:
                        times.append(net.seconds)
    med = {key: statistics.median(times) for key, times in cells.items()}
    for geo in shapes:
        print(f"\n{label(geo)}\n")
        print("| program | interactions | auto s | fork s | rounds s | rounds / auto | "
              "fork / auto | auto MIPS |")  # fmt: skip
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for spec, (_book, _result, interactions) in books.items():
            auto, fork, rounds = (med[spec, geo, how] for how in RUNS)
            print(f"| {spec} | {interactions:,} | {auto:.4f} | {fork:.4f} | {rounds:.4f} | "
                  f"{rounds / auto:.2f} | {fork / auto:.2f} | "
                  f"{interactions / auto / 1e6:,.0f} |")  # fmt: skip
    if len(shapes) > 1:
        first, *others = shapes
        print(f"\nseconds under each geometry, and the others' over the first ({first.block} "
              f"threads a block)\n")  # fmt: skip
        print(
            "| program | run | "
            + " | ".join(f"{g.block} threads s" for g in shapes)
            + " | "
            + " | ".join(f"{g.block} / {first.block}" for g in others)
            + " |"
        )
        print("|---|---|" + "---:|" * (2 * len(shapes) - 1))
        for spec in books:
            for how in RUNS:
                secs = [med[spec, g, how] for g in shapes]
                print(
                    f"| {spec} | {how} | "
                    + " | ".join(f"{t:.4f}" for t in secs)
                    + " | "
                    + " | ".join(f"{t / secs[0]:.2f}" for t in secs[1:])
                    + " |"
                )
    runs = {how: [len(cells[spec, g, how]) for spec in books for g in shapes] for how in RUNS}
    print(f"\ntimed runs per cell: {runs}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
