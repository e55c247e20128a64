"""Snowman with ``f`` of ``n`` validators crashed: heights decided, beside Tendermint.

With no more validators than ``k`` every Snowman poll asks everyone, and a poll
counts as confident with ``alpha_confidence`` agreeing answers. The proportional
rule (``ceil(3n/4)``) asked 6 of 7, 8 of 10 and 12 of 16, more than the
``n - f`` validators left when ``f = (n - 1) // 3`` crash; the rule now caps it
at ``n - f`` (``SnowmanParams.effective``). This runs, on one seeded simulated
network per size, Tendermint, Snowman as it is now, and Snowman under the
proportional rule (``Proportional`` below), each with the same ``f`` validators
crashed from the start, and
prints the heights every live validator decided in the simulated time and the
simulated seconds per height.

Run from the repository root::

    python bench/snowman_crashed.py                      # 4, 7, 10 and 16 validators
    python bench/snowman_crashed.py --validators 7 --seconds 20 --seeds 1 2 3
    python bench/snowman_crashed.py --validators 7 16 --crashed 0     # no fault
"""

from __future__ import annotations

import argparse
import math
import time

from focusflow.consensus.sim import Simulation
from focusflow.consensus.snowball import SnowmanParams


class Proportional(SnowmanParams):
    """The default parameters under the rule before the quorum cap: with no more
    validators than ``k``, ``alpha_confidence`` is 3/4 of them, rounded up."""

    def effective(self, validators: int) -> tuple[int, int, int]:
        if validators > self.k:
            return super().effective(validators)
        ap = validators // 2 + 1
        return validators, ap, max(math.ceil(self.alpha_confidence * validators / self.k), ap)


def run(n: int, way: str, seed: int, seconds: float, crashed: int) -> dict:
    if way == "tendermint":
        sim = Simulation(n, seed=seed)
    elif way == "snowman":
        sim = Simulation(n, seed=seed, engine="snowman")
    else:
        sim = Simulation(n, seed=seed, engine="snowman", snowman=Proportional())
    for i in range(n - crashed, n):
        sim.crash(i)
    wall = time.perf_counter()
    sim.run(seconds)
    done = min(len(node.decisions) for node in sim.honest() if node.alive)
    return {
        "crashed": crashed,
        "heights": done,
        "per_height": sim.now / done if done else math.inf,
        "violations": len(sim.violations),
        "wall": time.perf_counter() - wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--validators", type=int, nargs="+", default=[4, 7, 10, 16])
    ap.add_argument("--seconds", type=float, default=10.0, help="simulated seconds per run")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument(
        "--crashed", type=int, default=-1, help="validators crashed (default f = (n - 1) // 3)"
    )
    args = ap.parse_args()
    if any(n < 4 or n > SnowmanParams().k for n in args.validators):
        ap.error(f"validators between 4 and {SnowmanParams().k} (every poll asks everyone)")
    ways = ("tendermint", "snowman", "snowman, 3/4 of n")
    print(
        "| validators | crashed | seed | way | alpha_confidence | heights decided "
        "| simulated s/height | wall s |"
    )
    print("| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    for n in args.validators:
        for seed in args.seeds:
            for way in ways:
                down = (n - 1) // 3 if args.crashed < 0 else min(args.crashed, n - 1)
                r = run(n, way, seed, args.seconds, down)
                assert r["violations"] == 0, (n, way, seed)
                ac = {
                    "tendermint": "-",
                    "snowman": str(SnowmanParams().effective(n)[2]),
                }.get(way, str(Proportional().effective(n)[2]))
                per = "-" if math.isinf(r["per_height"]) else f"{r['per_height']:.3f}"
                print(
                    f"| {n} | {r['crashed']} | {seed} | {way} | {ac} | {r['heights']} "
                    f"| {per} | {r['wall']:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
