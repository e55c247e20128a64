"""Where a CUDA run of the interaction-net VM spends its time, round by round.

``normalize_cuda`` runs a net in rounds (one kernel launch each). This script
records every round of one run per program (the pairs pending at its start,
the threads launched, its interactions and its seconds, through the policy
that picks each round's kernel) and prints them grouped by how many pairs a
round started with, then the smallest set of rounds that took 80 % of the
time. Every result and interaction count is checked as in bench/hvm.py.
Under ``--schedule auto`` the rounds are those after the run left ``fork``
(none where it stayed there to the end); ``fork`` has no rounds to show
(``cuda_fork.normalize_fork(..., trace=...)`` records its launches).

    python bench/hvm_rounds.py                                  # bitonic 2^19, radix 2^19
    python bench/hvm_rounds.py --programs sort_bitonic:14,stress:12 --schedule auto
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hvm
from focusflow.rewrite import cuda
from focusflow.rewrite.cpu import Normalized
from focusflow.rewrite.cuda_base import Geometry
from focusflow.rewrite.parse import Book, load_book
from focusflow.rewrite.show import readback

Round = tuple[int, int, int, float]  # pending, launched, interactions, seconds


def traced_run(book: Book, schedule: str) -> tuple[Normalized, list[Round]]:
    """One run with every round recorded (the policy's pick and record wrapped)."""
    rounds: list[Round] = []
    make_policy = cuda._policy
    pending_of: list[int] = []

    def policy_with_trace(name: str, geo: Geometry):
        policy, layout = make_policy(name, geo)
        pick, record = policy.pick, policy.record

        def traced_pick(pending: int, launched: int):
            pending_of.append(pending)
            return pick(pending, launched)

        def traced_record(launched: int, interactions: int, seconds: float) -> None:
            rounds.append((pending_of[-1], launched, interactions, seconds))
            record(launched, interactions, seconds)

        policy.pick, policy.record = traced_pick, traced_record
        return policy, layout

    cuda._policy = policy_with_trace
    try:
        net = cuda.normalize_cuda(book, schedule=schedule)
    finally:
        cuda._policy = make_policy
    return net, rounds


def report(name: str, size: int, schedule: str) -> None:
    program = next(p for p in hvm.PROGRAMS if p.name == name)
    book = load_book(program.text(size))
    cuda.normalize_cuda(book, schedule=schedule)  # warm-up
    net, rounds = traced_run(book, schedule)
    result, interactions = program.expect(size)
    got = readback(net.node, net.vars, net.root, book.names)
    assert (got, net.interactions) == (result, interactions), (got, net.interactions)
    if not rounds:  # auto kept the whole run under fork
        print(f"\n{name} {size} ({schedule}): no rounds; the run went to its end under fork, "
              f"{net.interactions:,} interactions in {net.seconds:.3f} s")  # fmt: skip
        return
    total = sum(r[3] for r in rounds)
    print(f"\n{name} {size} ({schedule}): {len(rounds)} rounds, {net.interactions:,} "
          f"interactions in {net.seconds:.3f} s ({net.interactions / net.seconds / 1e6:,.0f} "
          f"MIPS), {net.threads} threads at most")  # fmt: skip
    print("| pairs at the round's start | rounds | interactions | s | ms a round | MIPS |")
    print("|---:|---:|---:|---:|---:|---:|")
    groups: dict[int, list[Round]] = {}
    for r in rounds:
        groups.setdefault(1 << max(0, r[0].bit_length() - 1), []).append(r)
    for low in sorted(groups):
        rs = groups[low]
        s = sum(r[3] for r in rs)
        itrs = sum(r[2] for r in rs)
        print(f"| {low:,}–{2 * low - 1:,} | {len(rs)} | {itrs:,} | {s:.3f} | "
              f"{s / len(rs) * 1e3:.2f} | {itrs / s / 1e6 if s else 0:,.0f} |")  # fmt: skip
    slow = sorted(rounds, key=lambda r: -r[3])
    acc, kept = 0.0, []
    for r in slow:
        if acc >= 0.8 * total:
            break
        kept.append(r)
        acc += r[3]
    itrs = sum(r[2] for r in kept)
    print(f"80 % of the time ({acc:.3f} of {total:.3f} s) is in {len(kept)} of {len(rounds)} "
          f"rounds, which started with {min(r[0] for r in kept):,}–{max(r[0] for r in kept):,} "
          f"pairs and did {itrs:,} interactions ({itrs / net.interactions:.0%}) at "
          f"{itrs / acc / 1e6:,.0f} MIPS")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--programs", default="sort_bitonic:19,sort_radix:19",
                    help="name:size, comma-separated")  # fmt: skip
    ap.add_argument("--schedule", default="spread",
                    choices=[s for s in cuda.SCHEDULES if s != "fork"])  # fmt: skip
    args = ap.parse_args()
    ok, why = cuda.available()
    if not ok:
        raise SystemExit(f"no CUDA GPU here: {why}")
    print(f"GPU: {why}")
    for item in args.programs.split(","):
        name, size = item.split(":")
        report(name, int(size), args.schedule)


if __name__ == "__main__":
    main()
